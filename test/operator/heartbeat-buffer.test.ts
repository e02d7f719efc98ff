// What the heartbeat buffer tells the liveness guard about a node's wait on the operator: while
// its written heartbeat is being answered the node is not silent, and after the reply its silence
// counts from then (an agent times its next heartbeat from the reply; liveness-guard.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HeartbeatBuffer } from '../../src/operator/heartbeat-buffer.js';
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
});
