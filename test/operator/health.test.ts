import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningOperator } from '../../src/operator/server.js';
import type { EventRow } from '../../src/store/events.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { FakeNode } from '../support/fake-node.js';
import { ApiClient, expectApiError, startTestOperator, waitFor } from '../support/operator.js';

/** The value of one Prometheus sample line, or undefined when the series is absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe(`operator health, metrics and openapi on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let op: RunningOperator;
  let api: ApiClient;
  beforeAll(async () => {
    t = await createTestDb();
    // Nothing here waits for a node to go down; a long grace keeps the counts exact under load.
    op = await startTestOperator(t.db, { heartbeatGraceMs: 60_000 });
    api = new ApiClient(op.url);
  });
  afterAll(async () => {
    await op?.close();
    await t?.cleanup();
  });

  it('listens on a real loopback port', () => {
    expect(op.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(Number(new URL(op.url).port)).toBeGreaterThan(0);
  });

  it('GET /health says healthy, with version and engine', async () => {
    const response = await api.get<Record<string, unknown>>('/health');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/application\/json/);
    expect(response.body).toMatchObject({ status: 'healthy', version: 'test', engine: TEST_ENGINE });
    expect(response.body.uptime_s).toBeTypeOf('number');
    expect((await api.get('/health/live')).body).toEqual({ status: 'live' });
  });

  it('GET /health/ready is ready on a current schema, and 503 on one a newer binary migrated', async () => {
    const ready = await api.get<{ status: string }>('/health/ready');
    expect(ready.status).toBe(200);
    expect(ready.body.status).toBe('ready');

    await t.db.query(`INSERT INTO schema_migrations (version, name, phase) VALUES (9999, 'from_the_future', 'post')`);
    try {
      const ahead = await api.get<{ status: string; reason: string; ahead: unknown[] }>('/health/ready');
      expect(ahead.status).toBe(503);
      expect(ahead.body.status).toBe('not_ready');
      expect(ahead.body.reason).toMatch(/ahead/);
      // The process stays live (200) but says it is degraded once the lease loop has seen the
      // schema, and never with the word runbooks grep for.
      const degraded = await waitFor('/health to report degraded', async () => {
        const health = await api.get<{ status: string }>('/health');
        return health.status === 200 && health.body.status === 'degraded' ? health : undefined;
      });
      expect(degraded.text).not.toMatch(/healthy/);
    } finally {
      await t.db.query('DELETE FROM schema_migrations WHERE version = 9999');
    }
    expect((await api.get<{ status: string }>('/health/ready')).body.status).toBe('ready');
  });

  it('GET /metrics exposes fleet gauges, the heartbeat counter and request durations', async () => {
    const node = await FakeNode.register(api, { hostname: 'metrics-1', region: 'eu-west' });
    await node.heartbeat();
    await node.heartbeat();
    const created = await api.post<{ id: string }>('/api/v1/deployments', { name: 'metered', replicas: 1, workload: { command: 'sleep' } });
    expect(created.status).toBe(201);
    await waitFor('the instance to be placed', async () => (await api.ok<unknown[]>('/api/v1/instances')).length === 1);

    const response = await api.get<string>('/metrics');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = response.body;
    for (const name of ['drydock_nodes', 'drydock_instances', 'drydock_heartbeats_received_total', 'drydock_http_request_duration_seconds']) {
      expect(text).toContain(`# TYPE ${name} `);
    }
    expect(sample(text, 'drydock_nodes{status="ready",region="eu-west"}')).toBe(1);
    expect(sample(text, 'drydock_instances{status="pending"}')).toBe(1);
    expect(sample(text, 'drydock_heartbeats_received_total')).toBe(2);
    expect(sample(text, 'drydock_http_request_duration_seconds_count{method="POST",route="/api/v1/deployments",status_code="201"}')).toBe(1);
    expect(sample(text, 'drydock_http_request_duration_seconds_count{method="POST",route="/api/v1/agent/heartbeat",status_code="200"}')).toBe(2);
  });

  it('GET /openapi.json describes the API', async () => {
    const response = await api.get<{ openapi: string; info: { version: string }; paths: Record<string, Record<string, unknown>> }>('/openapi.json');
    expect(response.status).toBe(200);
    expect(response.body.openapi).toMatch(/^3\./);
    expect(response.body.info.version).toBe('test');
    const paths = response.body.paths;
    expect(Object.keys(paths['/api/v1/nodes'] ?? {})).toContain('get');
    expect(Object.keys(paths['/api/v1/nodes/{id}/drain'] ?? {})).toContain('post');
    expect(Object.keys(paths['/api/v1/deployments'] ?? {})).toEqual(expect.arrayContaining(['get', 'post']));
    expect(Object.keys(paths['/api/v1/instances/{id}/migrate'] ?? {})).toContain('post');
    expect(Object.keys(paths['/api/v1/agent/heartbeat'] ?? {})).toContain('post');
  });

  it('answers an unknown route with a catalog error', async () => {
    const error = expectApiError(await api.get('/api/v1/nope'), 404, 'ROUTE_NOT_FOUND');
    expect(error.message).toContain('/openapi.json');
  });

  it('GET /api/v1/events pages the log and filters by kind prefix', async () => {
    const all = await api.ok<EventRow[]>('/api/v1/events');
    expect(all.map((e) => e.kind)).toEqual(expect.arrayContaining(['node.registered', 'deployment.created', 'instance.placed']));
    const nodeEvents = await api.ok<EventRow[]>('/api/v1/events?kind_prefix=node.');
    expect(nodeEvents.length).toBeGreaterThan(0);
    expect(nodeEvents.every((e) => e.kind.startsWith('node.'))).toBe(true);
    const first = all[0] as EventRow;
    expect((await api.ok<EventRow[]>(`/api/v1/events?after=${first.id}`)).map((e) => e.id)).toEqual(all.slice(1).map((e) => e.id));
    expect(await api.ok<EventRow[]>('/api/v1/events?kind_prefix=%25')).toEqual([]);
    expectApiError(await api.get('/api/v1/events?after=-1'), 400, 'VALIDATION_FAILED');
  });
});
