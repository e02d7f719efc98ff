// Keyed reconcilers against a real operator (DESIGN.md §3, issue 9 goal 2): a heartbeat that
// changed one node's report reconciles that node's key only; heartbeats that repeat themselves
// reconcile nothing; a drain reconciles its node (and what the migration touches), never the
// rest of the fleet. Both engines.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningOperator } from '../../src/operator/server.js';
import type { InstanceView } from '../../src/store/instances.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { FakeNode } from '../support/fake-node.js';
import { ApiClient, startTestOperator, waitFor } from '../support/operator.js';

describe(`keyed fleet reconcilers on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let op: RunningOperator;
  let api: ApiClient;
  let fleet: FakeNode[];
  let port = 34000;
  const seen = { node: [] as string[], deployment: [] as string[] };
  const nodeOf = (id: string) => fleet.find((n) => n.id === id) as FakeNode;
  const instancesOf = (deployment: string) => api.ok<InstanceView[]>(`/api/v1/instances?deployment=${deployment}`);

  async function healthyDeployment(name: string, replicas: number): Promise<InstanceView[]> {
    expect((await api.post('/api/v1/deployments', { name, replicas, workload: { command: 'sleep' } })).status).toBe(201);
    const placed = await waitFor(`${name} placed`, async () => {
      const list = await instancesOf(name);
      return list.length === replicas && list;
    });
    for (const instance of placed) nodeOf(instance.node_id).runHealthy(instance.id, ++port);
    await waitFor(`${name} serving`, async () => (await instancesOf(name)).every((i) => i.published));
    return placed;
  }

  /** Keys reconciled from now on, once the queues have settled (nothing in flight any more). */
  async function settleAndWatch(): Promise<void> {
    const { nodes, deployments } = op.ctx.reconciler;
    await waitFor('the queues to settle', async () => {
      const before = nodes.processed + deployments.processed;
      await new Promise((r) => setTimeout(r, 1_200));
      return nodes.processed + deployments.processed === before;
    });
    seen.node = [];
    seen.deployment = [];
  }

  beforeAll(async () => {
    t = await createTestDb();
    op = await startTestOperator(t.db);
    api = new ApiClient(op.url);
    const { nodes, deployments } = op.ctx.reconciler;
    const wrap = (queue: typeof nodes, into: () => string[]) => {
      const metrics = queue.onReconciled;
      queue.onReconciled = (key, ms, ok) => {
        into().push(key);
        metrics(key, ms, ok);
      };
    };
    wrap(nodes, () => seen.node);
    wrap(deployments, () => seen.deployment);
    fleet = [];
    for (const [hostname, region] of [['k-a', 'us-east'], ['k-b', 'us-east'], ['k-c', 'eu-west'], ['k-d', 'eu-west']] as const) {
      fleet.push(await FakeNode.register(api, { hostname, region, max_instances: 4 }));
    }
    for (const node of fleet) node.startHeartbeats();
    await healthyDeployment('web', 2);
    await healthyDeployment('api', 2);
  });
  afterAll(async () => {
    for (const node of fleet ?? []) await node.stopHeartbeats();
    await op?.close();
    await t?.cleanup();
  });

  it('reconciles nothing while heartbeats repeat themselves', async () => {
    await settleAndWatch();
    const received = async () => (await op.ctx.metrics.heartbeats.get()).values[0]?.value ?? 0;
    const before = await received();
    await new Promise((r) => setTimeout(r, 1_500));
    // Every node heartbeated meanwhile (every 250 ms), and nothing needed reconciling.
    expect((await received()) - before).toBeGreaterThanOrEqual(fleet.length * 2);
    expect(seen).toEqual({ node: [], deployment: [] });
  });

  it("reconciles only the node whose report changed, and that node's deployments through it", async () => {
    await settleAndWatch();
    const web = await instancesOf('web');
    const target = web[0] as InstanceView;
    const node = nodeOf(target.node_id);
    node.report({ id: target.id, status: 'running', healthy: false, pid: 1, port: 1, message: 'probe failed' });
    await waitFor('the node key reconciled', async () => seen.node.includes(node.id));
    await new Promise((r) => setTimeout(r, 500));
    expect(new Set(seen.node)).toEqual(new Set([node.id]));
    expect(seen.deployment).toEqual([]);
    node.runHealthy(target.id, ++port);
  });

  it('drains a node through its key: the first migration starts without a pass over the fleet', async () => {
    await settleAndWatch();
    const web = await instancesOf('web');
    const source = web[0] as InstanceView;
    const drain = await api.post(`/api/v1/nodes/${source.node_id}/drain`, {});
    expect(drain.status, drain.text).toBe(202);
    const started = await waitFor('a migration started', async () => {
      const events = await api.ok<{ kind: string; instance_id: string }[]>(`/api/v1/events?kind_prefix=instance.migration_started`);
      return events.length > 0 && events;
    });
    expect(started.map((e) => e.instance_id)).toContain(source.id);
    expect(seen.node[0]).toBe(source.node_id);
    expect(seen.deployment).toEqual([]);
    // Finish it: the replacements become healthy, the old ones stop, the drain completes.
    await waitFor('the drain completed', async () => {
      for (const i of await api.ok<InstanceView[]>('/api/v1/instances')) {
        if (i.desired === 'running' && !i.healthy) nodeOf(i.node_id).runHealthy(i.id, ++port);
        if (i.desired === 'stopped') nodeOf(i.node_id).reportStopped(i.id);
      }
      const node = await api.ok<{ drain: { state: string } | null; status: string }>(`/api/v1/nodes/${source.node_id}`);
      return node.drain?.state === 'completed' && node.status === 'cordoned';
    });
    // Only nodes the drain touched were reconciled: the drained one, the targets and sources of its moves.
    const touched = new Set((await api.ok<InstanceView[]>('/api/v1/instances')).map((i) => i.node_id));
    for (const id of seen.node) expect(touched.has(id) || id === source.node_id).toBe(true);
  });
});
