// Slow clients against a real operator with short bounds: slow headers and trickling bodies
// are cut off, idle keep-alive connections closed, while a large upload at loopback speed, a
// long-poll and the event stream (slow responses, not slow requests) keep working.
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningOperator } from '../../src/operator/server.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { FakeNode } from '../support/fake-node.js';
import { ApiClient, startTestOperator, waitFor } from '../support/operator.js';

const LIMITS = {
  headersTimeoutMs: 400,
  // Shorter than the 3 s long-poll below: responses must not be bounded by it.
  requestTimeoutMs: 2_000,
  keepAliveTimeoutMs: 500,
  bodyMinBytes: 16 * 1024,
  bodyRateWindowMs: 400,
};

/** A raw connection that records what the server sent and when it closed. */
function rawSocket(port: number): Promise<{ socket: Socket; received: () => string; closed: () => boolean }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    let isClosed = false;
    socket.on('data', (chunk) => {
      data += chunk.toString('utf8');
    });
    socket.on('close', () => {
      isClosed = true;
    });
    socket.on('error', () => {});
    socket.once('connect', () => resolve({ socket, received: () => data, closed: () => isClosed }));
    socket.once('error', reject);
  });
}

/** The status and the catalog error of a raw HTTP response. */
function parseRawResponse(text: string): { status: number; code: string | undefined } {
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);
  const body = text.slice(text.indexOf('\r\n\r\n') + 4);
  const parsed = body ? (JSON.parse(body) as { error?: { code?: string; message?: string; details?: object } }) : {};
  expect(Object.keys(parsed.error ?? {}).sort()).toEqual(['code', 'details', 'message']);
  return { status, code: parsed.error?.code };
}

describe(`operator server timeouts on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let op: RunningOperator;
  let api: ApiClient;
  let port: number;
  const timers: NodeJS.Timeout[] = [];
  const sockets: Socket[] = [];

  beforeAll(async () => {
    t = await createTestDb();
    op = await startTestOperator(t.db, { http: LIMITS });
    api = new ApiClient(op.url);
    port = Number(new URL(op.url).port);
  });
  afterAll(async () => {
    for (const timer of timers) clearInterval(timer);
    for (const socket of sockets) socket.destroy();
    await op?.close();
    await t?.cleanup();
  });

  /** Writes `piece()` every `everyMs` until the socket closes (or the test ends). */
  function trickle(socket: Socket, everyMs: number, piece: () => string | Buffer): void {
    const timer = setInterval(() => {
      if (socket.destroyed || socket.writableEnded) return clearInterval(timer);
      socket.write(piece());
    }, everyMs);
    timers.push(timer);
  }

  it('closes a connection whose headers keep trickling in, with a 408 in the catalog shape', async () => {
    const raw = await rawSocket(port);
    sockets.push(raw.socket);
    raw.socket.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    // One header line every 100 ms: the connection is never idle, but the headers never end.
    let n = 0;
    trickle(raw.socket, 100, () => `X-Slow-${n++}: a\r\n`);
    await waitFor('the slow-header connection to be closed', async () => raw.closed(), { timeoutMs: 10_000 });
    expect(parseRawResponse(raw.received())).toEqual({ status: 408, code: 'REQUEST_TIMEOUT' });
  });

  it('closes a connection that never sends a byte', async () => {
    const raw = await rawSocket(port);
    sockets.push(raw.socket);
    await waitFor('the silent connection to be closed', async () => raw.closed(), { timeoutMs: 10_000 });
  });

  it('answers what the HTTP parser refuses in the catalog shape: 431, malformed requests, bad URLs', async () => {
    const cases = [
      { raw: `GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'h'.repeat(20_000)}\r\n\r\n`, status: 431, code: 'HEADERS_TOO_LARGE' },
      { raw: 'NOT HTTP AT ALL\r\n\r\n', status: 400, code: 'BAD_REQUEST' },
      { raw: 'GET /api/v1/nodes/% HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n', status: 400, code: 'BAD_URL' },
      { raw: `GET /api/v1/nodes/${'n'.repeat(300)} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`, status: 414, code: 'URI_TOO_LONG' },
    ];
    for (const { raw: request, status, code } of cases) {
      const raw = await rawSocket(port);
      sockets.push(raw.socket);
      raw.socket.write(request);
      await waitFor(`the answer to ${request.slice(0, 30)}`, async () => raw.closed());
      expect(parseRawResponse(raw.received()), request.slice(0, 40)).toEqual({ status, code });
    }
  });

  it('cuts off a body trickling at 1 KB/s and stores nothing', async () => {
    const raw = await rawSocket(port);
    sockets.push(raw.socket);
    const query = 'component=trickle&version=1.0.0&kind=binary';
    raw.socket.write(
      `POST /api/v1/artifacts?${query} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nContent-Length: 1048576\r\n\r\n`,
    );
    // 1 KB/s, far below the 16 KiB per 400 ms minimum of this operator.
    trickle(raw.socket, 100, () => Buffer.alloc(100, 7));
    await waitFor('the trickling upload to be cut off', async () => raw.closed(), { timeoutMs: 10_000 });
    expect(parseRawResponse(raw.received())).toEqual({ status: 408, code: 'BODY_TOO_SLOW' });
    expect(await t.db.query(`SELECT id FROM artifacts WHERE component = 'trickle'`)).toEqual([]);
    // The operator still answers.
    expect((await api.get('/health')).status).toBe(200);
  });

  it('closes an idle keep-alive connection after the keep-alive bound', async () => {
    const raw = await rawSocket(port);
    sockets.push(raw.socket);
    raw.socket.write('GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n');
    await waitFor('the reply', async () => raw.received().includes('"live"'));
    await waitFor('the idle connection to be closed', async () => raw.closed(), { timeoutMs: 10_000 });
    expect(raw.received()).toMatch(/^HTTP\/1\.1 200/);
  });

  it('keeps a 3 s long-poll and the event stream open past every request bound', async () => {
    const node = await FakeNode.register(api, { hostname: 'slow-poll-1' });
    const desired = await node.heartbeat();
    const stream = await fetch(`${op.url}/api/v1/events/stream?kind_prefix=node.cordoned`);
    expect(stream.status).toBe(200);
    const poll = await api.get<{ generation: number }>(`/api/v1/agent/desired?node_id=${node.id}&after=${desired.generation}&wait=3`);
    // Nothing moved the generation, so the poll held for its whole wait (longer than
    // requestTimeoutMs and keepAliveTimeoutMs) and then answered normally.
    expect(poll.status).toBe(200);
    expect(poll.body.generation).toBe(desired.generation);
    // The stream opened before the poll still delivers an event written after it.
    expect((await api.post(`/api/v1/nodes/${node.id}/cordon`)).status).toBe(200);
    const reader = (stream.body as ReadableStream<Uint8Array>).getReader();
    let text = '';
    while (!text.includes('event: node.cordoned')) {
      const { value, done } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString('utf8');
    }
    await reader.cancel();
    expect(text).toContain('event: node.cordoned');
  });
});
