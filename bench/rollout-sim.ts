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
import type { DriveResult } from '../src/sim/drive.js';
import type { HumanChoice } from '../src/sim/human.js';
import { budgetLowerBoundMs } from '../src/sim/lower-bound.js';
import { seededRandom } from '../src/sim/random.js';
import { simulateUpgrade } from '../src/sim/upgrade.js';
import { buildWorld, type World } from '../src/sim/world.js';

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

interface ScenarioResult {
  name: string;
  failure_rate: number;
  decision: HumanChoice;
  status: string;
  makespan_s: number | null;
  lower_bound_s: number;
  makespan_over_lower_bound: number | null;
  /** Time the rollout sat awaiting a person after breaker trips with no node in flight (the bound has no people in it). */
  idle_awaiting_decision_s: number;
  /** (makespan − idle_awaiting_decision) / lower bound, for a rollout that ran every batch (completed, or failed at the end with nothing skipped). */
  makespan_less_waits_over_lower_bound: number | null;
  budget_lower_bound_s: number;
  ticks: number;
  wall_ms: number;
  /** This process's CPU time for the scenario: on a shared machine, wall time also counts other processes' turns. */
  cpu_ms: number;
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
  const started = performance.now();
  const cpuStart = process.cpuUsage();
  const result = simulateUpgrade({
    name,
    spec,
    world,
    plan,
    drainMode: plan.drain_mode,
    start: START,
    random: seededRandom(seed * 7919 + Math.round(failureRate * 1e6)),
    failureRate,
    unhealthyRate,
    installMs,
    drainBaseMs: DRAIN_BASE_MS,
    drainMsPerInstance: drainPerInstanceMs,
    decision,
    decisionDelayMs: num('decision-delay') * 1000,
    // Deciding again on a cloned snapshot copies every task and node: every 50th tick up to
    // 1,000 nodes; on larger fleets (ticks and snapshot both grow with the fleet) a handful of
    // times a run, ~70 ms each at 10,000 nodes (the property tests check every other tick on
    // small fleets).
    determinismEvery: nodeCount <= 1_000 ? 50 : Math.round(nodeCount / 5),
  });
  const wall = performance.now() - started;
  const cpu = process.cpuUsage(cpuStart);
  const bound = result.lowerBoundMs;
  const awaitingMs = result.idleAwaitingDecisionMs;
  const ranEveryBatch = (result.rollout.status === 'completed' || result.rollout.status === 'failed') && result.tasks.every((t) => t.state !== 'skipped' || t.lastError === 'already runs the target');
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
    idle_awaiting_decision_s: Math.round(awaitingMs / 1000),
    makespan_less_waits_over_lower_bound: !ranEveryBatch || result.makespanMs === null || bound === 0 ? null : Number(((result.makespanMs - awaitingMs) / bound).toFixed(3)),
    budget_lower_bound_s: Math.round(budgetLowerBoundMs(spec, plan, result.times) / 1000),
    ticks: result.ticks,
    wall_ms: Math.round(wall),
    cpu_ms: Math.round((cpu.user + cpu.system) / 1000),
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
const world = buildWorld({ nodes: nodeCount, regions: regionCount, instancesPerNode: perNode, spare, replicas, at: START });
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
  cpu_ms: Math.round((process.cpuUsage().user + process.cpuUsage().system) / 1000),
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
    `  ${s.name} (${pct(s.failure_rate)} failing, decision ${s.decision}): ${s.status} in ${s.makespan_s ?? '—'} s virtual vs lower bound ${s.lower_bound_s} s (×${s.makespan_over_lower_bound ?? '—'}; the region budget alone would allow ${s.budget_lower_bound_s} s), ${s.ticks} ticks in ${s.wall_ms} ms (${s.cpu_ms} ms CPU)`,
  );
  console.log(
    `    idle awaiting a decision ${s.idle_awaiting_decision_s} s; makespan less that vs lower bound ×${s.makespan_less_waits_over_lower_bound ?? '—'}`,
  );
  console.log(`    tasks ${JSON.stringify(s.nodes)}, peak in flight/region ${JSON.stringify(s.peak_in_flight_per_region)}, peak unavailable/region ${JSON.stringify(s.peak_unavailable_per_region)}`);
  console.log(
    s.breaker.trips === 0
      ? '    breaker: never tripped'
      : `    breaker: ${s.breaker.trips} trip(s), first at ${s.breaker.first_trip_at_s} s: ${s.breaker.nodes_started_before_trip} nodes started / ${s.breaker.failed_nodes_at_trip} failed (${s.breaker.in_flight_at_trip} in flight), ${s.breaker.reason}`,
  );
  console.log(`    invariant violations: ${s.invariant_violations}${s.invariant_violations ? ` ${JSON.stringify(s.violations)}` : ''}`);
}
console.log(`  total invariant violations: ${report.invariant_violations}; wall ${report.wall_ms} ms (${report.cpu_ms} ms CPU); wrote ${values.out}`);
if (report.invariant_violations > 0) process.exitCode = 1;
