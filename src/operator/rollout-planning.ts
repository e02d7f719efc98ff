import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { ACTIVE_ROLLOUT_STATUSES, type RolloutTask } from '../domain/rollout/model.js';
import { parseRolloutSpec, type RolloutSpec, rolloutTargets, type SpecIssue } from '../domain/rollout/spec.js';
import { findArtifactByVersion, listArtifacts } from '../store/artifacts.js';
import { listCompatRules } from '../store/compat.js';
import type { Db } from '../store/db.js';
import { appliedMigrations } from '../store/migrator.js';
import { listReplicas } from '../store/operator-replicas.js';
import { loadPlanSnapshot } from '../store/plan-snapshot.js';
import { REPLICA_STALE_AFTER_MS } from './replica-registry.js';
import { averageNodeSeconds } from '../store/rollout-history.js';
import { nodesInActiveRollouts } from '../store/rollouts.js';
import { listPolicies } from '../store/policies.js';
import { openQuarantine } from '../store/quarantine.js';
import { planInWorker, renderPlanInWorker } from './plan-client.js';
import type { PlanFacts, PlanOutcome } from './plan-compute.js';

/**
 * A planned rollout, as the plan worker answers it (plan-compute.ts PlanOutcome): the effective
 * spec (strengthened by every covering policy), the policies, plan, preflight, and each target
 * node's versions now (what a rollback returns to).
 */
export type PlannedRollout = Omit<Extract<PlanOutcome, { ok: true }>, 'ok'>;

/**
 * The dry run against the fleet as it is: validate the spec, plan batches and moves, run every
 * preflight check. Used by `plan`, by `create`, and again when an approver edits the spec.
 * The facts are read here (the fleet as compact JSON texts, plan-snapshot.ts); the deciding —
 * plan, policies, preflight — runs in the plan worker thread (plan-worker.ts), so a plan of
 * 10,000 nodes does not stop the operator's event loop (issue 9).
 */
export async function planFromStore(
  db: Db,
  specInput: unknown,
  overrides: readonly string[],
  operatorVersion: string,
  options: { ignoreRolloutId?: string } = {},
): Promise<{ ok: true; planned: PlannedRollout } | { ok: false; issues: SpecIssue[] }> {
  const parsed = parseRolloutSpec(specInput);
  if (!parsed.ok) return parsed;
  const outcome = await planInWorker(await loadPlanFacts(db, parsed.spec, overrides, operatorVersion, options));
  if (!outcome.ok) return outcome;
  const { ok: _ok, ...planned } = outcome;
  return { ok: true, planned };
}

/**
 * The dry run's response body (`{spec, policies, plan, preflight}` as a stream of JSON bytes),
 * planned and rendered in the plan worker: the operator's thread neither plans nor stringifies
 * (issue 9, goal 3 — at 200,000 moves the body alone is tens of MB), and sends the first chunks
 * while the worker renders the next.
 */
export async function renderPlanFromStore(
  db: Db,
  specInput: unknown,
  overrides: readonly string[],
  operatorVersion: string,
): Promise<{ ok: true; body: Readable; read: 'complete' | 'incremental' } | { ok: false; issues: SpecIssue[] }> {
  const parsed = parseRolloutSpec(specInput);
  if (!parsed.ok) return parsed;
  let fleet = fleets.get(db);
  if (!fleet) {
    fleet = { key: randomUUID(), cursor: undefined, completeAt: 0, kept: undefined };
    fleets.set(db, fleet);
  }
  // Only what changed since the worker's copy; with every id when instances were deleted since;
  // everything when that copy cannot take it. A complete read is never refused, so this ends.
  let since = Date.now() - fleet.completeAt >= COMPLETE_READ_EVERY_MS ? undefined : fleet.cursor;
  let withIds = false;
  for (;;) {
    // The worker's count rides along: fewer instances than it keeps and the ids come at once.
    const read = since === undefined ? {} : { since, withIds, ...(fleet.kept === undefined || since !== fleet.cursor ? {} : { kept: fleet.kept }) };
    const facts = await loadPlanFacts(db, parsed.spec, overrides, operatorVersion, read);
    const rendered = await renderPlanInWorker(facts, { key: fleet.key, base: since ?? null });
    if (rendered.ok === 'stale') {
      if (since === undefined) throw new Error('the plan worker refused a complete read of the instances');
      const { refusal } = rendered;
      if (refusal.need === 'ids' && !withIds) {
        since = refusal.cursor;
        withIds = true;
      } else {
        since = undefined;
        withIds = false;
      }
      continue;
    }
    fleet.cursor = facts.snapshot.instances.cursor;
    fleet.kept = rendered.ok ? rendered.kept : undefined;
    if (facts.snapshot.instances.complete) fleet.completeAt = Date.now();
    return rendered.ok ? { ...rendered, read: facts.snapshot.instances.complete ? 'complete' : 'incremental' } : rendered;
  }
}

/**
 * Per database: the key of the plan worker's kept instances (plan-fleet-cache.ts), the
 * snapshot they were last brought up to (where the next dry run's incremental read starts) and
 * how many there were then (fewer in the database: the read brings every id along at once).
 * Only the dry run reads incrementally: create and approve plan inside their own transaction,
 * from every row, as they always did (a transaction's own writes must never reach the cache).
 */
const fleets = new WeakMap<Db, { key: string; cursor: string | undefined; completeAt: number; kept: number | undefined }>();

/**
 * Every row is read again at least this often, whatever the cursor says: a bound on how long any
 * change the incremental read could miss stays missed (a write in a savepoint of a transaction
 * that was open across a dry run; drydock itself never writes in one). The fleet reconciler's
 * full resync runs as often.
 */
export const COMPLETE_READ_EVERY_MS = 5 * 60_000;

/** What a dry run decides from, read from the store in compact queries (plan-snapshot.ts). */
async function loadPlanFacts(
  db: Db,
  spec: RolloutSpec,
  overrides: readonly string[],
  operatorVersion: string,
  options: { ignoreRolloutId?: string; since?: string; withIds?: boolean; kept?: number },
): Promise<PlanFacts> {
  const component = spec.target.component;
  const otherTargets = rolloutTargets(spec).slice(1);
  // Independent reads, side by side: on a server engine each takes a session of the pool.
  const [snapshot, others, artifact, historyNodeSeconds, policies, quarantined, published, active, replicas, migrations, compatRules] = await Promise.all([
    loadPlanSnapshot(db, component, otherTargets.map((t) => t.component), options.since === undefined ? {} : { since: options.since, withIds: options.withIds ?? false, ...(options.kept === undefined ? {} : { kept: options.kept }) }),
    Promise.all(
      otherTargets.map(async (t) => {
        const found = await findArtifactByVersion(db, t.component, t.version);
        return { ...t, artifact: found && { lifecycle: found.lifecycle, signed: found.signature !== null, disruptive: found.disruptive || found.reboot } };
      }),
    ),
    findArtifactByVersion(db, component, spec.target.version),
    averageNodeSeconds(db, component),
    listPolicies(db).then((list) => list.map((p) => p.policy)),
    // Policies add approval and window rules only: the target version they are checked for is the given one.
    openQuarantine(db, component, spec.target.version),
    listArtifacts(db, { component }).then((list) => list.map((a): [string, string] => [a.version, a.lifecycle as string])),
    nodesInActiveRollouts(db, ACTIVE_ROLLOUT_STATUSES).then((list) => list.filter((a) => a.rollout_id !== options.ignoreRolloutId)),
    // The control plane is a fleet too (DESIGN.md §11): the matrix is checked against every live
    // replica's version and the database's schema, not only the replica that plans.
    listReplicas(db, REPLICA_STALE_AFTER_MS).then((list) => list.filter((r) => r.live)),
    appliedMigrations(db),
    listCompatRules(db),
  ]);
  return {
    spec,
    overrides,
    operatorVersion,
    operatorVersions: [...new Set([operatorVersion, ...replicas.map((r) => r.version)])],
    schemaVersion: migrations.reduce((max, m) => Math.max(max, m.version), 0),
    snapshot,
    // A component that reboots the node disrupts whatever runs there: its nodes are drained.
    artifact: artifact && { lifecycle: artifact.lifecycle, signed: artifact.signature !== null, disruptive: artifact.disruptive || artifact.reboot },
    historyNodeSeconds,
    policies,
    published,
    activeRolloutNodes: active,
    compatRules,
    quarantine: quarantined && { rolloutId: quarantined.rollout_id, reason: quarantined.reason, at: quarantined.quarantined_at, by: quarantined.quarantined_by },
    ...(others.length > 0 ? { others } : {}),
  };
}

/** The tasks of a planned rollout: one per target node, ids `${rolloutId}/${nodeId}`. */
export function tasksFor(rolloutId: string, planned: PlannedRollout, now: Date): RolloutTask[] {
  const base = { direction: 'forward' as const, stateSince: now, healthySince: null, finishedAt: null, lastError: null, cordonedByUs: false };
  return [
    ...planned.plan.batches.flatMap((b) =>
      b.nodes.map((n) => ({ ...base, id: `${rolloutId}/${n.id}`, nodeId: n.id, hostname: n.hostname, region: n.region, batch: b.index, state: 'pending' as const, fromVersion: planned.fromVersions.get(n.id) ?? null, ...(planned.otherFromVersions ? { fromVersions: planned.otherFromVersions.get(n.id) ?? null } : {}) })),
    ),
    ...planned.plan.skipped.map((n) => ({ ...base, id: `${rolloutId}/${n.id}`, nodeId: n.id, hostname: n.hostname, region: n.region, batch: -1, state: 'skipped' as const, fromVersion: null, lastError: `already runs ${rolloutTargets(planned.spec).map((t) => `${t.component} ${t.version}`).join(', ')}` })),
  ];
}
