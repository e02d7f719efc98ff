// Rollout plan at scale: planRollout (batches + where every instance of a drained node goes)
// and runPreflight over a synthetic fleet (default 10,000 nodes in 3 regions, 20 instances a
// node of 2,000 deployments with 100 replicas each, 20 % spare room), for a region-by-region
// spec with drain mode migrate. The domain only: no store, no HTTP (issue 9 goal 3 wants the
// whole POST /rollouts/plan under 1 s; this is the part that is pure CPU). Prints the wall and
// CPU time of each part and writes bench/results/plan.json.
// Usage: npm run bench:plan [-- --nodes 3000 --instances-per-node 20 --replicas 100]
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { planBatches } from '../src/domain/rollout/batches.js';
import { planRollout } from '../src/domain/rollout/plan.js';
import { type InstanceFacts, runPreflight } from '../src/domain/rollout/preflight.js';
import { parseRolloutSpec } from '../src/domain/rollout/spec.js';
import type { Deployment, FleetNode } from '../src/domain/types.js';
import { deployment, node, REGIONS } from '../test/domain/fixtures.js';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '10000' },
    regions: { type: 'string', default: '3' },
    'instances-per-node': { type: 'string', default: '20' },
    replicas: { type: 'string', default: '100' },
    spare: { type: 'string', default: '0.2' },
    'batch-percent': { type: 'string', default: '5' },
    'max-unavailable': { type: 'string' },
    runs: { type: 'string', default: '3' },
    out: { type: 'string', default: 'bench/results/plan.json' },
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
const replicas = Math.max(1, num('replicas'));
const spare = num('spare');
const runs = Math.max(1, num('runs'));

/** Wall and CPU milliseconds of one call. */
function timedOnce<T>(fn: () => T): { value: T; wall_ms: number; cpu_ms: number } {
  const cpu = process.cpuUsage();
  const started = performance.now();
  const value = fn();
  const wall = performance.now() - started;
  const used = process.cpuUsage(cpu);
  return { value, wall_ms: Math.round(wall), cpu_ms: Math.round((used.user + used.system) / 1000) };
}

/**
 * The median of `runs` calls (the machine is shared: one run can be slowed by its neighbours),
 * with every run's times. The first run also pays for compiling the code.
 */
function timed<T>(fn: () => T): { value: T; wall_ms: number; cpu_ms: number; runs: { wall_ms: number; cpu_ms: number }[] } {
  const all = Array.from({ length: runs }, () => timedOnce(fn));
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  return {
    value: (all[0] as { value: T }).value,
    wall_ms: median(all.map((r) => r.wall_ms)),
    cpu_ms: median(all.map((r) => r.cpu_ms)),
    runs: all.map((r) => ({ wall_ms: r.wall_ms, cpu_ms: r.cpu_ms })),
  };
}

/** Nodes round-robin over regions, `perNode` instances each with `spare` of their slots free; replicas of a deployment on distinct nodes. */
function buildFleet() {
  const regions = Array.from({ length: regionCount }, (_, r) => REGIONS[r] ?? `region-${r}`);
  const maxInstances = Math.ceil(perNode / (1 - spare));
  const pad = (n: number) => String(n).padStart(5, '0');
  const nodes: FleetNode[] = Array.from({ length: nodeCount }, (_, n) =>
    node(`node-${pad(n)}`, { hostname: `host-${pad(n)}`, region: regions[n % regionCount] as string, maxInstances }),
  );
  const total = nodeCount * perNode;
  const deploymentCount = Math.max(1, Math.ceil(total / replicas));
  const deployments: Deployment[] = Array.from({ length: deploymentCount }, (_, d) => deployment(`dep-${d}`, { name: `app-${d}`, replicas, minAvailable: Math.max(0, replicas - 1) }));
  // Only the fields the plan reads, with the node and deployment ids shared with their rows: the
  // shape the operator's plan worker builds from the compact plan snapshot (src/store/plan-snapshot.ts).
  const instances: InstanceFacts[] = Array.from({ length: total }, (_, i) => ({
    id: `inst-${i}`,
    deploymentId: (deployments[i % deploymentCount] as Deployment).id,
    nodeId: (nodes[Math.floor(i / perNode)] as FleetNode).id,
    desired: 'running',
    status: 'running',
    volume: null,
    activity: null,
  }));
  return { nodes, deployments, instances, maxInstances };
}

const fleet = timedOnce(buildFleet);
const { nodes, deployments, instances } = fleet.value;
const parsed = parseRolloutSpec({
  name: 'bench-plan',
  target: { component: 'node-agent', version: '2.0.0' },
  strategy: {
    order: 'region-by-region',
    batch: { percent: num('batch-percent') },
    maxUnavailablePerRegion: values['max-unavailable'] ? num('max-unavailable') : Math.max(1, Math.ceil(nodeCount / regionCount / 10)),
    drain: { mode: 'migrate' },
  },
});
if (!parsed.ok) throw new Error(`the bench spec is invalid: ${JSON.stringify(parsed.issues)}`);
const spec = parsed.spec;
const currentVersion = () => '1.0.0';

const batches = timed(() => planBatches(spec, nodes, currentVersion));
const plan = timed(() => planRollout({ spec, nodes, instances, deployments, currentVersion, disruptive: true }));
const fromVersions = new Map(plan.value.batches.flatMap((b) => b.nodes.map((n) => [n.id, '1.0.0'] as const)));
const preflight = timed(() =>
  runPreflight({
    spec,
    plan: plan.value,
    nodes,
    instances,
    deployments,
    artifact: { lifecycle: 'blessed', signed: true },
    rollbackArtifacts: new Map([['1.0.0', 'live']]),
    fromVersions,
    activeRolloutNodes: [],
    compatRules: [],
    running: new Map([['node-agent', ['1.0.0']]]),
    overrides: [],
  }),
);

const moved = plan.value.moves.filter((m) => m.to_node !== null);
const report = {
  config: {
    nodes: nodeCount,
    regions: regionCount,
    instances: instances.length,
    instances_per_node: perNode,
    max_instances_per_node: fleet.value.maxInstances,
    deployments: deployments.length,
    replicas_per_deployment: replicas,
    strategy: spec.strategy,
  },
  build_fleet: { wall_ms: fleet.wall_ms, cpu_ms: fleet.cpu_ms },
  plan_batches: { wall_ms: batches.wall_ms, cpu_ms: batches.cpu_ms, runs: batches.runs, batches: batches.value.batches.length },
  runs,
  plan_rollout: { wall_ms: plan.wall_ms, cpu_ms: plan.cpu_ms, runs: plan.runs },
  preflight: { wall_ms: preflight.wall_ms, cpu_ms: preflight.cpu_ms, runs: preflight.runs, blocked: preflight.value.blocked, failed: preflight.value.checks.filter((c) => c.status === 'fail').map((c) => c.id) },
  plan_plus_preflight: { wall_ms: plan.wall_ms + preflight.wall_ms, cpu_ms: plan.cpu_ms + preflight.cpu_ms },
  moves: plan.value.moves.length,
  placed: moved.length,
  unplaced: plan.value.moves.length - moved.length,
  moved_instances: new Set(moved.map((m) => m.instance_id)).size,
  max_moves_per_instance: plan.value.max_moves_per_instance,
  estimated_duration_s: plan.value.estimated_duration_s,
};

const out = resolve(values.out);
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);

const each = (r: { runs: { wall_ms: number; cpu_ms: number }[] }) => r.runs.map((x) => `${x.wall_ms}/${x.cpu_ms}`).join(', ');
console.log(`plan: ${nodeCount} nodes in ${regionCount} regions, ${instances.length} instances (${perNode}/node, room for ${fleet.value.maxInstances}), ${deployments.length} deployments × ${replicas}`);
console.log(`  fleet built in ${fleet.wall_ms} ms`);
console.log(`  planBatches: ${report.plan_batches.batches} batches in ${batches.wall_ms} ms wall / ${batches.cpu_ms} ms CPU [${each(batches)}]`);
console.log(`  timings: median of ${runs} run(s), wall / CPU ms; each run in brackets`);
console.log(`  planRollout: ${plan.wall_ms} ms wall / ${plan.cpu_ms} ms CPU (batches + placement) [${each(plan)}]`);
console.log(`  runPreflight: ${preflight.wall_ms} ms wall / ${preflight.cpu_ms} ms CPU [${each(preflight)}], blocked ${report.preflight.blocked}${report.preflight.failed.length ? ` (${report.preflight.failed.join(', ')})` : ''}`);
console.log(`  plan + preflight: ${report.plan_plus_preflight.wall_ms} ms wall / ${report.plan_plus_preflight.cpu_ms} ms CPU`);
console.log(`  moves ${report.moves} (placed ${report.placed}, unplaced ${report.unplaced}) of ${report.moved_instances} instances, max ${report.max_moves_per_instance} moves/instance; wrote ${values.out}`);
