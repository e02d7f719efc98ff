import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { pickTargetNode, placementState, recordPlacement } from '../../../src/domain/placement.js';
import { planRollout, type PlanInput, type RolloutPlan } from '../../../src/domain/rollout/plan.js';
import { isPinned } from '../../../src/domain/selector.js';
import { type Deployment, type FleetNode, type Instance, NODE_STATUSES } from '../../../src/domain/types.js';
import { deployment, REGIONS } from '../fixtures.js';
import { fleet, fleetNode, instance, spec } from './fixtures.js';

/** Target nodes with `perNode` single-replica instances each, plus `spares` already-upgraded empty nodes per region. */
function world(options: { perRegion: number; perNode: number; spares: number; maxInstances: number }) {
  const targets = fleet(options.perRegion, { maxInstances: options.maxInstances });
  const spares = REGIONS.flatMap((region, r) =>
    Array.from({ length: options.spares }, (_, k) => fleetNode(`spare-${r}-${k}`, { region, maxInstances: options.maxInstances })),
  );
  const deployments: Deployment[] = [];
  const instances: Instance[] = [];
  for (const node of targets) {
    for (let k = 0; k < options.perNode; k++) {
      const d = deployment(`d-${node.id}-${k}`);
      deployments.push(d);
      instances.push(instance(`i-${node.id}-${k}`, d.id, node.id));
    }
  }
  const upgraded = new Set(spares.map((n) => n.id));
  return { nodes: [...targets, ...spares], instances, deployments, upgraded };
}

function input(w: ReturnType<typeof world>, over: Partial<PlanInput> = {}): PlanInput {
  return {
    spec: spec({ batch: { percent: 25 } }),
    nodes: w.nodes,
    instances: w.instances,
    deployments: w.deployments,
    currentVersion: (n) => (w.upgraded.has(n.id) ? '2.0.0' : '1.0.0'),
    disruptive: true,
    ...over,
  };
}

describe('planRollout', () => {
  it('moves each instance at most once in a whole-fleet rollout when upgraded nodes have room', () => {
    const w = world({ perRegion: 4, perNode: 2, spares: 1, maxInstances: 4 });
    const plan = planRollout(input(w));
    expect(plan.drain_mode).toBe('migrate');
    expect(plan.moves).toHaveLength(24);
    expect(plan.max_moves_per_instance).toBe(1);
    const batchOf = new Map(plan.batches.flatMap((b) => b.nodes.map((n) => [n.id, b.index] as const)));
    for (const move of plan.moves) {
      // Every move lands on a node that is already upgraded by then: a spare, or one of an earlier batch.
      expect(move.to_node).not.toBeNull();
      const target = batchOf.get(move.to_node as string);
      expect(target === undefined || target < move.batch).toBe(true);
      expect(batchOf.get(move.from_node)).toBe(move.batch);
    }
    expect(new Set(plan.moves.map((m) => m.instance_id)).size).toBe(24);
  });

  it('keeps a migration in its region when the region has room', () => {
    const w = world({ perRegion: 2, perNode: 1, spares: 1, maxInstances: 4 });
    const region = new Map(w.nodes.map((n) => [n.id, n.region]));
    const plan = planRollout(input(w));
    for (const move of plan.moves) expect(region.get(move.to_node as string)).toBe(region.get(move.from_node));
  });

  it('moves the first batch twice when nothing outside the rollout has room (no upgraded node exists yet)', () => {
    const w = world({ perRegion: 2, perNode: 1, spares: 0, maxInstances: 4 });
    const plan = planRollout(input(w));
    expect(plan.max_moves_per_instance).toBe(2);
    // Only instances that started on the first batch's nodes move twice: every later batch drains onto upgraded nodes.
    const firstBatch = new Set(plan.batches[0]?.nodes.map((n) => n.id));
    const onFirstBatch = new Set(w.instances.filter((i) => firstBatch.has(i.nodeId)).map((i) => i.id));
    const movedTwice = new Set(plan.moves.filter((m, _, all) => all.filter((o) => o.instance_id === m.instance_id).length === 2).map((m) => m.instance_id));
    expect(movedTwice).toEqual(onFirstBatch);
  });

  it('reports pinned instances instead of moving them', () => {
    const w = world({ perRegion: 1, perNode: 1, spares: 1, maxInstances: 4 });
    const pinnedTo = w.nodes[0] as FleetNode;
    const d = deployment('pinned-db', { nodeSelector: { hostname: pinnedTo.hostname } });
    const plan = planRollout(input(w, { deployments: [...w.deployments, d], instances: [...w.instances, instance('i-db', d.id, pinnedTo.id)] }));
    expect(plan.pinned).toEqual([{ instance_id: 'i-db', deployment: 'pinned-db', node_id: pinnedTo.id, hostname: pinnedTo.hostname }]);
    expect(plan.moves.map((m) => m.instance_id)).not.toContain('i-db');
  });

  it('reports a move with no target when nothing has room', () => {
    const nodes = [fleetNode('a', { maxInstances: 1 }), fleetNode('b', { maxInstances: 1 })];
    const deployments = [deployment('x'), deployment('y')];
    const instances = [instance('ia', 'x', 'a'), instance('ib', 'y', 'b')];
    const plan = planRollout({ spec: spec({}), nodes, instances, deployments, currentVersion: () => '1.0.0', disruptive: true });
    expect(plan.moves.map((m) => [m.instance_id, m.to_node])).toEqual([
      ['ia', null],
      ['ib', null],
    ]);
    expect(plan.max_moves_per_instance).toBe(0);
  });

  it('moves nothing when the drain mode is restart or none', () => {
    const w = world({ perRegion: 2, perNode: 2, spares: 1, maxInstances: 4 });
    expect(planRollout(input(w, { disruptive: false })).moves).toEqual([]);
    expect(planRollout(input(w, { disruptive: false })).drain_mode).toBe('none');
    const restart = planRollout(input(w, { spec: spec({ drain: { mode: 'restart' } }) }));
    expect(restart.drain_mode).toBe('restart');
    expect(restart.moves).toEqual([]);
  });

  it('estimates the duration from history when there is some, with pauses and the canary soak', () => {
    const w = world({ perRegion: 1, perNode: 0, spares: 0, maxInstances: 4 });
    const s = spec({ canary: { nodes: 1, soak: '10m' }, pauseBetweenBatches: '60s', health: { minHealthyTime: '30s' } });
    // 3 batches of one node (canary + 2): 3 × 90 s, 2 pauses of 60 s, one soak of 600 s.
    expect(planRollout(input(w, { spec: s })).estimated_duration_s).toBe(3 * 90 + 2 * 60 + 600);
    expect(planRollout(input(w, { spec: s, historyNodeSeconds: 20 })).estimated_duration_s).toBe(3 * 20 + 2 * 60 + 600);
  });

  it('adds drain time for the instances each node of a batch moves, unless history (which includes drains) is known', () => {
    const w = world({ perRegion: 1, perNode: 3, spares: 1, maxInstances: 6 });
    const plan = planRollout(input(w, { spec: spec({ health: { minHealthyTime: 0 } }) }));
    // 3 batches of one node: the default 60 s install, plus 3 instances moved at 10 s apiece.
    expect(plan.estimated_duration_s).toBe(3 * (60 + 30));
    const measured = planRollout(input(w, { spec: spec({ health: { minHealthyTime: 0 } }), historyNodeSeconds: 45 }));
    expect(measured.estimated_duration_s).toBe(3 * 45);
  });

  it('never places more instances on a node than it holds, nor on a node of the same batch (property)', () => {
    const arb = fc.record({
      perRegion: fc.integer({ min: 1, max: 4 }),
      spares: fc.integer({ min: 0, max: 2 }),
      maxInstances: fc.integer({ min: 2, max: 6 }),
      load: fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 18, maxLength: 18 }),
      batch: fc.integer({ min: 1, max: 4 }),
      replicas: fc.integer({ min: 1, max: 3 }),
    });
    fc.assert(
      fc.property(arb, ({ perRegion, spares, maxInstances, load, batch, replicas }) => {
        const w = world({ perRegion, perNode: 0, spares, maxInstances });
        const targets = w.nodes.filter((n) => !w.upgraded.has(n.id));
        let seq = 0;
        for (const [k, node] of targets.entries()) {
          for (let j = 0; j < Math.min(maxInstances, load[k] ?? 0); j++, seq++) {
            const id = `dep-${Math.floor(seq / replicas)}`;
            if (!w.deployments.some((d) => d.id === id)) w.deployments.push(deployment(id, { replicas }));
            w.instances.push(instance(`i-${seq}`, id, node.id));
          }
        }
        const plan = planRollout(input(w, { spec: spec({ batch: { size: batch } }) }));
        const where = new Map(w.instances.map((i) => [i.id, i.nodeId]));
        const batchOf = new Map(plan.batches.flatMap((b) => b.nodes.map((n) => [n.id, b.index] as const)));
        const counts = new Map<string, number>();
        for (const move of plan.moves) {
          expect(where.get(move.instance_id)).toBe(move.from_node);
          if (move.to_node === null) continue;
          expect(batchOf.get(move.to_node)).not.toBe(move.batch);
          where.set(move.instance_id, move.to_node);
          counts.set(move.instance_id, (counts.get(move.instance_id) ?? 0) + 1);
        }
        const load2 = new Map<string, number>();
        for (const nodeId of where.values()) load2.set(nodeId, (load2.get(nodeId) ?? 0) + 1);
        for (const node of w.nodes) expect(load2.get(node.id) ?? 0).toBeLessThanOrEqual(node.maxInstances);
        expect(plan.max_moves_per_instance).toBe(Math.max(0, ...counts.values()));
      }),
      { numRuns: 100 },
    );
  });
});

/**
 * The plan as it was computed before the index (issue 9): the simulated fleet rebuilt per batch
 * and pickTargetNode over every open node for each instance. Slow, obviously right: the planner
 * must make exactly its choices.
 */
function referenceMoves(input: PlanInput, plan: RolloutPlan): [string, string | null][] {
  const location = new Map(input.instances.filter((i) => i.desired === 'running').map((i) => [i.id, i.nodeId]));
  const pending = new Set(plan.batches.flatMap((b) => b.nodes.map((n) => n.id)));
  const deployments = new Map(input.deployments.map((d) => [d.id, d]));
  const out: [string, string | null][] = [];
  for (const batch of plan.batches) {
    const inBatch = new Set(batch.nodes.map((n) => n.id));
    for (const id of inBatch) pending.delete(id);
    const current = input.instances.filter((i) => location.has(i.id)).map((i) => ({ ...i, nodeId: location.get(i.id) as string }));
    const state = placementState(current);
    for (const planned of batch.nodes) {
      for (const i of current.filter((c) => c.nodeId === planned.id)) {
        const d = deployments.get(i.deploymentId);
        if (!d || isPinned(d.nodeSelector)) continue;
        const target = pickTargetNode({
          deployment: d,
          nodes: input.nodes,
          load: state.load,
          replicaNodes: state.replicaNodes.get(d.id) ?? new Set(),
          preferRegion: planned.region,
          exclude: inBatch,
          avoid: pending,
        });
        out.push([i.id, target?.id ?? null]);
        if (!target) continue;
        recordPlacement(state, d.id, target.id);
        location.set(i.id, target.id);
      }
    }
  }
  return out;
}

describe('planRollout placement', () => {
  it('makes the choices pickTargetNode makes over the whole fleet, move by move (property)', () => {
    const arb = fc.record({
      nodes: fc.array(
        fc.record({
          region: fc.constantFrom(...REGIONS),
          status: fc.constantFrom(...NODE_STATUSES, 'ready', 'ready', 'ready'),
          maxInstances: fc.integer({ min: 0, max: 5 }),
          upgraded: fc.boolean(),
          instances: fc.array(
            fc.record({ deployment: fc.integer({ min: 0, max: 5 }), desired: fc.constantFrom<'running' | 'stopped'>('running', 'running', 'stopped'), stopped: fc.integer({ min: 0, max: 6 }).map((n) => n === 0) }),
            { maxLength: 5 },
          ),
        }),
        { minLength: 1, maxLength: 12 },
      ),
      pinned: fc.integer({ min: 0, max: 6 }),
      order: fc.constantFrom('rolling', 'region-by-region', 'parallel-regions'),
      batch: fc.integer({ min: 1, max: 4 }),
    });
    fc.assert(
      fc.property(arb, ({ nodes: specs, pinned, order, batch }) => {
        // Hostnames out of id order and sometimes equal in rank of load, so every tie-break is exercised.
        const nodes = specs.map((n, k) => fleetNode(`n${k}`, { hostname: `h${(k * 7) % 13}-${k}`, region: n.region, status: n.status, maxInstances: n.maxInstances }));
        const deployments = Array.from({ length: 6 }, (_, d) => deployment(`d${d}`, d === pinned ? { nodeSelector: { hostname: 'h0-0' } } : {}));
        const instances = specs.flatMap((n, k) =>
          n.instances.map((i, j) => instance(`i${k}-${j}`, `d${i.deployment}`, `n${k}`, { desired: i.desired, status: i.stopped || i.desired === 'stopped' ? 'stopped' : 'running' })),
        );
        const upgraded = new Set(specs.flatMap((n, k) => (n.upgraded ? [`n${k}`] : [])));
        const planInput: PlanInput = {
          spec: spec({ order, batch: { size: batch } }),
          nodes,
          instances,
          deployments,
          currentVersion: (n) => (upgraded.has(n.id) ? '2.0.0' : '1.0.0'),
          disruptive: true,
        };
        const plan = planRollout(planInput);
        expect(plan.moves.map((m) => [m.instance_id, m.to_node])).toEqual(referenceMoves(planInput, plan));
      }),
      { numRuns: 300 },
    );
  });
});
