// One log line per request: method, route, status, duration and request id. The id is the
// caller's `x-request-id` when it sends a sane one (a load balancer's, a runbook's), else ours;
// it is echoed in the response so a client can quote it. Agents' heartbeats and long-polls,
// probes and scrapes come every few seconds from every node: they log at debug, the rest at info.
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';

export const REQUEST_ID_HEADER = 'x-request-id';

/** Printable, no spaces, bounded: anything else is replaced by an id of ours (it goes into logs). */
const SANE_REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

export function requestIdOf(req: { headers: Record<string, string | string[] | undefined> }): string {
  const sent = req.headers[REQUEST_ID_HEADER];
  return typeof sent === 'string' && SANE_REQUEST_ID.test(sent) ? sent : randomUUID();
}

function isChatty(route: string): boolean {
  return route.startsWith('/api/v1/agent/') || route === '/health' || route.startsWith('/health/') || route === '/metrics';
}

export function registerRequestLog(app: FastifyInstance): void {
  app.addHook('onRequest', async (req, reply) => {
    void reply.header(REQUEST_ID_HEADER, req.id);
  });
  app.addHook('onResponse', async (req: FastifyRequest, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    const line = { method: req.method, route, status: reply.statusCode, duration_ms: Math.round(reply.elapsedTime * 10) / 10, request_id: req.id };
    if (isChatty(route)) req.log.debug(line, 'request');
    else req.log.info(line, 'request');
  });
}
