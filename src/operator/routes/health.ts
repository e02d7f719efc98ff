import type { FastifyInstance } from 'fastify';
import { schemaAssessment } from '../../store/migrator.js';
import type { OperatorContext } from '../context.js';

export async function healthRoutes(app: FastifyInstance, ctx: OperatorContext): Promise<void> {
  // Seed runbooks grep this for "healthy" and read `.status` with jq.
  app.get('/health', { schema: { tags: ['health'], summary: 'Liveness and version in one call' } }, async () => ({
    status: 'healthy',
    version: ctx.version,
    engine: ctx.db.engine,
    uptime_s: Math.round((Date.now() - ctx.startedAt.getTime()) / 1000),
  }));

  app.get('/health/live', { schema: { tags: ['health'], summary: 'The process answers' } }, async () => ({ status: 'live' }));

  app.get('/health/ready', { schema: { tags: ['health'], summary: 'Database reachable and schema compatible' } }, async (_req, reply) => {
    let assessment: Awaited<ReturnType<typeof schemaAssessment>>;
    try {
      assessment = await schemaAssessment(ctx.db);
    } catch (error) {
      return reply.code(503).send({ status: 'not_ready', reason: `database unreachable: ${(error as Error).message}` });
    }
    if (!assessment.ready) {
      return reply.code(503).send({ status: 'not_ready', reason: assessment.reason, behind: assessment.behind, ahead: assessment.ahead });
    }
    return { status: 'ready', reason: assessment.reason };
  });

  app.get('/metrics', { schema: { tags: ['health'], summary: 'Prometheus metrics', hide: false } }, async (_req, reply) => {
    const text = await ctx.metrics.registry.metrics();
    return reply.header('content-type', ctx.metrics.registry.contentType).send(text);
  });
}
