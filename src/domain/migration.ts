import { isSchedulable } from './node-status.js';
import { pickTargetNode, placementState } from './placement.js';
import { isPinned, matchesSelector } from './selector.js';
import type { Deployment, FleetNode, Instance } from './types.js';

export type MigrationChoice =
  | { ok: true; target: FleetNode }
  | { ok: false; error: 'not_running' | 'in_progress' | 'pinned' | 'target_invalid' | 'no_capacity'; reason: string; replacement?: string };

/**
 * Where a single instance may move (`POST /instances/:id/migrate`). A named target must be
 * another ready node with room (and match the selector unless forced); otherwise the best
 * node in the same region first, away from the deployment's other replicas.
 */
export function chooseMigrationTarget(
  instance: Instance,
  deployment: Deployment,
  nodes: readonly FleetNode[],
  instances: readonly Instance[],
  request: { targetNodeId?: string | undefined; force?: boolean | undefined },
  /** Slots in use per node, every deployment counted (default: counted from `instances`, which then must be all of them). */
  load?: ReadonlyMap<string, number>,
): MigrationChoice {
  if (instance.desired !== 'running' || instance.replaces !== null) {
    return { ok: false, error: 'not_running', reason: 'instance is not a running instance' };
  }
  const replacement = instances.find((i) => i.replaces === instance.id);
  if (replacement) return { ok: false, error: 'in_progress', reason: 'already migrating', replacement: replacement.id };
  const pinned = isPinned(deployment.nodeSelector);
  if (pinned && !request.force) return { ok: false, error: 'pinned', reason: 'pinned by node_selector' };

  // All instances, not only running ones: one still stopping holds its slot until its agent reports it stopped.
  const state = placementState(instances);
  if (load) state.load = new Map(load);
  const source = nodes.find((n) => n.id === instance.nodeId);
  if (request.targetNodeId !== undefined) {
    const target = nodes.find((n) => n.id === request.targetNodeId);
    if (!target) return { ok: false, error: 'target_invalid', reason: 'no such node' };
    if (target.id === instance.nodeId) return { ok: false, error: 'target_invalid', reason: 'it is the node the instance runs on' };
    if (!isSchedulable(target)) return { ok: false, error: 'target_invalid', reason: `node is ${target.status}` };
    if ((state.load.get(target.id) ?? 0) >= target.maxInstances) return { ok: false, error: 'target_invalid', reason: 'node is full' };
    if (!pinned && !matchesSelector(target, deployment.nodeSelector)) {
      return { ok: false, error: 'target_invalid', reason: "node does not match the deployment's node_selector" };
    }
    return { ok: true, target };
  }
  const target = pickTargetNode({
    deployment,
    nodes,
    load: state.load,
    replicaNodes: state.replicaNodes.get(deployment.id) ?? new Set(),
    preferRegion: source?.region,
    exclude: new Set([instance.nodeId]),
    ignoreSelector: pinned,
  });
  if (!target) return { ok: false, error: 'no_capacity', reason: 'no ready node with room' };
  return { ok: true, target };
}
