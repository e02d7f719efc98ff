import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningOperator } from '../../src/operator/server.js';
import type { EventRow } from '../../src/store/events.js';
import type { InstanceView } from '../../src/store/instances.js';
import type { NodeView } from '../../src/store/nodes.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { FakeNode } from '../support/fake-node.js';
import { ApiClient, startTestOperator, waitFor } from '../support/operator.js';

describe(`operator nodes API on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let op: RunningOperator;
  let api: ApiClient;
  let east: FakeNode;
  let west: FakeNode;
  beforeAll(async () => {
    t = await createTestDb();
    op = await startTestOperator(t.db);
    api = new ApiClient(op.url);
    east = await FakeNode.register(api, { hostname: 'nodes-east-1', region: 'us-east', max_instances: 3, labels: { disk: 'ssd' } });
    west = await FakeNode.register(api, { hostname: 'nodes-west-1', region: 'eu-west', max_instances: 2 });
    east.startHeartbeats();
    west.startHeartbeats();
  });
  afterAll(async () => {
    await east?.stopHeartbeats();
    await west?.stopHeartbeats();
    await op?.close();
    await t?.cleanup();
  });

  it('registers the same hostname to the same node id', async () => {
    const again = await api.post<{ node_id: string; heartbeat_interval_ms: number }>('/api/v1/agent/register', {
      hostname: 'nodes-east-1',
      region: 'us-east',
      role: 'worker',
      max_instances: 3,
      labels: { disk: 'ssd' },
      agent_version: 'test',
      protocol_version: 1,
    });
    expect(again.status).toBe(200);
    expect(again.body).toEqual({ node_id: east.id, heartbeat_interval_ms: 2000, node_credential: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/) });
    expect(await t.db.query('SELECT id FROM nodes WHERE hostname = $1', ['nodes-east-1'])).toEqual([{ id: east.id }]);
    const kinds = (await api.ok<EventRow[]>(`/api/v1/events?node_id=${east.id}`)).map((e) => e.kind);
    // (On a loaded machine the node may also have gone down in between: only registrations count here.)
    expect(kinds.filter((k) => k === 'node.registered' || k === 'node.reregistered').slice(0, 2)).toEqual(['node.registered', 'node.reregistered']);
  });

  it('GET /api/v1/nodes is a bare array of nodes with the documented fields', async () => {
    const response = await api.get<NodeView[]>('/api/v1/nodes');
    expect(response.status).toBe(200);
    expect(Array.isArray(response.body)).toBe(true);
    expect(response.body.map((n) => n.hostname)).toEqual(['nodes-west-1', 'nodes-east-1']); // by region, then hostname
    for (const node of response.body) {
      for (const field of ['id', 'hostname', 'region', 'role', 'status', 'draining', 'active_instances', 'max_instances', 'available_capacity', 'components', 'agent_version']) {
        expect(node).toHaveProperty(field);
      }
    }
    const eastView = response.body.find((n) => n.id === east.id);
    expect(eastView).toMatchObject({
      hostname: 'nodes-east-1',
      region: 'us-east',
      role: 'worker',
      status: 'ready',
      draining: false,
      active_instances: 0,
      max_instances: 3,
      available_capacity: 3,
      agent_version: 'test',
      labels: { disk: 'ssd' },
    });
    // Components arrive with the first heartbeat.
    await waitFor('components from a heartbeat', async () => (await api.ok<NodeView>(`/api/v1/nodes/${east.id}`)).components['node-agent'] === 'test');

    expect((await api.ok<NodeView[]>('/api/v1/nodes?region=eu-west')).map((n) => n.id)).toEqual([west.id]);
    expect(await api.ok<NodeView[]>('/api/v1/nodes?status=down')).toEqual([]);
  });

  it("shows the generation each agent says it has beside the node's own: has it seen its desired state?", async () => {
    await east.heartbeat(); // learns the current generation
    const sent = east.generation;
    await east.heartbeat(); // says it has it
    const view = await waitFor('the observed generation', async () => {
      const v = await api.ok<NodeView>(`/api/v1/nodes/${east.id}`);
      return v.observed_generation === sent && v;
    });
    expect(view.generation).toBeGreaterThanOrEqual(sent);
    expect(sent).toBeGreaterThan(0);
  });

  it('GET /api/v1/nodes/:id takes an id or a hostname, and lists the node instances', async () => {
    const byId = await api.ok<NodeView>(`/api/v1/nodes/${west.id}`);
    const byName = await api.ok<NodeView>('/api/v1/nodes/nodes-west-1');
    expect(byName.id).toBe(west.id);
    expect(byName.hostname).toBe(byId.hostname);

    const created = await api.post<{ id: string }>('/api/v1/deployments', { name: 'listed', replicas: 2, workload: { command: 'sleep' } });
    expect(created.status).toBe(201);
    const placed = await waitFor('two instances placed', async () => {
      const list = await api.ok<InstanceView[]>('/api/v1/instances?deployment=listed');
      return list.length === 2 && list;
    });
    expect(new Set(placed.map((i) => i.node_id))).toEqual(new Set([east.id, west.id]));
    const onWest = await api.ok<InstanceView[]>('/api/v1/nodes/nodes-west-1/instances');
    expect(onWest).toHaveLength(1);
    expect(onWest[0]).toMatchObject({ node_id: west.id, deployment_id: created.body.id, status: 'pending', healthy: false, url: null });
    expect(await api.ok<NodeView>(`/api/v1/nodes/${west.id}`)).toMatchObject({ active_instances: 1, available_capacity: 1 });
  });

  it('cordon stops placement on the node; enable makes it schedulable again', async () => {
    const cordoned = await api.post<NodeView>(`/api/v1/nodes/${west.id}/cordon`);
    expect(cordoned.status).toBe(200);
    expect(cordoned.body).toMatchObject({ id: west.id, status: 'cordoned', cordoned: true, draining: false });
    // Cordoning twice is a no-op, not a second event.
    expect((await api.post<NodeView>(`/api/v1/nodes/${west.id}/cordon`)).status).toBe(200);
    const cordonEvents = (await api.ok<EventRow[]>(`/api/v1/events?kind_prefix=node.cordoned&node_id=${west.id}`)).length;
    expect(cordonEvents).toBe(1);

    // Cordoning does not move what runs there, but nothing new lands on it.
    expect(await api.ok<NodeView>(`/api/v1/nodes/${west.id}`)).toMatchObject({ active_instances: 1, status: 'cordoned' });
    expect((await api.post('/api/v1/deployments', { name: 'after-cordon', replicas: 2, workload: { command: 'sleep' } })).status).toBe(201);
    const placed = await waitFor('two instances of after-cordon', async () => {
      const list = await api.ok<InstanceView[]>('/api/v1/instances?deployment=after-cordon');
      return list.length === 2 && list;
    });
    expect(placed.map((i) => i.node_id)).toEqual([east.id, east.id]);

    const enabled = await api.post<NodeView>(`/api/v1/nodes/${west.id}/enable`);
    expect(enabled.status).toBe(200);
    expect(enabled.body).toMatchObject({ status: 'ready', cordoned: false, draining: false, drain: null });
    expect((await api.ok<EventRow[]>(`/api/v1/events?kind_prefix=node.enabled&node_id=${west.id}`)).length).toBe(1);

    // uncordon is the same action under its kubectl name.
    await api.post(`/api/v1/nodes/${west.id}/cordon`);
    expect((await api.post<NodeView>(`/api/v1/nodes/nodes-west-1/uncordon`)).body).toMatchObject({ status: 'ready', cordoned: false });

    // Room is used again: east is full (3 of 3), so a new replica can only go west.
    expect((await api.post('/api/v1/deployments', { name: 'after-enable', replicas: 1, workload: { command: 'sleep' } })).status).toBe(201);
    const [again] = await waitFor('after-enable placed', async () => {
      const list = await api.ok<InstanceView[]>('/api/v1/instances?deployment=after-enable');
      return list.length === 1 && list;
    });
    expect(again?.node_id).toBe(west.id);
    expect(east.lastError).toBeUndefined();
    expect(west.lastError).toBeUndefined();
  });
});
