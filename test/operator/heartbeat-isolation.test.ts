// One node's bad heartbeat must never fail another node's (DESIGN.md §8 invariant 7). The
// attack from issue 8: a node floods heartbeats Postgres would refuse (an int4 overflow, a NUL
// byte) while three real nodes heartbeat in the same 50 ms batch windows, for longer than the
// heartbeat grace. Before the fix every good heartbeat of such a batch got a 500 and the real
// nodes were marked down.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HeartbeatBuffer } from '../../src/operator/heartbeat-buffer.js';
import type { RunningOperator } from '../../src/operator/server.js';
import type { HeartbeatRecord } from '../../src/store/nodes.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { FakeNode } from '../support/fake-node.js';
import { ApiClient, expectApiError, startTestOperator, waitFor } from '../support/operator.js';

const INT4_OVERFLOW = 2_147_483_648;

describe(`heartbeat batch isolation on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let op: RunningOperator;
  let api: ApiClient;
  let good: FakeNode[];
  let bad: FakeNode;

  beforeAll(async () => {
    t = await createTestDb();
    op = await startTestOperator(t.db);
    api = new ApiClient(op.url);
    good = [];
    for (const hostname of ['iso-good-1', 'iso-good-2', 'iso-good-3']) good.push(await FakeNode.register(api, { hostname }));
    bad = await FakeNode.register(api, { hostname: 'iso-bad-1' });
  });
  afterAll(async () => {
    await op?.close();
    await t?.cleanup();
  });

  const heartbeatBody = (node: FakeNode, fields: Record<string, unknown> = {}) => ({
    node_id: node.id,
    agent_version: 'test',
    protocol_version: 1,
    components: { 'node-agent': 'test' },
    instances: [],
    generation: 0,
    ...fields,
  });
  const send = (node: FakeNode, fields: Record<string, unknown> = {}) =>
    api.post('/api/v1/agent/heartbeat', heartbeatBody(node, fields), { headers: { 'x-drydock-node-credential': node.credential } });

  const agentVersions = async () =>
    new Map(
      (await t.db.query<{ id: string; agent_version: string }>('SELECT id, agent_version FROM nodes')).map((r) => [r.id, r.agent_version]),
    );

  it('answers every good heartbeat 200 and stores it while a node floods refused ones, and no good node goes down', async () => {
    const passesBefore = op.ctx.reconciler.passes;
    const deadline = Date.now() + 3 * 1500; // three times the heartbeat grace of the test operator
    let rounds = 0;
    while (Date.now() < deadline || rounds < 20) {
      rounds++;
      const version = `good-r${rounds}`;
      // The bad record that the schema cannot see (a value it allows, the database refuses)
      // goes straight into the operator's own buffer, in the same window as the HTTP heartbeats.
      const injected = op.ctx.heartbeats
        .add({ nodeId: bad.id, agentVersion: 'ok', protocolVersion: INT4_OVERFLOW, components: {}, instances: [] })
        .then(() => 'stored', (error: unknown) => error);
      const [goodReplies, overflow, nul, nulKey] = await Promise.all([
        Promise.all(good.map((node) => send(node, { agent_version: version }))),
        send(bad, { protocol_version: INT4_OVERFLOW }),
        send(bad, { agent_version: 'v1\u0000evil' }),
        send(bad, { components: { 'node-agent\u0000': '1.0.0' } }),
      ]);
      for (const reply of goodReplies) expect(reply.status, reply.text).toBe(200);
      expectApiError(overflow, 400, 'VALIDATION_FAILED');
      expect(JSON.stringify(overflow.body)).toContain('body.protocol_version');
      expectApiError(nul, 400, 'VALIDATION_FAILED');
      expect(JSON.stringify(nul.body)).toContain('body.agent_version');
      expectApiError(nulKey, 400, 'VALIDATION_FAILED');
      expect(await injected).toMatchObject({ status: 400, code: 'HEARTBEAT_REJECTED', details: { node_id: bad.id } });
      // Every good node's row holds this round's heartbeat.
      const stored = await agentVersions();
      for (const node of good) expect(stored.get(node.id)).toBe(version);
      expect(stored.get(bad.id)).toBe('test');
    }
    // The fleet reconciler judged liveness throughout the flood.
    expect(op.ctx.reconciler.passes).toBeGreaterThan(passesBefore + 5);
    const statuses = await t.db.query<{ id: string; status: string }>('SELECT id, status FROM nodes WHERE id = ANY($1::text[])', [good.map((n) => n.id)]);
    expect(statuses.map((s) => s.status)).toEqual(['ready', 'ready', 'ready']);
    const downs = await t.db.query<{ node_id: string }>(`SELECT node_id FROM events WHERE kind = 'node.down'`);
    expect(downs.filter((e) => good.some((n) => n.id === e.node_id))).toEqual([]);
  });

  it('a batch holding several refused records commits every other record and rejects only those', async () => {
    // A buffer of its own with a long window, so all seven records are one batch for sure.
    const buffer = new HeartbeatBuffer(t.db, 60_000, 1000);
    const record = (node: FakeNode, fields: Partial<HeartbeatRecord>): HeartbeatRecord => ({
      nodeId: node.id,
      agentVersion: 'batch',
      protocolVersion: 1,
      components: {},
      instances: [],
      ...fields,
    });
    const outcomes = [
      record(good[0] as FakeNode, { agentVersion: 'batch-1' }),
      record(bad, { protocolVersion: INT4_OVERFLOW }),
      record(good[1] as FakeNode, { agentVersion: 'batch-2' }),
      record(good[2] as FakeNode, { agentVersion: 'batch-3' }),
    ].map((r) => buffer.add(r).then(() => 'stored', (error: unknown) => error));
    // A second bad node: NUL in text, and NUL in jsonb.
    const extra = await FakeNode.register(api, { hostname: 'iso-bad-2' });
    const extra2 = await FakeNode.register(api, { hostname: 'iso-bad-3' });
    outcomes.push(buffer.add(record(extra, { agentVersion: 'nul\u0000' })).then(() => 'stored', (error: unknown) => error));
    outcomes.push(buffer.add(record(extra2, { components: { agent: 'x\u0000' } })).then(() => 'stored', (error: unknown) => error));
    await buffer.flush();
    const [g1, b1, g2, g3, b2, b3] = await Promise.all(outcomes);
    expect([g1, g2, g3]).toEqual(['stored', 'stored', 'stored']);
    for (const [rejected, node] of [
      [b1, bad],
      [b2, extra],
      [b3, extra2],
    ] as const) {
      expect(rejected).toMatchObject({ status: 400, code: 'HEARTBEAT_REJECTED', details: { node_id: node.id } });
    }
    const stored = await agentVersions();
    expect([good[0], good[1], good[2]].map((n) => stored.get((n as FakeNode).id))).toEqual(['batch-1', 'batch-2', 'batch-3']);
    expect([stored.get(bad.id), stored.get(extra.id), stored.get(extra2.id)]).toEqual(['test', 'test', 'test']);
    // The operator keeps answering its nodes.
    await waitFor('a good heartbeat after the bad batch', async () => (await send(good[0] as FakeNode)).status === 200);
  });
});
