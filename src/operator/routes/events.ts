import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { listEvents } from '../../store/events.js';
import type { OperatorContext } from '../context.js';
import { EventsQuery } from '../schemas.js';

export async function eventRoutes(base: FastifyInstance, ctx: OperatorContext): Promise<void> {
  const app = base.withTypeProvider<ZodTypeProvider>();
  app.get('/api/v1/events', { schema: { tags: ['events'], querystring: EventsQuery, summary: 'The event log, oldest first' } }, async (req) =>
    listEvents(ctx.db, {
      after: req.query.after,
      kindPrefix: req.query.kind_prefix,
      nodeId: req.query.node_id,
      rolloutId: req.query.rollout_id,
      limit: req.query.limit,
    }),
  );
}
