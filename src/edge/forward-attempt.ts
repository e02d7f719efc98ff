import { type Agent, type IncomingMessage, request, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { EdgeMetrics } from './metrics.js';

/**
 * Why an attempt failed before anything was sent to the client: the `reason` label of the edge's
 * error and retry counters.
 * - `connect`: no connection to the endpoint (refused, unreachable); the request never left.
 * - `reset`: the connection closed or was reset after it was up and before the first byte of the
 *   response body: ECONNRESET, "socket hang up", a premature close after part or all of the
 *   response headers (a live-migrated VM's QEMU quitting at switchover looks like this).
 * - `timeout`: no response within `upstreamTimeoutMs`.
 * - `bad_response`: the endpoint answered something that is not HTTP/1.1.
 */
export type FailureReason = 'connect' | 'reset' | 'timeout' | 'bad_response';

export interface AttemptFailure {
  reason: FailureReason;
  /** The connection was up, so the request (or part of it) may have reached the endpoint. */
  mayHaveReached: boolean;
  /** For the log only: its message varies with the platform and the moment of the failure. */
  error: Error;
}

export interface Attempt {
  req: IncomingMessage;
  res: ServerResponse;
  deployment: string;
  target: URL;
  agent: Agent;
  timeoutMs: number;
  metrics: EdgeMetrics;
}

const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer'];

class UpstreamTimeout extends Error {}

/**
 * Methods the edge may send twice: GET, HEAD and OPTIONS are safe, DELETE is idempotent (RFC 9110
 * §9.2.2), and the edge has always retried all four. PUT is idempotent too but is not here: it
 * carries a body, which the edge streams through without keeping a copy, so there is nothing to
 * send again. POST and PATCH are not idempotent: a second copy could apply twice.
 */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'DELETE']);

/** An idempotent request without a body: the edge can send it again after any failure. */
export function isReplayable(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return IDEMPOTENT.has(req.method ?? 'GET') && (length === undefined || length === '0') && !req.headers['transfer-encoding'];
}

function failureReason(error: Error, connected: boolean): FailureReason {
  if (error instanceof UpstreamTimeout) return 'timeout';
  if (!connected) return 'connect';
  if (String((error as NodeJS.ErrnoException).code ?? '').startsWith('HPE_')) return 'bad_response';
  return 'reset';
}

/**
 * Proxies one attempt. Resolves with the failure when nothing has been sent to the client (the
 * caller may try another endpoint), or with undefined once the response is committed to the
 * client.
 *
 * The response is committed with its first body byte, or its end, not with its headers: an
 * endpoint that sent its headers and died before any body is still a failure the client never
 * saw. (Node's server sends the status and headers with the first body write anyway, so holding
 * them back delays nothing the client would have seen.)
 *
 * Once committed there is no retry: the client has part of a response. If the endpoint then
 * dies mid-body, the client connection is destroyed rather than ended, so the client sees a
 * truncated response (a short content-length, a chunked body without its last chunk), never one
 * that looks complete. A body delimited only by the connection closing (no content-length, not
 * chunked) cannot tell a death from its end; HTTP/1.1 leaves that ambiguity to the endpoint.
 *
 * A body the edge streams through (POST, PUT, …) is only read once the connection is up: when the
 * connection fails, not a byte of the request left and the body is still unread, so the caller
 * may send the request to another endpoint even if it is not idempotent.
 */
export function forwardAttempt(attempt: Attempt): Promise<AttemptFailure | undefined> {
  const { req, res, deployment, target, metrics } = attempt;
  return new Promise((resolve) => {
    let state: 'waiting' | 'committed' | 'failed' = 'waiting';
    let connected = false;
    const fail = (error: Error) => {
      if (state !== 'waiting') return;
      state = 'failed';
      upstream.destroy();
      resolve({ reason: failureReason(error, connected), mayHaveReached: connected, error });
    };

    const headers: Record<string, string | string[] | undefined> = {
      ...req.headers,
      host: target.host,
      'x-forwarded-host': req.headers.host ?? '',
      'x-forwarded-for': req.socket.remoteAddress ?? '',
    };
    for (const h of HOP_BY_HOP) delete headers[h];
    const started = performance.now();
    let response: IncomingMessage | undefined;
    const upstream = request(target, { method: req.method, headers, agent: attempt.agent, timeout: attempt.timeoutMs }, (up) => {
      response = up;
      metrics.upstreamSeconds.observe({ deployment }, (performance.now() - started) / 1000);
      const commit = () => {
        state = 'committed';
        metrics.requests.inc({ deployment, code: String(up.statusCode ?? 0) });
        const outHeaders = { ...up.headers };
        for (const h of HOP_BY_HOP) delete outHeaders[h];
        // The request id the edge echoes (router.ts) is the client's, whatever the endpoint answers.
        if (res.hasHeader('x-request-id')) delete outHeaders['x-request-id'];
        res.writeHead(up.statusCode ?? 502, outHeaders);
        resolve(undefined);
      };
      const onFirstBytes = (chunk: Buffer) => {
        if (state !== 'waiting') return;
        up.off('end', onEmptyBody);
        commit();
        res.write(chunk);
        // Piped from the second chunk on; added before this 'data' event returns, so none is lost.
        up.pipe(res);
      };
      const onEmptyBody = () => {
        if (state !== 'waiting') return;
        up.off('data', onFirstBytes);
        commit();
        res.end();
      };
      up.once('data', onFirstBytes);
      up.once('end', onEmptyBody);
      // Node destroys `up` with an error when the connection closes before the body is complete.
      up.on('error', (error) => (state === 'committed' ? res.destroy() : fail(error)));
    });
    upstream.on('timeout', () => upstream.destroy(new UpstreamTimeout(`no response within ${attempt.timeoutMs} ms`)));
    // A response already complete (one without a body: HEAD, 204, 304) is delivered by its 'end'
    // even if the connection fails right after, say on bytes the endpoint sent past its end.
    upstream.on('error', (error) => (response?.complete ? undefined : fail(error)));
    upstream.once('socket', (socket: Socket) => {
      const onConnected = () => {
        connected = true;
        if (isReplayable(req)) upstream.end();
        else req.pipe(upstream);
      };
      // A kept-alive socket from the agent's pool is connected already.
      if (socket.connecting) socket.once('connect', onConnected);
      else onConnected();
    });
  });
}
