import { occupiesSlot } from '../placement.js';
import { PlacementIndex } from '../placement-index.js';
import { isPinned } from '../selector.js';
import type { Deployment, FleetNode, Instance } from '../types.js';
import { type BatchPlan, planBatches } from './batches.js';
import { effectiveDrainMode, type RolloutSpec } from './spec.js';

export interface PlannedMove {
  instance_id: string;
  deployment: string;
  batch: number;
  from_node: string;
  from_hostname: string;
  /** null when nothing has room (preflight reports it). */
  to_node: string | null;
  to_hostname: string | null;
}

export interface RolloutPlan extends BatchPlan {
  drain_mode: 'migrate' | 'restart' | 'none';
  moves: PlannedMove[];
  /** Instances that cannot migrate, with the node they pin. */
  pinned: { instance_id: string; deployment: string; node_id: string; hostname: string }[];
  /** Most times any one instance moves in this plan (1 when placement prefers upgraded nodes). */
  max_moves_per_instance: number;
  estimated_duration_s: number;
}

export interface PlanInput {
  spec: RolloutSpec;
  nodes: readonly FleetNode[];
  instances: readonly Instance[];
  deployments: readonly Deployment[];
  /** Version of the target component each node reports now. */
  currentVersion: (node: FleetNode) => string | undefined;
  disruptive: boolean;
  /** Average seconds one node took in past rollouts of this component, when known. */
  historyNodeSeconds?: number;
}

// Without history: a node's install and restart take about a minute (measured on the demo
// fleet, rounded up), and a drain about 10 s per instance moved.
const DEFAULT_INSTALL_S = 60;
const DRAIN_S_PER_INSTANCE = 10;

/**
 * The dry run: batches, where every instance of a drained node goes, and how long it should
 * take. Moves are simulated batch by batch on the fleet as it will be, preferring nodes that
 * are already upgraded (or not in the rollout) so an instance moves at most once.
 */
export function planRollout(input: PlanInput): RolloutPlan {
  const { spec } = input;
  const base = planBatches(spec, input.nodes, input.currentVersion);
  const drainMode = effectiveDrainMode(spec, input.disruptive);
  const simulated = drainMode === 'migrate' ? simulateMoves(input, base) : undefined;
  const moves = simulated?.moves ?? [];

  const perNodeInstall = input.historyNodeSeconds ?? DEFAULT_INSTALL_S + spec.strategy.health.minHealthyTime / 1000;
  let seconds = 0;
  for (const batch of base.batches) {
    const drained = simulated?.movesPerBatch[batch.index] ?? 0;
    // History already includes the drain; without it, estimate the drain from the moves.
    const perNodeDrain =
      input.historyNodeSeconds === undefined && batch.nodes.length > 0 ? Math.ceil(drained / batch.nodes.length) * DRAIN_S_PER_INSTANCE : 0;
    seconds += perNodeInstall + perNodeDrain;
    if (batch.index < base.batches.length - 1) seconds += spec.strategy.pauseBetweenBatches / 1000;
    if (batch.canary) seconds += (spec.strategy.canary?.soak ?? 0) / 1000;
  }
  return {
    ...base,
    drain_mode: drainMode,
    moves,
    pinned: simulated?.pinned ?? [],
    max_moves_per_instance: simulated?.maxMovesPerInstance ?? 0,
    estimated_duration_s: Math.round(seconds),
  };
}

interface SimulatedMoves {
  moves: PlannedMove[];
  pinned: RolloutPlan['pinned'];
  movesPerBatch: number[];
  maxMovesPerInstance: number;
}

/**
 * Drains the batches in order on a model of the fleet: every instance of a batch's nodes goes
 * where pickTargetNode would send it then (the ranking of placement-index.ts, answered by a
 * PlacementIndex), never onto a node of the same batch, avoiding nodes still to be upgraded.
 * Locations, load and replica spread are kept by position and updated per move, so the plan
 * costs one pass over the instances plus O(log nodes) per move (issue 9: 10,000 nodes and
 * 200,000 instances; rebuilding them per batch and sorting nodes per move took minutes).
 */
function simulateMoves(input: PlanInput, base: BatchPlan): SimulatedMoves {
  const { nodes } = input;
  const result: SimulatedMoves = { moves: [], pinned: [], movesPerBatch: base.batches.map(() => 0), maxMovesPerInstance: 0 };
  const load = new Int32Array(nodes.length);
  const index = new PlacementIndex(nodes, (k) => load[k] as number);
  const deploymentAt = new Map(input.deployments.map((d, k) => [d.id, k]));
  // Replica counts per deployment (by position) and node (by position): small maps, one per deployment.
  const replicas = input.deployments.map(() => new Map<number, number>());
  const addReplica = (counts: Map<number, number>, k: number, delta: number) => {
    const next = (counts.get(k) ?? 0) + delta;
    if (next > 0) counts.set(k, next);
    else counts.delete(k);
  };

  // The simulated fleet: instances wanted running, by their position in the input (the order a
  // node's instances drain in), listed per node, each with its deployment's position (-1: unknown).
  // One pass: touching 200,000 instance objects is most of what a plan costs.
  const running: Instance[] = [];
  const onNode: number[][] = nodes.map(() => []);
  const deploymentOf: number[] = [];
  for (const instance of input.instances) {
    if (instance.desired !== 'running') continue;
    const i = running.push(instance) - 1;
    const d = deploymentAt.get(instance.deploymentId) ?? -1;
    deploymentOf.push(d);
    const k = index.positionOf(instance.nodeId);
    if (k < 0) continue; // on a node the plan does not know: it never drains, and nothing lands there
    (onNode[k] as number[]).push(i);
    if (occupiesSlot(instance)) load[k] = (load[k] as number) + 1;
    if (d >= 0) addReplica(replicas[d] as Map<number, number>, k, 1);
  }
  for (let k = 0; k < nodes.length; k++) index.touchAt(k);
  const batchPositions = base.batches.map((b) => b.nodes.map((n) => index.positionOf(n.id)));
  for (const positions of batchPositions) for (const k of positions) index.setAvoidedAt(k, true);

  const moveCount = new Int32Array(running.length);
  for (const batch of base.batches) {
    const positions = batchPositions[batch.index] as number[];
    // A batch's nodes are upgraded from now on (no longer avoided) but take nothing while they drain.
    for (const k of positions) {
      index.setAvoidedAt(k, false);
      index.setOpenAt(k, false);
    }
    // A placement holds its slot for the rest of the batch even if the instance does not occupy
    // one (reported stopped); from the next batch on, load counts only instances that do.
    const heldForBatch: number[] = [];
    batch.nodes.forEach((planned, b) => {
      const from = positions[b] as number;
      const here = (onNode[from] as number[]).sort((x, y) => x - y);
      const staying: number[] = [];
      for (const i of here) {
        const instance = running[i] as Instance;
        const d = deploymentOf[i] as number;
        if (d < 0) {
          staying.push(i);
          continue;
        }
        const deployment = input.deployments[d] as Deployment;
        if (isPinned(deployment.nodeSelector)) {
          result.pinned.push({ instance_id: instance.id, deployment: deployment.name, node_id: planned.id, hostname: planned.hostname });
          staying.push(i);
          continue;
        }
        const counts = replicas[d] as Map<number, number>;
        const to = index.pickAt({ deployment, replicaAt: counts, preferRegion: planned.region });
        const target = to < 0 ? undefined : (nodes[to] as FleetNode);
        result.moves.push({
          instance_id: instance.id,
          deployment: deployment.name,
          batch: batch.index,
          from_node: planned.id,
          from_hostname: planned.hostname,
          to_node: target?.id ?? null,
          to_hostname: target?.hostname ?? null,
        });
        result.movesPerBatch[batch.index] = (result.movesPerBatch[batch.index] as number) + 1;
        if (!target) {
          staying.push(i);
          continue;
        }
        (onNode[to] as number[]).push(i);
        load[to] = (load[to] as number) + 1;
        index.touchAt(to);
        if (occupiesSlot(instance)) load[from] = (load[from] as number) - 1;
        else heldForBatch.push(to);
        addReplica(counts, to, 1);
        addReplica(counts, from, -1);
        const moved = (moveCount[i] as number) + 1;
        moveCount[i] = moved;
        if (moved > result.maxMovesPerInstance) result.maxMovesPerInstance = moved;
      }
      onNode[from] = staying;
    });
    for (const k of heldForBatch) {
      load[k] = (load[k] as number) - 1;
      index.touchAt(k);
    }
    for (const k of positions) index.setOpenAt(k, true);
  }
  return result;
}
