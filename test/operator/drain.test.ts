import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningOperator } from '../../src/operator/server.js';
import type { EventRow } from '../../src/store/events.js';
import type { InstanceView } from '../../src/store/instances.js';
import type { NodeView } from '../../src/store/nodes.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { FakeNode } from '../support/fake-node.js';
import { ApiClient, expectApiError, startTestOperator, waitFor } from '../support/operator.js';

interface Endpoint {
  instance_id: string;
  node_id: string;
  url: string;
  healthy: boolean;
}

describe(`operator drain and migrate on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let op: RunningOperator;
  let api: ApiClient;
  let fleet: FakeNode[];
  let port = 32000;
  const nodeOf = (id: string) => fleet.find((n) => n.id === id) as FakeNode;
  const instancesOf = (deployment: string) => api.ok<InstanceView[]>(`/api/v1/instances?deployment=${deployment}`);
  const endpointsOf = (deployment: string) => api.ok<Endpoint[]>(`/api/v1/deployments/${deployment}/endpoints`);

  /** Creates a deployment, waits for its placement and reports every instance healthy. */
  async function healthyDeployment(name: string, replicas: number): Promise<InstanceView[]> {
    expect((await api.post('/api/v1/deployments', { name, replicas, workload: { command: 'sleep' } })).status).toBe(201);
    const placed = await waitFor(`${name} placed`, async () => {
      const list = await instancesOf(name);
      return list.length === replicas && list;
    });
    for (const instance of placed) {
      nodeOf(instance.node_id).runHealthy(instance.id, ++port);
      await nodeOf(instance.node_id).heartbeat();
    }
    await waitFor(`${name} serving`, async () => (await endpointsOf(name)).length === replicas);
    return placed;
  }

  beforeAll(async () => {
    t = await createTestDb();
    op = await startTestOperator(t.db);
    api = new ApiClient(op.url);
    fleet = [
      await FakeNode.register(api, { hostname: 'drain-a', region: 'us-east' }),
      await FakeNode.register(api, { hostname: 'drain-b', region: 'us-east' }),
      await FakeNode.register(api, { hostname: 'drain-c', region: 'eu-west' }),
    ];
    for (const node of fleet) node.startHeartbeats();
  });
  afterAll(async () => {
    for (const node of fleet ?? []) await node.stopHeartbeats();
    await op?.close();
    await t?.cleanup();
  });

  it('drains a node make-before-break: replacement elsewhere, old one withdrawn once the new one is healthy, then completed', async () => {
    const placed = await healthyDeployment('web', 2);
    const old = placed[0] as InstanceView;
    const source = nodeOf(old.node_id);
    const other = placed[1] as InstanceView;
    // The replacement goes where the deployment has no replica yet.
    const expectedTarget = fleet.find((n) => n.id !== old.node_id && n.id !== other.node_id) as FakeNode;

    const drained = await api.post<NodeView>(`/api/v1/nodes/${source.id}/drain`, {});
    expect(drained.status).toBe(202);
    expect(drained.body).toMatchObject({ id: source.id, status: 'draining', draining: true, cordoned: true, drain: { state: 'running', force: false } });

    const replacement = await waitFor('a replacement', async () => (await instancesOf('web')).find((i) => i.replaces === old.id));
    expect(replacement.node_id).toBe(expectedTarget.id);
    expect(replacement.node_id).not.toBe(source.id);
    // The old one keeps serving until the new one is healthy.
    expect((await endpointsOf('web')).map((e) => e.instance_id).sort()).toEqual([old.id, other.id].sort());
    expect((await source.heartbeat()).draining).toBe(true);
    expect((await expectedTarget.heartbeat()).instances.map((i) => i.id)).toContain(replacement.id);

    expectedTarget.runHealthy(replacement.id, ++port);
    await expectedTarget.heartbeat();
    const stopping = await waitFor('the old instance to be set stopped', async () => {
      const row = await api.ok<InstanceView>(`/api/v1/instances/${old.id}`);
      return row.desired === 'stopped' && row;
    });
    expect(stopping.published).toBe(false);
    const endpoints = await endpointsOf('web');
    expect(endpoints.map((e) => e.instance_id).sort()).toEqual([replacement.id, other.id].sort());
    const desiredOnSource = await source.heartbeat();
    expect(desiredOnSource.instances).toEqual([expect.objectContaining({ id: old.id, desired: 'stopped' })]);
    // Still counted on the node until its agent says it stopped.
    expect((await api.ok<NodeView>(`/api/v1/nodes/${source.id}`)).active_instances).toBe(1);

    source.reportStopped(old.id);
    await source.heartbeat();
    const done = await waitFor('the drain to complete', async () => {
      const node = await api.ok<NodeView>(`/api/v1/nodes/${source.id}`);
      return node.active_instances === 0 && node.drain?.state === 'completed' && node.status === 'cordoned' && node;
    });
    expect(done).toMatchObject({ draining: false, cordoned: true, available_capacity: 4 });
    expect((await api.get(`/api/v1/instances/${old.id}`)).status).toBe(404);
    expect((await source.heartbeat()).instances).toEqual([]);
    expect((await api.ok<{ status: string; healthy_instances: number }>('/api/v1/deployments/web/health'))).toMatchObject({
      status: 'healthy',
      healthy_instances: 2,
    });

    const kinds = (await api.ok<EventRow[]>(`/api/v1/events?after=0`)).map((e) => e.kind);
    for (const kind of ['node.cordoned', 'node.drain_started', 'instance.migration_started', 'instance.replacement_placed', 'instance.migration_completed', 'node.drained']) {
      expect(kinds).toContain(kind);
    }

    const enabled = await api.post<NodeView>(`/api/v1/nodes/${source.id}/enable`);
    expect(enabled.body).toMatchObject({ status: 'ready', cordoned: false, draining: false, drain: null });
  });

  it('POST /instances/:id/migrate moves one instance make-before-break to the named node', async () => {
    const [instance] = await healthyDeployment('api', 1);
    if (!instance) throw new Error('expected an instance');
    const target = fleet.find((n) => n.id !== instance.node_id) as FakeNode;

    const response = await api.post<Record<string, string>>(`/api/v1/instances/${instance.id}/migrate`, { target_node: target.hostname });
    expect(response.status).toBe(202);
    expect(response.body).toMatchObject({
      instance_id: instance.id,
      from_node: instance.node_id,
      to_node: target.id,
      to_hostname: target.hostname,
      status: 'migrating',
    });
    const replacementId = response.body.replacement_id as string;
    expect(await api.ok<InstanceView>(`/api/v1/instances/${replacementId}`)).toMatchObject({ node_id: target.id, replaces: instance.id, desired: 'running' });
    expect((await target.heartbeat()).instances.map((i) => i.id)).toContain(replacementId);

    // A second migrate while this one is in flight is refused and changes nothing.
    const before = await instancesOf('api');
    expectApiError(await api.post(`/api/v1/instances/${instance.id}/migrate`, {}), 409, 'MIGRATION_IN_PROGRESS');
    expect(await instancesOf('api')).toEqual(before);

    target.runHealthy(replacementId, ++port);
    await target.heartbeat();
    await waitFor('the old instance to be withdrawn', async () => (await api.ok<InstanceView>(`/api/v1/instances/${instance.id}`)).desired === 'stopped');
    expect((await endpointsOf('api')).map((e) => e.instance_id)).toEqual([replacementId]);
    nodeOf(instance.node_id).reportStopped(instance.id);
    await nodeOf(instance.node_id).heartbeat();
    await waitFor('the old row to go', async () => (await instancesOf('api')).length === 1);
    expect((await instancesOf('api')).map((i) => [i.id, i.node_id, i.replaces])).toEqual([[replacementId, target.id, null]]);
  });

  it('POST /instances/:id/migrate without a target picks a node itself', async () => {
    const [instance] = await instancesOf('api');
    if (!instance) throw new Error('expected an instance');
    const response = await api.post<Record<string, string>>(`/api/v1/instances/${instance.id}/migrate`);
    expect(response.status).toBe(202);
    expect(response.body.to_node).not.toBe(instance.node_id);
    expect(fleet.map((n) => n.id)).toContain(response.body.to_node);
    expect(await api.ok<InstanceView>(`/api/v1/instances/${response.body.replacement_id}`)).toMatchObject({ replaces: instance.id });
    for (const node of fleet) expect(node.lastError).toBeUndefined();
  });
  it('drains a node that hosts nothing at once: 202, nothing to move, completed', async () => {
    const empty = await FakeNode.register(api, { hostname: 'drain-empty', region: 'eu-west' });
    fleet.push(empty);
    empty.startHeartbeats();
    const drained = await api.post<NodeView>(`/api/v1/nodes/${empty.id}/drain`, {});
    expect(drained.status).toBe(202);
    const done = await waitFor('the empty node’s drain to complete', async () => {
      const node = await api.ok<NodeView>(`/api/v1/nodes/${empty.id}`);
      return node.drain?.state === 'completed' && node.status === 'cordoned' && node;
    });
    expect(done).toMatchObject({ status: 'cordoned', cordoned: true, draining: false, active_instances: 0 });
    const started = (await api.ok<EventRow[]>(`/api/v1/events?after=0`)).find((e) => e.kind === 'node.drain_started' && e.node_id === empty.id);
    expect(started?.data).toMatchObject({ moves: 0 });
    expect((await api.post<NodeView>(`/api/v1/nodes/${empty.id}/enable`)).body).toMatchObject({ status: 'ready', cordoned: false, drain: null });
  });
});
