import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ROLLOUT_STATUSES } from '../../domain/rollout/model.js';
import type { AppliedPolicy } from '../../domain/rollout/policy.js';
import { listApprovals, insertApproval } from '../../store/approvals.js';
import { appendEvents, type NewEvent } from '../../store/events.js';
import { insertRollout, listRolloutRows, loadRollout, findRolloutId } from '../../store/rollouts.js';
import { setRolloutPolicies } from '../../store/policies.js';
import type { OperatorContext } from '../context.js';
import { actorOf } from '../request-actor.js';
import { rolloutErrors } from '../rollout-errors.js';
import { compressedStream } from '../compression.js';
import { planFromStore, renderPlanFromStore, tasksFor } from '../rollout-planning.js';
import { rolloutDetail, rolloutSummary } from '../rollout-view.js';
import { listHookRuns } from '../../store/hook-runs.js';
import { ApprovalView, RolloutDetailView, RolloutPlanView, RolloutSummaryView } from '../response-views.js';
import { IdParam } from '../schemas.js';

export const OverrideQuery = z.object({
  override: z
    .union([z.string(), z.array(z.string())])
    .optional()
    .transform((v) => (v === undefined ? [] : (Array.isArray(v) ? v : [v]).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean)))
    .describe('preflight check ids to override (repeat or comma-separate)'),
});
// The body is the rollout spec itself (DESIGN.md §5); it is validated by parseRolloutSpec so
// every error names its field the same way for the API, the CLI and approver edits.
const SpecBody = z.record(z.string(), z.unknown()).describe('the rollout spec (DESIGN.md §5)');

export async function mustLoadRollout(ctx: OperatorContext, idOrName: string, db = ctx.db, lock = false) {
  const id = await findRolloutId(db, idOrName);
  const loaded = id ? await loadRollout(db, id, { lock }) : undefined;
  if (!loaded) throw rolloutErrors.notFound(idOrName);
  return loaded;
}

/** The rollout detail, with the policies that strengthened its spec (column `policies`, 0005). */
export async function detailOf(ctx: OperatorContext, idOrName: string) {
  const loaded = await mustLoadRollout(ctx, idOrName);
  const policies = (loaded.row as { policies?: AppliedPolicy[] }).policies ?? [];
  const detail = rolloutDetail(loaded.row, loaded.tasks, await listApprovals(ctx.db, { rolloutId: loaded.row.id }), new Date());
  // Every hook run with its outcome and output tail: all of them, and each task's own.
  const hooks = await listHookRuns(ctx.db, loaded.row.id);
  const tasks = detail.tasks.map((t) => ({ ...t, hooks: hooks.filter((h) => h.node_id === t.node_id) }));
  return { ...detail, tasks, hooks, policies };
}

export async function rolloutRoutes(base: FastifyInstance, ctx: OperatorContext): Promise<void> {
  const app = base.withTypeProvider<ZodTypeProvider>();
  const tags = ['rollouts'];

  app.post('/api/v1/rollouts/plan', { config: { role: 'viewer' }, schema: { tags, operationId: 'planRollout', body: SpecBody, querystring: OverrideQuery, summary: 'Dry run: batches, moves, duration, preflight', response: { 200: RolloutPlanView } } }, async (req, reply) => {
    // Planned and rendered off this thread: `{spec, policies, plan, preflight}` as JSON bytes.
    const result = await renderPlanFromStore(ctx.db, req.body, req.query.override, ctx.version);
    if (!result.ok) throw rolloutErrors.specInvalid(result.issues);
    ctx.metrics.planInstanceReads.inc({ read: result.read });
    // Bytes go out as they come (fastify serializes objects only): the schema documents what they hold.
    const body = compressedStream(req, reply, result.body);
    return reply.type('application/json; charset=utf-8').send(body as unknown as z.infer<typeof RolloutPlanView>);
  });

  app.post('/api/v1/rollouts', { schema: { tags, operationId: 'createRollout', body: SpecBody, querystring: OverrideQuery, summary: 'Create a rollout (after preflight)', response: { 201: RolloutDetailView } } }, async (req, reply) => {
    const overrides = req.query.override;
    const id = ctx.newId();
    const actor = actorOf(req);
    const rolloutId = await ctx.db.transaction(async (tx) => {
      // Serialize creations so two rollouts cannot both pass the one-rollout-per-node check.
      await tx.query('SELECT pg_advisory_xact_lock($1)', [0x64726f6c]);
      const result = await planFromStore(tx, req.body, overrides, ctx.version);
      if (!result.ok) throw rolloutErrors.specInvalid(result.issues);
      const { spec, policies, plan, preflight, disruptive } = result.planned;
      if (preflight.blocked) throw rolloutErrors.preflightFailed(preflight.checks);
      const taken = await tx.query(`SELECT 1 FROM rollouts WHERE name = $1 AND finished_at IS NULL AND status NOT IN ('rejected')`, [spec.name]);
      if (taken.length > 0) throw rolloutErrors.nameTaken(spec.name);
      const status = spec.approval.required ? 'awaiting_approval' : 'running';
      const [clock] = await tx.query<{ now: Date }>('SELECT now() AS now');
      await insertRollout(
        tx,
        { id, name: spec.name, specInput: req.body, spec, status, drainMode: plan.drain_mode, disruptive, batchCount: plan.batches.length, plan, preflight, overrides, createdBy: actor },
        tasksFor(id, result.planned, new Date((clock as { now: Date }).now)),
      );
      if (policies.length > 0) await setRolloutPolicies(tx, id, policies);
      const policyNames = policies.map((p) => p.name);
      const events: NewEvent[] = [
        {
          kind: 'rollout.created',
          actor,
          rolloutId: id,
          data: { name: spec.name, component: spec.target.component, version: spec.target.version, batches: plan.batches.length, policies: policyNames },
        },
        ...preflight.checks
          .filter((c) => c.overridden)
          .map((c) => ({ kind: 'rollout.preflight_overridden', actor, rolloutId: id, data: { check: c.id, message: c.message } })),
      ];
      if (spec.approval.required) {
        await insertApproval(tx, { id: ctx.newId(), rolloutId: id, kind: 'plan', options: ['approve', 'reject'], reason: null, requestedBy: actor });
        events.push({ kind: 'rollout.approval_requested', actor, rolloutId: id, data: { kind: 'plan', distinct_approver: spec.approval.distinctApprover, policies: policyNames } });
      } else {
        events.push({ kind: 'rollout.started', actor, rolloutId: id, data: {} });
      }
      await appendEvents(tx, events);
      return id;
    });
    ctx.rollouts.wake(id);
    return reply.code(201).send(await detailOf(ctx, rolloutId));
  });

  app.get(
    '/api/v1/rollouts',
    { schema: { tags, operationId: 'listRollouts', querystring: z.object({ status: z.enum(ROLLOUT_STATUSES).optional() }), summary: 'Rollouts, newest first', response: { 200: z.array(RolloutSummaryView) } } },
    async (req) => (await listRolloutRows(ctx.db, req.query)).map((row) => rolloutSummary(row)),
  );

  app.get('/api/v1/rollouts/:id', { schema: { tags, operationId: 'getRollout', params: IdParam.describe('rollout id or name'), summary: 'One rollout with batches, tasks, plan, preflight, approvals', response: { 200: RolloutDetailView } } }, async (req) => {
    return detailOf(ctx, req.params.id);
  });

  app.get(
    '/api/v1/approvals',
    {
      schema: {
        tags: ['approvals'],
        operationId: 'listApprovals',
        summary: 'Approvals asked for and given: plans, region gates, circuit-breaker decisions',
        querystring: z.object({ status: z.enum(['pending', 'approved', 'rejected', 'decided', 'cancelled']).optional(), rollout_id: z.string().optional() }),
        response: { 200: z.array(ApprovalView) },
      },
    },
    async (req) => listApprovals(ctx.db, { status: req.query.status, rolloutId: req.query.rollout_id }),
  );
}
