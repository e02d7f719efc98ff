import { isSchedulable } from './node-status.js';
import { isPinned, matchesSelector } from './selector.js';
import { byHostname, compareRank, loadRatio, PlacementIndex, placementTier } from './placement-index.js';
import type { Deployment, FleetNode, Instance } from './types.js';

/** An instance occupies a slot on its node until the agent reports it stopped. */
export function occupiesSlot(instance: Pick<Instance, 'status'>): boolean {
  return instance.status !== 'stopped';
}

/** Slots in use per node id. */
export function loadByNode(instances: readonly Pick<Instance, 'nodeId' | 'status'>[]): Map<string, number> {
  const load = new Map<string, number>();
  for (const instance of instances) {
    if (occupiesSlot(instance)) load.set(instance.nodeId, (load.get(instance.nodeId) ?? 0) + 1);
  }
  return load;
}

export interface TargetRequest {
  deployment: Pick<Deployment, 'nodeSelector'>;
  nodes: readonly FleetNode[];
  /** Current load per node, including placements already decided in this pass. */
  load: ReadonlyMap<string, number>;
  /** Nodes already hosting a replica of this deployment (kept apart when possible). */
  replicaNodes: ReadonlySet<string>;
  /** Prefer this region (a migration stays in its region when it can). */
  preferRegion?: string;
  /** Never pick these nodes (the node being drained). */
  exclude?: ReadonlySet<string>;
  /** Ignore the deployment's node selector (a forced migration of a pinned instance). */
  ignoreSelector?: boolean;
  /** Use these nodes only when nothing else fits (nodes a rollout has not upgraded yet). */
  avoid?: ReadonlySet<string>;
}

/**
 * Picks the node for one new instance, or null when none has room. Order of preference
 * (`compareRank`, shared with PlacementIndex): a node without a replica of this deployment, a
 * node not to avoid, the preferred region, the least loaded node, then hostname so the choice is
 * deterministic. One linear pass: for many placements over one fleet, use a PlacementIndex.
 */
export function pickTargetNode(request: TargetRequest): FleetNode | null {
  const { deployment, nodes, load, exclude, ignoreSelector } = request;
  let best: FleetNode | null = null;
  let bestTier = 0;
  let bestRatio = 0;
  for (const node of nodes) {
    const used = load.get(node.id) ?? 0;
    if (used >= node.maxInstances || !isSchedulable(node) || exclude?.has(node.id)) continue;
    if (!ignoreSelector && !matchesSelector(node, deployment.nodeSelector)) continue;
    const tier = placementTier(node, request);
    const ratio = loadRatio(used, node);
    const diff = best === null ? -1 : compareRank(tier, ratio, bestTier, bestRatio);
    if (diff < 0 || (diff === 0 && byHostname(node, best as FleetNode) < 0)) {
      best = node;
      bestTier = tier;
      bestRatio = ratio;
    }
  }
  return best;
}

/** Load and replica spread, updated as one pass places instances, so each choice sees the ones before it. */
export interface PlacementState {
  load: Map<string, number>;
  replicaNodes: Map<string, Set<string>>;
  /** Built by the first placement over a node list and kept in step by recordPlacement (change load only through it). */
  index?: PlacementIndex;
}

/** The state's index over `nodes`, built on first use (a pass places many instances over one node list). */
function indexFor(state: PlacementState, nodes: readonly FleetNode[]): PlacementIndex {
  if (state.index?.nodes !== nodes) state.index = new PlacementIndex(nodes, (k) => state.load.get((nodes[k] as FleetNode).id) ?? 0);
  return state.index;
}

const NONE: ReadonlySet<string> = new Set();

export function placementState(instances: readonly Pick<Instance, 'nodeId' | 'status' | 'desired' | 'deploymentId'>[]): PlacementState {
  const replicaNodes = new Map<string, Set<string>>();
  for (const i of instances) {
    if (i.desired !== 'running') continue;
    const set = replicaNodes.get(i.deploymentId) ?? new Set<string>();
    replicaNodes.set(i.deploymentId, set);
    set.add(i.nodeId);
  }
  return { load: loadByNode(instances), replicaNodes };
}

export function recordPlacement(state: PlacementState, deploymentId: string, nodeId: string): void {
  state.load.set(nodeId, (state.load.get(nodeId) ?? 0) + 1);
  state.index?.touch(nodeId);
  const set = state.replicaNodes.get(deploymentId) ?? new Set<string>();
  state.replicaNodes.set(deploymentId, set);
  set.add(nodeId);
}

/** Places `count` new replicas of a deployment; fewer when the fleet runs out of room. */
export function placeReplicas(
  deployment: Deployment,
  count: number,
  nodes: readonly FleetNode[],
  state: PlacementState,
): string[] {
  const placed: string[] = [];
  const index = indexFor(state, nodes);
  for (let i = 0; i < count; i++) {
    const node = index.pick({ deployment, replicaNodes: state.replicaNodes.get(deployment.id) ?? NONE });
    if (!node) break;
    placed.push(node.id);
    recordPlacement(state, deployment.id, node.id);
  }
  return placed;
}

export interface DrainPlan {
  moves: { instanceId: string; targetNodeId: string }[];
  /** Instances that may not move because their deployment pins them to matching nodes. */
  pinned: string[];
  /** Instances that could move but fit nowhere. */
  unplaceable: { instanceId: string; deploymentId: string; reason: string }[];
}

/**
 * Where every instance of a node would go if the node were drained now. Instances that
 * already have a replacement in flight are skipped; the plan is all-or-nothing for the
 * caller to decide (a drain that cannot fit everything must stop nothing).
 */
export function planDrain(
  nodeId: string,
  nodes: readonly FleetNode[],
  instances: readonly Instance[],
  deployments: ReadonlyMap<string, Deployment>,
  state: PlacementState = placementState(instances),
): DrainPlan {
  const source = nodes.find((n) => n.id === nodeId);
  const plan: DrainPlan = { moves: [], pinned: [], unplaceable: [] };
  const inFlight = new Set(instances.filter((i) => i.replaces !== null).map((i) => i.replaces));
  const onNode = instances
    .filter((i) => i.nodeId === nodeId && i.desired === 'running' && i.replaces === null && !inFlight.has(i.id))
    .sort((a, b) => a.id.localeCompare(b.id));
  const index = indexFor(state, nodes);
  const exclude = new Set([nodeId]);
  for (const instance of onNode) {
    const deployment = deployments.get(instance.deploymentId);
    if (!deployment) continue;
    if (isPinned(deployment.nodeSelector)) {
      plan.pinned.push(instance.id);
      continue;
    }
    const target = index.pick({
      deployment,
      replicaNodes: state.replicaNodes.get(deployment.id) ?? NONE,
      preferRegion: source?.region,
      exclude,
    });
    if (!target) {
      plan.unplaceable.push({
        instanceId: instance.id,
        deploymentId: deployment.id,
        reason: `no ready node with room${deployment.nodeSelector ? ' matching the selector' : ''}`,
      });
      continue;
    }
    plan.moves.push({ instanceId: instance.id, targetNodeId: target.id });
    recordPlacement(state, deployment.id, target.id);
  }
  return plan;
}
