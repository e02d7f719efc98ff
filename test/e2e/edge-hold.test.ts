// The edge's hold: a request with no endpoint to go to (none healthy, or none but the one that
// just failed) waits for the endpoint table to bring one, as across the switchover of a
// one-replica deployment's live migration: the source QEMU quits, and a moment later the operator
// publishes the target (same guest, new URL) and withdraws the source. The operator and the edges
// are the real ones, on loopback; scripted agents (FakeNode) report what the instances do, and
// the move is the operator's own make-before-break migration. The upstreams stand for third-party
// workloads: one node:net server that resets every request it reads (a QEMU that just quit), one
// node:http server that answers.
import { createServer as createHttpServer, request, type ClientRequest, type Server as HttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EdgeRouter } from '../../src/edge/router.js';
import type { RunningOperator } from '../../src/operator/server.js';
import type { DeploymentView } from '../../src/store/deployments.js';
import type { InstanceView } from '../../src/store/instances.js';
import { createTestDb, type TestDb } from '../support/db.js';
import { FakeNode } from '../support/fake-node.js';
import { ApiClient, startTestOperator, waitFor } from '../support/operator.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Reads each request's head, then resets the connection without a byte of response; counts them by path. */
async function startResettingUpstream(): Promise<{ server: Server; url: string; arrivals: string[] }> {
  const arrivals: string[] = [];
  const server = createServer((socket) => {
    socket.on('error', () => {});
    let head = '';
    socket.on('data', (chunk: Buffer) => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      arrivals.push(head.slice(0, head.indexOf('\r\n')));
      socket.resetAndDestroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, arrivals };
}

/** Answers every request with a 200 naming itself and echoing the method and body it got. */
async function startAnsweringUpstream(name: string): Promise<{ server: HttpServer; url: string; port: number }> {
  const server = createHttpServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ served_by: name, method: req.method, body }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return { server, url: `http://127.0.0.1:${port}`, port };
}

interface Sent {
  status: number;
  body: string;
  ms: number;
}

/** One request on a fresh connection; rejects when it gets no response within 20 s (a hang fails, slowly). */
function send(url: string, method: string, body?: string): { req: ClientRequest; done: Promise<Sent> } {
  const started = performance.now();
  const headers = body === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) };
  let req!: ClientRequest;
  const done = new Promise<Sent>((resolve, reject) => {
    req = request(url, { method, headers, agent: false, timeout: 20_000 }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, ms: performance.now() - started }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: no response within 20 s`)));
    req.on('error', reject);
    req.end(body);
  });
  return { req, done };
}

/** Sum of the series of a counter or gauge whose labels include `labels`, from the Prometheus text format. */
async function metricValue(edge: EdgeRouter, name: string, labels: Record<string, string>): Promise<number> {
  const metrics = await (await fetch(`${edge.url}/metrics`)).text();
  let total = 0;
  for (const line of metrics.split('\n')) {
    const match = /^([a-z_]+)\{([^}]*)\} (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const series = Object.fromEntries([...(match[2] as string).matchAll(/([a-z_]+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => series[k] === v)) total += Number(match[3]);
  }
  return total;
}

const held = (edge: EdgeRouter, deployment: string, outcome: string) => metricValue(edge, 'drydock_edge_held_total', { deployment, outcome });

describe('drydock edge: a request with no endpoint to go to is held until one appears', () => {
  let t: TestDb;
  let op: RunningOperator;
  let api: ApiClient;
  const nodes: FakeNode[] = [];
  let resetting: Awaited<ReturnType<typeof startResettingUpstream>>;
  let answering: Awaited<ReturnType<typeof startAnsweringUpstream>>;
  /** Holds up to 60 s: longer than any test waits, so a hold here ends by an endpoint or the client. */
  let patient: EdgeRouter;
  /** Holds 500 ms: for holds that expire. */
  let brief: EdgeRouter;
  const nodeOf = (id: string) => nodes.find((n) => n.id === id) as FakeNode;

  /** A one-replica deployment, placed but not yet reported; both edges know it. */
  async function deploy(name: string): Promise<{ instance: InstanceView; node: FakeNode }> {
    const created = await api.post<DeploymentView>('/api/v1/deployments', { name, replicas: 1, min_available: 0, workload: { command: 'third-party' } });
    expect(created.status).toBe(201);
    const [instance] = await waitFor(`${name} placed`, async () => {
      const list = await api.ok<InstanceView[]>(`/api/v1/instances?deployment=${created.body.id}`);
      return list.length === 1 && list;
    });
    for (const edge of [patient, brief]) {
      await waitFor(`the edge to know ${name}`, async () => {
        await edge.endpoints.refresh();
        return edge.endpoints.knows(name);
      });
    }
    return { instance: instance as InstanceView, node: nodeOf((instance as InstanceView).node_id) };
  }

  /** Reports the instance healthy on `port` and waits until both edges route `name` to it alone. */
  async function serve(name: string, instance: InstanceView, port: number): Promise<void> {
    const node = nodeOf(instance.node_id);
    node.runHealthy(instance.id, port);
    await node.heartbeat();
    for (const edge of [patient, brief]) {
      await waitFor(`the edge to route ${name} to port ${port}`, async () => {
        await edge.endpoints.refresh();
        return JSON.stringify(edge.endpoints.snapshot()[name]) === JSON.stringify([`http://127.0.0.1:${port}`]);
      });
    }
  }

  beforeAll(async () => {
    t = await createTestDb();
    op = await startTestOperator(t.db);
    api = new ApiClient(op.url);
    resetting = await startResettingUpstream();
    answering = await startAnsweringUpstream('b');
    for (const hostname of ['hold-1', 'hold-2']) nodes.push(await FakeNode.register(api, { hostname, agent_url: 'http://127.0.0.1:7070', max_instances: 8 }));
    for (const node of nodes) node.startHeartbeats();
    const log = pino({ level: 'silent' });
    patient = new EdgeRouter({ listen: '127.0.0.1:0', operatorUrls: [op.url], log, upstreamTimeoutMs: 1000, holdMs: 60_000 });
    brief = new EdgeRouter({ listen: '127.0.0.1:0', operatorUrls: [op.url], log, upstreamTimeoutMs: 1000, holdMs: 500 });
    await patient.start();
    await brief.start();
  });

  afterAll(async () => {
    await patient?.stop();
    await brief?.stop();
    for (const node of nodes) await node.stopHeartbeats();
    await op?.close();
    await t?.cleanup();
    if (resetting) await new Promise((resolve) => resetting.server.close(resolve));
    if (answering) await new Promise((resolve) => answering.server.close(resolve));
  });

  // Whatever ended a hold, nothing of it is left: no waiter in the table, no request counted as held.
  afterEach(async () => {
    for (const edge of [patient, brief]) {
      expect(edge.endpoints.waiting).toBe(0);
      expect(await metricValue(edge, 'drydock_edge_held_requests', {})).toBe(0);
    }
  });

  it('(1) GET on a one-replica deployment whose endpoint resets: held until the move\'s target is published ~300 ms later, then served by it', async () => {
    const { instance } = await deploy('solo');
    await serve('solo', instance, Number(new URL(resetting.url).port));
    // The operator's make-before-break move: the replacement on the other node is published once
    // it reports healthy, and the source withdrawn; until then the source is the only endpoint.
    const move = await api.post<{ replacement_id: string }>(`/api/v1/instances/${instance.id}/migrate`, {});
    expect(move.status).toBe(202);
    const replacement = await api.ok<InstanceView>(`/api/v1/instances/${move.body.replacement_id}`);
    const served = await held(patient, 'solo', 'served');
    const retries = await metricValue(patient, 'drydock_edge_retries_total', { deployment: 'solo', reason: 'reset' });

    const { done } = send(`${patient.url}/d/solo/orders`, 'GET');
    await waitFor('the GET held after the source reset it', async () => patient.endpoints.waiting === 1);
    expect(resetting.arrivals).toContain('GET /orders HTTP/1.1');
    await sleep(300);
    nodeOf(replacement.node_id).runHealthy(replacement.id, answering.port);
    await nodeOf(replacement.node_id).heartbeat();

    const response = await done;
    expect(response.status).toBe(200);
    expect(JSON.parse(response.body)).toEqual({ served_by: 'b', method: 'GET', body: '' });
    expect(await held(patient, 'solo', 'served')).toBe(served + 1);
    expect(await metricValue(patient, 'drydock_edge_retries_total', { deployment: 'solo', reason: 'reset' })).toBe(retries + 1);
  });

  it('(2) no endpoint appears: the edge answers as it did without the hold (502 after a failed attempt, 503 with no endpoint), once the hold expired', async () => {
    const lonely = await deploy('lonely');
    await serve('lonely', lonely.instance, Number(new URL(resetting.url).port));
    const expired = await held(brief, 'lonely', 'expired');
    const afterReset = await send(`${brief.url}/d/lonely/orders`, 'GET').done;
    expect(afterReset.status).toBe(502);
    expect(JSON.parse(afterReset.body)).toEqual({
      error: {
        code: 'UPSTREAM_NO_RESPONSE',
        message: expect.stringContaining('no other endpoint appeared while the edge held the request for 500ms') as unknown as string,
        details: { deployment: 'lonely', reason: 'reset', attempts: 1 },
      },
    });
    // Loose bounds: it waited for the hold (500 ms), and not for much longer.
    expect(afterReset.ms).toBeGreaterThan(300);
    expect(afterReset.ms).toBeLessThan(5000);
    expect(await held(brief, 'lonely', 'expired')).toBe(expired + 1);

    await deploy('never');
    const noEndpoint = await send(`${brief.url}/d/never/orders`, 'GET').done;
    expect(noEndpoint.status).toBe(503);
    expect(JSON.parse(noEndpoint.body)).toMatchObject({ error: { code: 'NO_HEALTHY_ENDPOINT', details: { deployment: 'never' } } });
    expect(noEndpoint.ms).toBeGreaterThan(300);
    expect(await held(brief, 'never', 'expired')).toBe(1);
  });

  it('(2) a POST the endpoint took before it reset is not held (it may have taken effect): 502 at once, even on the 60 s edge', async () => {
    const before = resetting.arrivals.length;
    const response = await send(`${patient.url}/d/lonely/orders`, 'POST', '{"item":"x"}').done;
    expect(response.status).toBe(502);
    expect(JSON.parse(response.body)).toMatchObject({ error: { code: 'UPSTREAM_NO_RESPONSE', details: { deployment: 'lonely', reason: 'reset', attempts: 1 } } });
    expect(response.ms).toBeLessThan(5000);
    expect(resetting.arrivals.length).toBe(before + 1);
    for (const outcome of ['served', 'expired', 'abandoned']) expect(await held(patient, 'lonely', outcome)).toBe(0);
  });

  it('(3) a deployment with no healthy endpoint: a GET and a POST are held, and both served once an endpoint appears 200 ms later, the POST body intact', async () => {
    const { instance } = await deploy('late');
    const get = send(`${patient.url}/d/late/orders`, 'GET');
    const post = send(`${patient.url}/d/late/orders`, 'POST', '{"item":"x"}');
    await waitFor('both requests held', async () => patient.endpoints.waiting === 2);
    expect(await metricValue(patient, 'drydock_edge_held_requests', { deployment: 'late' })).toBe(2);
    await sleep(200);
    nodeOf(instance.node_id).runHealthy(instance.id, answering.port);
    await nodeOf(instance.node_id).heartbeat();

    const [got, posted] = await Promise.all([get.done, post.done]);
    expect(got.status).toBe(200);
    expect(JSON.parse(got.body)).toEqual({ served_by: 'b', method: 'GET', body: '' });
    expect(posted.status).toBe(200);
    expect(JSON.parse(posted.body)).toEqual({ served_by: 'b', method: 'POST', body: '{"item":"x"}' });
    expect(await held(patient, 'late', 'served')).toBe(2);
  });

  it('(4) a client that goes away while held releases its hold at once (no waiter, no held request left), counted abandoned', async () => {
    const { req, done } = send(`${patient.url}/d/never/orders`, 'GET');
    done.catch(() => {});
    await waitFor('the GET held', async () => patient.endpoints.waiting === 1);
    expect(await metricValue(patient, 'drydock_edge_held_requests', { deployment: 'never' })).toBe(1);
    req.destroy();
    // Well within the 60 s hold: only the client going away can have ended it.
    await waitFor('the hold released', async () => patient.endpoints.waiting === 0, { timeoutMs: 3000 });
    await waitFor('the hold counted abandoned', async () => (await held(patient, 'never', 'abandoned')) === 1, { timeoutMs: 3000 });
    expect(await metricValue(patient, 'drydock_edge_held_requests', { deployment: 'never' })).toBe(0);
    expect(await held(patient, 'never', 'expired')).toBe(0);
  });
});
