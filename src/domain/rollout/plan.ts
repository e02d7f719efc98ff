import { isSchedulable } from '../node-status.js';
import { isPinned, matchesSelector } from '../selector.js';
import { pickTargetNode, placementState, recordPlacement, type TargetRequest } from '../placement.js';
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
 * The nodes that can win pickTargetNode for a request: every candidate tied with the best on
 * its ranking (replica spread, avoid, region, load), leaving it only the hostname tie-break.
 * pickTargetNode sorts every node it is given (~1 ms at 1,000 nodes) and a plan places every
 * instance on the drained nodes, so a 1,000-node, 20,000-instance dry run took 18 s; this linear
 * pass makes it well under a second. plan.test.ts checks the choice equals the unfiltered one.
 */
export function contenders(request: TargetRequest): FleetNode[] {
  const { deployment, nodes, load, replicaNodes, preferRegion, exclude, ignoreSelector, avoid } = request;
  let best = Number.POSITIVE_INFINITY;
  let list: FleetNode[] = [];
  for (const node of nodes) {
    const used = load.get(node.id) ?? 0;
    if (used >= node.maxInstances || !isSchedulable(node) || exclude?.has(node.id)) continue;
    if (!ignoreSelector && !matchesSelector(node, deployment.nodeSelector)) continue;
    // The ranking as one number: the three yes/no criteria as the integer part, in their order
    // of precedence, and the load ratio (below 1 for a node with room) as the fraction.
    const tier = (replicaNodes.has(node.id) ? 4 : 0) + (avoid?.has(node.id) ? 2 : 0) + (preferRegion !== undefined && node.region !== preferRegion ? 1 : 0);
    const key = tier + used / node.maxInstances;
    if (key < best) {
      best = key;
      list = [node];
    } else if (key === best) list.push(node);
  }
  return list;
}

/**
 * The dry run: batches, where every instance of a drained node goes, and how long it should
 * take. Moves are simulated batch by batch on the fleet as it will be, preferring nodes that
 * are already upgraded (or not in the rollout) so an instance moves at most once.
 */
export function planRollout(input: PlanInput): RolloutPlan {
  const { spec, nodes, instances, deployments } = input;
  const base = planBatches(spec, nodes, input.currentVersion);
  const drainMode = effectiveDrainMode(spec, input.disruptive);
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const deploymentById = new Map(deployments.map((d) => [d.id, d]));
  const pending = new Set(base.batches.flatMap((b) => b.nodes.map((n) => n.id)));
  const moves: PlannedMove[] = [];
  const pinned: RolloutPlan['pinned'] = [];
  const movesPerInstance = new Map<string, number>();

  // Simulated fleet: instance → node, updated as batches drain.
  const location = new Map(instances.filter((i) => i.desired === 'running').map((i) => [i.id, i.nodeId]));
  const live = () =>
    instances.filter((i) => location.has(i.id)).map((i) => ({ ...i, nodeId: location.get(i.id) as string }));

  if (drainMode === 'migrate') {
    for (const batch of base.batches) {
      const inBatch = new Set(batch.nodes.map((n) => n.id));
      for (const id of inBatch) pending.delete(id);
      const current = live();
      const state = placementState(current);
      // Nodes pickTargetNode could choose at all in this batch (ready, not being drained now).
      const open = nodes.filter((n) => isSchedulable(n) && !inBatch.has(n.id));
      for (const planned of batch.nodes) {
        for (const instance of current.filter((i) => i.nodeId === planned.id)) {
          const deployment = deploymentById.get(instance.deploymentId);
          if (!deployment) continue;
          if (isPinned(deployment.nodeSelector)) {
            pinned.push({ instance_id: instance.id, deployment: deployment.name, node_id: planned.id, hostname: planned.hostname });
            continue;
          }
          const request: TargetRequest = {
            deployment,
            nodes: open,
            load: state.load,
            replicaNodes: state.replicaNodes.get(deployment.id) ?? new Set(),
            preferRegion: planned.region,
            exclude: inBatch,
            avoid: pending,
          };
          const target = pickTargetNode({ ...request, nodes: contenders(request) });
          moves.push({
            instance_id: instance.id,
            deployment: deployment.name,
            batch: batch.index,
            from_node: planned.id,
            from_hostname: planned.hostname,
            to_node: target?.id ?? null,
            to_hostname: target ? (byId.get(target.id)?.hostname ?? null) : null,
          });
          if (!target) continue;
          recordPlacement(state, deployment.id, target.id);
          location.set(instance.id, target.id);
          movesPerInstance.set(instance.id, (movesPerInstance.get(instance.id) ?? 0) + 1);
        }
      }
    }
  }

  const perNodeInstall = input.historyNodeSeconds ?? DEFAULT_INSTALL_S + spec.strategy.health.minHealthyTime / 1000;
  let seconds = 0;
  for (const batch of base.batches) {
    const drained = moves.filter((m) => m.batch === batch.index).length;
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
    pinned,
    max_moves_per_instance: Math.max(0, ...movesPerInstance.values()),
    estimated_duration_s: Math.round(seconds),
  };
}
