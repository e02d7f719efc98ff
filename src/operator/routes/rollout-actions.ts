import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { RolloutStatus } from '../../domain/rollout/model.js';
import { type BreakerDecision, type HumanAction, humanTransition } from '../../domain/rollout/human-actions.js';
import { applySpecEdits } from '../../domain/rollout/spec.js';
import { decideApproval, listApprovals, pendingApproval } from '../../store/approvals.js';
import type { Db } from '../../store/db.js';
import { appendEvents } from '../../store/events.js';
import { replaceTasks, updateRollout } from '../../store/rollouts.js';
import type { OperatorContext } from '../context.js';
import { actorOf } from '../request-actor.js';
import { rolloutErrors } from '../rollout-errors.js';
import { planFromStore, tasksFor } from '../rollout-planning.js';
import { rolloutDetail } from '../rollout-view.js';
import { IdParam } from '../schemas.js';
import { mustLoadRollout } from './rollouts.js';

const params = IdParam.describe('rollout id or name');
const ApproveBody = z.object({ set: z.array(z.string().min(3)).max(50).optional().describe('edits path=value, re-planned before the approval counts') }).strict().nullable().optional();
const RejectBody = z.object({ reason: z.string().min(1).max(2000) }).strict();
const DecideBody = z
  .object({ decision: z.enum(['continue', 'rollback', 'abort', 'continue_anyway', 'rollback_completed_batches']) })
  .strict();

export async function rolloutActionRoutes(base: FastifyInstance, ctx: OperatorContext): Promise<void> {
  const app = base.withTypeProvider<ZodTypeProvider>();
  const tags = ['rollouts'];

  /** Runs a status change on the locked rollout, then wakes the reconciler and returns the detail. */
  const act = async (idOrName: string, work: (tx: Db, loaded: Awaited<ReturnType<typeof mustLoadRollout>>) => Promise<void>) => {
    const id = await ctx.db.transaction(async (tx) => {
      const loaded = await mustLoadRollout(ctx, idOrName, tx, true);
      await work(tx, loaded);
      return loaded.row.id;
    });
    ctx.rollouts.wake();
    const loaded = await mustLoadRollout(ctx, id);
    return rolloutDetail(loaded.row, loaded.tasks, await listApprovals(ctx.db, { rolloutId: id }), new Date());
  };
  /** The domain's answer for this action from the rollout's status, or 409 naming the statuses it needs. */
  const transition = (loaded: { row: { id: string; status: RolloutStatus } }, action: HumanAction, decision?: BreakerDecision) => {
    const t = humanTransition(action, loaded.row.status, decision);
    if (!t.ok) throw rolloutErrors.wrongStatus(loaded.row.id, loaded.row.status, action, t.allowed);
    return t;
  };

  app.post('/api/v1/rollouts/:id/approve', { config: { role: 'approver' }, schema: { tags, params, body: ApproveBody, summary: 'Approve the plan, optionally with edits' } }, async (req) => {
    const actor = actorOf(req);
    const edits = req.body?.set ?? [];
    return act(req.params.id, async (tx, loaded) => {
      const t = transition(loaded, 'approve');
      const { row } = loaded;
      if (row.spec.approval.distinctApprover) {
        if (!req.principal) throw rolloutErrors.approverUnknown();
        if (row.created_by === actor) throw rolloutErrors.sameApprover(actor);
      }
      const approval = await pendingApproval(tx, row.id, 'plan');
      if (edits.length > 0) {
        let input: unknown;
        try {
          input = applySpecEdits(row.spec_input, edits);
        } catch (error) {
          throw rolloutErrors.badEdit((error as Error).message);
        }
        const result = await planFromStore(tx, input, row.overrides, ctx.version, { ignoreRolloutId: row.id });
        if (!result.ok) throw rolloutErrors.specInvalid(result.issues);
        const { spec, plan, preflight, disruptive } = result.planned;
        if (spec.target.component !== row.component || spec.target.version !== row.version) throw rolloutErrors.badEdit('edits may not change the target');
        if (preflight.blocked) throw rolloutErrors.preflightFailed(preflight.checks);
        await tx.query(
          `UPDATE rollouts SET spec_input = $2, spec = $3, plan = $4, preflight = $5, drain_mode = $6, disruptive = $7, batch_count = $8, updated_at = now() WHERE id = $1`,
          [row.id, JSON.stringify(input), JSON.stringify(spec), JSON.stringify(plan), JSON.stringify(preflight), plan.drain_mode, disruptive, plan.batches.length],
        );
        const [clock] = await tx.query<{ now: Date }>('SELECT now() AS now');
        await replaceTasks(tx, row.id, tasksFor(row.id, result.planned, new Date((clock as { now: Date }).now)));
      }
      if (approval) await decideApproval(tx, approval.id, { status: 'approved', decision: 'approve', by: actor, edits });
      await updateRollout(tx, row.id, { status: t.to });
      await appendEvents(tx, [
        { kind: t.event, actor, rolloutId: row.id, data: { edits } },
        { kind: 'rollout.started', actor, rolloutId: row.id, data: {} },
      ]);
    });
  });

  app.post('/api/v1/rollouts/:id/reject', { config: { role: 'approver' }, schema: { tags, params, body: RejectBody } }, async (req) => {
    const actor = actorOf(req);
    return act(req.params.id, async (tx, loaded) => {
      const t = transition(loaded, 'reject');
      const approval = await pendingApproval(tx, loaded.row.id, 'plan');
      if (approval) await decideApproval(tx, approval.id, { status: 'rejected', decision: 'reject', by: actor, reason: req.body.reason });
      await updateRollout(tx, loaded.row.id, { status: t.to }, { finished: true });
      await tx.query(`UPDATE rollout_tasks SET state = 'skipped', state_since = now() WHERE rollout_id = $1 AND state = 'pending'`, [loaded.row.id]);
      await appendEvents(tx, [{ kind: t.event, actor, rolloutId: loaded.row.id, data: { reason: req.body.reason } }]);
    });
  });

  const simple = (verb: 'pause' | 'resume' | 'abort' | 'rollback', summary: string) =>
    app.post(`/api/v1/rollouts/:id/${verb}`, { schema: { tags, params, summary } }, async (req) => {
      const actor = actorOf(req);
      return act(req.params.id, async (tx, loaded) => {
        const t = transition(loaded, verb);
        await updateRollout(tx, loaded.row.id, { status: t.to }, { finished: t.to === 'aborted' });
        if (t.to === 'aborted') {
          await tx.query(`UPDATE rollout_tasks SET state = 'skipped', state_since = now() WHERE rollout_id = $1 AND state = 'pending'`, [loaded.row.id]);
          const approval = await pendingApproval(tx, loaded.row.id, 'plan');
          if (approval) await decideApproval(tx, approval.id, { status: 'cancelled', decision: 'abort', by: actor });
        }
        await appendEvents(tx, [{ kind: t.event, actor, rolloutId: loaded.row.id, data: { from: loaded.row.status } }]);
      });
    });
  simple('pause', 'Start no new node; nodes in flight finish');
  simple('resume', 'Continue a paused rollout');
  simple('abort', 'Finish nodes in flight safely, start nothing new');
  simple('rollback', 'Return every completed node to its previous version, newest batch first');

  app.post('/api/v1/rollouts/:id/decide', { config: { role: 'approver' }, schema: { tags, params, body: DecideBody, summary: 'Answer the circuit breaker: continue, rollback or abort' } }, async (req) => {
    const actor = actorOf(req);
    return act(req.params.id, async (tx, loaded) => {
      const t = transition(loaded, 'decide', req.body.decision);
      const approval = await pendingApproval(tx, loaded.row.id, 'continuation');
      if (approval) await decideApproval(tx, approval.id, { status: 'decided', decision: req.body.decision, by: actor });
      const [clock] = await tx.query<{ now: Date }>('SELECT now() AS now');
      await updateRollout(tx, loaded.row.id, { status: t.to, ...(t.resetBreaker ? { breakerResetAt: new Date((clock as { now: Date }).now) } : {}) });
      await appendEvents(tx, [{ kind: t.event, actor, rolloutId: loaded.row.id, data: { decision: req.body.decision } }]);
    });
  });
}
