// Rollout simulator: drives the operator's own decideRollout in virtual time over a simulated
// fleet (default 1,000 nodes in 3 regions, 20 instances each, 20 % spare room, 1 % of installs
// failing, seeded), and planRollout for where drained instances go. Prints a summary and writes
// bench/results/rollout-sim.json: makespan against the lower bound the spec allows, migrations
// per instance, the circuit breaker's blast radius (in a second run with a bad version), and
// DESIGN.md §8 violations, counted by the same checks the property tests use (must be 0).
// Usage: npm run bench:rollout [-- --nodes 5000 --failure-rate 0.02 --seed 7 --order rolling]
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { planRollout, type RolloutPlan } from '../src/domain/rollout/plan.js';
import { parseRolloutSpec, type RolloutSpec } from '../src/domain/rollout/spec.js';
import type { Deployment, FleetNode, Instance } from '../src/domain/types.js';
import { driveRollout, type DriveResult, FleetModel, type HumanChoice, type InstallOutcome } from '../test/domain/rollout/fleet-sim.js';
import { instance } from '../test/domain/fixtures.js';
import { rollout as newRollout, tasksFromPlan } from '../test/domain/rollout/fixtures.js';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '1000' },
    regions: { type: 'string', default: '3' },
    'instances-per-node': { type: 'string', default: '20' },
    spare: { type: 'string', default: '0.2' },
    replicas: { type: 'string', default: '3' },
    'failure-rate': { type: 'string', default: '0.01' },
    'unhealthy-rate': { type: 'string', default: '0' },
    'drill-failure-rate': { type: 'string', default: '0.3' },
    seed: { type: 'string', default: '1' },
    'install-seconds': { type: 'string', default: '60' },
    'drain-seconds-per-instance': { type: 'string', default: '2' },
    order: { type: 'string', default: 'parallel-regions' },
    'batch-percent': { type: 'string' },
    'batch-size': { type: 'string' },
    canary: { type: 'string', default: '1' },
    soak: { type: 'string', default: '5m' },
    'max-unavailable': { type: 'string' },
    'min-available': { type: 'string' },
    pause: { type: 'string', default: '30s' },
    'drain-mode': { type: 'string', default: 'migrate' },
    'min-healthy': { type: 'string', default: '30s' },
    'health-timeout': { type: 'string', default: '5m' },
    'breaker-consecutive': { type: 'string', default: '3' },
    'breaker-percent': { type: 'string', default: '5' },
    decision: { type: 'string', default: 'continue' },
    'decision-delay': { type: 'string', default: '600' },
    out: { type: 'string', default: 'bench/results/rollout-sim.json' },
  },
});

const num = (name: keyof typeof values) => {
  const value = Number(values[name]);
  if (!Number.isFinite(value)) throw new Error(`--${name} must be a number, got ${String(values[name])}`);
  return value;
};
const nodeCount = num('nodes');
const regionCount = num('regions');
const perNode = num('instances-per-node');
const spare = num('spare');
const replicas = Math.max(1, num('replicas'));
const seed = num('seed');
const installMs = num('install-seconds') * 1000;
const drainPerInstanceMs = num('drain-seconds-per-instance') * 1000;
const DRAIN_BASE_MS = 1_000;
const START = new Date('2024-05-07T03:00:00.000Z');

/** mulberry32: a small seeded generator, so a run is repeatable from its seed. */
function random(seedValue: number): () => number {
  let a = seedValue >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function buildSpec(): RolloutSpec {
  const batch = values['batch-size'] ? { size: num('batch-size') } : { percent: values['batch-percent'] ? num('batch-percent') : 5 };
  const budget = values['min-available']
    ? { minAvailablePerRegion: num('min-available') }
    : { maxUnavailablePerRegion: values['max-unavailable'] ? num('max-unavailable') : Math.max(1, Math.ceil(nodeCount / regionCount / 10)) };
  const input = {
    name: 'sim-node-agent-2',
    target: { component: 'node-agent', version: '2.0.0' },
    selector: { role: 'worker' },
    strategy: {
      order: values.order,
      ...(num('canary') > 0 ? { canary: { nodes: num('canary'), soak: values.soak } } : {}),
      batch,
      ...budget,
      pauseBetweenBatches: values.pause,
      drain: { mode: values['drain-mode'] },
      health: { timeout: values['health-timeout'], minHealthyTime: values['min-healthy'] },
      circuitBreaker: { maxConsecutiveFailures: num('breaker-consecutive'), ...(num('breaker-percent') > 0 ? { maxFailurePercent: num('breaker-percent') } : {}) },
    },
  };
  const parsed = parseRolloutSpec(input);
  if (!parsed.ok) throw new Error(`the simulated spec is invalid: ${parsed.issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`);
  return parsed.spec;
}

interface World {
  nodes: FleetNode[];
  instances: Instance[];
  deployments: Deployment[];
}

/** The fleet: nodes round-robin over regions, `perNode` instances each with room for `spare` more, deployments of `replicas` spread far apart. */
function buildWorld(): World {
  const regions = Array.from({ length: regionCount }, (_, r) => `region-${r}`);
  const maxInstances = Math.ceil(perNode / (1 - spare));
  const nodes: FleetNode[] = Array.from({ length: nodeCount }, (_, n) => ({
    id: `node-${String(n).padStart(5, '0')}`,
    hostname: `host-${String(n).padStart(5, '0')}`,
    region: regions[n % regionCount] as string,
    role: 'worker',
    labels: {},
    status: 'ready',
    cordoned: false,
    maxInstances,
    lastHeartbeatAt: START,
  }));
  const total = nodeCount * perNode;
  const deploymentCount = Math.max(1, Math.ceil(total / replicas));
  const deployments: Deployment[] = Array.from({ length: deploymentCount }, (_, d) => ({
    id: `dep-${d}`,
    name: `app-${d}`,
    replicas,
    minAvailable: Math.max(0, replicas - 1),
    workload: { command: 'app' },
    nodeSelector: null,
  }));
  const instances: Instance[] = [];
  for (let i = 0; i < total; i++) {
    const node = nodes[Math.floor(i / perNode)] as FleetNode;
    instances.push(instance(`inst-${i}`, `dep-${i % deploymentCount}`, node.id, { createdAt: START }));
  }
  return { nodes, instances, deployments };
}

/** The shortest the rollout could take under its own constraints: batches one after another, each as long as its slowest node, plus pauses and the canary soak; no reconciler latency, no failures. */
function lowerBoundMs(spec: RolloutSpec, plan: RolloutPlan, instancesOn: Map<string, number>, installOf: (id: string) => number, drainMode: string): number {
  let total = 0;
  for (const batch of plan.batches) {
    let slowest = 0;
    for (const node of batch.nodes) {
      const drain = drainMode === 'migrate' ? DRAIN_BASE_MS + (instancesOn.get(node.id) ?? 0) * drainPerInstanceMs : 0;
      slowest = Math.max(slowest, drain + installOf(node.id));
    }
    total += slowest + spec.strategy.health.minHealthyTime;
  }
  total += Math.max(0, plan.batches.length - 1) * spec.strategy.pauseBetweenBatches;
  if (spec.strategy.canary && plan.batches.length > 1) total += spec.strategy.canary.soak;
  return total;
}

/** What the per-region budget alone allows, ignoring batches, pauses and the canary: every region through its cap of nodes at a time, each as fast as the fastest node. */
function budgetLowerBoundMs(spec: RolloutSpec, plan: RolloutPlan, instancesOn: Map<string, number>, installOf: (id: string) => number, drainMode: string): number {
  const perRegion = new Map<string, string[]>();
  for (const node of plan.batches.flatMap((b) => b.nodes)) perRegion.set(node.region, [...(perRegion.get(node.region) ?? []), node.id]);
  let bound = 0;
  for (const [region, ids] of perRegion) {
    const fastest = Math.min(...ids.map((id) => (drainMode === 'migrate' ? DRAIN_BASE_MS + (instancesOn.get(id) ?? 0) * drainPerInstanceMs : 0) + installOf(id)));
    const rounds = Math.ceil(ids.length / Math.max(1, plan.regionCaps[region] ?? 1));
    bound = Math.max(bound, rounds * (fastest + spec.strategy.health.minHealthyTime));
  }
  return bound;
}

interface ScenarioResult {
  name: string;
  failure_rate: number;
  decision: HumanChoice;
  status: string;
  makespan_s: number | null;
  lower_bound_s: number;
  makespan_over_lower_bound: number | null;
  budget_lower_bound_s: number;
  ticks: number;
  wall_ms: number;
  nodes: Record<string, number>;
  peak_in_flight_per_region: Record<string, number>;
  peak_unavailable_per_region: Record<string, number>;
  breaker: {
    trips: number;
    first_trip_at_s: number | null;
    nodes_started_before_trip: number | null;
    failed_nodes_at_trip: number | null;
    in_flight_at_trip: number | null;
    started_per_failed: number | null;
    reason: string | null;
  };
  invariant_violations: number;
  violations: DriveResult['violations'];
}

function runScenario(name: string, spec: RolloutSpec, world: World, plan: RolloutPlan, failureRate: number, unhealthyRate: number, decision: HumanChoice): ScenarioResult {
  const rng = random(seed * 7919 + Math.round(failureRate * 1e6));
  // Each node's fate and install time are drawn once, in node order, so a seed replays exactly.
  const fate = new Map<string, { forward: InstallOutcome; installMs: number }>();
  for (const node of world.nodes) {
    const roll = rng();
    const forward: InstallOutcome = roll < failureRate ? 'fails' : roll < failureRate + unhealthyRate ? 'unhealthy' : 'ok';
    fate.set(node.id, { forward, installMs: Math.round(installMs * (0.8 + 0.4 * rng())) });
  }
  const instancesOn = new Map<string, number>();
  for (const i of world.instances) instancesOn.set(i.nodeId, (instancesOn.get(i.nodeId) ?? 0) + 1);
  const fleet = new FleetModel(
    world.nodes.map((n) => ({ id: n.id, region: n.region, version: '1.0.0', instances: instancesOn.get(n.id) ?? 0 })),
    {
      drainBaseMs: DRAIN_BASE_MS,
      drainMsPerInstance: drainPerInstanceMs,
      installMs: (id) => fate.get(id)?.installMs ?? installMs,
      outcome: (id, _version, rollback) => (rollback ? 'ok' : (fate.get(id)?.forward ?? 'ok')),
    },
  );
  const started = performance.now();
  const result = driveRollout({
    rollout: newRollout(spec, { id: `sim-${name}`, drainMode: plan.drain_mode, batchCount: plan.batches.length }),
    tasks: tasksFromPlan(plan, () => '1.0.0', START).map((t) => ({ ...t, id: `sim-${name}/${t.nodeId}` })),
    fleet,
    regionCaps: plan.regionCaps,
    start: START,
    decisionDelayMs: num('decision-delay') * 1000,
    choose: () => decision,
    maxVirtualMs: 30 * 86_400_000,
    // Deciding again on a cloned snapshot copies every task and node; every 50th tick suffices
    // here (the property tests check every tick on small fleets).
    determinismEvery: 50,
  });
  const wall = performance.now() - started;
  const bound = lowerBoundMs(spec, plan, instancesOn, (id) => fate.get(id)?.installMs ?? installMs, plan.drain_mode);
  const states: Record<string, number> = {};
  for (const task of result.tasks) states[task.state] = (states[task.state] ?? 0) + 1;
  const trip = result.trips[0];
  return {
    name,
    failure_rate: failureRate,
    decision,
    status: result.rollout.status,
    makespan_s: result.makespanMs === null ? null : Math.round(result.makespanMs / 1000),
    lower_bound_s: Math.round(bound / 1000),
    // Only a completed rollout did all the work the bound assumes.
    makespan_over_lower_bound: result.rollout.status !== 'completed' || result.makespanMs === null || bound === 0 ? null : Number((result.makespanMs / bound).toFixed(3)),
    budget_lower_bound_s: Math.round(budgetLowerBoundMs(spec, plan, instancesOn, (id) => fate.get(id)?.installMs ?? installMs, plan.drain_mode) / 1000),
    ticks: result.ticks,
    wall_ms: Math.round(wall),
    nodes: states,
    peak_in_flight_per_region: result.peakInFlightPerRegion,
    peak_unavailable_per_region: result.peakUnavailablePerRegion,
    breaker: {
      trips: result.trips.length,
      first_trip_at_s: trip ? Math.round(trip.atMs / 1000) : null,
      nodes_started_before_trip: trip?.startedBefore ?? null,
      failed_nodes_at_trip: trip?.failedNodes.length ?? null,
      in_flight_at_trip: trip?.inFlightAtTrip ?? null,
      started_per_failed: trip && trip.failedNodes.length > 0 ? Number((trip.startedBefore / trip.failedNodes.length).toFixed(2)) : null,
      reason: trip?.reason ?? null,
    },
    invariant_violations: result.violationCount,
    violations: result.violations,
  };
}

const wallStart = performance.now();
const spec = buildSpec();
const world = buildWorld();
const planStart = performance.now();
const plan = planRollout({ spec, nodes: world.nodes, instances: world.instances, deployments: world.deployments, currentVersion: () => '1.0.0', disruptive: true });
const planMs = performance.now() - planStart;

const movesPerInstance = new Map<string, number>();
for (const move of plan.moves) if (move.to_node !== null) movesPerInstance.set(move.instance_id, (movesPerInstance.get(move.instance_id) ?? 0) + 1);
const histogram: Record<string, number> = { '0': world.instances.length - movesPerInstance.size };
for (const count of movesPerInstance.values()) histogram[String(count)] = (histogram[String(count)] ?? 0) + 1;
const migrations = [...movesPerInstance.values()].reduce((a, b) => a + b, 0);

const decision = values.decision as HumanChoice;
if (!['continue', 'rollback', 'abort'].includes(decision)) throw new Error('--decision must be continue, rollback or abort');
const scenarios = [
  runScenario('rollout', spec, world, plan, num('failure-rate'), num('unhealthy-rate'), decision),
  // The breaker drill: a bad version fails a large share of installs; the question is how many
  // nodes the rollout touches before it stops, and that a rollback returns every one of them.
  runScenario('breaker-drill', spec, world, plan, num('drill-failure-rate'), 0, 'rollback'),
];

const report = {
  config: {
    nodes: nodeCount,
    regions: regionCount,
    instances_per_node: perNode,
    spare_fraction: spare,
    max_instances_per_node: world.nodes[0]?.maxInstances ?? 0,
    replicas_per_deployment: replicas,
    seed,
    install_seconds: installMs / 1000,
    drain_seconds_per_instance: drainPerInstanceMs / 1000,
    strategy: spec.strategy,
  },
  plan: {
    batches: plan.batches.length,
    largest_batch: Math.max(0, ...plan.batches.map((b) => b.nodes.length)),
    region_caps: plan.regionCaps,
    blocked_regions: plan.blockedRegions,
    estimated_duration_s: plan.estimated_duration_s,
    plan_ms: Math.round(planMs),
  },
  placement: {
    instances: world.instances.length,
    migrations,
    migrations_per_instance: Number((migrations / Math.max(1, world.instances.length)).toFixed(3)),
    max_moves_per_instance: plan.max_moves_per_instance,
    moves_histogram: histogram,
    unplaced: plan.moves.filter((m) => m.to_node === null).length,
    pinned: plan.pinned.length,
  },
  scenarios,
  invariant_violations: scenarios.reduce((sum, s) => sum + s.invariant_violations, 0),
  wall_ms: Math.round(performance.now() - wallStart),
};

const out = resolve(values.out);
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);

const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
console.log(`rollout-sim: ${nodeCount} nodes in ${regionCount} regions, ${perNode} instances/node (room for ${report.config.max_instances_per_node}), seed ${seed}`);
console.log(`  plan: ${plan.batches.length} batches (${spec.strategy.order}), caps ${JSON.stringify(plan.regionCaps)}, planned in ${report.plan.plan_ms} ms`);
console.log(
  `  placement: ${migrations} migrations for ${world.instances.length} instances = ${report.placement.migrations_per_instance}/instance, max ${plan.max_moves_per_instance} moves, histogram ${JSON.stringify(histogram)}, unplaced ${report.placement.unplaced}`,
);
for (const s of scenarios) {
  console.log(
    `  ${s.name} (${pct(s.failure_rate)} failing, decision ${s.decision}): ${s.status} in ${s.makespan_s ?? '—'} s virtual vs lower bound ${s.lower_bound_s} s (×${s.makespan_over_lower_bound ?? '—'}; the region budget alone would allow ${s.budget_lower_bound_s} s), ${s.ticks} ticks in ${s.wall_ms} ms`,
  );
  console.log(`    tasks ${JSON.stringify(s.nodes)}, peak in flight/region ${JSON.stringify(s.peak_in_flight_per_region)}, peak unavailable/region ${JSON.stringify(s.peak_unavailable_per_region)}`);
  console.log(
    s.breaker.trips === 0
      ? '    breaker: never tripped'
      : `    breaker: ${s.breaker.trips} trip(s), first at ${s.breaker.first_trip_at_s} s: ${s.breaker.nodes_started_before_trip} nodes started / ${s.breaker.failed_nodes_at_trip} failed (${s.breaker.in_flight_at_trip} in flight), ${s.breaker.reason}`,
  );
  console.log(`    invariant violations: ${s.invariant_violations}${s.invariant_violations ? ` ${JSON.stringify(s.violations)}` : ''}`);
}
console.log(`  total invariant violations: ${report.invariant_violations}; wall ${report.wall_ms} ms; wrote ${values.out}`);
if (report.invariant_violations > 0) process.exitCode = 1;
