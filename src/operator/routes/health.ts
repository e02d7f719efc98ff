import type { FastifyInstance } from 'fastify';
import type { OperatorContext } from '../context.js';
import { HealthView, LiveView, NotReadyView, ReadyView, TextBody } from '../response-views.js';

// Runbooks `grep -q healthy` the /health body, so a body of a replica that is not ready must
// not hold that word anywhere — and the reason quotes text that is not ours (migration names,
// the driver's error messages), which could.
const scrubHealthyWord = (text: string) => text.replace(/healthy/gi, (word) => `${word.slice(0, 4)}-${word.slice(4)}`);

export async function healthRoutes(app: FastifyInstance, ctx: OperatorContext): Promise<void> {
  // Seed runbooks grep this for "healthy" and read `.status` with jq. It answers 200 while the
  // process lives, "healthy" only when the replica is ready, else "degraded" with the reason;
  // /health/ready is the probe that answers 503. It reads the readiness the lease loop checked
  // last (every few seconds) instead of asking the database on every call.
  app.get('/health', { schema: { tags: ['health'], operationId: 'getHealth', summary: 'Liveness, readiness, leadership and version in one call', response: { 200: HealthView } } }, async () => {
    const readiness = ctx.lease.readiness;
    return {
      status: readiness.ready ? 'healthy' : 'degraded',
      ready: readiness.ready,
      reason: readiness.ready ? readiness.reason : scrubHealthyWord(readiness.reason),
      leader: ctx.lease.leader,
      version: ctx.version,
      // The agent supervising this replica (component `operator`) proves a new build by these:
      // ready, at its version, and its row written to the registry (DESIGN.md §11).
      replica_id: ctx.replica?.id ?? null,
      registered: ctx.replica?.registered ?? false,
      engine: ctx.db.engine,
      uptime_s: Math.round((Date.now() - ctx.startedAt.getTime()) / 1000),
      readiness_checked_at: readiness.checkedAt.toISOString(),
    };
  });

  app.get('/health/live', { schema: { tags: ['health'], operationId: 'getHealthLive', summary: 'The process answers', response: { 200: LiveView } } }, async () => ({ status: 'live' }));

  app.get('/health/ready', { schema: { tags: ['health'], operationId: 'getHealthReady', summary: 'Database reachable and schema compatible', response: { 200: ReadyView, 503: NotReadyView } } }, async (_req, reply) => {
    const readiness = await ctx.lease.checkNow();
    if (!readiness.ready) {
      return reply.code(503).send({ status: 'not_ready', reason: readiness.reason, behind: readiness.behind, ahead: readiness.ahead });
    }
    return { status: 'ready', reason: readiness.reason };
  });

  app.get('/metrics', { schema: { tags: ['health'], operationId: 'getMetrics', summary: 'Prometheus metrics', hide: false, response: { 200: TextBody('Prometheus text exposition format', 'text/plain') } } }, async (_req, reply) => {
    const text = await ctx.metrics.registry.metrics();
    return reply.header('content-type', ctx.metrics.registry.contentType).send(text);
  });
}
