import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DesiredState } from '../../src/domain/protocol.js';
import type { RunningOperator } from '../../src/operator/server.js';
import type { DeploymentView } from '../../src/store/deployments.js';
import type { InstanceView } from '../../src/store/instances.js';
import type { NodeView } from '../../src/store/nodes.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { FakeNode } from '../support/fake-node.js';
import { ApiClient, startTestOperator, waitFor } from '../support/operator.js';

interface DeploymentHealth {
  status: 'healthy' | 'degraded' | 'down';
  deployment_id: string;
  name: string;
  replicas: number;
  min_available: number;
  healthy_instances: number;
}
interface Endpoint {
  instance_id: string;
  node_id: string;
  url: string;
  healthy: boolean;
}

describe(`operator deployments API on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let op: RunningOperator;
  let api: ApiClient;
  let fleet: FakeNode[];
  const nodeOf = (id: string) => fleet.find((n) => n.id === id) as FakeNode;
  const WORKLOAD = { command: 'demo-app', args: ['--port', '$PORT'], env: { GREETING: 'hi' }, health_path: '/healthz' };

  beforeAll(async () => {
    t = await createTestDb();
    op = await startTestOperator(t.db);
    api = new ApiClient(op.url);
    fleet = [
      await FakeNode.register(api, { hostname: 'dep-1', region: 'us-east', agent_url: 'http://10.0.0.1:7070' }),
      await FakeNode.register(api, { hostname: 'dep-2', region: 'us-east', agent_url: 'http://10.0.0.2:7070' }),
      await FakeNode.register(api, { hostname: 'dep-3', region: 'eu-west', agent_url: 'http://10.0.0.3:7070' }),
    ];
    for (const node of fleet) node.startHeartbeats();
  });
  afterAll(async () => {
    for (const node of fleet ?? []) await node.stopHeartbeats();
    await op?.close();
    await t?.cleanup();
  });

  let deploymentId: string;
  let instances: InstanceView[];

  it('POST /api/v1/deployments creates it (201) and places the replicas on ready nodes, spread across nodes', async () => {
    const created = await api.post<DeploymentView & { health: string }>('/api/v1/deployments', {
      name: 'web',
      replicas: 3,
      min_available: 2,
      workload: WORKLOAD,
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: 'web', replicas: 3, min_available: 2, workload: WORKLOAD, node_selector: null, health: 'down' });
    expect(created.body.id).toMatch(/^[0-9a-f-]{36}$/);
    deploymentId = created.body.id;

    instances = await waitFor('three instances placed', async () => {
      const list = await api.ok<InstanceView[]>(`/api/v1/instances?deployment=${deploymentId}`);
      return list.length === 3 && list;
    });
    expect(new Set(instances.map((i) => i.node_id))).toEqual(new Set(fleet.map((n) => n.id)));
    expect(instances.every((i) => i.desired === 'running' && i.status === 'pending' && !i.healthy && !i.published)).toBe(true);

    // Each agent learns its share from the heartbeat reply: the whole desired state.
    const desired: DesiredState = await fleet[0]!.heartbeat();
    expect(desired).toMatchObject({ node_id: fleet[0]!.id, draining: false });
    expect(desired.instances).toEqual([
      {
        id: instances.find((i) => i.node_id === fleet[0]!.id)?.id,
        deployment_id: deploymentId,
        deployment: 'web',
        desired: 'running',
        workload: WORKLOAD,
      },
    ]);

    const listed = await api.ok<DeploymentView[]>('/api/v1/deployments');
    expect(listed.map((d) => d.name)).toEqual(['web']);
    expect((await api.ok<DeploymentView[]>('/api/v1/deployments/active')).map((d) => d.id)).toEqual([deploymentId]);
    expect((await api.ok<DeploymentView>('/api/v1/deployments/web')).id).toBe(deploymentId);
    const nodes = await api.ok<NodeView[]>('/api/v1/nodes');
    expect(nodes.map((n) => [n.active_instances, n.available_capacity])).toEqual([
      [1, 3],
      [1, 3],
      [1, 3],
    ]);
  });

  it('has no endpoints until an instance is reported running and healthy, then health follows the healthy count', async () => {
    const health = async () => (await api.ok<DeploymentHealth>(`/api/v1/deployments/${deploymentId}/health`));
    const endpoints = async () => api.ok<Endpoint[]>(`/api/v1/deployments/${deploymentId}/endpoints`);
    expect(await health()).toEqual({ status: 'down', deployment_id: deploymentId, name: 'web', replicas: 3, min_available: 2, healthy_instances: 0 });
    expect(await endpoints()).toEqual([]);

    const [first, second, third] = instances as [InstanceView, InstanceView, InstanceView];
    // Running but not healthy yet: still no endpoint.
    nodeOf(first.node_id).report({ id: first.id, status: 'starting', healthy: false, pid: 4242, port: 31001 });
    await nodeOf(first.node_id).heartbeat();
    await waitFor('the report to be stored', async () => (await api.ok<InstanceView>(`/api/v1/instances/${first.id}`)).status === 'starting');
    expect(await endpoints()).toEqual([]);
    expect((await api.ok<{ status: string }>(`/api/v1/instances/${first.id}/health`)).status).toBe('unhealthy');

    nodeOf(first.node_id).runHealthy(first.id, 31001);
    await nodeOf(first.node_id).heartbeat();
    const one = await waitFor('the first endpoint', async () => {
      const list = await endpoints();
      return list.length === 1 && list;
    });
    expect(one).toEqual([{ instance_id: first.id, node_id: first.node_id, url: `http://10.0.0.${fleet.indexOf(nodeOf(first.node_id)) + 1}:31001`, healthy: true }]);
    expect(await health()).toMatchObject({ status: 'down', healthy_instances: 1 });
    expect(await api.ok(`/api/v1/instances/${first.id}/health`)).toMatchObject({
      instance_id: first.id,
      status: 'healthy',
      healthy: true,
      state: 'running',
      node_id: first.node_id,
      url: one[0]?.url,
    });

    nodeOf(second.node_id).runHealthy(second.id, 31002);
    await nodeOf(second.node_id).heartbeat();
    await waitFor('two endpoints', async () => (await endpoints()).length === 2);
    expect(await health()).toMatchObject({ status: 'degraded', healthy_instances: 2 });

    nodeOf(third.node_id).runHealthy(third.id, 31003);
    await nodeOf(third.node_id).heartbeat();
    const all = await waitFor('three endpoints', async () => {
      const list = await endpoints();
      return list.length === 3 && list;
    });
    expect(all.map((e) => e.instance_id).sort()).toEqual(instances.map((i) => i.id).sort());
    expect(await health()).toMatchObject({ status: 'healthy', healthy_instances: 3 });
    expect((await api.ok<DeploymentView & { health: string }>(`/api/v1/deployments/${deploymentId}`)).health).toBe('healthy');
  });

  it('takes an unhealthy report out of the healthy count, and puts it back when it recovers', async () => {
    const [first] = instances as [InstanceView];
    const node = nodeOf(first.node_id);
    node.report({ id: first.id, status: 'running', healthy: false, pid: 4242, port: 31001, message: 'health check failed: 500' });
    await node.heartbeat();
    await waitFor('the health to drop', async () => (await api.ok<DeploymentHealth>(`/api/v1/deployments/${deploymentId}/health`)).healthy_instances === 2);
    expect(await api.ok(`/api/v1/instances/${first.id}/health`)).toMatchObject({ status: 'unhealthy', message: 'health check failed: 500' });
    node.runHealthy(first.id, 31001);
    await node.heartbeat();
    await waitFor('the health to recover', async () => (await api.ok<DeploymentHealth>(`/api/v1/deployments/${deploymentId}/health`)).status === 'healthy');
  });

  it('places a pinned deployment only on matching nodes', async () => {
    const created = await api.post<DeploymentView>('/api/v1/deployments', {
      name: 'pinned',
      replicas: 2,
      workload: { command: 'db' },
      node_selector: { region: 'eu-west' },
    });
    expect(created.status).toBe(201);
    const placed = await waitFor('two pinned instances', async () => {
      const list = await api.ok<InstanceView[]>('/api/v1/instances?deployment=pinned');
      return list.length === 2 && list;
    });
    const west = fleet[2] as FakeNode;
    expect(placed.map((i) => [i.node_id, i.migratable])).toEqual([
      [west.id, false],
      [west.id, false],
    ]);
    for (const node of fleet) expect(node.lastError).toBeUndefined();
  });
});
