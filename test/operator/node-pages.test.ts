// GET /api/v1/nodes?limit=&offset= (pages of the list, in its order) with the role and version
// filters, GET /api/v1/fleet/summary (counts without rows), and compressed JSON answers, against
// a real operator.
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningOperator } from '../../src/operator/server.js';
import type { FleetSummary, NodeView } from '../../src/store/nodes.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { ApiClient, expectApiError, startTestOperator } from '../support/operator.js';

const REGIONS = ['ap-south', 'eu-west', 'us-east'];

describe(`node list pages and the fleet summary on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let op: RunningOperator;
  let api: ApiClient;

  beforeAll(async () => {
    t = await createTestDb();
    // 30 nodes: every third a control-plane node, every other one on node-agent 2.0.0, node 7 cordoned and
    // down (silent for 2 hours).
    await t.db.query(
      `INSERT INTO nodes (id, hostname, region, role, max_instances, components, agent_version, protocol_version, last_heartbeat_at, status, cordoned)
       SELECT 'pg-' || i, 'pg-node-' || lpad(i::text, 2, '0'), ($1::text[])[1 + i % 3], CASE WHEN i % 3 = 0 THEN 'control-plane' ELSE 'worker' END, 4,
              jsonb_build_object('node-agent', CASE WHEN i % 2 = 0 THEN '2.0.0' ELSE '1.0.0' END), 'test', 1, CASE WHEN i = 7 THEN now() - interval '2 hours' ELSE now() END,
              CASE WHEN i = 7 THEN 'down' ELSE 'ready' END, i = 7
         FROM generate_series(0, 29) AS i`,
      [REGIONS],
    );
    op = await startTestOperator(t.db, { heartbeatGraceMs: 3_600_000 });
    api = new ApiClient(op.url);
  });
  afterAll(async () => {
    await op?.close();
    await t?.cleanup();
  });

  it('pages through the list in its order: the pages together are the whole list', async () => {
    const all = await api.ok<NodeView[]>('/api/v1/nodes');
    expect(all).toHaveLength(30);
    const pages: NodeView[][] = [];
    for (let offset = 0; offset < 30; offset += 8) pages.push(await api.ok<NodeView[]>(`/api/v1/nodes?limit=8&offset=${offset}`));
    expect(pages.map((p) => p.length)).toEqual([8, 8, 8, 6]);
    expect(pages.flat().map((n) => n.id)).toEqual(all.map((n) => n.id));
    expect(await api.ok<NodeView[]>('/api/v1/nodes?offset=40')).toEqual([]);
    // Without limit, offset skips and returns the rest.
    expect((await api.ok<NodeView[]>('/api/v1/nodes?offset=25')).map((n) => n.id)).toEqual(all.slice(25).map((n) => n.id));
  });

  it('filters by role and by component@version, with a region, and pages the filtered list', async () => {
    const storage = await api.ok<NodeView[]>('/api/v1/nodes?role=control-plane');
    expect(storage).toHaveLength(10);
    expect(storage.every((n) => n.role === 'control-plane')).toBe(true);
    const v2 = await api.ok<NodeView[]>(`/api/v1/nodes?version=${encodeURIComponent('node-agent@2.0.0')}`);
    expect(v2).toHaveLength(15);
    expect(v2.every((n) => n.components['node-agent'] === '2.0.0')).toBe(true);
    const both = await api.ok<NodeView[]>(`/api/v1/nodes?region=ap-south&role=control-plane&version=${encodeURIComponent('node-agent@2.0.0')}&limit=2`);
    expect(both.map((n) => n.hostname)).toEqual(['pg-node-00', 'pg-node-06']);
    expect(await api.ok<NodeView[]>(`/api/v1/nodes?version=${encodeURIComponent('node-agent@9.9.9')}`)).toEqual([]);
  });

  it('answers the summary with the counts the list gives', async () => {
    const all = await api.ok<NodeView[]>('/api/v1/nodes');
    const summary = await api.ok<FleetSummary>('/api/v1/fleet/summary');
    expect(summary).toEqual({
      nodes: 30,
      ready: all.filter((n) => n.status === 'ready').length,
      down: 1,
      cordoned: 1,
      draining: 0,
      instances: all.reduce((s, n) => s + n.active_instances, 0),
      regions: REGIONS.map((region) => ({ region, nodes: 10 })),
      roles: ['control-plane', 'worker'],
      versions: ['node-agent@1.0.0', 'node-agent@2.0.0'],
    });
    expect(summary.ready).toBe(29);
    // A filter narrows the counts, not the choices.
    const filtered = await api.ok<FleetSummary>('/api/v1/fleet/summary?region=eu-west&status=down');
    expect(filtered).toMatchObject({ nodes: 1, ready: 0, down: 1, cordoned: 1, regions: [{ region: 'eu-west', nodes: 1 }], roles: ['control-plane', 'worker'] });
  });

  it('refuses bad page and filter values with 400 VALIDATION_FAILED naming the parameter', async () => {
    for (const [query, field] of [
      ['limit=0', 'limit'],
      ['limit=1001', 'limit'],
      ['limit=ten', 'limit'],
      ['limit=2.5', 'limit'],
      ['offset=-1', 'offset'],
      ['version=node-agent', 'version'],
    ] as const) {
      const error = expectApiError(await api.get(`/api/v1/nodes?${query}`), 400, 'VALIDATION_FAILED');
      expect(JSON.stringify(error.details), query).toContain(field);
    }
    expectApiError(await api.get('/api/v1/fleet/summary?version=bare'), 400, 'VALIDATION_FAILED');
    expectApiError(await api.get('/api/v1/fleet/summary?status=sleeping'), 400, 'VALIDATION_FAILED');
  });
});

describe(`compressed JSON answers on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let op: RunningOperator;
  beforeAll(async () => {
    t = await createTestDb();
    await t.db.query(
      `INSERT INTO nodes (id, hostname, region, role, max_instances, components, agent_version, protocol_version, last_heartbeat_at)
       SELECT 'cz-' || i, 'cz-node-' || i, 'us-east', 'worker', 4, '{"node-agent": "1.0.0"}', 'test', 1, now() FROM generate_series(0, 49) AS i`,
    );
    op = await startTestOperator(t.db, { heartbeatGraceMs: 3_600_000 });
  });
  afterAll(async () => {
    await op?.close();
    await t?.cleanup();
  });

  const raw = async (path: string, acceptEncoding?: string) => {
    const answer = await request(`${op.url}${path}`, { headers: acceptEncoding ? { 'accept-encoding': acceptEncoding } : {} });
    const body = Buffer.from(await answer.body.arrayBuffer());
    return { status: answer.statusCode, headers: answer.headers, body };
  };

  it('sends a large answer as br or gzip when accepted, and as it is otherwise', async () => {
    const plain = await raw('/api/v1/nodes');
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.headers.vary).toContain('accept-encoding');
    const nodes = JSON.parse(plain.body.toString()) as NodeView[];
    expect(nodes).toHaveLength(50);
    const br = await raw('/api/v1/nodes', 'gzip, deflate, br');
    expect(br.headers['content-encoding']).toBe('br');
    expect(br.body.length).toBeLessThan(plain.body.length / 4);
    expect(JSON.parse(brotliDecompressSync(br.body).toString())).toEqual(nodes);
    const gz = await raw('/api/v1/nodes', 'gzip');
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(JSON.parse(gunzipSync(gz.body).toString())).toEqual(nodes);
    // q=0 refuses an encoding.
    expect((await raw('/api/v1/nodes', 'br;q=0, gzip')).headers['content-encoding']).toBe('gzip');
    expect((await raw('/api/v1/nodes', 'identity')).headers['content-encoding']).toBeUndefined();
    // A small answer is not worth it.
    const one = await raw('/api/v1/nodes?limit=1', 'br');
    expect(one.headers['content-encoding']).toBeUndefined();
    expect(JSON.parse(one.body.toString())).toHaveLength(1);
  });
});
