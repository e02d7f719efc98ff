import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { appendEvents } from '../../store/events.js';
import { clearQuarantine, listQuarantine } from '../../store/quarantine.js';
import type { OperatorContext } from '../context.js';
import { policyErrors } from '../policy-errors.js';
import { actorOf } from '../request-actor.js';
import { QuarantineView } from '../response-views.js';
import { ComponentName } from '../schemas.js';
import { EVENT } from '../../domain/events.js';

// Versions are matched as stored (quarantine rows name a rollout's target, a valid version);
// the bound keeps NUL-free, short input away from Postgres.
const Params = z.object({ component: ComponentName, version: z.string().min(1).max(100).regex(/^[0-9A-Za-z.+-]+$/, 'a version like 2.0.0') });
const ClearBody = z.object({ reason: z.string().trim().min(1).max(2000).describe('why the version may be rolled out again') }).strict();
const ListQuery = z.object({ open: z.enum(['true', 'false']).optional().describe('only open (true) or only cleared (false) quarantines') });

export async function quarantineRoutes(base: FastifyInstance, ctx: OperatorContext): Promise<void> {
  const app = base.withTypeProvider<ZodTypeProvider>();
  const tags = ['quarantine'];

  app.get('/api/v1/quarantine', {
      schema: {
        tags,
        operationId: 'listQuarantine',
        querystring: ListQuery,
        summary: 'Versions the circuit breaker rolled back: open ones first, cleared ones kept for audit',
        response: { 200: z.array(QuarantineView) },
      },
    }, async (req) =>
    listQuarantine(ctx.db, { open: req.query.open === undefined ? undefined : req.query.open === 'true' }),
  );

  app.post(
    '/api/v1/quarantine/:component/:version/clear',
    { config: { role: 'approver' }, schema: { tags, operationId: 'clearQuarantine', params: Params, body: ClearBody, summary: 'Clear a quarantined version so rollouts to it pass preflight again (recorded)', response: { 200: QuarantineView } } },
    async (req) => {
      const actor = actorOf(req);
      const { component, version } = req.params;
      return ctx.db.transaction(async (tx) => {
        const row = await clearQuarantine(tx, { component, version, by: actor, reason: req.body.reason });
        if (!row) throw policyErrors.notQuarantined(component, version);
        await appendEvents(tx, [
          { kind: EVENT.artifact.quarantine_cleared, actor, rolloutId: row.rollout_id, data: { component, version, reason: req.body.reason, rollout_id: row.rollout_id } },
        ]);
        return row;
      });
    },
  );
}
