import { Agent, createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { ApiClient } from '../api-client.js';
import { parseListen } from '../listen-address.js';
import { EndpointTable } from './endpoint-table.js';
import { EdgeMetrics } from './metrics.js';

export interface EdgeOptions {
  /** host:port (default 127.0.0.1:8088). */
  listen: string;
  operatorUrl: string;
  token?: string | undefined;
  /** Upstream response-header timeout (default 30 s). */
  upstreamTimeoutMs?: number;
  log: Logger;
}

// A request without a body can be sent again safely after a connection error.
const RETRYABLE = new Set(['GET', 'HEAD', 'OPTIONS', 'DELETE']);
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer'];

/** `<deployment>.localhost` or `/d/<deployment>/…`; null for the edge's own routes. */
export function routeOf(host: string | undefined, url: string): { deployment: string; path: string } | null {
  const name = (host ?? '').split(':')[0] ?? '';
  const match = /^([a-z0-9-]+)\.localhost$/.exec(name);
  if (match) return { deployment: match[1] as string, path: url };
  const prefixed = /^\/d\/([a-z0-9-]+)(\/.*)?$/.exec(url);
  if (prefixed) return { deployment: prefixed[1] as string, path: prefixed[2] ?? '/' };
  return null;
}

function sendError(res: ServerResponse, status: number, code: string, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(`${JSON.stringify({ error: { code, message, details: {} } })}\n`);
}

/**
 * `drydock edge`: an HTTP reverse proxy that sends each deployment's traffic round-robin to
 * its healthy endpoints and follows endpoint changes from the operator's event stream. A
 * withdrawn endpoint gets no new request at once while its in-flight requests finish; an
 * idempotent request that hits a connection error is retried once on another endpoint.
 */
export class EdgeRouter {
  readonly metrics = new EdgeMetrics();
  readonly endpoints: EndpointTable;
  private server: Server | undefined;
  private readonly upstreamAgent = new Agent({ keepAlive: true, maxSockets: 256 });
  url = '';

  constructor(private readonly options: EdgeOptions) {
    this.endpoints = new EndpointTable(new ApiClient({ baseUrl: options.operatorUrl, token: options.token, timeoutMs: 10_000 }), options.log);
  }

  async start(): Promise<string> {
    await this.endpoints.start();
    this.server = createServer((req, res) => void this.handle(req, res));
    const { host, port } = parseListen(this.options.listen, 8088);
    await new Promise<void>((resolve, reject) => {
      this.server?.once('error', reject);
      this.server?.listen(port, host, resolve);
    });
    const address = this.server.address();
    this.url = `http://${host}:${typeof address === 'object' && address ? address.port : port}`;
    this.options.log.info({ url: this.url, operator: this.options.operatorUrl }, 'edge listening');
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
    const route = routeOf(req.headers.host, req.url ?? '/');
    if (!route) return this.own(req, res);
    const { deployment, path } = route;
    if (!this.endpoints.knows(deployment)) {
      this.metrics.requests.inc({ deployment, code: '404' });
      return sendError(res, 404, 'UNKNOWN_DEPLOYMENT', `no deployment ${deployment}; see /endpoints on the edge`);
    }
    const first = this.endpoints.pick(deployment);
    if (!first) {
      this.metrics.requests.inc({ deployment, code: '503' });
      return sendError(res, 503, 'NO_HEALTHY_ENDPOINT', `deployment ${deployment} has no healthy endpoint right now`);
    }
    const retryable = RETRYABLE.has(req.method ?? 'GET') && !req.headers['content-length'] && !req.headers['transfer-encoding'];
    const failed = await this.forward(req, res, deployment, first, path);
    if (!failed) return;
    this.metrics.errors.inc({ deployment });
    const second = retryable ? this.endpoints.pick(deployment, first) : undefined;
    if (second && !res.headersSent) {
      this.metrics.retries.inc({ deployment });
      if (!(await this.forward(req, res, deployment, second, path))) return;
      this.metrics.errors.inc({ deployment });
    }
    this.metrics.requests.inc({ deployment, code: '502' });
    sendError(res, 502, 'UPSTREAM_UNREACHABLE', `deployment ${deployment}: ${failed.message}`);
  }

  /** Proxies one attempt; resolves with the error when no response came back (retry material). */
  private forward(req: IncomingMessage, res: ServerResponse, deployment: string, base: string, path: string): Promise<Error | undefined> {
    return new Promise((resolve) => {
      const target = new URL(path, base);
      const headers: Record<string, string | string[] | undefined> = { ...req.headers, host: target.host, 'x-forwarded-host': req.headers.host ?? '', 'x-forwarded-for': req.socket.remoteAddress ?? '' };
      for (const h of HOP_BY_HOP) delete headers[h];
      const started = performance.now();
      const upstream = request(target, { method: req.method, headers, agent: this.upstreamAgent, timeout: this.options.upstreamTimeoutMs ?? 30_000 }, (up) => {
        this.metrics.upstreamSeconds.observe({ deployment }, (performance.now() - started) / 1000);
        this.metrics.requests.inc({ deployment, code: String(up.statusCode ?? 0) });
        const outHeaders = { ...up.headers };
        for (const h of HOP_BY_HOP) delete outHeaders[h];
        res.writeHead(up.statusCode ?? 502, outHeaders);
        up.pipe(res);
        up.on('error', () => res.destroy());
        resolve(undefined);
      });
      upstream.on('timeout', () => upstream.destroy(new Error('upstream timed out')));
      upstream.on('error', (error) => resolve(error));
      if (RETRYABLE.has(req.method ?? 'GET') && !req.headers['content-length'] && !req.headers['transfer-encoding']) upstream.end();
      else req.pipe(upstream);
    });
  }

  private async own(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/health') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify({ status: 'healthy', operator: this.options.operatorUrl, last_refresh_at: this.endpoints.lastRefreshAt?.toISOString() ?? null })}\n`);
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
    sendError(res, 404, 'ROUTE_NOT_FOUND', 'use Host: <deployment>.localhost or /d/<deployment>/…; the edge itself serves /health, /metrics, /endpoints');
  }
}
