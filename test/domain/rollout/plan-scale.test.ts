import { describe, expect, it } from 'vitest';
import { planRollout } from '../../../src/domain/rollout/plan.js';
import { type InstanceFacts, runPreflight } from '../../../src/domain/rollout/preflight.js';
import type { Deployment, FleetNode } from '../../../src/domain/types.js';
import { deployment, REGIONS } from '../fixtures.js';
import { fleetNode, instance, spec } from './fixtures.js';

// Issue 9: at 10,000 nodes / 200,000 instances the plan died of `Math.max(0, ...moves)` (a
// RangeError past ~120,000 arguments) after minutes of sorting nodes per move. A plan of a few
// thousand nodes must complete and stay right; how fast is bench/plan.ts's business, not a test's.
describe('planRollout at scale', () => {
  it('plans 3,000 nodes / 60,000 instances region by region: every instance placed, within capacity, at most twice', () => {
    const perNode = 20;
    const maxInstances = 25;
    const nodes: FleetNode[] = Array.from({ length: 3000 }, (_, n) =>
      fleetNode(`node-${String(n).padStart(5, '0')}`, { region: REGIONS[n % REGIONS.length] as string, maxInstances }),
    );
    const deployments: Deployment[] = Array.from({ length: 600 }, (_, d) => deployment(`dep-${d}`, { replicas: 100 }));
    const instances: InstanceFacts[] = Array.from({ length: nodes.length * perNode }, (_, i) => ({
      ...instance(`inst-${i}`, `dep-${i % deployments.length}`, (nodes[Math.floor(i / perNode)] as FleetNode).id),
      volume: null,
      activity: null,
    }));
    const s = spec({ order: 'region-by-region', batch: { percent: 5 }, maxUnavailablePerRegion: 100, drain: { mode: 'migrate' } });
    const plan = planRollout({ spec: s, nodes, instances, deployments, currentVersion: () => '1.0.0', disruptive: true });

    expect(plan.batches.flatMap((b) => b.nodes)).toHaveLength(3000);
    expect(plan.moves.every((m) => m.to_node !== null)).toBe(true);
    // Nothing outside the rollout is upgraded: the first batch's instances move twice, nobody else's.
    expect(plan.max_moves_per_instance).toBe(2);
    const firstBatch = new Set(plan.batches[0]?.nodes.map((n) => n.id));
    expect(plan.moves).toHaveLength(instances.length + instances.filter((i) => firstBatch.has(i.nodeId)).length);

    // Replay the moves: each starts where the instance is, never lands in its own batch, and no
    // node ever holds more than it may.
    const where = new Map(instances.map((i) => [i.id, i.nodeId]));
    const load = new Map<string, number>();
    for (const nodeId of where.values()) load.set(nodeId, (load.get(nodeId) ?? 0) + 1);
    const batchOf = new Map(plan.batches.flatMap((b) => b.nodes.map((n) => [n.id, b.index] as const)));
    const wrong: string[] = [];
    for (const move of plan.moves) {
      const to = move.to_node as string;
      if (where.get(move.instance_id) !== move.from_node) wrong.push(`${move.instance_id} is not on ${move.from_node}`);
      if (batchOf.get(to) === move.batch) wrong.push(`${move.instance_id} lands in its own batch`);
      load.set(move.from_node, (load.get(move.from_node) ?? 0) - 1);
      load.set(to, (load.get(to) ?? 0) + 1);
      if ((load.get(to) ?? 0) > maxInstances) wrong.push(`${to} over capacity`);
      where.set(move.instance_id, to);
    }
    expect(wrong).toEqual([]);

    const preflight = runPreflight({
      spec: s,
      plan,
      nodes,
      instances,
      deployments,
      artifact: { lifecycle: 'blessed', signed: true },
      rollbackArtifacts: new Map([['1.0.0', 'live']]),
      fromVersions: new Map(nodes.map((n) => [n.id, '1.0.0'])),
      activeRolloutNodes: [],
      compatRules: [],
      running: new Map([['node-agent', ['1.0.0']]]),
      overrides: [],
    });
    expect(preflight.checks.find((c) => c.id === 'spare-capacity')?.status).toBe('pass');
    expect(preflight.blocked).toBe(false);
  });

  it('counts 150,000 moves without spreading them into one call (RangeError before issue 9)', () => {
    // Few nodes, many instances: the same number of moves as a large fleet at a fraction of the setup.
    const perNode = 7_500;
    const nodes = Array.from({ length: 20 }, (_, n) => fleetNode(`n${String(n).padStart(2, '0')}`, { maxInstances: 10_000 }));
    const deployments = [deployment('web', { replicas: nodes.length * perNode })];
    const instances = nodes.flatMap((n) => Array.from({ length: perNode }, (_, k) => instance(`${n.id}-${k}`, 'web', n.id)));
    const spare = fleetNode('spare', { maxInstances: 200_000 });
    const plan = planRollout({
      spec: spec({ batch: { size: 5 } }),
      nodes: [...nodes, spare],
      instances,
      deployments,
      currentVersion: (n) => (n.id === 'spare' ? '2.0.0' : '1.0.0'),
      disruptive: true,
    });
    expect(plan.moves).toHaveLength(instances.length);
    expect(plan.moves.filter((m) => m.to_node === null)).toEqual([]);
    expect(plan.max_moves_per_instance).toBe(1);
  });
});
