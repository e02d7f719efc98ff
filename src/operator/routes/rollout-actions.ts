import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { RolloutStatus } from '../../domain/rollout/model.js';
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

const DECISIONS: Record<string, { status: RolloutStatus; event: string }> = {
  continue: { status: 'running', event: 'rollout.resumed' },
  continue_anyway: { status: 'running', event: 'rollout.resumed' },
  rollback: { status: 'rolling_back', event: 'rollout.rolling_back' },
  rollback_completed_batches: { status: 'rolling_back', event: 'rollout.rolling_back' },
  abort: { status: 'aborting', event: 'rollout.abort_requested' },
};

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
  const expect = (loaded: { row: { id: string; status: RolloutStatus } }, action: string, allowed: RolloutStatus[]) => {
    if (!allowed.includes(loaded.row.status)) throw rolloutErrors.wrongStatus(loaded.row.id, loaded.row.status, action, allowed);
  };

  app.post('/api/v1/rollouts/:id/approve', { config: { role: 'approver' }, schema: { tags, params, body: ApproveBody, summary: 'Approve the plan, optionally with edits' } }, async (req) => {
    const actor = actorOf(req);
    const edits = req.body?.set ?? [];
    return act(req.params.id, async (tx, loaded) => {
      expect(loaded, 'approve', ['awaiting_approval']);
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
      await updateRollout(tx, row.id, { status: 'running' });
      await appendEvents(tx, [
        { kind: 'rollout.approved', actor, rolloutId: row.id, data: { edits } },
        { kind: 'rollout.started', actor, rolloutId: row.id, data: {} },
      ]);
    });
  });

  app.post('/api/v1/rollouts/:id/reject', { config: { role: 'approver' }, schema: { tags, params, body: RejectBody } }, async (req) => {
    const actor = actorOf(req);
    return act(req.params.id, async (tx, loaded) => {
      expect(loaded, 'reject', ['awaiting_approval']);
      const approval = await pendingApproval(tx, loaded.row.id, 'plan');
      if (approval) await decideApproval(tx, approval.id, { status: 'rejected', decision: 'reject', by: actor, reason: req.body.reason });
      await updateRollout(tx, loaded.row.id, { status: 'rejected' }, { finished: true });
      await tx.query(`UPDATE rollout_tasks SET state = 'skipped', state_since = now() WHERE rollout_id = $1 AND state = 'pending'`, [loaded.row.id]);
      await appendEvents(tx, [{ kind: 'rollout.rejected', actor, rolloutId: loaded.row.id, data: { reason: req.body.reason } }]);
    });
  });

  const simple = (verb: string, allowed: RolloutStatus[], status: RolloutStatus, event: string, summary: string) =>
    app.post(`/api/v1/rollouts/:id/${verb}`, { schema: { tags, params, summary } }, async (req) => {
      const actor = actorOf(req);
      return act(req.params.id, async (tx, loaded) => {
        expect(loaded, verb, allowed);
        // Nothing has started yet: aborting an unapproved rollout ends it at once.
        const final = verb === 'abort' && loaded.row.status === 'awaiting_approval' ? 'aborted' : status;
        await updateRollout(tx, loaded.row.id, { status: final }, { finished: final === 'aborted' });
        if (final === 'aborted') {
          await tx.query(`UPDATE rollout_tasks SET state = 'skipped', state_since = now() WHERE rollout_id = $1 AND state = 'pending'`, [loaded.row.id]);
          const approval = await pendingApproval(tx, loaded.row.id, 'plan');
          if (approval) await decideApproval(tx, approval.id, { status: 'cancelled', decision: 'abort', by: actor });
        }
        await appendEvents(tx, [{ kind: final === 'aborted' ? 'rollout.aborted' : event, actor, rolloutId: loaded.row.id, data: { from: loaded.row.status } }]);
      });
    });
  simple('pause', ['running', 'waiting_for_window'], 'paused', 'rollout.paused', 'Start no new node; nodes in flight finish');
  simple('resume', ['paused'], 'running', 'rollout.resumed', 'Continue a paused rollout');
  simple('abort', ['awaiting_approval', 'running', 'paused', 'waiting_for_window', 'awaiting_decision'], 'aborting', 'rollout.abort_requested', 'Finish nodes in flight safely, start nothing new');
  simple('rollback', ['running', 'paused', 'waiting_for_window', 'awaiting_decision', 'completed', 'aborted'], 'rolling_back', 'rollout.rolling_back', 'Return every completed node to its previous version, newest batch first');

  app.post('/api/v1/rollouts/:id/decide', { config: { role: 'approver' }, schema: { tags, params, body: DecideBody, summary: 'Answer the circuit breaker: continue, rollback or abort' } }, async (req) => {
    const actor = actorOf(req);
    const choice = DECISIONS[req.body.decision] as { status: RolloutStatus; event: string };
    return act(req.params.id, async (tx, loaded) => {
      expect(loaded, 'decide', ['awaiting_decision']);
      const approval = await pendingApproval(tx, loaded.row.id, 'continuation');
      if (approval) await decideApproval(tx, approval.id, { status: 'decided', decision: req.body.decision, by: actor });
      const [clock] = await tx.query<{ now: Date }>('SELECT now() AS now');
      // "continue" restarts the consecutive-failure count from now.
      await updateRollout(tx, loaded.row.id, { status: choice.status, ...(choice.status === 'running' ? { breakerResetAt: new Date((clock as { now: Date }).now) } : {}) });
      await appendEvents(tx, [{ kind: choice.event, actor, rolloutId: loaded.row.id, data: { decision: req.body.decision } }]);
    });
  });
}
