import type { Instance } from '../domain/types.js';
import { ACTIVE_ROLLOUT_STATUSES, type RolloutTask } from '../domain/rollout/model.js';
import { planRollout, type RolloutPlan } from '../domain/rollout/plan.js';
import { type InstanceFacts, type PreflightReport, runPreflight } from '../domain/rollout/preflight.js';
import { type AppliedPolicy, strengthenSpec } from '../domain/rollout/policy.js';
import { parseRolloutSpec, type RolloutSpec, type SpecIssue } from '../domain/rollout/spec.js';
import { findArtifactByVersion, listArtifacts } from '../store/artifacts.js';
import { listCompatRules } from '../store/compat.js';
import type { Db } from '../store/db.js';
import { loadFleetSnapshot } from '../store/fleet-snapshot.js';
import { averageNodeSeconds } from '../store/rollout-history.js';
import { nodesInActiveRollouts } from '../store/rollouts.js';
import { listPolicies } from '../store/policies.js';
import { openQuarantine } from '../store/quarantine.js';

export interface PlannedRollout {
  /** The effective spec: the one given, strengthened by every covering policy (domain/rollout/policy.ts). */
  spec: RolloutSpec;
  /** The policies that covered this rollout and what each required. */
  policies: AppliedPolicy[];
  plan: RolloutPlan;
  preflight: PreflightReport;
  disruptive: boolean;
  /** The target component's version on each target node now (rollback returns there). */
  fromVersions: Map<string, string | undefined>;
}

/**
 * The dry run against the fleet as it is: validate the spec, plan batches and moves, run every
 * preflight check. Used by `plan`, by `create`, and again when an approver edits the spec.
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
  const given = parsed.spec;
  const component = given.target.component;
  const { snapshot } = await loadFleetSnapshot(db);
  const componentsRows = await db.query<{ id: string; components: Record<string, string> }>('SELECT id, components FROM nodes');
  const components = new Map(componentsRows.map((r) => [r.id, r.components]));
  const facts = await db.query<{ id: string; volume: InstanceFacts['volume']; activity: string | null }>('SELECT id, volume, activity FROM instances');
  const factById = new Map(facts.map((f) => [f.id, f]));
  const instances: InstanceFacts[] = snapshot.instances.map((i: Instance) => ({
    ...i,
    volume: factById.get(i.id)?.volume ?? null,
    activity: factById.get(i.id)?.activity ?? null,
  }));
  const artifact = await findArtifactByVersion(db, component, given.target.version);
  const disruptive = artifact?.disruptive ?? false;
  const currentVersion = (node: { id: string }) => components.get(node.id)?.[component];
  const historyNodeSeconds = await averageNodeSeconds(db, component);
  const plan = planRollout({
    spec: given,
    nodes: snapshot.nodes,
    instances,
    deployments: snapshot.deployments,
    currentVersion,
    disruptive,
    ...(historyNodeSeconds === undefined ? {} : { historyNodeSeconds }),
  });

  // Policies only add approval and window rules, which the plan does not read: plan first, then
  // strengthen the spec for the nodes the selector picked (targets and already-done ones alike).
  const selected = new Set([...plan.batches.flatMap((b) => b.nodes), ...plan.skipped].map((n) => n.id));
  const strengthened = strengthenSpec(
    given,
    (await listPolicies(db)).map((p) => p.policy),
    { component, nodes: snapshot.nodes.filter((n) => selected.has(n.id)) },
  );
  if (!strengthened.ok) return strengthened;
  const spec = strengthened.spec;
  const quarantined = await openQuarantine(db, component, spec.target.version);
  const targets = plan.batches.flatMap((b) => b.nodes);
  const fromVersions = new Map(targets.map((n) => [n.id, currentVersion(n)]));
  const published = new Map((await listArtifacts(db, { component })).map((a) => [a.version, a.lifecycle as string]));
  const rollbackArtifacts = new Map([...new Set([...fromVersions.values()].filter((v): v is string => v !== undefined))].map((v) => [v, published.get(v)]));
  const running = new Map<string, string[]>([['operator', [operatorVersion]]]);
  for (const c of components.values()) {
    for (const [name, version] of Object.entries(c)) {
      const list = running.get(name) ?? [];
      if (!list.includes(version)) list.push(version);
      running.set(name, list);
    }
  }
  const active = (await nodesInActiveRollouts(db, ACTIVE_ROLLOUT_STATUSES)).filter((a) => a.rollout_id !== options.ignoreRolloutId);
  const preflight = runPreflight({
    spec,
    plan,
    nodes: snapshot.nodes,
    instances,
    deployments: snapshot.deployments,
    artifact: artifact ? { lifecycle: artifact.lifecycle, signed: artifact.signature !== null } : undefined,
    rollbackArtifacts,
    fromVersions,
    activeRolloutNodes: active,
    compatRules: await listCompatRules(db),
    running,
    overrides,
    quarantine: quarantined && { rolloutId: quarantined.rollout_id, reason: quarantined.reason, at: quarantined.quarantined_at, by: quarantined.quarantined_by },
  });
  return { ok: true, planned: { spec, policies: strengthened.applied, plan, preflight, disruptive, fromVersions } };
}

/** The tasks of a planned rollout: one per target node, ids `${rolloutId}/${nodeId}`. */
export function tasksFor(rolloutId: string, planned: PlannedRollout, now: Date): RolloutTask[] {
  const base = { direction: 'forward' as const, stateSince: now, healthySince: null, finishedAt: null, lastError: null, cordonedByUs: false };
  return [
    ...planned.plan.batches.flatMap((b) =>
      b.nodes.map((n) => ({ ...base, id: `${rolloutId}/${n.id}`, nodeId: n.id, hostname: n.hostname, region: n.region, batch: b.index, state: 'pending' as const, fromVersion: planned.fromVersions.get(n.id) ?? null })),
    ),
    ...planned.plan.skipped.map((n) => ({ ...base, id: `${rolloutId}/${n.id}`, nodeId: n.id, hostname: n.hostname, region: n.region, batch: -1, state: 'skipped' as const, fromVersion: null, lastError: `already runs ${planned.spec.target.component} ${planned.spec.target.version}` })),
  ];
}
