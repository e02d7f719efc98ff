import type { FleetNode } from '../types.js';
import { type CompatRule, compatViolations } from './compat.js';
import { isOlderVersion } from './downgrade.js';
import type { PlanDeployment, PlanInstance, RolloutPlan } from './plan.js';
import type { RolloutSpec } from './spec.js';

export type CheckStatus = 'pass' | 'warn' | 'fail';

export interface PreflightCheck {
  id: string;
  status: CheckStatus;
  message: string;
  objects: string[];
  /** A failed check a human chose to override by name (recorded in events). */
  overridden?: boolean;
}

export interface PreflightReport {
  checks: PreflightCheck[];
  /** True when a failed check is not overridden: the rollout may not be created. */
  blocked: boolean;
}

/** Instance facts agents report (volume replica health, backup/snapshot activity). */
export interface InstanceFacts extends PlanInstance {
  volume: { replicas: number; healthy_replicas: number } | null;
  activity: string | null;
}

export interface PreflightInput {
  spec: RolloutSpec;
  plan: RolloutPlan;
  nodes: readonly FleetNode[];
  instances: readonly InstanceFacts[];
  deployments: readonly PlanDeployment[];
  artifact: { lifecycle: string; signed: boolean } | undefined;
  /** Lifecycle of the artifact of each version some target node would roll back to (undefined: none published). */
  rollbackArtifacts: ReadonlyMap<string, string | undefined>;
  /** Version of the target component on each target node now. */
  fromVersions: ReadonlyMap<string, string | undefined>;
  activeRolloutNodes: readonly { node_id: string; rollout_id: string; name: string }[];
  compatRules: readonly CompatRule[];
  /** Every version of every component running in the fleet (the operator's own included). */
  running: ReadonlyMap<string, readonly string[]>;
  overrides: readonly string[];
  /** The open quarantine of the target version, if the breaker rolled it back (check `quarantine`). */
  quarantine?: { rolloutId: string | null; reason: string; at: string; by: string } | undefined;
  /** Several targets: every target after the first, with its artifact (checked like the first's). */
  others?: readonly { component: string; version: string; artifact: { lifecycle: string; signed: boolean } | undefined }[];
}

/**
 * Nodes of the regions that will take the migrated instances which take none now (cordoned,
 * draining, down): not a target of this rollout, so nodes-ready does not see them, yet the
 * spare room of the region is smaller than its size suggests and someone may be working on them.
 */
function absorbingNodes(input: PreflightInput, targets: readonly FleetNode[], targetIds: ReadonlySet<string>): PreflightCheck {
  if (input.plan.drain_mode !== 'migrate') return check('absorbing-nodes', 'pass', `drain mode ${input.plan.drain_mode}: no region takes migrations`);
  const regions = new Set(targets.map((n) => n.region));
  const unavailable = input.nodes.filter((n) => regions.has(n.region) && !targetIds.has(n.id) && (n.status !== 'ready' || n.cordoned));
  if (unavailable.length === 0) return check('absorbing-nodes', 'pass', 'every other node of the target regions is ready to take migrations');
  const list = unavailable.map((n) => `${n.hostname} (${n.region}, ${n.cordoned && n.status === 'ready' ? 'cordoned' : n.status})`);
  return check('absorbing-nodes', 'warn', `${unavailable.length} node(s) of the regions that take the migrations take none now: ${list.join(', ')}`, unavailable.map((n) => n.hostname));
}

/** The share of a region's slots that must stay free to drain into (seed runbook: "keep ≥ 20 %"). */
export const MIN_SPARE_PERCENT = 20;

const check = (id: string, status: CheckStatus, message: string, objects: string[] = []): PreflightCheck => ({ id, status, message, objects });

/** Every preflight check of DESIGN.md §1.6 / issue 4, as data. Pure: all facts come in. */
export function runPreflight(input: PreflightInput): PreflightReport {
  const { spec, plan, nodes } = input;
  const targetIds = new Set<string>();
  for (const b of plan.batches) for (const n of b.nodes) targetIds.add(n.id);
  const targets = nodes.filter((n) => targetIds.has(n.id));
  const hostnames = new Map(nodes.map((n) => [n.id, n.hostname]));
  const hostname = (id: string) => hostnames.get(id) ?? id;
  const facts = instanceFacts(input, targetIds);
  const { lastReplica, active } = facts;
  const checks: PreflightCheck[] = [];

  // Another rollout on the same nodes would fight this one for them (fail); on other nodes it
  // only shares the fleet's spare room and the people watching (warn).
  const busy = input.activeRolloutNodes.filter((a) => targetIds.has(a.node_id));
  const elsewhere = input.activeRolloutNodes.filter((a) => !targetIds.has(a.node_id));
  const names = (list: readonly { name: string }[]) => [...new Set(list.map((b) => b.name))].join(', ');
  checks.push(
    busy.length > 0
      ? check('active-rollout', 'fail', `${busy.length} target node(s) are in another active rollout (${names(busy)})`, busy.map((b) => hostname(b.node_id)))
      : elsewhere.length > 0
        ? check('active-rollout', 'warn', `another active rollout (${names(elsewhere)}) is upgrading ${elsewhere.length} other node(s) meanwhile`, elsewhere.map((b) => hostname(b.node_id)))
        : check('active-rollout', 'pass', 'no other active rollout runs'),
  );

  const notReady = targets.filter((n) => n.status !== 'ready');
  checks.push(
    notReady.length > 0
      ? check('nodes-ready', 'fail', `${notReady.length} target node(s) are not ready: ${notReady.map((n) => `${n.hostname} ${n.status}`).join(', ')}`, notReady.map((n) => n.hostname))
      : targets.length === 0
        ? check('nodes-ready', 'warn', 'the selector matches no node that needs this version')
        : check('nodes-ready', 'pass', `${targets.length} target node(s) ready`),
  );

  checks.push(spareCapacity(input, targetIds, facts.usedIn));
  checks.push(absorbingNodes(input, targets, targetIds));

  checks.push(
    lastReplica.length > 0
      ? check('volume-last-replica', 'fail', `${lastReplica.length} instance(s) on target nodes are down to their last healthy volume replica`, lastReplica.map((i) => i.id))
      : check('volume-last-replica', 'pass', 'no volume is down to its last healthy replica'),
  );

  checks.push(
    active.length > 0
      ? check('backup-in-progress', 'fail', `backup or snapshot in progress on target nodes: ${active.map((i) => `${i.id} (${i.activity})`).join(', ')}`, active.map((i) => i.id))
      : check('backup-in-progress', 'pass', 'no backup or snapshot in progress on target nodes'),
  );

  const pinned = plan.pinned.map((p) => `${p.instance_id} on ${p.hostname}`);
  if (plan.drain_mode !== 'migrate' || pinned.length === 0) {
    checks.push(check('non-migratable', 'pass', plan.drain_mode === 'migrate' ? 'every instance on target nodes can migrate' : `drain mode ${plan.drain_mode}: nothing migrates`));
  } else if (spec.strategy.drain.nonMigratable === 'stop') {
    checks.push(check('non-migratable', 'warn', `${pinned.length} pinned instance(s) will be stopped while their node upgrades and restarted after (nonMigratable: stop)`, pinned));
  } else {
    checks.push(check('non-migratable', 'fail', `${pinned.length} pinned instance(s) cannot migrate and nonMigratable is block: ${pinned.join(', ')}`, pinned));
  }

  checks.push(artifactCheck([{ component: spec.target.component, version: spec.target.version, artifact: input.artifact }, ...(input.others ?? [])]));

  const missing: string[] = [];
  const unmanaged: string[] = [];
  for (const node of targets) {
    const from = input.fromVersions.get(node.id);
    if (from === undefined) unmanaged.push(node.hostname);
    else {
      const lifecycle = input.rollbackArtifacts.get(from);
      if (lifecycle === undefined || lifecycle === 'archived') missing.push(`${node.hostname} → ${from}`);
    }
  }
  if (missing.length > 0) checks.push(check('rollback-version', 'fail', `the version to roll back to is not available (archived or never published): ${missing.join(', ')}`, missing));
  else if (unmanaged.length > 0) checks.push(check('rollback-version', 'warn', `${unmanaged.length} node(s) report no ${spec.target.component} version: nothing to roll back to`, unmanaged));
  else checks.push(check('rollback-version', 'pass', 'every node can roll back to its current version'));

  checks.push(downgradeCheck(spec, targets, input.fromVersions));

  const violations = [spec.target, ...(input.others ?? [])].flatMap((t) => compatViolations(input.compatRules, t.component, t.version, input.running));
  checks.push(
    violations.length > 0
      ? check(
          'compatibility',
          'fail',
          violations.map((v) => `${v.rule.component} ${v.rule.range} requires ${v.rule.requires_component} ${v.rule.requires_range} (found ${v.offending.join(', ')})`).join('; '),
          violations.flatMap((v) => v.offending),
        )
      : check('compatibility', 'pass', 'the compatibility matrix allows this version'),
  );

  checks.push(disruptionBudget(input));
  checks.push(quarantineCheck(input));

  for (const c of checks) if (c.status === 'fail' && input.overrides.includes(c.id) && !NOT_OVERRIDABLE.has(c.id)) c.overridden = true;
  return { checks, blocked: checks.some((c) => c.status === 'fail' && !c.overridden) };
}

/** Every target's artifact must be published, signed and blessed or live. */
function artifactCheck(targets: readonly { component: string; version: string; artifact: { lifecycle: string; signed: boolean } | undefined }[]): PreflightCheck {
  const problems: string[] = [];
  const fine: string[] = [];
  for (const { component, version, artifact } of targets) {
    const target = `${component} ${version}`;
    if (!artifact) problems.push(`${target} is not published`);
    else if (!artifact.signed) problems.push(`${target} is unsigned`);
    else if (artifact.lifecycle === 'archived') problems.push(`${target} is archived`);
    else if (artifact.lifecycle !== 'blessed' && artifact.lifecycle !== 'live') problems.push(`${target} is ${artifact.lifecycle}; bless or promote it first`);
    else fine.push(`${target} is signed and ${artifact.lifecycle}`);
  }
  return problems.length > 0 ? check('artifact', 'fail', problems.join('; ')) : check('artifact', 'pass', fine.join('; '));
}

/**
 * A target older than a node's version: the agent installs a lower version only when the
 * desired state marks it explicit, so without `allowDowngrade` every such node would refuse
 * and fail its task. Versions that are not semver cannot be ordered and never count as older.
 */
function downgradeCheck(spec: RolloutSpec, targets: readonly FleetNode[], fromVersions: ReadonlyMap<string, string | undefined>): PreflightCheck {
  const lower = targets
    .map((n) => ({ hostname: n.hostname, from: fromVersions.get(n.id) }))
    .filter((n): n is { hostname: string; from: string } => n.from !== undefined && isOlderVersion(spec.target.version, n.from))
    .map((n) => `${n.hostname} ${n.from} → ${spec.target.version}`)
    .sort();
  if (lower.length === 0) return check('downgrade', 'pass', `no target node runs a version newer than ${spec.target.version}`);
  if (spec.allowDowngrade) {
    return check('downgrade', 'warn', `${lower.length} node(s) will be downgraded (allowDowngrade: true): ${lower.join(', ')}`, lower);
  }
  return check(
    'downgrade',
    'fail',
    `${lower.length} node(s) run a newer version than the target and would refuse it: ${lower.join(', ')}; set allowDowngrade: true in the spec to install it as an explicit downgrade`,
    lower,
  );
}

/**
 * Checks no `--override` can pass. `quarantine`: the version already failed on real nodes badly
 * enough that the breaker rolled it back; re-applying it takes a recorded decision by an approver
 * (`drydock quarantine clear`), not an operator's flag on the next create.
 */
export const NOT_OVERRIDABLE: ReadonlySet<string> = new Set(['quarantine']);

function quarantineCheck(input: PreflightInput): PreflightCheck {
  const target = `${input.spec.target.component} ${input.spec.target.version}`;
  const q = input.quarantine;
  if (!q) return check('quarantine', 'pass', `${target} is not quarantined`);
  const by = q.rolloutId ? `rollout ${q.rolloutId}` : q.by;
  return check(
    'quarantine',
    'fail',
    `${target} is quarantined since ${q.at}: ${by} rolled it back (${q.reason}); an approver must clear it (drydock quarantine clear ${input.spec.target.component} ${input.spec.target.version} --reason …), --override does not apply`,
    q.rolloutId ? [q.rolloutId] : [],
  );
}

/** What the checks need of the instances, gathered in one pass. */
interface Facts {
  /** Running instances on target nodes down to their last healthy volume replica. */
  lastReplica: InstanceFacts[];
  /** Running instances on target nodes with a backup or snapshot in progress. */
  active: InstanceFacts[];
  /** Slots in use per region, on nodes that are not down. */
  usedIn: Map<string, number>;
}

/**
 * One pass over the instances for every per-instance check: at issue 9's scale (200,000
 * instances) each pass over them costs tens of milliseconds, most of it reading the objects.
 * Nodes are looked up once per instance, by position (target or not, region when not down).
 */
function instanceFacts(input: PreflightInput, targetIds: ReadonlySet<string>): Facts {
  const { nodes } = input;
  const at = new Map<string, number>();
  const isTarget = new Uint8Array(nodes.length);
  const regionOfUp = new Int32Array(nodes.length).fill(-1);
  const regions: string[] = [];
  const regionIds = new Map<string, number>();
  nodes.forEach((n, k) => {
    // A duplicate id counts with its last row that is not down (as a map of the up nodes had it).
    if (!at.has(n.id) || n.status !== 'down') at.set(n.id, k);
    isTarget[k] = targetIds.has(n.id) ? 1 : 0;
    if (n.status === 'down') return;
    let r = regionIds.get(n.region);
    if (r === undefined) {
      r = regions.push(n.region) - 1;
      regionIds.set(n.region, r);
    }
    regionOfUp[k] = r;
  });
  const used = new Float64Array(regions.length);
  const facts: Facts = { lastReplica: [], active: [], usedIn: new Map() };
  for (const i of input.instances) {
    const k = at.get(i.nodeId);
    if (k === undefined) continue;
    const r = regionOfUp[k] as number;
    if (r >= 0 && i.status !== 'stopped') used[r] = (used[r] as number) + 1;
    if (i.desired !== 'running' || isTarget[k] === 0) continue;
    if (i.volume && i.volume.healthy_replicas <= 1) facts.lastReplica.push(i);
    if (i.activity !== null && i.activity !== '') facts.active.push(i);
  }
  regions.forEach((region, r) => {
    if ((used[r] as number) > 0) facts.usedIn.set(region, used[r] as number);
  });
  return facts;
}

function spareCapacity(input: PreflightInput, targetIds: ReadonlySet<string>, usedIn: ReadonlyMap<string, number>): PreflightCheck {
  if (input.plan.drain_mode !== 'migrate') return check('spare-capacity', 'pass', `drain mode ${input.plan.drain_mode}: no instance moves`);
  const problems: string[] = [];
  // One pass over nodes and moves (not regions × instances × nodes: issue 9, 200,000 instances).
  const slotsIn = new Map<string, number>();
  for (const n of input.nodes) {
    if (n.status === 'down') continue;
    slotsIn.set(n.region, (slotsIn.get(n.region) ?? 0) + n.maxInstances);
  }
  // Moves out of each region per batch: a move counts for the region of its source node in its batch.
  const source = new Map<string, { batch: number; region: string }>();
  for (const b of input.plan.batches) for (const n of b.nodes) source.set(n.id, { batch: b.index, region: n.region });
  const movedIn = new Map<string, number[]>();
  const largestIn = new Map<string, number>();
  const unplaced: string[] = [];
  for (const m of input.plan.moves) {
    if (m.to_node === null) unplaced.push(m.instance_id);
    const from = source.get(m.from_node);
    if (from === undefined || from.batch !== m.batch) continue;
    let perBatch = movedIn.get(from.region);
    if (!perBatch) movedIn.set(from.region, (perBatch = []));
    const count = (perBatch[m.batch] ?? 0) + 1;
    perBatch[m.batch] = count;
    if (count > (largestIn.get(from.region) ?? 0)) largestIn.set(from.region, count);
  }
  for (const region of [...new Set(input.nodes.filter((n) => targetIds.has(n.id)).map((n) => n.region))].sort()) {
    const slots = slotsIn.get(region) ?? 0;
    const used = usedIn.get(region) ?? 0;
    const free = slots - used;
    const largest = largestIn.get(region) ?? 0;
    const percent = slots === 0 ? 0 : Math.round((free * 100) / slots);
    if (percent < MIN_SPARE_PERCENT) problems.push(`${region}: ${percent} % spare (${free}/${slots} slots), below ${MIN_SPARE_PERCENT} %`);
    else if (free < largest) problems.push(`${region}: ${free} free slot(s) but the largest batch moves ${largest} instance(s)`);
  }
  if (unplaced.length > 0) problems.push(`${unplaced.length} instance(s) fit nowhere: ${unplaced.join(', ')}`);
  return problems.length > 0
    ? check('spare-capacity', 'fail', problems.join('; '), problems)
    : check('spare-capacity', 'pass', `every region keeps at least ${MIN_SPARE_PERCENT} % spare capacity and room for its largest batch`);
}

/** An instance that serves or is on its way to (a stopped or failed one is down already). */
const isUp = (i: PlanInstance): boolean => i.desired === 'running' && i.status !== 'stopped' && i.status !== 'failed';

function disruptionBudget(input: PreflightInput): PreflightCheck {
  const problems: string[] = [];
  for (const region of input.plan.blockedRegions) problems.push(`${region}: minAvailablePerRegion leaves no node to upgrade`);
  if (input.plan.drain_mode === 'restart') {
    // In place: what is down at once is what runs on one batch's nodes (the batches go one after
    // another, within the region caps, and a node's instances are healthy again before its task
    // ends). So the budget counts, per batch, the running instances those nodes stop, against
    // the instances running now: many nodes of a region at once pass when the replicas elsewhere
    // keep min_available, and nothing else is needed (no --override).
    const batchOf = new Map<string, number>();
    for (const b of input.plan.batches) for (const n of b.nodes) batchOf.set(n.id, b.index);
    // Instances up now, and the ones each batch stops, per deployment id (not a key string per instance).
    const upNow = new Map<string, number>();
    const downIn = new Map<string, Int32Array>();
    for (const i of input.instances) {
      if (!isUp(i)) continue;
      upNow.set(i.deploymentId, (upNow.get(i.deploymentId) ?? 0) + 1);
      const batch = batchOf.get(i.nodeId);
      if (batch === undefined) continue;
      let perBatch = downIn.get(i.deploymentId);
      if (!perBatch) downIn.set(i.deploymentId, (perBatch = new Int32Array(input.plan.batches.length)));
      perBatch[batch] = (perBatch[batch] as number) + 1;
    }
    for (const batch of input.plan.batches) {
      for (const d of input.deployments) {
        const down = downIn.get(d.id)?.[batch.index] ?? 0;
        // A replica that is already down stays down: it counts against the budget whether it is on the batch or not.
        const left = Math.min(d.replicas, upNow.get(d.id) ?? 0) - down;
        if (left < d.minAvailable) problems.push(`batch ${batch.index}: ${d.name} would drop to ${left} of min_available ${d.minAvailable}`);
      }
    }
  }
  return problems.length > 0
    ? check('disruption-budget', 'fail', problems.join('; '), problems)
    : check('disruption-budget', 'pass', 'per-region budgets and every deployment’s min_available hold');
}
