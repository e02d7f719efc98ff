import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Rollout, RolloutStatus, RolloutTask } from '../../domain/rollout/model.js';
import { rollbackRefusal } from '../../domain/rollout/schema-steps.js';
import { isBlueGreen } from '../../domain/rollout/blue-green.js';
import { rollbackNeeds, unavailableRollbackVersions } from '../../domain/rollout/rollback-needs.js';
import { type BreakerDecision, type HumanAction, humanTransition } from '../../domain/rollout/human-actions.js';
import { applySpecEdits, type RolloutSpec, rolloutTargets } from '../../domain/rollout/spec.js';
import { decideApproval, pendingApproval } from '../../store/approvals.js';
import { lockVersionsForShare } from '../../store/artifacts.js';
import type { Db } from '../../store/db.js';
import { appendEvents } from '../../store/events.js';
import { replaceTasks, skipPendingTasks, updateRollout } from '../../store/rollouts.js';
import type { OperatorContext } from '../context.js';
import { actorOf } from '../request-actor.js';
import { rolloutErrors } from '../rollout-errors.js';
import { planFromStore, tasksFor } from '../rollout-planning.js';
import { quarantineBreakerRollback } from '../breaker-quarantine.js';
import { setRolloutPolicies } from '../../store/policies.js';
import { openQuarantine } from '../../store/quarantine.js';
import { policyErrors } from '../policy-errors.js';
import { RolloutDetailView } from '../response-views.js';
import { IdParam } from '../schemas.js';
import { detailOf, mustLoadRollout } from './rollouts.js';

const params = IdParam.describe('rollout id or name');
const ApproveBody = z.object({ set: z.array(z.string().min(3)).max(50).optional().describe('edits path=value, re-planned before the approval counts') }).strict().nullable().optional();
const RejectBody = z.object({ reason: z.string().min(1).max(2000) }).strict();
// `region`: one region or several; absent, every region (the whole rollout) rolls back.
const RollbackBody = z
  .object({ region: z.union([z.string().min(1).max(63), z.array(z.string().min(1).max(63)).min(1).max(1000)]).optional() })
  .strict()
  // A POST without a body (every client before regional rollback) arrives as null.
  .nullish();
const regionsOf = (region: string | string[] | undefined): string[] | null => (region === undefined ? null : [...new Set([region].flat())].sort());

const DecideBody = z
  .object({ decision: z.enum(['continue', 'rollback', 'abort', 'continue_anyway', 'rollback_completed_batches']) })
  .strict();

export async function rolloutActionRoutes(base: FastifyInstance, ctx: OperatorContext): Promise<void> {
  const app = base.withTypeProvider<ZodTypeProvider>();
  const tags = ['rollouts'];
  const response = { 200: RolloutDetailView };

  /** Runs a status change on the locked rollout, then wakes the reconciler and returns the detail. */
  const act = async (idOrName: string, work: (tx: Db, loaded: Awaited<ReturnType<typeof mustLoadRollout>>) => Promise<void>) => {
    const id = await ctx.db.transaction(async (tx) => {
      const loaded = await mustLoadRollout(ctx, idOrName, tx, true);
      await work(tx, loaded);
      return loaded.row.id;
    });
    ctx.rollouts.wake(id);
    return detailOf(ctx, id);
  };
  /** The domain's answer for this action from the rollout's status, or 409 naming the statuses it needs. */
  const transition = (loaded: { row: { id: string; status: RolloutStatus } }, action: HumanAction, decision?: BreakerDecision) => {
    const t = humanTransition(action, loaded.row.status, decision);
    if (!t.ok) throw rolloutErrors.wrongStatus(loaded.row.id, loaded.row.status, action, t.allowed);
    return t;
  };

  /**
   * A rollback installs each node's previous version: refuse it at once, changing nothing, when
   * one of them is archived or was never published (it would fail every node after the health
   * timeout). The versions stay locked FOR SHARE until the status change commits.
   */
  const assertRollbackPossible = async (tx: Db, loaded: { row: { id: string; component: string }; rollout: Rollout; tasks: RolloutTask[] }) => {
    // After the contract migrations the previous builds cannot serve the schema (DESIGN.md §11).
    const refusal = rollbackRefusal(loaded.rollout);
    if (refusal) throw rolloutErrors.rollbackAfterContract(loaded.row.id, refusal);
    const needs = rollbackNeeds(loaded.tasks);
    const lifecycles = await lockVersionsForShare(tx, loaded.row.component, needs.map((n) => n.version));
    const gone = unavailableRollbackVersions(needs, (v) => lifecycles.get(v));
    if (gone.length > 0) throw rolloutErrors.rollbackVersionUnavailable(loaded.row.id, gone);
  };

  app.post('/api/v1/rollouts/:id/approve', { config: { role: 'approver' }, schema: { tags, operationId: 'approveRollout', params, body: ApproveBody, summary: 'Approve the plan, optionally with edits', response }  }, async (req) => {
    const actor = actorOf(req);
    const edits = req.body?.set ?? [];
    return act(req.params.id, async (tx, loaded) => {
      const t = transition(loaded, 'approve');
      const { row } = loaded;
      // A region gate (gateBetweenRegions): any approver lets it go on into the next region.
      const gate = await pendingApproval(tx, row.id, 'gate');
      if (gate) {
        if (edits.length > 0) throw rolloutErrors.badEdit('edits apply to the plan before it starts, not to a region gate; approve the gate without `set`');
        await decideApproval(tx, gate.id, { status: 'approved', decision: 'approve', by: actor, edits: [] });
        await updateRollout(tx, row.id, { status: 'running', gatePassedBatch: row.current_batch + 1 });
        await appendEvents(tx, [
          { kind: t.event, actor, rolloutId: row.id, data: { edits: [] } },
          { kind: 'rollout.resumed', actor, rolloutId: row.id, data: { from: row.status } },
        ]);
        return;
      }
      if (row.spec.approval.distinctApprover) {
        if (!req.principal) throw rolloutErrors.approverUnknown();
        if (row.created_by === actor) throw rolloutErrors.sameApprover(actor);
      }
      // Quarantined since it was created (another rollout of the version tripped its breaker).
      const quarantined = await openQuarantine(tx, row.component, row.version);
      if (quarantined) throw policyErrors.quarantined(row.component, row.version, quarantined.rollout_id);
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
        // Field by field: the stored spec comes back from jsonb with its keys in another order.
        const key = (spec: RolloutSpec) => rolloutTargets(spec).map((t) => `${t.component}@${t.version}`).join(',');
        const same = (a: RolloutSpec, b: RolloutSpec) => key(a) === key(b);
        if (spec.target.component !== row.component || spec.target.version !== row.version || !same(spec, loaded.rollout.spec)) throw rolloutErrors.badEdit('edits may not change the target');
        if (preflight.blocked) throw rolloutErrors.preflightFailed(preflight.checks);
        // The edited spec is strengthened by the policies again (planFromStore), so an edit cannot
        // drop what a policy requires; a new selector may bring a policy that wants a distinct approver.
        if (spec.approval.distinctApprover) {
          if (!req.principal) throw rolloutErrors.approverUnknown();
          if (row.created_by === actor) throw rolloutErrors.sameApprover(actor);
        }
        await setRolloutPolicies(tx, row.id, result.planned.policies);
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

  app.post('/api/v1/rollouts/:id/reject', { config: { role: 'approver' }, schema: { tags, operationId: 'rejectRollout', params, body: RejectBody, summary: 'Reject the plan (or stop at a region gate), with a reason', response } }, async (req) => {
    const actor = actorOf(req);
    return act(req.params.id, async (tx, loaded) => {
      const t = transition(loaded, 'reject');
      // Rejected at a region gate: the rollout stops there, the regions done stay done.
      const gate = await pendingApproval(tx, loaded.row.id, 'gate');
      if (gate) {
        await decideApproval(tx, gate.id, { status: 'rejected', decision: 'reject', by: actor, reason: req.body.reason });
        await updateRollout(tx, loaded.row.id, { status: 'aborted' }, { finished: true });
        await skipPendingTasks(tx, loaded.row.id, `stopped at a region gate by ${actor}: ${req.body.reason}`);
        await appendEvents(tx, [
          { kind: t.event, actor, rolloutId: loaded.row.id, data: { reason: req.body.reason } },
          { kind: 'rollout.aborted', actor, rolloutId: loaded.row.id, data: { from: loaded.row.status } },
        ]);
        return;
      }
      const approval = await pendingApproval(tx, loaded.row.id, 'plan');
      if (approval) await decideApproval(tx, approval.id, { status: 'rejected', decision: 'reject', by: actor, reason: req.body.reason });
      await updateRollout(tx, loaded.row.id, { status: t.to }, { finished: true });
      await skipPendingTasks(tx, loaded.row.id, `rollout rejected by ${actor}: ${req.body.reason}`);
      await appendEvents(tx, [{ kind: t.event, actor, rolloutId: loaded.row.id, data: { reason: req.body.reason } }]);
    });
  });

  const simple = (verb: 'pause' | 'resume' | 'abort' | 'rollback', summary: string) =>
    app.post(`/api/v1/rollouts/:id/${verb}`, { schema: { tags, operationId: `${verb}Rollout` as const, params, summary, response, ...(verb === 'rollback' ? { body: RollbackBody } : {}) } }, async (req) => {
      const actor = actorOf(req);
      const regions = verb === 'rollback' ? regionsOf((req.body as z.infer<typeof RollbackBody>)?.region ?? undefined) : null;
      return act(req.params.id, async (tx, loaded) => {
        const t = transition(loaded, verb);
        if (regions !== null) {
          // "Roll back one region": only regions this rollout has nodes in.
          const known = new Set(loaded.tasks.map((task) => task.region));
          const unknown = regions.filter((r) => !known.has(r));
          if (unknown.length > 0) throw rolloutErrors.rollbackRegionUnknown(loaded.row.id, unknown, [...known].sort());
          // Blue-green serves one side for every region at once: until the old replicas are retired, it moves back whole.
          if (isBlueGreen(loaded.rollout) && loaded.rollout.previousRetiredAt === null) throw rolloutErrors.rollbackRegionBlueGreen(loaded.row.id);
        }
        if (t.to === 'rolling_back') await assertRollbackPossible(tx, { ...loaded, tasks: regions === null ? loaded.tasks : loaded.tasks.filter((task) => regions.includes(task.region)) });
        // Rolling back while the breaker waits for a decision answers it: quarantine as decide does.
        if (t.to === 'rolling_back' && loaded.row.status === 'awaiting_decision') {
          await quarantineBreakerRollback(tx, loaded.row, actor, (await pendingApproval(tx, loaded.row.id, 'continuation'))?.reason ?? null);
        }
        await updateRollout(tx, loaded.row.id, { status: t.to, ...(verb === 'rollback' ? { rollbackRegions: regions } : {}) }, { finished: t.to === 'aborted' });
        if (t.to === 'aborted') {
          await skipPendingTasks(tx, loaded.row.id, `rollout aborted by ${actor}`);
          for (const kind of ['plan', 'gate'] as const) {
            const approval = await pendingApproval(tx, loaded.row.id, kind);
            if (approval) await decideApproval(tx, approval.id, { status: 'cancelled', decision: 'abort', by: actor });
          }
        }
        await appendEvents(tx, [{ kind: t.event, actor, rolloutId: loaded.row.id, data: { from: loaded.row.status, ...(regions === null ? {} : { regions }) } }]);
      });
    });
  simple('pause', 'Start no new node; nodes in flight finish');
  simple('resume', 'Continue a paused rollout');
  simple('abort', 'Finish nodes in flight safely, start nothing new');
  simple('rollback', 'Return every completed node (or only those of `region`) to its previous version, newest batch first');

  app.post('/api/v1/rollouts/:id/decide', { config: { role: 'approver' }, schema: { tags, operationId: 'decideRollout', params, body: DecideBody, summary: 'Answer the circuit breaker: continue, rollback or abort', response } }, async (req) => {
    const actor = actorOf(req);
    return act(req.params.id, async (tx, loaded) => {
      const t = transition(loaded, 'decide', req.body.decision);
      if (t.to === 'rolling_back') await assertRollbackPossible(tx, loaded);
      const approval = await pendingApproval(tx, loaded.row.id, 'continuation');
      if (approval) await decideApproval(tx, approval.id, { status: 'decided', decision: req.body.decision, by: actor });
      if (t.to === 'rolling_back') await quarantineBreakerRollback(tx, loaded.row, actor, approval?.reason ?? null);
      const [clock] = await tx.query<{ now: Date }>('SELECT now() AS now');
      await updateRollout(tx, loaded.row.id, { status: t.to, ...(t.resetBreaker ? { breakerResetAt: new Date((clock as { now: Date }).now) } : {}) });
      await appendEvents(tx, [{ kind: t.event, actor, rolloutId: loaded.row.id, data: { decision: req.body.decision } }]);
    });
  });
}
