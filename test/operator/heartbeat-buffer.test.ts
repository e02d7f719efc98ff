// What the heartbeat buffer tells the liveness guard about a node's wait on the operator: while
// its written heartbeat is being answered the node is not silent, and after the reply its silence
// counts from then (an agent times its next heartbeat from the reply; liveness-guard.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HeartbeatBuffer } from '../../src/operator/heartbeat-buffer.js';
import type { Db } from '../../src/store/db.js';
import { registerNode } from '../../src/store/nodes.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { registerRequest } from '../support/store-fixtures.js';

describe(`heartbeat buffer hearing facts on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  beforeAll(async () => {
    t = await createTestDb();
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  it('holds a node as unanswered from the written heartbeat until its reply, then remembers when it was answered', async () => {
    const nodeId = (await registerNode(t.db, registerRequest('hb-answer'), 'hb-answer')).id;
    const buffer = new HeartbeatBuffer(t.db, 0);
    const generation = await buffer.add({ nodeId, agentVersion: 'test', protocolVersion: 1, components: {}, instances: [], arrivedAt: performance.now() });
    expect(generation).toBeTypeOf('number');

    let release: () => void = () => {};
    const replied = buffer.answering(nodeId, () => new Promise<string>((resolve) => (release = () => resolve('desired state'))));
    const during = buffer.uncommitted();
    expect([...during.unanswered]).toEqual([nodeId]);
    expect(during.answeredAt.has(nodeId)).toBe(false);

    const before = performance.now();
    release();
    expect(await replied).toBe('desired state');
    const after = buffer.uncommitted();
    expect(after.unanswered.size).toBe(0);
    expect(after.answeredAt.get(nodeId)).toBeGreaterThanOrEqual(before);
  });

  it('ends the wait when the reply fails too (the agent is free to heartbeat again)', async () => {
    const buffer = new HeartbeatBuffer(t.db, 0);
    await expect(buffer.answering('hb-failed', async () => Promise.reject(new Error('no desired state')))).rejects.toThrow('no desired state');
    expect(buffer.uncommitted().unanswered.size).toBe(0);
    expect(buffer.uncommitted().answeredAt.has('hb-failed')).toBe(true);
  });
  it('writes a second batch while the first is held, but never a node in both: its newer heartbeat waits and is the one stored', async () => {
    const a = (await registerNode(t.db, registerRequest('hb-two-a'), 'hb-two-a')).id;
    const b = (await registerNode(t.db, registerRequest('hb-two-b'), 'hb-two-b')).id;
    const { db: gated, open } = gatedDb(t.db);
    const buffer = new HeartbeatBuffer(gated, 0, 1000, () => {}, 2);
    const beat = (nodeId: string, agentVersion: string) => buffer.add({ nodeId, agentVersion, protocolVersion: 1, components: {}, instances: [], arrivedAt: performance.now() });

    const first = beat(a, 'a-1');
    await new Promise((resolve) => setImmediate(resolve));
    const newer = beat(a, 'a-2');
    const other = beat(b, 'b-1');
    // b's batch is written while a's first is held; a's newer heartbeat is not in it.
    const waitUpTo = <T>(promise: Promise<T>, ms: number) => Promise.race([promise, new Promise<'waiting'>((resolve) => setTimeout(() => resolve('waiting'), ms))]);
    expect(await waitUpTo(other, 10_000)).toBeTypeOf('number');
    expect(await waitUpTo(newer, 100)).toBe('waiting');

    open();
    expect(await first).toBeTypeOf('number');
    expect(await newer).toBeTypeOf('number');
    const rows = await t.db.query<{ id: string; agent_version: string }>('SELECT id, agent_version FROM nodes WHERE id = ANY($1::text[]) ORDER BY hostname', [[a, b]]);
    expect(rows.map((r) => r.agent_version)).toEqual(['a-2', 'b-1']);
  });

  it('drains at shutdown what waited behind a batch being written: the node’s newer heartbeat is stored', async () => {
    const a = (await registerNode(t.db, registerRequest('hb-drain-a'), 'hb-drain-a')).id;
    const { db: gated, open } = gatedDb(t.db);
    const buffer = new HeartbeatBuffer(gated, 0, 1000, () => {}, 2);
    const beat = (agentVersion: string) => buffer.add({ nodeId: a, agentVersion, protocolVersion: 1, components: {}, instances: [], arrivedAt: performance.now() });
    const first = beat('a-1');
    await new Promise((resolve) => setImmediate(resolve));
    const newer = beat('a-2');
    const drained = buffer.drain();
    open();
    await drained;
    // Stored when drain() returns (the database is closed next), not by some later write.
    const [row] = await t.db.query<{ agent_version: string }>('SELECT agent_version FROM nodes WHERE id = $1', [a]);
    expect(row?.agent_version).toBe('a-2');
    expect(await first).toBeTypeOf('number');
    expect(await newer).toBeTypeOf('number');
  });
});

/** The real database behind a gate that holds its first write until `open` is called. */
function gatedDb(db: Db): { db: Db; open: () => void } {
  let open: () => void = () => {};
  const opened = new Promise<void>((resolve) => (open = resolve));
  let held = false;
  const gate = async () => {
    if (held) return;
    held = true;
    await opened;
  };
  return {
    db: {
      engine: db.engine,
      query: async (text, values, options) => (await gate(), db.query(text, values, options)),
      transaction: async (work, options) => (await gate(), db.transaction(work, options)),
      close: () => db.close(),
    },
    open,
  };
}
