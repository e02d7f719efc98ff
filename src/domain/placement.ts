import { isSchedulable } from './node-status.js';
import { isPinned, matchesSelector } from './selector.js';
import type { Deployment, FleetNode, Instance } from './types.js';

/** An instance occupies a slot on its node until the agent reports it stopped. */
export function occupiesSlot(instance: Pick<Instance, 'status'>): boolean {
  return instance.status !== 'stopped';
}

/** Slots in use per node id. */
export function loadByNode(instances: readonly Instance[]): Map<string, number> {
  const load = new Map<string, number>();
  for (const instance of instances) {
    if (occupiesSlot(instance)) load.set(instance.nodeId, (load.get(instance.nodeId) ?? 0) + 1);
  }
  return load;
}

export interface TargetRequest {
  deployment: Deployment;
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
 * Picks the node for one new instance, or null when none has room. Order of preference:
 * a node without a replica of this deployment, a node not to avoid, the preferred region, the least loaded node,
 * then hostname so the choice is deterministic.
 */
export function pickTargetNode(request: TargetRequest): FleetNode | null {
  const { deployment, nodes, load, replicaNodes, preferRegion, exclude, ignoreSelector, avoid } = request;
  const candidates = nodes.filter(
    (node) =>
      isSchedulable(node) &&
      !exclude?.has(node.id) &&
      (ignoreSelector || matchesSelector(node, deployment.nodeSelector)) &&
      (load.get(node.id) ?? 0) < node.maxInstances,
  );
  if (candidates.length === 0) return null;
  const score = (node: FleetNode): [number, number, number, number] => [
    replicaNodes.has(node.id) ? 1 : 0,
    avoid?.has(node.id) ? 1 : 0,
    preferRegion !== undefined && node.region !== preferRegion ? 1 : 0,
    (load.get(node.id) ?? 0) / node.maxInstances,
  ];
  const sorted = [...candidates].sort((a, b) => {
    const sa = score(a);
    const sb = score(b);
    for (let i = 0; i < sa.length; i++) {
      const diff = (sa[i] as number) - (sb[i] as number);
      if (diff !== 0) return diff;
    }
    return a.hostname.localeCompare(b.hostname);
  });
  return sorted[0] ?? null;
}

/** Load and replica spread, updated as one pass places instances, so each choice sees the ones before it. */
export interface PlacementState {
  load: Map<string, number>;
  replicaNodes: Map<string, Set<string>>;
}

export function placementState(instances: readonly Instance[]): PlacementState {
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
  for (let i = 0; i < count; i++) {
    const replicaNodes = state.replicaNodes.get(deployment.id) ?? new Set<string>();
    const node = pickTargetNode({ deployment, nodes, load: state.load, replicaNodes });
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
  for (const instance of onNode) {
    const deployment = deployments.get(instance.deploymentId);
    if (!deployment) continue;
    if (isPinned(deployment.nodeSelector)) {
      plan.pinned.push(instance.id);
      continue;
    }
    const target = pickTargetNode({
      deployment,
      nodes,
      load: state.load,
      replicaNodes: state.replicaNodes.get(deployment.id) ?? new Set<string>(),
      preferRegion: source?.region,
      exclude: new Set([nodeId]),
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
