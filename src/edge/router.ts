import { Agent, createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { ServerTls } from '../tls.js';
import type { Logger } from 'pino';
import { LISTEN_BACKLOG, parseListen } from '../listen-address.js';
import { ControlPlaneClients } from './control-plane-clients.js';
import { EndpointTable, type EndpointWait } from './endpoint-table.js';
import { edgeErrors, sendError } from './errors.js';
import { type AttemptFailure, forwardAttempt, isReplayable } from './forward-attempt.js';
import { EdgeMetrics } from './metrics.js';
import { REQUEST_ID_HEADER, requestIdOf } from '../operator/request-log.js';

export interface EdgeOptions {
  /** host:port (default 127.0.0.1:8088). */
  listen: string;
  /** Operator replicas to follow (more are learned from the registry); tried in turn when one fails. */
  operatorUrls: readonly string[];
  token?: string | undefined;
  /** Serve HTTPS with this certificate and key (--tls-cert, --tls-key); default plain HTTP. */
  tls?: ServerTls | undefined;
  /**
   * Upstream idle timeout (default 30 s): an endpoint silent this long fails the attempt before its
   * response starts (retried like a reset), or cuts the client connection after.
   */
  upstreamTimeoutMs?: number;
  /**
   * Hold (default 3 s; 0: answer at once): how long a request may wait for an endpoint when its
   * deployment has none to send it to, instead of the edge's 503 or 502 at once. That is when it
   * has no healthy endpoint at all as the request arrives, or none but the one a retryable attempt
   * just failed on: the gap of a one-replica deployment's live migration, between the source QEMU
   * quitting and the operator publishing the target (100-800 ms in practice; 3 s leaves room for
   * a slow operator round). One budget per request, shared by both places it can be held.
   */
  holdMs?: number;
  log: Logger;
}

/** Default of EdgeOptions.holdMs. */
export const DEFAULT_HOLD_MS = 3_000;

/** `<deployment>.localhost` or `/d/<deployment>/…`; null for the edge's own routes. */
export function routeOf(host: string | undefined, url: string): { deployment: string; path: string } | null {
  const name = (host ?? '').split(':')[0] ?? '';
  const match = /^([a-z0-9-]+)\.localhost$/.exec(name);
  if (match) return { deployment: match[1] as string, path: url };
  const prefixed = /^\/d\/([a-z0-9-]+)(\/.*)?$/.exec(url);
  if (prefixed) return { deployment: prefixed[1] as string, path: prefixed[2] ?? '/' };
  return null;
}

/** The client's connection closed: nothing more is sent, nothing waits for it. */
function clientGone(req: IncomingMessage, res: ServerResponse): boolean {
  return res.destroyed || req.socket.destroyed;
}

/**
 * `drydock edge`: an HTTP reverse proxy that sends each deployment's traffic round-robin to
 * its healthy endpoints and follows endpoint changes from the operator's event stream. A
 * withdrawn endpoint gets no new request at once while its in-flight requests finish.
 *
 * A failed attempt is retried once, on another endpoint, while the client has seen nothing of a
 * response: an idempotent request without a body after any failure (refused, reset or closed
 * before or part-way through the response headers, timed out), any other request only when its
 * connection never came up. A response the client has started to get is never retried: if its
 * endpoint dies mid-body the client connection is destroyed (see forwardAttempt). Failures and
 * retries are counted by reason: drydock_edge_upstream_errors_total, drydock_edge_retries_total.
 *
 * When there is no endpoint to send a request to, the edge holds it (up to `holdMs`) until the
 * endpoint table brings one, rather than failing it: before the first attempt when the deployment
 * has no healthy endpoint (any request: nothing of it has been read or sent yet), and before the
 * retry when the only endpoint is the one that just failed (only a request that may be retried,
 * so never one that may have reached an endpoint and is not idempotent). A client that goes away
 * ends its hold. Holds are counted by outcome: drydock_edge_held_total, drydock_edge_hold_seconds,
 * and drydock_edge_held_requests for the ones in progress.
 */
export class EdgeRouter {
  readonly metrics = new EdgeMetrics();
  readonly endpoints: EndpointTable;
  private readonly control: ControlPlaneClients;
  private server: Server | undefined;
  private readonly upstreamAgent = new Agent({ keepAlive: true, maxSockets: 256 });
  url = '';

  constructor(private readonly options: EdgeOptions) {
    this.control = new ControlPlaneClients(options.operatorUrls, options.token);
    this.endpoints = new EndpointTable(this.control, options.log);
  }

  async start(): Promise<string> {
    await this.endpoints.start();
    const handler = (req: IncomingMessage, res: ServerResponse) => void this.handle(req, res);
    this.server = this.options.tls ? createHttpsServer(this.options.tls, handler) : createServer(handler);
    const { host, port } = parseListen(this.options.listen, 8088);
    await new Promise<void>((resolve, reject) => {
      this.server?.once('error', reject);
      this.server?.listen({ port, host, backlog: LISTEN_BACKLOG }, resolve);
    });
    const address = this.server.address();
    this.url = `${this.options.tls ? 'https' : 'http'}://${host}:${typeof address === 'object' && address ? address.port : port}`;
    this.options.log.info({ url: this.url, operators: this.options.operatorUrls }, 'edge listening');
    return this.url;
  }

  async stop(): Promise<void> {
    this.endpoints.stop();
    this.upstreamAgent.destroy();
    await new Promise<void>((resolve) => {
      if (!this.server) return resolve();
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Like the operator (request-log.ts): the caller's sane `x-request-id`, else one of ours,
    // sent on to the endpoint (every attempt carries the same id) and echoed to the client on
    // every answer, the edge's own errors included, so one id follows a request end to end.
    const requestId = requestIdOf(req);
    req.headers[REQUEST_ID_HEADER] = requestId;
    res.setHeader(REQUEST_ID_HEADER, requestId);
    const route = routeOf(req.headers.host, req.url ?? '/');
    if (!route) return this.own(req, res);
    const { deployment, path } = route;
    if (!this.endpoints.knows(deployment)) {
      this.metrics.requests.inc({ deployment, code: '404' });
      return sendError(res, edgeErrors.unknownDeployment(deployment));
    }
    const replayable = isReplayable(req);
    const holdMs = this.options.holdMs ?? DEFAULT_HOLD_MS;
    const holdUntil = performance.now() + holdMs;
    const first = await this.endpointFor(req, res, deployment, undefined, holdUntil);
    if (!first.endpoint) {
      if (clientGone(req, res)) return;
      this.metrics.requests.inc({ deployment, code: '503' });
      return sendError(res, edgeErrors.noHealthyEndpoint(deployment, holdMs));
    }
    let failure = await this.forward(req, res, deployment, first.endpoint, path);
    if (!failure) return;
    let attempts = 1;
    let heldInVain = 0;
    // One retry, on another endpoint, and only while the client has seen nothing (a failed attempt
    // sends nothing): for an idempotent request without a body after any failure, for any other
    // request only when it never left (its body is still unread; see forwardAttempt).
    if (replayable || !failure.mayHaveReached) {
      const second = await this.endpointFor(req, res, deployment, first.endpoint, holdUntil);
      if (second.endpoint) {
        this.metrics.retries.inc({ deployment, reason: failure.reason });
        attempts = 2;
        failure = await this.forward(req, res, deployment, second.endpoint, path);
        if (!failure) return;
      } else if (clientGone(req, res)) {
        return;
      } else {
        heldInVain = holdMs;
      }
    }
    this.metrics.requests.inc({ deployment, code: '502' });
    sendError(
      res,
      failure.mayHaveReached
        ? edgeErrors.upstreamNoResponse(deployment, failure.reason, attempts, replayable, heldInVain)
        : edgeErrors.upstreamUnreachable(deployment, attempts, heldInVain),
    );
  }

  /**
   * An endpoint of `deployment` other than `exclude`: one the table has now, or else the first one
   * it gets while the request is held, for what is left of the request's hold (until `holdUntil`).
   * The hold ends early when the client goes away: nothing waits for a client that is gone.
   */
  private async endpointFor(req: IncomingMessage, res: ServerResponse, deployment: string, exclude: string | undefined, holdUntil: number): Promise<EndpointWait> {
    const now = this.endpoints.pick(deployment, exclude);
    if (now) return { endpoint: now, outcome: 'served' };
    const budgetMs = holdUntil - performance.now();
    if (budgetMs <= 0) return { outcome: 'expired' };
    // 'close' on the response before it is sent: the client's connection closed.
    const client = new AbortController();
    const onClose = () => client.abort();
    res.once('close', onClose);
    if (clientGone(req, res)) client.abort();
    this.metrics.holding.inc({ deployment });
    const started = performance.now();
    try {
      const wait = await this.endpoints.waitForEndpoint(deployment, exclude, budgetMs, client.signal);
      const { outcome } = wait;
      const heldMs = performance.now() - started;
      this.metrics.held.inc({ deployment, outcome });
      this.metrics.holdSeconds.observe({ deployment, outcome }, heldMs / 1000);
      const log = { deployment, method: req.method, outcome, held_ms: Math.round(heldMs), endpoint: wait.endpoint, after_failure_on: exclude, request_id: req.headers[REQUEST_ID_HEADER] };
      if (outcome === 'expired') this.options.log.warn(log, 'held request found no endpoint');
      else this.options.log.debug(log, 'held request released');
      return wait;
    } finally {
      res.off('close', onClose);
      this.metrics.holding.dec({ deployment });
    }
  }

  /** One attempt on `base`; a failure is counted and logged here, and returned for the retry decision. */
  private async forward(req: IncomingMessage, res: ServerResponse, deployment: string, base: string, path: string): Promise<AttemptFailure | undefined> {
    const failure = await forwardAttempt({
      req,
      res,
      deployment,
      target: new URL(path, base),
      agent: this.upstreamAgent,
      timeoutMs: this.options.upstreamTimeoutMs ?? 30_000,
      metrics: this.metrics,
    });
    if (failure) {
      this.metrics.errors.inc({ deployment, reason: failure.reason });
      this.options.log.warn(
        { deployment, endpoint: base, method: req.method, reason: failure.reason, err: failure.error.message, request_id: req.headers[REQUEST_ID_HEADER] },
        'upstream attempt failed',
      );
    }
    return failure;
  }

  private async own(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/health') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify({ status: 'healthy', operator: this.control.url, last_refresh_at: this.endpoints.lastRefreshAt?.toISOString() ?? null })}\n`);
      return;
    }
    if (path === '/metrics') {
      res.writeHead(200, { 'content-type': this.metrics.registry.contentType });
      res.end(await this.metrics.registry.metrics());
      return;
    }
    if (path === '/endpoints') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify(this.endpoints.snapshot())}\n`);
      return;
    }
    sendError(res, edgeErrors.routeNotFound());
  }
}
