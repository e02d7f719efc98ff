// Bounds on slow clients (DESIGN.md §9): a client that sends its headers or its body slowly
// holds a socket and a request slot; without bounds a few thousand of them (slowloris) exhaust
// the operator. Long-polls and the event stream are slow *responses* to complete requests and
// are not affected: every bound here stops counting once the request has fully arrived.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { ApiError } from './errors.js';

export interface HttpLimits {
  /** All request headers must arrive within this (default 15 s; Node's own default is 60 s). */
  headersTimeoutMs: number;
  /**
   * The whole request, body included, must arrive within this (default 15 min: a 2 GiB OS image
   * at ~2.5 MB/s). Responses are not bounded: a long-poll holds a complete request.
   */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this (default 72 s, longer than the 60 s idle timeout of common load balancers, so they close first). */
  keepAliveTimeoutMs: number;
  /**
   * A body that arrives slower than `bodyMinBytes` per `bodyRateWindowMs` is cut off with 408
   * (default 64 KiB per 10 s, ~6.5 KB/s: far below any real network, far above a trickle).
   */
  bodyMinBytes: number;
  bodyRateWindowMs: number;
}

export const HTTP_LIMIT_DEFAULTS: HttpLimits = {
  headersTimeoutMs: 15_000,
  requestTimeoutMs: 15 * 60_000,
  keepAliveTimeoutMs: 72_000,
  bodyMinBytes: 64 * 1024,
  bodyRateWindowMs: 10_000,
};

/** The defaults with `overrides` applied, refused when they cannot work together. */
export function resolveHttpLimits(overrides: Partial<HttpLimits> = {}): HttpLimits {
  const defined = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
  const limits: HttpLimits = { ...HTTP_LIMIT_DEFAULTS, ...defined };
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isInteger(value) || value <= 0) throw new Error(`HTTP limit ${name} must be a positive whole number, got ${value}`);
  }
  // Node refuses a header bound longer than the whole-request bound.
  if (limits.headersTimeoutMs > limits.requestTimeoutMs) {
    throw new Error(`the header timeout (${limits.headersTimeoutMs} ms) cannot exceed the request timeout (${limits.requestTimeoutMs} ms)`);
  }
  return limits;
}

/**
 * Node checks header and request deadlines on a timer (default every 30 s, which would let a
 * 15 s bound run to 45 s); check at a quarter of the shortest bound, between 50 ms and 1 s.
 * Each check walks only the connections with a request in flight.
 */
function checkingIntervalMs(limits: HttpLimits): number {
  return Math.min(1000, Math.max(50, Math.floor(Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs) / 4)));
}

/** The Fastify constructor options that carry the limits to Node's HTTP server. */
export function fastifyServerOptions(limits: HttpLimits) {
  return {
    http: { headersTimeout: limits.headersTimeoutMs, connectionsCheckingInterval: checkingIntervalMs(limits) },
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
  };
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  408: 'Request Timeout',
  414: 'URI Too Long',
  431: 'Request Header Fields Too Large',
};

/** Writes a complete HTTP/1.1 error response to a socket and closes it: no route has the request. */
function writeRawError(socket: Socket, error: ApiError): void {
  if (socket.writable) {
    const body = JSON.stringify({ error: { code: error.code, message: error.message, details: error.details } });
    socket.write(
      `HTTP/1.1 ${error.status} ${STATUS_TEXT[error.status] ?? 'Bad Request'}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

/** Errors of the HTTP layer itself (before a route runs), in the catalog. */
export const httpErrors = {
  requestTimeout: () =>
    new ApiError(408, 'REQUEST_TIMEOUT', 'the request (headers, then the whole body) did not arrive within the operator\'s time bounds; send it again'),
  headersTooLarge: () =>
    new ApiError(431, 'HEADERS_TOO_LARGE', 'the request line and headers are too large (at most 16 KiB); send fewer or shorter headers'),
  badHttp: (reason: string) =>
    new ApiError(400, 'BAD_REQUEST', 'the request is not valid HTTP/1.1 and was not read; check the request line and headers', { reason }),
  badUrl: () =>
    new ApiError(400, 'BAD_URL', 'the URL is not valid (a stray or broken %-escape?); percent-encode reserved characters, e.g. % as %25'),
  uriTooLong: (maxParamLength: number) =>
    new ApiError(414, 'URI_TOO_LONG', `a path segment is longer than ${maxParamLength} characters; no id or name is that long`, { max_length: maxParamLength }),
  bodyTooSlow: (limits: HttpLimits) =>
    new ApiError(
      408,
      'BODY_TOO_SLOW',
      `the request body arrived slower than ${limits.bodyMinBytes} bytes per ${limits.bodyRateWindowMs} ms and was cut off; send it again over a faster link`,
      { min_bytes: limits.bodyMinBytes, window_ms: limits.bodyRateWindowMs },
    ),
} as const;

/**
 * Fastify's `clientErrorHandler`: errors of Node's HTTP parser (431, timeouts, malformed
 * requests) get the catalog shape too. `toApiError` is the app's one error mapping.
 */
export function clientErrorHandler(toApiError: (error: NodeJS.ErrnoException) => ApiError) {
  return (error: NodeJS.ErrnoException, socket: Socket): void => {
    // A reset or an already closed socket has nobody to answer.
    if (error.code === 'ECONNRESET' || socket.destroyed) return;
    writeRawError(socket, toApiError(error));
  };
}

/**
 * Cuts off a request whose body trickles in below the minimum rate. Measured on the socket's
 * byte count, once per window, while the request is incomplete. A window in which the operator
 * itself held the body back (data buffered and unread: the database was slow to take an
 * upload) does not count against the client.
 */
export function guardBodyRate(server: Server, limits: HttpLimits): void {
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    // Requests without a body (every GET, every long-poll) need no timer.
    const length = req.headers['content-length'];
    if ((length === undefined || length === '0') && req.headers['transfer-encoding'] === undefined) return;
    const socket = req.socket;
    let seen = socket.bytesRead;
    const timer = setInterval(() => {
      if (req.complete || socket.destroyed) return clearInterval(timer);
      const read = socket.bytesRead - seen;
      seen = socket.bytesRead;
      if (read >= limits.bodyMinBytes || req.readableLength > 0) return;
      clearInterval(timer);
      if (res.headersSent) socket.destroy();
      else writeRawError(socket, httpErrors.bodyTooSlow(limits));
    }, limits.bodyRateWindowMs);
    timer.unref();
    res.once('close', () => clearInterval(timer));
  });
}
