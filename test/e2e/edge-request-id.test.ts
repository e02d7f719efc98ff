// The edge carries `x-request-id` end to end, like the operator (src/operator/request-log.ts):
// the caller's sane id, else one of its own, goes to the endpoint on every attempt and comes
// back to the caller on every answer. Real operator and edge on loopback; the endpoints are
// plain node:http servers that record what they received (they stand for customer workloads).
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import pino from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { EdgeRouter } from '../../src/edge/router.js';
import type { RunningOperator } from '../../src/operator/server.js';
import type { DeploymentView } from '../../src/store/deployments.js';
import type { InstanceView } from '../../src/store/instances.js';
import { createTestDb, type TestDb } from '../support/db.js';
import { FakeNode } from '../support/fake-node.js';
import { ApiClient, startTestOperator, waitFor } from '../support/operator.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('drydock edge: x-request-id accepted, forwarded and echoed', () => {
  let t: TestDb;
  let op: RunningOperator;
  let edge: EdgeRouter;
  const nodes: FakeNode[] = [];
  const upstreams: { server: Server; port: number }[] = [];
  /** Headers of every request an endpoint received, in arrival order. */
  const arrivals: { path: string; headers: IncomingHttpHeaders }[] = [];
  /** Requests to /flaky still to fail (the endpoint drops the connection without answering). */
  let flakyLeft = 0;

  beforeAll(async () => {
    for (let k = 0; k < 2; k++) {
      const server = createServer((req, res) => {
        arrivals.push({ path: req.url ?? '', headers: req.headers });
        if (req.url === '/flaky' && flakyLeft > 0) {
          flakyLeft--;
          req.socket.destroy();
          return;
        }
        // An endpoint with request ids of its own: the edge's echo must still be the caller's.
        const headers = req.url === '/own-id' ? { 'x-request-id': 'endpoint-made-this-up' } : {};
        res.writeHead(200, { 'content-type': 'text/plain', ...headers });
        res.end('ok');
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      upstreams.push({ server, port: (server.address() as { port: number }).port });
    }
    t = await createTestDb();
    op = await startTestOperator(t.db);
    const api = new ApiClient(op.url);
    for (const hostname of ['rid-1', 'rid-2']) nodes.push(await FakeNode.register(api, { hostname }));
    const deployment = await api.post<DeploymentView>('/api/v1/deployments', { name: 'web', replicas: 2, min_available: 1, workload: { command: 'third-party' } });
    expect(deployment.status).toBe(201);
    const instances = await waitFor('two instances placed', async () => {
      const list = await api.ok<InstanceView[]>(`/api/v1/instances?deployment=${deployment.body.id}`);
      return list.length === 2 && list;
    });
    instances.forEach((instance, i) => nodes.find((n) => n.id === instance.node_id)?.runHealthy(instance.id, upstreams[i]?.port as number));
    for (const node of nodes) node.startHeartbeats();
    edge = new EdgeRouter({ listen: '127.0.0.1:0', operatorUrls: [op.url], log: pino({ level: 'silent' }), upstreamTimeoutMs: 1000 });
    await edge.start();
    await waitFor('the edge to route web to both endpoints', async () => {
      await edge.endpoints.refresh();
      return edge.endpoints.snapshot().web?.length === 2;
    });
  });
  afterAll(async () => {
    await edge?.stop();
    for (const node of nodes) await node.stopHeartbeats();
    await op?.close();
    await t?.cleanup();
    for (const { server } of upstreams) await new Promise((resolve) => server.close(resolve));
  });
  beforeEach(() => {
    arrivals.length = 0;
    flakyLeft = 0;
  });

  const get = (path: string, headers: Record<string, string> = {}) => fetch(`${edge.url}${path}`, { headers, signal: AbortSignal.timeout(5000) });

  it("forwards the caller's id to the endpoint and echoes it", async () => {
    const response = await get('/d/web/orders', { 'x-request-id': 'runbook-42/step-3' });
    expect(response.status).toBe(200);
    expect(response.headers.get('x-request-id')).toBe('runbook-42/step-3');
    expect(arrivals.map((a) => a.headers['x-request-id'])).toEqual(['runbook-42/step-3']);
  });

  it('makes one when the caller sends none, or one that is not sane, and sends the endpoint that same id', async () => {
    for (const sent of [undefined, 'has a space', 'x'.repeat(129)]) {
      arrivals.length = 0;
      const response = await get('/d/web/orders', sent === undefined ? {} : { 'x-request-id': sent });
      const echoed = response.headers.get('x-request-id');
      expect(echoed).toMatch(UUID);
      expect(arrivals.map((a) => a.headers['x-request-id'])).toEqual([echoed]);
    }
    // A new one each time.
    const [a, b] = await Promise.all([get('/d/web/orders'), get('/d/web/orders')]);
    expect(a?.headers.get('x-request-id')).not.toBe(b?.headers.get('x-request-id'));
  });

  it("echoes the caller's id even when the endpoint answers with an id of its own", async () => {
    const response = await get('/d/web/own-id', { 'x-request-id': 'caller-id' });
    expect(response.status).toBe(200);
    expect(response.headers.get('x-request-id')).toBe('caller-id');
  });

  it('a retried request carries the same id on both attempts', async () => {
    flakyLeft = 1;
    const id = randomUUID();
    const response = await get('/d/web/flaky', { 'x-request-id': id });
    expect(response.status).toBe(200);
    expect(arrivals.map((a) => [a.path, a.headers['x-request-id']])).toEqual([
      ['/flaky', id],
      ['/flaky', id],
    ]);
    expect(response.headers.get('x-request-id')).toBe(id);
  });

  it("echoes it on the edge's own answers: an unknown deployment, its health and routes it does not have", async () => {
    const unknown = await get('/d/no-such-app/', { 'x-request-id': 'lost-1' });
    expect(unknown.status).toBe(404);
    expect(unknown.headers.get('x-request-id')).toBe('lost-1');
    expect(((await unknown.json()) as { error: { code: string } }).error.code).toBeTypeOf('string');
    expect((await get('/health', { 'x-request-id': 'probe-1' })).headers.get('x-request-id')).toBe('probe-1');
    expect((await get('/nowhere')).headers.get('x-request-id')).toMatch(UUID);
    expect(arrivals).toEqual([]);
  });
});
