import { occupiesSlot } from '../placement.js';
import { type NodeSet, PlacementIndex } from '../placement-index.js';
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

/** What the plan reads of a deployment (the operator loads only these columns). */
export type PlanDeployment = Pick<Deployment, 'id' | 'name' | 'replicas' | 'minAvailable' | 'nodeSelector'>;
/** What the plan reads of an instance. */
export type PlanInstance = Pick<Instance, 'id' | 'deploymentId' | 'nodeId' | 'desired' | 'status'>;

export interface PlanInput {
  spec: RolloutSpec;
  nodes: readonly FleetNode[];
  instances: readonly PlanInstance[];
  deployments: readonly PlanDeployment[];
  /** Version of the target component each node reports now. */
  currentVersion: (node: FleetNode) => string | undefined;
  /** Several targets: whether the node already runs every one of them (default: the first target's version). */
  atTarget?: (node: FleetNode) => boolean;
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
  const base = planBatches(spec, input.nodes, input.currentVersion, input.atTarget);
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
  const { nodes, deployments } = input;
  const result: SimulatedMoves = { moves: [], pinned: [], movesPerBatch: base.batches.map(() => 0), maxMovesPerInstance: 0 };
  const load = new Int32Array(nodes.length);
  const index = new PlacementIndex(nodes, (k) => load[k] as number);
  const deploymentAt = new Map<string, number>();
  deployments.forEach((d, k) => deploymentAt.set(d.id, k));
  const pinnedDeployment = Uint8Array.from(deployments, (d) => (isPinned(d.nodeSelector) ? 1 : 0));
  const replicas = new ReplicaCounts(nodes.length, input.instances.length);
  const replicasOf = deployments.map((_, d) => replicas.of(d));

  // The simulated fleet, by each instance's position among the running ones (the order a node's
  // instances drain in): its deployment's position (-1: unknown), whether it occupies a slot, and
  // which instances each node holds. The instance objects are read in this one pass only: at
  // 200,000 instances each further pass over them cost tens of milliseconds in cache misses.
  const count = input.instances.length;
  const running: PlanInstance[] = [];
  const deploymentOf = new Int32Array(count);
  const nodeOf = new Int32Array(count);
  const occupies = new Uint8Array(count);
  const perNode = new Int32Array(nodes.length + 1);
  for (const instance of input.instances) {
    if (instance.desired !== 'running') continue;
    const i = running.push(instance) - 1;
    const d = deploymentAt.get(instance.deploymentId) ?? -1;
    const k = index.positionOf(instance.nodeId);
    deploymentOf[i] = d;
    nodeOf[i] = k;
    if (k < 0) continue; // on a node the plan does not know: it never drains, and nothing lands there
    perNode[k + 1] = (perNode[k + 1] as number) + 1;
    if (occupiesSlot(instance)) {
      occupies[i] = 1;
      load[k] = (load[k] as number) + 1;
    }
    if (d >= 0) replicas.add(d, k, 1);
  }
  // The instances each node starts with, ascending, as one array sliced by node (first[k] to
  // first[k + 1]); instances that land on a node later go to `arrived[k]`.
  const first = perNode;
  for (let k = 0; k < nodes.length; k++) first[k + 1] = (first[k + 1] as number) + (first[k] as number);
  const initial = new Int32Array(first[nodes.length] as number);
  const fill = first.slice(0, nodes.length);
  for (let i = 0; i < running.length; i++) {
    const k = nodeOf[i] as number;
    if (k < 0) continue;
    initial[fill[k] as number] = i;
    fill[k] = (fill[k] as number) + 1;
  }
  const drained = new Uint8Array(nodes.length);
  const arrived: (number[] | undefined)[] = new Array<number[] | undefined>(nodes.length);

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
    let moved = 0;
    batch.nodes.forEach((planned, b) => {
      const from = positions[b] as number;
      const here = drained[from] === 1 ? [] : Array.from(initial.subarray(first[from], first[from + 1]));
      drained[from] = 1;
      const landed = arrived[from];
      if (landed !== undefined) {
        for (const i of landed) here.push(i);
        here.sort((x, y) => x - y);
      }
      const staying: number[] = [];
      for (const i of here) {
        const d = deploymentOf[i] as number;
        if (d < 0) {
          staying.push(i);
          continue;
        }
        const deployment = deployments[d] as PlanDeployment;
        if (pinnedDeployment[d] === 1) {
          result.pinned.push({ instance_id: (running[i] as PlanInstance).id, deployment: deployment.name, node_id: planned.id, hostname: planned.hostname });
          staying.push(i);
          continue;
        }
        const to = index.pickAt({ deployment, replicaAt: replicasOf[d] as NodeSet, preferRegion: planned.region });
        const target = to < 0 ? undefined : (nodes[to] as FleetNode);
        result.moves.push({
          instance_id: (running[i] as PlanInstance).id,
          deployment: deployment.name,
          batch: batch.index,
          from_node: planned.id,
          from_hostname: planned.hostname,
          to_node: target?.id ?? null,
          to_hostname: target?.hostname ?? null,
        });
        moved++;
        if (!target) {
          staying.push(i);
          continue;
        }
        (arrived[to] ??= []).push(i);
        load[to] = (load[to] as number) + 1;
        index.touchAt(to);
        if (occupies[i] === 1) load[from] = (load[from] as number) - 1;
        else heldForBatch.push(to);
        replicas.add(d, to, 1);
        replicas.add(d, from, -1);
        const times = (moveCount[i] as number) + 1;
        moveCount[i] = times;
        if (times > result.maxMovesPerInstance) result.maxMovesPerInstance = times;
      }
      arrived[from] = staying;
    });
    result.movesPerBatch[batch.index] = moved;
    for (const k of heldForBatch) {
      load[k] = (load[k] as number) - 1;
      index.touchAt(k);
    }
    for (const k of positions) index.setOpenAt(k, true);
  }
  return result;
}

/**
 * Replicas per (deployment, node), both by position: one open-addressing hash table in typed
 * arrays. A Map per deployment cost a third of a plan at issue 9's scale (600,000 updates, each
 * a Map operation); a count that drops to zero keeps its entry, so nothing is ever deleted.
 */
class ReplicaCounts {
  private deploymentKey: Int32Array;
  private nodeKey: Int32Array;
  private count: Int32Array;
  private size = 0;

  constructor(
    private readonly nodeCount: number,
    expected: number,
  ) {
    let capacity = 16;
    while (capacity < expected * 2) capacity *= 2;
    this.deploymentKey = new Int32Array(capacity).fill(-1);
    this.nodeKey = new Int32Array(capacity);
    this.count = new Int32Array(capacity);
  }

  /** The nodes hosting a replica of deployment `d`, as the set a pick asks. */
  of(d: number): NodeSet {
    return { has: (k) => this.countAt(d, k) > 0 };
  }

  countAt(d: number, k: number): number {
    const at = this.slot(d, k);
    return this.deploymentKey[at] === -1 ? 0 : (this.count[at] as number);
  }

  add(d: number, k: number, delta: number): void {
    let at = this.slot(d, k);
    if (this.deploymentKey[at] === -1) {
      if ((this.size + 1) * 2 > this.count.length) {
        this.grow();
        at = this.slot(d, k);
      }
      this.deploymentKey[at] = d;
      this.nodeKey[at] = k;
      this.size++;
    }
    this.count[at] = (this.count[at] as number) + delta;
  }

  /** The entry of (d, k), or the empty slot where it would go (linear probing). */
  private slot(d: number, k: number): number {
    const mask = this.count.length - 1;
    let at = (Math.imul(d * this.nodeCount + k, 0x9e3779b1) >>> 0) & mask;
    for (;;) {
      const key = this.deploymentKey[at] as number;
      if (key === -1 || (key === d && this.nodeKey[at] === k)) return at;
      at = (at + 1) & mask;
    }
  }

  private grow(): void {
    const { deploymentKey, nodeKey, count } = this;
    this.deploymentKey = new Int32Array(count.length * 2).fill(-1);
    this.nodeKey = new Int32Array(count.length * 2);
    this.count = new Int32Array(count.length * 2);
    for (let at = 0; at < count.length; at++) {
      const d = deploymentKey[at] as number;
      if (d === -1) continue;
      const to = this.slot(d, nodeKey[at] as number);
      this.deploymentKey[to] = d;
      this.nodeKey[to] = nodeKey[at] as number;
      this.count[to] = count[at] as number;
    }
  }
}
