// Truth under overload (issue 9, goal 5): a node is marked down only for its own silence, never
// for the operator's. Each test overloads or disturbs a real operator over real HTTP and then
// reads what it wrote: node rows, events, endpoints.
import { afterEach, describe, expect, it } from 'vitest';
import type { RunningOperator } from '../../src/operator/server.js';
import type { Db } from '../../src/store/db.js';
import type { InstanceView } from '../../src/store/instances.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { FakeNode } from '../support/fake-node.js';
import { ApiClient, startTestOperator, waitFor } from '../support/operator.js';

/** The test operator's grace (test/support/operator.ts). */
const GRACE_MS = 1500;

interface Endpoint {
  instance_id: string;
  node_id: string;
  healthy: boolean;
}

describe(`liveness under overload on ${TEST_ENGINE}`, () => {
  let t: TestDb | undefined;
  const operators: RunningOperator[] = [];
  const fleet: FakeNode[] = [];

  afterEach(async () => {
    await Promise.all(fleet.map((n) => n.stopHeartbeats()));
    fleet.length = 0;
    for (const op of operators.splice(0)) await op.close();
    await t?.cleanup();
    t = undefined;
  });

  async function start(overrides: Parameters<typeof startTestOperator>[1] = {}): Promise<{ db: Db; op: RunningOperator; api: ApiClient }> {
    t ??= await createTestDb();
    const op = await startTestOperator(t.db, overrides);
    operators.push(op);
    return { db: t.db, op, api: new ApiClient(op.url) };
  }

  async function register(api: ApiClient, specs: [hostname: string, region: string][]): Promise<FakeNode[]> {
    const nodes: FakeNode[] = [];
    for (const [hostname, region] of specs) nodes.push(await FakeNode.register(api, { hostname, region }));
    fleet.push(...nodes);
    return nodes;
  }

  const statuses = async (db: Db) =>
    Object.fromEntries((await db.query<{ hostname: string; status: string }>('SELECT hostname, status FROM nodes ORDER BY hostname')).map((r) => [r.hostname, r.status]));
  const eventsAfter = async (db: Db, after: number, kind: string) =>
    db.query<{ id: string; node_id: string | null; data: Record<string, unknown> }>('SELECT id, node_id, data FROM events WHERE id > $1 AND kind = $2 ORDER BY id', [after, kind]);
  const lastEventId = async (db: Db) => Number((await db.query<{ id: string | null }>('SELECT max(id) AS id FROM events'))[0]?.id ?? 0);
  /** Waits until the reconciler has run `count` more passes (it judges on its own schedule). */
  const passes = async (op: RunningOperator, count: number) => {
    const from = op.ctx.reconciler.passes;
    await waitFor(`${count} reconciler passes`, async () => op.ctx.reconciler.passes >= from + count);
  };

  it('marks no node down while its heartbeats wait inside the operator longer than the grace', async () => {
    const { db, op, api } = await start();
    // Two regions of two nodes: the region rule (3 nodes at least) cannot be what holds them.
    const nodes = await register(api, [['ov-a1', 'us-east'], ['ov-a2', 'us-east'], ['ov-b1', 'eu-west'], ['ov-b2', 'eu-west']]);
    for (const n of nodes) n.startHeartbeats(250);
    await waitFor('all nodes ready', async () => Object.values(await statuses(db)).every((s) => s === 'ready'));
    const after = await lastEventId(db);

    // The heartbeat writes stall behind row locks on every node (on the embedded engine, behind
    // the one session): heartbeats reach the operator and wait there. The stall lasts until
    // every node's stored heartbeat is twice the grace old.
    await db.transaction(async (tx) => {
      await tx.query('SELECT id FROM nodes FOR UPDATE');
      await waitFor(
        'the stall to outlast twice the grace',
        async () => (await tx.query<{ past: boolean }>(`SELECT bool_and(clock_timestamp() - last_heartbeat_at > $1 * interval '1 millisecond') AS past FROM nodes`, [2 * GRACE_MS]))[0]?.past,
        { timeoutMs: 20_000, intervalMs: 100 },
      );
    });

    // Every node gets through again, and the reconciler judges the fleet several times more.
    const released = new Date();
    await waitFor('every node to heartbeat after the stall', async () =>
      (await db.query<{ fresh: boolean }>('SELECT bool_and(last_heartbeat_at > $1) AS fresh FROM nodes', [released]))[0]?.fresh,
    );
    await passes(op, 10);
    expect(await eventsAfter(db, after, 'node.down')).toEqual([]);
    expect(Object.values(await statuses(db))).toEqual(['ready', 'ready', 'ready', 'ready']);
    if (TEST_ENGINE === 'postgres') {
      // Only the server engine lets passes run during the stall (reads do not wait for row
      // locks), so only there does the operator see stale rows and say why it holds them.
      const held = await eventsAfter(db, after, 'fleet.liveness_held');
      expect(held).toHaveLength(1);
      expect(held[0]?.data).toMatchObject({ condition: 'operator' });
      expect(await eventsAfter(db, after, 'fleet.liveness_resumed')).toHaveLength(1);
    }
  });

  it('keeps a region that goes silent at once up and published, with one event, but marks a lone silent node down', async () => {
    const { db, op, api } = await start();
    const east = await register(api, [['rs-a1', 'us-east'], ['rs-a2', 'us-east'], ['rs-a3', 'us-east']]);
    const west = await register(api, [['rs-e1', 'eu-west'], ['rs-e2', 'eu-west'], ['rs-e3', 'eu-west']]);
    for (const n of fleet) n.startHeartbeats(250);
    const created = await api.post<{ id: string }>('/api/v1/deployments', { name: 'web', replicas: 6, workload: { command: 'sleep', args: ['3600'] } });
    expect(created.status).toBe(201);
    const placed = await waitFor('six instances placed', async () => {
      const list = await api.ok<InstanceView[]>(`/api/v1/instances?deployment=${created.body.id}`);
      return list.length === 6 && list;
    });
    placed.forEach((i, k) => fleet.find((n) => n.id === i.node_id)?.runHealthy(i.id, 30_000 + k));
    const endpoints = () => api.ok<Endpoint[]>(`/api/v1/deployments/${created.body.id}/endpoints`);
    await waitFor('six healthy endpoints', async () => (await endpoints()).filter((e) => e.healthy).length === 6);

    // A lone node of a healthy region is dead: down, as before.
    const lone = east[2] as FakeNode;
    let after = await lastEventId(db);
    await lone.stopHeartbeats();
    await waitFor('the lone silent node to be down', async () => (await eventsAfter(db, after, 'node.down')).length > 0);
    expect((await eventsAfter(db, after, 'node.down')).map((e) => e.node_id)).toEqual([lone.id]);

    // All of eu-west stops at once: the operator suspects itself or the network, not the nodes.
    after = await lastEventId(db);
    await Promise.all(west.map((n) => n.stopHeartbeats()));
    const [silent] = await waitFor('the region-silent event', async () => {
      const events = await eventsAfter(db, after, 'fleet.region_silent');
      return events.length > 0 && events;
    });
    // Announced when the first of them passes the grace (`held` counts those past it then).
    expect(silent?.data).toMatchObject({ region: 'eu-west', silent: 3, nodes: 3, threshold: 0.55, min_nodes: 3 });
    await waitFor('eu-west silent for twice the grace', async () =>
      (await db.query<{ past: boolean }>(
        `SELECT bool_and(now() - last_heartbeat_at > $1 * interval '1 millisecond') AS past FROM nodes WHERE region = 'eu-west'`,
        [2 * GRACE_MS],
      ))[0]?.past,
    );
    await passes(op, 5);
    expect(await eventsAfter(db, after, 'node.down')).toEqual([]);
    expect(await eventsAfter(db, after, 'fleet.region_silent')).toHaveLength(1);
    expect(await eventsAfter(db, after, 'instance.withdrawn')).toEqual([]);
    const status = await statuses(db);
    expect([status['rs-e1'], status['rs-e2'], status['rs-e3'], status['rs-a3']]).toEqual(['ready', 'ready', 'ready', 'down']);
    const published = await endpoints();
    const westIds = new Set(west.map((n) => n.id));
    expect(published.filter((e) => westIds.has(e.node_id) && e.healthy)).toHaveLength(3);

    // The region comes back: the condition ends with one event, and nobody went down on the way.
    for (const n of west) n.startHeartbeats(250);
    await waitFor('the region-silence-ended event', async () => (await eventsAfter(db, after, 'fleet.region_silence_ended')).length > 0);
    expect((await eventsAfter(db, after, 'fleet.region_silence_ended')).map((e) => e.data.region)).toEqual(['eu-west']);
    expect(await eventsAfter(db, after, 'node.down')).toEqual([]);
  });

  it('does not mark the fleet down when a new leader takes over rows with stale heartbeats, and still finds the dead node', async () => {
    const first = await start();
    const nodes = await register(first.api, [['lt-a1', 'us-east'], ['lt-a2', 'us-east'], ['lt-b1', 'eu-west'], ['lt-b2', 'eu-west']]);
    for (const n of nodes) n.startHeartbeats(250);
    await waitFor('all nodes ready', async () => Object.values(await statuses(first.db)).every((s) => s === 'ready'));

    // The leader goes away; nothing hears the agents for five minutes (as the rows say).
    await Promise.all(nodes.map((n) => n.stopHeartbeats()));
    await (operators.shift() as RunningOperator).close();
    await first.db.query(`UPDATE nodes SET last_heartbeat_at = now() - interval '5 minutes'`);
    const after = await lastEventId(first.db);

    // A new leader on the same address; three agents reconnect, one never does.
    const second = await start({ listen: new URL(first.op.url).host });
    expect(second.op.url).toBe(first.op.url);
    await waitFor('the new operator to lead', async () => second.op.ctx.lease.leader);
    const dead = nodes[3] as FakeNode;
    for (const n of nodes.slice(0, 3)) n.startHeartbeats(250);
    await waitFor('the dead node to be down', async () => (await eventsAfter(first.db, after, 'node.down')).length > 0);
    await passes(second.op, 5);
    expect((await eventsAfter(first.db, after, 'node.down')).map((e) => e.node_id)).toEqual([dead.id]);
    expect(await statuses(first.db)).toEqual({ 'lt-a1': 'ready', 'lt-a2': 'ready', 'lt-b1': 'ready', 'lt-b2': 'down' });
  });
});
