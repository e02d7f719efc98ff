import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningOperator } from '../../src/operator/server.js';
import type { InstanceView } from '../../src/store/instances.js';
import type { NodeView } from '../../src/store/nodes.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { FakeNode } from '../support/fake-node.js';
import { ApiClient, expectApiError, startTestOperator, waitFor } from '../support/operator.js';

describe(`operator bad input on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let op: RunningOperator;
  let api: ApiClient;
  let full: FakeNode[];
  let dead: FakeNode;

  /**
   * Everything a request could change, minus what moves on its own (heartbeat times, the
   * generation agents say they have, and the events the reconciler writes). Compared before and
   * after each bad request.
   */
  async function world() {
    const db = t.db;
    return {
      nodes: await db.query('SELECT id, hostname, region, status, cordoned, max_instances, labels, generation FROM nodes ORDER BY id'),
      drains: await db.query('SELECT node_id, state, force, message FROM drains ORDER BY node_id'),
      deployments: await db.query('SELECT id, name, replicas, min_available, workload, node_selector FROM deployments ORDER BY id'),
      instances: await db.query('SELECT id, deployment_id, node_id, desired, published, replaces, restart_on_enable FROM instances ORDER BY id'),
      events: await db.query(`SELECT id, kind, actor FROM events WHERE actor <> 'reconciler' ORDER BY id`),
      listing: (await api.ok<NodeView[]>('/api/v1/nodes')).map(({ last_heartbeat_at: _at, observed_generation: _seen, ...node }) => node),
    };
  }

  /** Runs the bad request and checks it changed nothing; returns its response. */
  async function changesNothing<T>(request: () => Promise<T>): Promise<T> {
    const before = await world();
    const response = await request();
    // Let a reconciler pass run: a bad request must not have left anything for it to act on either.
    const passes = op.ctx.reconciler.passes;
    await waitFor('a reconciler pass', async () => op.ctx.reconciler.passes >= passes + 2);
    expect(await world()).toEqual(before);
    return response;
  }

  beforeAll(async () => {
    t = await createTestDb();
    op = await startTestOperator(t.db);
    api = new ApiClient(op.url);
    // Two one-slot nodes that a two-replica deployment fills, and one node that never heartbeats.
    full = [
      await FakeNode.register(api, { hostname: 'full-a', max_instances: 1 }),
      await FakeNode.register(api, { hostname: 'full-b', max_instances: 1 }),
    ];
    for (const node of full) node.startHeartbeats();
    dead = await FakeNode.register(api, { hostname: 'dead-1', max_instances: 8 });
    await waitFor('dead-1 to be down past the grace period', async () => (await api.ok<NodeView>(`/api/v1/nodes/${dead.id}`)).status === 'down', {
      timeoutMs: 20_000,
    });
    expect((await api.post('/api/v1/deployments', { name: 'fill', replicas: 2, workload: { command: 'sleep' } })).status).toBe(201);
    const placed = await waitFor('fill placed', async () => {
      const list = await api.ok<InstanceView[]>('/api/v1/instances?deployment=fill');
      return list.length === 2 && list;
    });
    for (const instance of placed) (full.find((n) => n.id === instance.node_id) as FakeNode).runHealthy(instance.id, 33000 + placed.indexOf(instance));
    await waitFor('fill published', async () => (await api.ok<InstanceView[]>('/api/v1/instances?deployment=fill')).every((i) => i.published));
  });
  afterAll(async () => {
    for (const node of full ?? []) await node.stopHeartbeats();
    await op?.close();
    await t?.cleanup();
  });

  it('404 NODE_NOT_FOUND for an unknown node, on reads and on every action', async () => {
    for (const [method, path] of [
      ['GET', '/api/v1/nodes/no-such-node'],
      ['GET', '/api/v1/nodes/no-such-node/instances'],
      ['POST', '/api/v1/nodes/no-such-node/drain'],
      ['POST', '/api/v1/nodes/no-such-node/cordon'],
      ['POST', '/api/v1/nodes/no-such-node/enable'],
      ['GET', '/api/v1/instances?node=no-such-node'],
    ] as const) {
      const response = await changesNothing(() => api.request(method, path));
      const error = expectApiError(response, 404, 'NODE_NOT_FOUND');
      expect(error.details).toEqual({ id: 'no-such-node' });
      expect(error.message).toContain('GET /api/v1/nodes');
    }
    expectApiError(await changesNothing(() => api.get('/api/v1/deployments/nope/health')), 404, 'DEPLOYMENT_NOT_FOUND');
    expectApiError(await changesNothing(() => api.post('/api/v1/instances/nope/migrate', {})), 404, 'INSTANCE_NOT_FOUND');
  });

  it('409 NODE_DOWN when draining a node whose agent stopped heartbeating', async () => {
    const error = expectApiError(await changesNothing(() => api.post(`/api/v1/nodes/${dead.id}/drain`, {})), 409, 'NODE_DOWN');
    expect(error.details).toEqual({ hostname: 'dead-1' });
    expect(await api.ok<NodeView>(`/api/v1/nodes/${dead.id}`)).toMatchObject({ status: 'down', draining: false, cordoned: false, drain: null });
  });

  it('409 DRAIN_CANNOT_FIT when no other ready node has room, and the node keeps serving', async () => {
    const [source] = full as [FakeNode];
    const error = expectApiError(await changesNothing(() => api.post(`/api/v1/nodes/${source.id}/drain`, { timeout: '5m' })), 409, 'DRAIN_CANNOT_FIT');
    const [instance] = await api.ok<InstanceView[]>(`/api/v1/nodes/${source.id}/instances`);
    expect(error.details.unplaceable).toEqual([expect.objectContaining({ instanceId: instance?.id })]);
    expect(await api.ok<NodeView>(`/api/v1/nodes/${source.id}`)).toMatchObject({ status: 'ready', draining: false, cordoned: false, drain: null });
    expect((await source.heartbeat()).draining).toBe(false);
  });

  it('400 MALFORMED_JSON for a body that is not JSON', async () => {
    for (const raw of ['{"name": "broken", "replicas": ', 'not json at all', '{"name": "x",}']) {
      const response = await changesNothing(() => api.post('/api/v1/deployments', undefined, { raw }));
      expectApiError(response, 400, 'MALFORMED_JSON');
    }
    expectApiError(await changesNothing(() => api.post(`/api/v1/nodes/${full[0]?.id}/drain`, undefined, { raw: '{force: true}' })), 400, 'MALFORMED_JSON');
    expectApiError(await changesNothing(() => api.post('/api/v1/agent/heartbeat', undefined, { raw: '[' })), 400, 'MALFORMED_JSON');
  });

  it('400 VALIDATION_FAILED for a body that breaks the schema, naming each field', async () => {
    const cases: [string, unknown, string][] = [
      ['/api/v1/deployments', { name: 'Bad Name', replicas: 1, workload: { command: 'x' } }, 'body.name'],
      ['/api/v1/deployments', { name: 'neg', replicas: -1, workload: { command: 'x' } }, 'body.replicas'],
      ['/api/v1/deployments', { name: 'budget', replicas: 1, min_available: 2, workload: { command: 'x' } }, 'body.min_available'],
      ['/api/v1/deployments', { name: 'extra', replicas: 1, workload: { command: 'x' }, surprise: true }, 'body'],
      ['/api/v1/deployments', { name: 'noworkload', replicas: 1 }, 'body.workload'],
      [`/api/v1/nodes/${full[0]?.id}/drain`, { timeout: 'forever' }, 'body.timeout'],
      [`/api/v1/nodes/${full[0]?.id}/drain`, { force: 'yes' }, 'body.force'],
      ['/api/v1/agent/register', { hostname: 'new-node', region: 'US EAST', max_instances: 1, agent_version: 't', protocol_version: 1 }, 'body.region'],
      ['/api/v1/agent/heartbeat', { node_id: full[0]?.id, agent_version: 't', protocol_version: 1, instances: 'none', generation: 0 }, 'body.instances'],
    ];
    for (const [path, body, field] of cases) {
      const error = expectApiError(await changesNothing(() => api.post(path, body)), 400, 'VALIDATION_FAILED');
      const issues = error.details.issues as { path: string; message: string }[];
      expect(issues.length).toBeGreaterThan(0);
      expect(issues.map((i) => i.path)).toContain(field);
    }
    expectApiError(await changesNothing(() => api.get('/api/v1/nodes?status=sleeping')), 400, 'VALIDATION_FAILED');
    expect(await t.db.query(`SELECT 1 FROM nodes WHERE hostname = 'new-node'`)).toEqual([]);
  });

  it('409 DEPLOYMENT_EXISTS for a duplicate name, keeping the first one as it was', async () => {
    const created = await api.post<{ id: string }>('/api/v1/deployments', { name: 'dup', replicas: 0, workload: { command: 'first' } });
    expect(created.status).toBe(201);
    const error = expectApiError(
      await changesNothing(() => api.post('/api/v1/deployments', { name: 'dup', replicas: 1, workload: { command: 'second' } })),
      409,
      'DEPLOYMENT_EXISTS',
    );
    expect(error.details).toEqual({ name: 'dup' });
    expect(await t.db.query(`SELECT id, replicas, workload FROM deployments WHERE name = 'dup'`)).toEqual([
      { id: created.body.id, replicas: 0, workload: { command: 'first' } },
    ]);
  });

  it('404 NODE_NOT_REGISTERED for a heartbeat from a node the operator does not know', async () => {
    const response = await changesNothing(() =>
      api.post('/api/v1/agent/heartbeat', { node_id: 'ghost', agent_version: 't', protocol_version: 1, components: {}, instances: [], generation: 0 }),
    );
    expectApiError(response, 404, 'NODE_NOT_REGISTERED');
    for (const node of full) expect(node.lastError).toBeUndefined();
  });
});
