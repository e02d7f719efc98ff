// The edge's one retry, against upstreams that fail the way a live-migrated VM does at
// switchover: its QEMU quits and every connection to it is closed or reset, possibly after the
// request went out, or half-way through the response. The upstreams here are tiny node:net
// servers because they stand for third-party workloads (not drydock servers): only raw sockets
// can stop half-way through a status line. The operator and the edge are the real ones, on
// loopback; a scripted agent (FakeNode) reports the two upstreams as the deployment's endpoints.
import { request } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import pino from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { EdgeRouter } from '../../src/edge/router.js';
import type { RunningOperator } from '../../src/operator/server.js';
import type { DeploymentView } from '../../src/store/deployments.js';
import type { InstanceView } from '../../src/store/instances.js';
import { createTestDb, type TestDb } from '../support/db.js';
import { FakeNode } from '../support/fake-node.js';
import { ApiClient, startTestOperator, waitFor } from '../support/operator.js';

/** A request as an upstream saw it arrive, read in full (head, and a content-length body). */
interface Arrival {
  upstream: string;
  method: string;
  path: string;
  body: string;
}

/** What an upstream does with one request, once it has read it. */
type Behaviour = (socket: Socket, upstream: string) => void;

/** A whole 200 that names the upstream, then a clean close (its body even to HEAD, as sloppy servers do). */
const answer: Behaviour = (socket, upstream) => {
  const body = JSON.stringify({ served_by: upstream });
  socket.end(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
};
/** Closes (FIN) without a byte of response: the edge sees "socket hang up". */
const closeSilently: Behaviour = (socket) => socket.destroy();
/** Resets (RST) without a byte of response: the edge sees ECONNRESET. */
const resetSilently: Behaviour = (socket) => socket.resetAndDestroy();
/**
 * Half a status line and header, then a reset. The pause lets the edge's parser take the half
 * header in before the reset (either way the edge must retry; the pause makes this the path
 * taken rather than the one `resetSilently` covers).
 */
const resetMidHeaders: Behaviour = (socket) => {
  socket.write('HTTP/1.1 200 OK\r\nContent-');
  setTimeout(() => socket.resetAndDestroy(), 30);
};

/** Two (or more) scripted upstreams sharing one script: the n-th request to arrive, at any of them, gets the n-th behaviour. */
class Scenario {
  readonly arrivals: Arrival[] = [];
  /** Behaviours for the next arrivals, in order; when empty, `answer`. */
  script: Behaviour[] = [];
  /** Sockets a behaviour parked for the test to end (see `dieAfterFirstBodyBytes`). */
  readonly parked: Socket[] = [];

  reset(script: Behaviour[]): void {
    this.arrivals.length = 0;
    this.parked.length = 0;
    this.script = [...script];
  }

  arrived(arrival: Arrival, socket: Socket): void {
    this.arrivals.push(arrival);
    (this.script.shift() ?? answer)(socket, arrival.upstream);
  }
}

/**
 * Headers and the first bytes of a 64-byte body (length-delimited or chunked), then nothing until
 * the test, having seen those bytes reach the client, resets the connection: so the client has
 * the response headers for sure when the upstream dies.
 */
function dieAfterFirstBodyBytes(scenario: Scenario, framing: 'content-length' | 'chunked'): Behaviour {
  return (socket) => {
    if (framing === 'content-length') socket.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 64\r\n\r\nfirst-part;');
    else socket.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\nb\r\nfirst-part;\r\n');
    scenario.parked.push(socket);
  };
}

async function startUpstream(name: string, scenario: Scenario): Promise<{ server: Server; port: number }> {
  const server = createServer((socket) => {
    socket.on('error', () => {});
    let received = '';
    const onData = (chunk: Buffer) => {
      received += chunk.toString('latin1');
      const headEnd = received.indexOf('\r\n\r\n');
      if (headEnd === -1) return;
      const head = received.slice(0, headEnd);
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      const body = received.slice(headEnd + 4);
      if (body.length < length) return;
      socket.off('data', onData);
      const [method = '', path = ''] = head.slice(0, head.indexOf('\r\n')).split(' ');
      scenario.arrived({ upstream: name, method, path, body }, socket);
    };
    socket.on('data', onData);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as { port: number }).port };
}

interface ClientResult {
  status: number;
  body: string;
  /** `complete`: the response ended as framed; `aborted`: the connection closed part-way. */
  outcome: 'complete' | 'aborted';
}

/**
 * One request through the edge on a fresh connection. Rejects if the edge gives no response at
 * all, or nothing settles within 5 s (a hang is a failure, not a slow pass).
 */
function send(url: string, method: string, options: { body?: string; onFirstBodyBytes?: () => void } = {}): Promise<ClientResult> {
  return new Promise((resolve, reject) => {
    const headers = options.body === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(options.body)) };
    const req = request(url, { method, headers, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.on('error', () => {});
      res.on('data', (chunk: Buffer) => {
        if (body === '') options.onFirstBodyBytes?.();
        body += chunk.toString();
      });
      res.on('close', () => resolve({ status: res.statusCode ?? 0, body, outcome: res.complete ? 'complete' : 'aborted' }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: nothing settled within 5 s`)));
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Sum of a counter's series whose labels include `labels`, from the Prometheus text format. */
function counterValue(metrics: string, name: string, labels: Record<string, string>): number {
  let total = 0;
  for (const line of metrics.split('\n')) {
    const match = /^([a-z_]+)\{([^}]*)\} (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const series = Object.fromEntries([...(match[2] as string).matchAll(/([a-z_]+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => series[k] === v)) total += Number(match[3]);
  }
  return total;
}

describe('drydock edge: one retry on another endpoint when an upstream dies at switchover', () => {
  let t: TestDb;
  let op: RunningOperator;
  const nodes: FakeNode[] = [];
  let upstreams: { server: Server; port: number }[] = [];
  let edge: EdgeRouter;
  const scenario = new Scenario();
  const retries = async (reason?: string) =>
    counterValue(await (await fetch(`${edge.url}/metrics`)).text(), 'drydock_edge_retries_total', { deployment: 'web', ...(reason ? { reason } : {}) });

  beforeAll(async () => {
    t = await createTestDb();
    op = await startTestOperator(t.db);
    const api = new ApiClient(op.url);
    upstreams = [await startUpstream('a', scenario), await startUpstream('b', scenario)];
    for (const hostname of ['retry-1', 'retry-2']) nodes.push(await FakeNode.register(api, { hostname, agent_url: 'http://127.0.0.1:7070' }));
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
    const expected = upstreams.map((u) => `http://127.0.0.1:${u.port}`).sort();
    await waitFor('the edge to route web to both upstreams', async () => {
      await edge.endpoints.refresh();
      return JSON.stringify(edge.endpoints.snapshot().web?.sort()) === JSON.stringify(expected);
    });
  });

  afterAll(async () => {
    await edge?.stop();
    for (const node of nodes) await node.stopHeartbeats();
    await op?.close();
    await t?.cleanup();
    for (const { server } of upstreams) await new Promise((resolve) => server.close(resolve));
  });

  beforeEach(() => scenario.reset([]));

  /** The upstreams that saw a request, in arrival order; checks each arrival was `method`. */
  const arrivedAt = (method: string) => {
    for (const arrival of scenario.arrivals) expect(arrival).toMatchObject({ method, path: '/orders' });
    return scenario.arrivals.map((a) => a.upstream);
  };

  it.each([
    ['closes', closeSilently],
    ['resets', resetSilently],
  ])('(a) GET: the first upstream reads the request and %s without answering; the other one answers, and the retry is counted', async (_, fault) => {
    scenario.reset([fault]);
    const before = await retries('reset');
    const response = await send(`${edge.url}/d/web/orders`, 'GET');
    const [first, second] = arrivedAt('GET');
    expect(second).toBeDefined();
    expect(second).not.toBe(first);
    expect(response).toEqual({ status: 200, body: JSON.stringify({ served_by: second }), outcome: 'complete' });
    expect(await retries('reset')).toBe(before + 1);
  });

  it('(b) GET: the first upstream resets half-way through its status line and headers; the client gets the other upstream\'s 200', async () => {
    scenario.reset([resetMidHeaders]);
    const before = await retries();
    const response = await send(`${edge.url}/d/web/orders`, 'GET');
    const [first, second] = arrivedAt('GET');
    expect(second).not.toBe(first);
    expect(response).toEqual({ status: 200, body: JSON.stringify({ served_by: second }), outcome: 'complete' });
    expect(await retries()).toBe(before + 1);
  });

  it('(c) POST: an upstream that took the request and reset mid-headers gives a 502 with a stable body; the other upstream never sees it', async () => {
    scenario.reset([resetMidHeaders]);
    const before = await retries();
    const response = await send(`${edge.url}/d/web/orders`, 'POST', { body: '{"item":"x"}' });
    expect(arrivedAt('POST')).toHaveLength(1);
    expect(response.status).toBe(502);
    expect(JSON.parse(response.body)).toEqual({
      error: {
        code: 'UPSTREAM_NO_RESPONSE',
        message: expect.stringContaining('not idempotent') as unknown as string,
        details: { deployment: 'web', reason: 'reset', attempts: 1 },
      },
    });
    expect(await retries()).toBe(before);
  });

  it.each(['PUT', 'PATCH'])('(c) %s is not sent again either (it carries a body the edge streams through)', async (method) => {
    scenario.reset([resetSilently]);
    const response = await send(`${edge.url}/d/web/orders`, method, { body: '{"item":"x"}' });
    expect(arrivedAt(method)).toHaveLength(1);
    expect(response.status).toBe(502);
  });

  // For HEAD, `answer` sends a body after the headers: the edge must still deliver the complete
  // header-only response rather than fail it on the stray bytes.
  it.each(['HEAD', 'OPTIONS', 'DELETE'])('(a) %s without a body is idempotent, so it is retried like GET', async (method) => {
    scenario.reset([resetSilently]);
    const response = await send(`${edge.url}/d/web/orders`, method);
    const [first, second] = arrivedAt(method);
    expect(second).toBeDefined();
    expect(second).not.toBe(first);
    expect(response.status).toBe(200);
  });

  it('(d) GET: both upstreams reset: a 502 after exactly one retry, within the client\'s 5 s bound', async () => {
    scenario.reset([resetSilently, resetMidHeaders, answer]);
    const before = await retries();
    const response = await send(`${edge.url}/d/web/orders`, 'GET');
    const [first, second, ...more] = arrivedAt('GET');
    expect(second).not.toBe(first);
    expect(more).toEqual([]);
    expect(response.status).toBe(502);
    expect(JSON.parse(response.body)).toMatchObject({ error: { code: 'UPSTREAM_NO_RESPONSE', details: { deployment: 'web', reason: 'reset', attempts: 2 } } });
    expect(await retries()).toBe(before + 1);
  });

  it('GET: an upstream that sent its whole header block but died before the first body byte is retried (nothing reached the client yet)', async () => {
    scenario.reset([
      (socket) => {
        socket.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 64\r\n\r\n');
        setTimeout(() => socket.resetAndDestroy(), 30);
      },
    ]);
    const before = await retries('reset');
    const response = await send(`${edge.url}/d/web/orders`, 'GET');
    const [, second] = arrivedAt('GET');
    expect(response).toEqual({ status: 200, body: JSON.stringify({ served_by: second }), outcome: 'complete' });
    expect(await retries('reset')).toBe(before + 1);
  });

  it.each(['content-length', 'chunked'] as const)(
    '(e) GET: the headers and part of a %s body reached the client, then the upstream died: the client connection is cut (no retry, no clean end)',
    async (framing) => {
      scenario.reset([dieAfterFirstBodyBytes(scenario, framing)]);
      const before = await retries();
      const response = await send(`${edge.url}/d/web/orders`, 'GET', { onFirstBodyBytes: () => scenario.parked.shift()?.resetAndDestroy() });
      expect(response).toEqual({ status: 200, body: 'first-part;', outcome: 'aborted' });
      expect(arrivedAt('GET')).toHaveLength(1);
      expect(await retries()).toBe(before);
    },
  );

  it('GET: an upstream that reads the request and stays silent past the edge\'s timeout (1 s here) is retried on the other one', async () => {
    scenario.reset([() => {}]);
    const before = await retries('timeout');
    const response = await send(`${edge.url}/d/web/orders`, 'GET');
    const [first, second] = arrivedAt('GET');
    expect(second).not.toBe(first);
    expect(response).toEqual({ status: 200, body: JSON.stringify({ served_by: second }), outcome: 'complete' });
    expect(await retries('timeout')).toBe(before + 1);
  });

  // Last: it stops upstream a for good.
  it('POST and GET: an endpoint that refuses connections never got the request, so even a POST goes to the other one, body intact', async () => {
    const [refusing] = upstreams;
    await new Promise((resolve) => refusing?.server.close(resolve));
    const before = await retries('connect');
    // Round-robin over two endpoints: of two requests in a row, one is sent to the refusing one first.
    for (const method of ['POST', 'POST', 'GET', 'GET']) {
      const body = method === 'POST' ? '{"item":"x"}' : undefined;
      const response = await send(`${edge.url}/d/web/orders`, method, body === undefined ? {} : { body });
      expect(response).toEqual({ status: 200, body: JSON.stringify({ served_by: 'b' }), outcome: 'complete' });
    }
    expect(scenario.arrivals).toEqual([
      { upstream: 'b', method: 'POST', path: '/orders', body: '{"item":"x"}' },
      { upstream: 'b', method: 'POST', path: '/orders', body: '{"item":"x"}' },
      { upstream: 'b', method: 'GET', path: '/orders', body: '' },
      { upstream: 'b', method: 'GET', path: '/orders', body: '' },
    ]);
    expect(await retries('connect')).toBeGreaterThanOrEqual(before + 2);
  });
});
