// The CPU part of a dry run, from plain data to plain data: the plan worker runs it (plan-worker.ts),
// off the operator's event loop. No I/O here: planFromStore loads the facts, this decides.
import type { CompatRule } from '../domain/rollout/compat.js';
import { planRollout, type PlanDeployment, type RolloutPlan } from '../domain/rollout/plan.js';
import { type AppliedPolicy, type Policy, strengthenSpec } from '../domain/rollout/policy.js';
import { type InstanceFacts, type PreflightReport, runPreflight } from '../domain/rollout/preflight.js';
import type { RolloutSpec, SpecIssue } from '../domain/rollout/spec.js';
import type { FleetNode } from '../domain/types.js';
import type { PlanSnapshotText } from '../store/plan-snapshot.js';
import { type InstanceRow, InstanceTable } from './plan-fleet-cache.js';

/** Everything a dry run decides from, as structured-clone-able data. */
export interface PlanFacts {
  /** The spec as given, already parsed and valid. */
  spec: RolloutSpec;
  overrides: readonly string[];
  operatorVersion: string;
  /** Versions of every live operator replica (this one included): what `operator` rules are checked against. */
  operatorVersions: string[];
  /** The newest migration applied to the database: compat rules name it as component `schema`, version `N.0.0`. */
  schemaVersion: number;
  snapshot: PlanSnapshotText;
  artifact: { lifecycle: string; signed: boolean; disruptive: boolean } | undefined;
  historyNodeSeconds: number | undefined;
  policies: Policy[];
  /** Lifecycle of every published version of the target component. */
  published: [version: string, lifecycle: string][];
  activeRolloutNodes: { node_id: string; rollout_id: string; name: string }[];
  compatRules: CompatRule[];
  quarantine: { rolloutId: string | null; reason: string; at: string; by: string } | undefined;
  /** Several targets: every target after the first, with its artifact (undefined: not published). */
  others?: { component: string; version: string; artifact: { lifecycle: string; signed: boolean; disruptive: boolean } | undefined }[];
}

export type PlanOutcome =
  | {
      ok: true;
      spec: RolloutSpec;
      policies: AppliedPolicy[];
      plan: RolloutPlan;
      preflight: PreflightReport;
      disruptive: boolean;
      fromVersions: Map<string, string | undefined>;
      /** Several targets: each target node's versions of the other target components now (null: none). */
      otherFromVersions?: Map<string, Record<string, string | null>>;
    }
  | { ok: false; issues: SpecIssue[] };

type NodeRow = [string, string, string, FleetNode['role'], Record<string, string>, FleetNode['status'], boolean, number, number | null, string | null, Record<string, string> | null];
type DeploymentRow = [string, string, number, number, PlanDeployment['nodeSelector']];

/**
 * The fleet as the plan reads it. Instances share the id strings of their node and deployment
 * rows (a map lookup by the same string is a pointer compare) and carry only the fields the
 * plan and preflight read: at 200,000 instances that halves what the plan costs. `table` is the
 * plan worker's kept copy of the instances (plan-fleet-cache.ts), the snapshot's rows already
 * applied; without it the snapshot's rows are every instance.
 */
export function fleetFromSnapshot(
  snapshot: PlanSnapshotText,
  table: InstanceTable = new InstanceTable(JSON.parse(snapshot.instances.rows) as InstanceRow[], snapshot.instances.cursor),
): {
  nodes: FleetNode[];
  deployments: PlanDeployment[];
  instances: readonly InstanceFacts[];
  versionOf: Map<string, string | undefined>;
  /** Several targets: each node's versions of the other target components. */
  othersOf: Map<string, Record<string, string>>;
} {
  const versionOf = new Map<string, string | undefined>();
  const othersOf = new Map<string, Record<string, string>>();
  const nodes = (JSON.parse(snapshot.nodes) as NodeRow[]).map(([given, hostname, region, role, labels, status, cordoned, maxInstances, heartbeat, version, others]): FleetNode => {
    const id = table.intern(given);
    versionOf.set(id, version ?? undefined);
    if (others) othersOf.set(id, others);
    return { id, hostname, region, role, labels, status, cordoned, maxInstances, lastHeartbeatAt: heartbeat === null ? null : new Date(heartbeat) };
  });
  const deployments = (JSON.parse(snapshot.deployments) as DeploymentRow[]).map(
    ([id, name, replicas, minAvailable, nodeSelector]): PlanDeployment => ({ id: table.intern(id), name, replicas, minAvailable, nodeSelector }),
  );
  return { nodes, deployments, instances: table.factsAsOf(snapshot.instances.now), versionOf, othersOf };
}

/** Plan, strengthen the spec by the policies that cover it, and run every preflight check. */
export function computePlan(facts: PlanFacts, table?: InstanceTable): PlanOutcome {
  const given = facts.spec;
  const component = given.target.component;
  const { nodes, deployments, instances, versionOf, othersOf } = fleetFromSnapshot(facts.snapshot, table);
  const others = facts.others ?? [];
  // One drain for every target: it is disruptive when any of them is.
  const disruptive = (facts.artifact?.disruptive ?? false) || others.some((o) => o.artifact?.disruptive === true);
  const currentVersion = (node: { id: string }) => versionOf.get(node.id);
  const atTarget = (node: { id: string }) => currentVersion(node) === given.target.version && others.every((o) => othersOf.get(node.id)?.[o.component] === o.version);
  const plan = planRollout({
    spec: given,
    nodes,
    instances,
    deployments,
    currentVersion,
    ...(others.length > 0 ? { atTarget } : {}),
    disruptive,
    ...(facts.historyNodeSeconds === undefined ? {} : { historyNodeSeconds: facts.historyNodeSeconds }),
  });

  // Policies only add approval and window rules, which the plan does not read: plan first, then
  // strengthen the spec for the nodes the selector picked (targets and already-done ones alike).
  const selected = new Set([...plan.batches.flatMap((b) => b.nodes), ...plan.skipped].map((n) => n.id));
  const strengthened = strengthenSpec(given, facts.policies, { component, nodes: nodes.filter((n) => selected.has(n.id)) });
  if (!strengthened.ok) return strengthened;
  const spec = strengthened.spec;
  const targets = plan.batches.flatMap((b) => b.nodes);
  const fromVersions = new Map(targets.map((n) => [n.id, currentVersion(n)]));
  const otherFromVersions =
    others.length > 0 ? new Map(targets.map((n) => [n.id, Object.fromEntries(others.map((o) => [o.component, othersOf.get(n.id)?.[o.component] ?? null]))])) : undefined;
  const published = new Map(facts.published);
  const rollbackArtifacts = new Map([...new Set([...fromVersions.values()].filter((v): v is string => v !== undefined))].map((v) => [v, published.get(v)]));
  const running = new Map<string, string[]>([
    ['operator', facts.operatorVersions],
    ['schema', [`${facts.schemaVersion}.0.0`]],
  ]);
  for (const { component: name, version } of facts.snapshot.running) {
    const list = running.get(name) ?? [];
    if (!list.includes(version)) list.push(version);
    running.set(name, list);
  }
  const preflight = runPreflight({
    spec,
    plan,
    nodes,
    instances,
    deployments,
    artifact: facts.artifact && { lifecycle: facts.artifact.lifecycle, signed: facts.artifact.signed },
    rollbackArtifacts,
    fromVersions,
    activeRolloutNodes: facts.activeRolloutNodes,
    compatRules: facts.compatRules,
    running,
    overrides: facts.overrides,
    quarantine: facts.quarantine,
    others: others.map((o) => ({ component: o.component, version: o.version, artifact: o.artifact && { lifecycle: o.artifact.lifecycle, signed: o.artifact.signed } })),
  });
  return { ok: true, spec, policies: strengthened.applied, plan, preflight, disruptive, fromVersions, ...(otherFromVersions ? { otherFromVersions } : {}) };
}
