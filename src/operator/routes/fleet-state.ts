import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { isValidRange } from '../../domain/rollout/compat.js';
import { listCompatRules, replaceCompatRules } from '../../store/compat.js';
import { driftReport } from '../../store/drift.js';
import { appendEvents } from '../../store/events.js';
import type { OperatorContext } from '../context.js';
import { actorOf } from '../request-actor.js';
import { CompatView, DriftView } from '../response-views.js';
import { EVENT } from '../../domain/events.js';

const Range = z.string().min(1).refine(isValidRange, 'a semver range like ">=2.0.0" or "^1.4"');
const CompatBody = z
  .object({
    rules: z
      .array(z.object({ component: z.string().min(1), range: Range, requires_component: z.string().min(1), requires_range: Range }).strict())
      .max(1000),
  })
  .strict();

/** Drift against the last completed rollouts, and the compatibility matrix preflight enforces. */
export async function fleetStateRoutes(base: FastifyInstance, ctx: OperatorContext): Promise<void> {
  const app = base.withTypeProvider<ZodTypeProvider>();
  app.get(
    '/api/v1/drift',
    {
      schema: {
        tags: ['drift'],
        operationId: 'getDrift',
        querystring: z.object({ component: z.string().optional() }),
        summary: 'Nodes not on the version their last completed rollout set',
        response: { 200: DriftView },
      },
    },
    async (req) => driftReport(ctx.db, req.query.component),
  );
  app.get('/api/v1/compat', { schema: { tags: ['compat'], operationId: 'getCompat', summary: 'The version compatibility matrix', response: { 200: CompatView } } }, async () => ({ rules: await listCompatRules(ctx.db) }));
  app.put('/api/v1/compat', { schema: { tags: ['compat'], operationId: 'setCompat', body: CompatBody, summary: 'Replace the compatibility matrix', response: { 200: CompatView } } }, async (req) => {
    await ctx.db.transaction(async (tx) => {
      await replaceCompatRules(tx, req.body.rules);
      await appendEvents(tx, [{ kind: EVENT.compat.updated, actor: actorOf(req), data: { rules: req.body.rules.length } }]);
    });
    return { rules: await listCompatRules(ctx.db) };
  });
}
