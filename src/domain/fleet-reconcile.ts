import { decideLiveness, type HearingFacts, type LivenessNode, type RegionSilenceOptions } from './liveness-guard.js';
import { loadByNode, type PlacementState, placeReplicas, placementState, planDrain } from './placement.js';
import type { Deployment, Drain, DrainState, FleetNode, Instance, NodeStatus } from './types.js';
import { EVENT } from './events.js';
import { MIGRATION_DEFAULTS, type MigrationLimits, type MigrationMode, type MigrationTrigger, migrationModeFor } from './instance-migration.js';

export interface FleetSnapshot {
  nodes: FleetNode[];
  deployments: Deployment[];
  instances: Instance[];
  drains: Drain[];
  /**
   * Slots in use per node, counting every instance on it (a scoped snapshot holds only some of
   * them). Absent: counted from `instances`, which then must be every instance of the fleet.
   */
  load?: ReadonlyMap<string, number>;
}

/**
 * What a liveness pass decides on: the nodes that may change status (the silent, the down, the
 * ones something happened to) and how many nodes each region has in all (a scoped load does not
 * hold every node, and region silence is a share of the whole region). Absent: counted from `nodes`.
 */
export interface LivenessSnapshot {
  nodes: LivenessNode[];
  drains: Pick<Drain, 'nodeId' | 'state'>[];
  regionTotals?: ReadonlyMap<string, number>;
}

export interface FleetOptions {
  heartbeatGraceMs: number;
  /** A replacement that is not healthy this long after creation is abandoned. */
  migrationTimeoutMs: number;
  /**
   * When this share of a region goes silent at once, none of it is marked down (liveness-guard.ts).
   * Absent: no region rule, every node is judged alone (the operator passes DEFAULT_REGION_SILENCE).
   */
  regionSilence?: RegionSilenceOptions;
  /** Downtime limit and deadline of the moves drains start (default MIGRATION_DEFAULTS: 300 ms, 10 min). */
  moveLimits?: MigrationLimits;
}

export interface FleetEvent {
  kind: string;
  nodeId?: string;
  instanceId?: string;
  data: Record<string, unknown>;
}

/** Everything one reconciler pass wants changed, as data; the shell applies it in one transaction. */
export interface FleetActions {
  nodeStatus: { nodeId: string; status: NodeStatus }[];
  /** New instances; one that `replaces` another is the target of a move (`move` says how it moves). */
  create: { deploymentId: string; nodeId: string; replaces: string | null; move?: MoveSpec }[];
  /** A healthy instance becomes an endpoint (and a replacement stops being one). */
  publish: string[];
  /** Stop serving and stop running; `restartOnEnable` keeps the row for `enable`. */
  stop: { instanceId: string; restartOnEnable: boolean }[];
  /** Rows of instances the agent reports stopped and nobody needs any more. */
  remove: string[];
  drains: { nodeId: string; state: DrainState; message: string; blockedBy: string[] }[];
  events: FleetEvent[];
  /** Deleted deployments whose last instance row goes in this pass: the deployment row goes too (absent: none). */
  deleteDeployments?: string[];
}

/** How a placed replacement moves its instance (DESIGN.md §10): the migration row written with it. */
export interface MoveSpec extends MigrationLimits {
  fromNodeId: string;
  mode: MigrationMode;
  trigger: MigrationTrigger;
}

export function emptyFleetActions(): FleetActions {
  return { nodeStatus: [], create: [], publish: [], stop: [], remove: [], drains: [], events: [] };
}

/**
 * One level-triggered pass over the fleet: node liveness, migrations in flight, replica
 * counts and drains. It never looks at what just happened, only at the current facts,
 * so running it twice on the same snapshot asks for the same changes. The operator runs its
 * two halves apart, keyed (reconcileLiveness over the nodes that may change status,
 * reconcileScope over the deployments and drains a change touched); this is both over all of it.
 */
export function reconcileFleet(snapshot: FleetSnapshot, now: Date, options: FleetOptions, hearing: HearingFacts = {}): FleetActions {
  const liveness = reconcileLiveness(snapshot, now, options, hearing);
  const statusById = new Map(liveness.nodeStatus.map((c) => [c.nodeId, c.status]));
  const nodes = snapshot.nodes.map((n) => (statusById.has(n.id) ? { ...n, status: statusById.get(n.id) as NodeStatus } : n));
  const { actions } = reconcileScope({ ...snapshot, nodes }, now, options);
  return { ...actions, nodeStatus: liveness.nodeStatus, events: [...liveness.events, ...actions.events] };
}

/** Node statuses follow heartbeats, cordons and drains; a node goes down only for its own silence (liveness-guard.ts). */
export function reconcileLiveness(
  snapshot: LivenessSnapshot,
  now: Date,
  options: FleetOptions,
  hearing: HearingFacts = {},
): Pick<FleetActions, 'nodeStatus' | 'events'> {
  const actions: Pick<FleetActions, 'nodeStatus' | 'events'> = { nodeStatus: [], events: [] };
  const drainsByNode = new Map(snapshot.drains.map((d) => [d.nodeId, d]));
  const liveness = decideLiveness(snapshot.nodes, drainsByNode, now, options.heartbeatGraceMs, options.regionSilence, hearing, snapshot.regionTotals);
  for (const node of snapshot.nodes) {
    const status = liveness.status.get(node.id) as NodeStatus;
    if (status === node.status) continue;
    actions.nodeStatus.push({ nodeId: node.id, status });
    if (status === 'down' || node.status === 'down') {
      actions.events.push({
        kind: status === 'down' ? EVENT.node.down : EVENT.node.up,
        nodeId: node.id,
        data: { hostname: node.hostname, from: node.status, to: status },
      });
    }
  }
  actions.events.push(...liveness.events);
  return actions;
}

/** What a scoped pass decided, and how many instances it wanted to place and found no room for. */
export interface ScopeDecision {
  actions: FleetActions;
  /** Drain moves and missing replicas without a node: a pass that saw only some nodes loads the candidates and decides again. */
  shortOfRoom: number;
}

/**
 * Instances, drains and replicas of the deployments and drains in the snapshot, with node
 * statuses as they are stored (liveness is decided apart). Every instance of each deployment in
 * the snapshot must be in it (spread and replacements are per deployment); `load` counts what
 * other deployments hold on each node.
 */
export function reconcileScope(snapshot: FleetSnapshot, now: Date, options: FleetOptions): ScopeDecision {
  const actions = emptyFleetActions();
  let shortOfRoom = 0;
  const nodes = snapshot.nodes;
  const nodeById = new Map(nodes.map((n) => [n.id, n]));
  const statusById = new Map(nodes.map((n) => [n.id, n.status]));
  // The last health report from a node that is down is stale (the API and the edge do not count
  // it either): it must neither publish an endpoint nor let a migration stop the old instance.
  const healthyNow = (i: Instance) => i.healthy && statusById.get(i.nodeId) !== 'down';
  const byId = new Map(snapshot.instances.map((i) => [i.id, i]));
  const stopped = new Set<string>();
  const promoted = new Set<string>();
  const stop = (instanceId: string, restartOnEnable = false) => {
    if (stopped.has(instanceId)) return;
    stopped.add(instanceId);
    actions.stop.push({ instanceId, restartOnEnable });
  };

  const deployments = new Map(snapshot.deployments.map((d) => [d.id, d]));
  /** A VM moves live: its target is an empty QEMU until the guest arrives (instance-migration.ts). */
  const isLive = (i: Instance) => {
    const workload = deployments.get(i.deploymentId)?.workload;
    return workload !== undefined && migrationModeFor(workload) === 'live';
  };
  // 1. Deleted deployments: every instance is withdrawn and stopped the way any instance is
  // (the agent stops it, its row goes once it reports stopped), a parked one included.
  const deleting = new Set(snapshot.deployments.filter((d) => d.deleting).map((d) => d.id));
  // 2. Instances: publish the healthy, finish or abandon migrations, forget the stopped.
  for (const instance of snapshot.instances) {
    if (instance.desired === 'stopped') {
      // A deleted deployment's instance on a down node goes without waiting for its agent (which
      // may never come back): withdrawn already, and an agent that returns stops what it is no
      // longer asked to run. So a dead machine's node can still be drained of rows and deleted.
      const deleted = deleting.has(instance.deploymentId);
      if (instance.status === 'stopped' ? !instance.restartOnEnable || deleted : deleted && statusById.get(instance.nodeId) === 'down') {
        actions.remove.push(instance.id);
      }
      continue;
    }
    if (deleting.has(instance.deploymentId)) {
      stop(instance.id);
      continue;
    }
    if (instance.replaces === null) {
      if (healthyNow(instance) && !instance.published) actions.publish.push(instance.id);
      continue;
    }
    const old = byId.get(instance.replaces);
    // A live target holds the moving guest only once it answers: before that it is an empty
    // QEMU waiting for the transfer, never an endpoint (its migration fails it if the source goes).
    const liveMove = isLive(instance);
    if (healthyNow(instance) || (!liveMove && (!old || old.desired === 'stopped'))) {
      // Make-before-break: the new incarnation serves first, then the old one is withdrawn.
      actions.publish.push(instance.id);
      promoted.add(instance.id);
      if (old && old.desired === 'running') {
        stop(old.id);
        actions.events.push({
          kind: EVENT.instance.migration_completed,
          instanceId: instance.id,
          nodeId: instance.nodeId,
          data: { from_instance: old.id, from_node: old.nodeId, to_node: instance.nodeId },
        });
      }
      continue;
    }
    // A live move is timed and failed by its migration (instance-migration.ts): its target is not
    // healthy until the guest has arrived, and it has a deadline of its own.
    if (liveMove || !old) continue;
    const age = now.getTime() - instance.createdAt.getTime();
    if (instance.status === 'failed' || age > options.migrationTimeoutMs) {
      stop(instance.id);
      actions.events.push({
        kind: EVENT.instance.migration_failed,
        instanceId: old.id,
        nodeId: old.nodeId,
        data: {
          replacement: instance.id,
          target_node: instance.nodeId,
          reason: instance.status === 'failed' ? 'replacement failed to start' : `replacement not healthy after ${Math.round(age / 1000)} s`,
        },
      });
    }
  }

  // Instances still wanted after this pass's stops (a replacement counts as its original's slot).
  const live = snapshot.instances.filter((i) => i.desired === 'running' && !stopped.has(i.id));
  // Spread follows what is still wanted; load follows what still holds a slot. An instance holds
  // its slot until its agent reports it stopped (as active_instances counts it), including one
  // asked to stop a moment ago, so a node never runs more than max_instances while old ones wind down.
  const placement: PlacementState = { ...placementState(live), load: new Map(snapshot.load ?? loadByNode(snapshot.instances)) };

  // 3. Drains: move what can move, stop pinned ones only when forced, finish when empty.
  /** Sources of live moves still open (their replacement has not taken over). */
  const movingLive = new Set(live.filter((i) => i.replaces !== null && isLive(i)).map((i) => i.replaces as string));
  const liveMovesByDeployment = new Map<string, number>();
  for (const i of live) if (i.replaces !== null && isLive(i)) liveMovesByDeployment.set(i.deploymentId, (liveMovesByDeployment.get(i.deploymentId) ?? 0) + 1);
  const servingByDeployment = new Map<string, number>();
  for (const i of live) if (i.published && healthyNow(i)) servingByDeployment.set(i.deploymentId, (servingByDeployment.get(i.deploymentId) ?? 0) + 1);
  /** Instances down for a restart in place (parked, not yet started again), per deployment. */
  const parkedByDeployment = new Map<string, number>();
  for (const i of snapshot.instances) if (i.restartOnEnable && i.desired === 'stopped') parkedByDeployment.set(i.deploymentId, (parkedByDeployment.get(i.deploymentId) ?? 0) + 1);
  for (const drain of snapshot.drains) {
    if (drain.state !== 'running' && drain.state !== 'blocked') continue;
    const node = nodeById.get(drain.nodeId);
    if (!node) continue;
    // A pinned instance parked by a forced drain counts until its agent reports it stopped, like a
    // migrated one: "drained" must mean nothing runs there any more (a disruptive install may follow).
    // So does a live-migrated source until its target took over (it is stopped, still wanted): the
    // node is not drained while its guests are between nodes.
    const remaining = snapshot.instances.filter(
      (i) => i.nodeId === node.id && (i.status !== 'stopped' || (i.desired === 'running' && !stopped.has(i.id) && movingLive.has(i.id))),
    );
    const update = (state: DrainState, message: string, blockedBy: string[] = []) => {
      if (state !== drain.state || message !== drain.message || blockedBy.join() !== drain.blockedBy.join()) {
        actions.drains.push({ nodeId: node.id, state, message, blockedBy });
      }
    };
    if (remaining.length === 0) {
      update('completed', drain.mode === 'restart' ? 'all instances stopped in place' : 'all instances moved off the node');
      actions.events.push({ kind: EVENT.node.drained, nodeId: node.id, data: { hostname: node.hostname } });
      continue;
    }
    if (now.getTime() > drain.deadline.getTime()) {
      update('failed', `drain timed out with ${remaining.length} instance(s) still on the node`, remaining.map((i) => i.id));
      actions.events.push({ kind: EVENT.node.drain_failed, nodeId: node.id, data: { reason: 'timeout', remaining: remaining.map((i) => i.id) } });
      continue;
    }
    if (drain.mode === 'restart') {
      // In place: nothing moves. Each instance is withdrawn and stopped here (the agent stops it
      // after the drain delay, once routers dropped it) and kept for this node (restartOnEnable:
      // it holds its slot, so no replica is placed elsewhere); its rollout starts it again after
      // the install. An instance already moving away finishes its move instead.
      // A serving instance stops only while its deployment keeps min_available endpoints (the
      // preflight planned for it; this holds it when the fleet changed since), or when none of
      // its deployment is down for a restart: at least one at a time, as live moves.
      const movingAway = new Set(live.filter((i) => i.replaces !== null).map((i) => i.replaces as string));
      let deferred = 0;
      for (const i of remaining) {
        if (i.desired !== 'running' || i.replaces !== null || movingAway.has(i.id)) continue;
        const deployment = deployments.get(i.deploymentId);
        if (deployment && i.published && healthyNow(i)) {
          const left = (servingByDeployment.get(deployment.id) ?? 0) - 1;
          if (left < deployment.minAvailable && (parkedByDeployment.get(deployment.id) ?? 0) > 0) {
            deferred++;
            continue;
          }
          servingByDeployment.set(deployment.id, left);
        }
        parkedByDeployment.set(i.deploymentId, (parkedByDeployment.get(i.deploymentId) ?? 0) + 1);
        stop(i.id, true);
      }
      const waiting = deferred > 0 ? `; ${deferred} wait for their deployment's disruption budget` : '';
      update('running', `stopping ${remaining.length} instance(s) in place${waiting}`);
      continue;
    }
    const plan = planDrain(node.id, nodes, live, deployments, placement);
    let deferred = 0;
    for (const move of plan.moves) {
      const original = byId.get(move.instanceId) as Instance;
      const liveMove = isLive(original);
      // A live move leaves its deployment one endpoint short from the source quitting until the
      // target is published: only as many at once as the disruption budget allows (at least one).
      if (liveMove) {
        const deployment = deployments.get(original.deploymentId) as Deployment;
        const budget = Math.max(1, (servingByDeployment.get(deployment.id) ?? 0) - deployment.minAvailable);
        const inFlight = liveMovesByDeployment.get(deployment.id) ?? 0;
        if (inFlight >= budget) {
          deferred++;
          continue;
        }
        liveMovesByDeployment.set(deployment.id, inFlight + 1);
      }
      actions.create.push({
        deploymentId: original.deploymentId,
        nodeId: move.targetNodeId,
        replaces: original.id,
        move: {
          fromNodeId: node.id,
          mode: liveMove ? 'live' : 'restart',
          trigger: 'drain',
          ...(options.moveLimits ?? MIGRATION_DEFAULTS),
        },
      });
      actions.events.push({
        kind: EVENT.instance.migration_started,
        instanceId: original.id,
        nodeId: node.id,
        data: { from_node: node.id, to_node: move.targetNodeId, reason: 'drain' },
      });
    }
    if (drain.force) for (const id of plan.pinned) stop(id, true);
    const pinned = drain.force ? [] : plan.pinned;
    if (pinned.length > 0 && pinned.length === remaining.length) {
      update('blocked', `${pinned.length} pinned instance(s) cannot migrate; drain with force to stop them until the node is enabled`, pinned);
    } else if (plan.unplaceable.length > 0) {
      shortOfRoom += plan.unplaceable.length;
      update('running', `waiting for room for ${plan.unplaceable.length} instance(s)`, plan.unplaceable.map((u) => u.instanceId));
    } else if (deferred > 0) {
      update('running', `moving ${remaining.length} instance(s); ${deferred} wait for their deployment's disruption budget`, pinned);
    } else {
      update('running', `moving ${remaining.length} instance(s)`, pinned);
    }
  }

  const drainingNodes = new Set(snapshot.drains.filter((d) => d.state === 'running' || d.state === 'blocked').map((d) => d.nodeId));
  // 4. Replicas: place what is missing on ready nodes with room, spread across nodes; stop what
  // a scale-down left over.
  // A pinned instance parked by a forced drain keeps its slot: it comes back on `enable`.
  const parked = new Set([
    ...snapshot.instances.filter((i) => i.restartOnEnable).map((i) => i.id),
    ...actions.stop.filter((s) => s.restartOnEnable).map((s) => s.instanceId),
  ]);
  for (const deployment of snapshot.deployments) {
    if (deleting.has(deployment.id)) continue;
    const holding = snapshot.instances.filter(
      (i) => i.deploymentId === deployment.id && (i.replaces === null || promoted.has(i.id)) && (parked.has(i.id) || (i.desired === 'running' && !stopped.has(i.id))),
    );
    const missing = deployment.replicas - holding.length;
    if (missing < 0) {
      const serving = (i: Instance) => healthyNow(i) && (i.published || actions.publish.includes(i.id));
      const surplus = pickSurplus(holding, -missing, deployment.replicas, snapshot.instances, { parked, serving, drainingNodes });
      for (const id of surplus) stop(id);
      // Not published in the pass that stops it.
      if (surplus.length > 0) actions.publish = actions.publish.filter((id) => !surplus.includes(id));
      continue;
    }
    if (missing === 0) continue;
    const placed = placeReplicas(deployment, missing, nodes, placement);
    shortOfRoom += missing - placed.length;
    for (const nodeId of placed) actions.create.push({ deploymentId: deployment.id, nodeId, replaces: null });
  }

  // 5. A deleted deployment whose last instance row goes now goes with it.
  if (deleting.size > 0) {
    const removed = new Set(actions.remove);
    for (const deployment of snapshot.deployments) {
      if (!deleting.has(deployment.id)) continue;
      if (snapshot.instances.some((i) => i.deploymentId === deployment.id && !removed.has(i.id))) continue;
      (actions.deleteDeployments ??= []).push(deployment.id);
      actions.events.push({ kind: EVENT.deployment.deleted, data: { deployment_id: deployment.id, name: deployment.name } });
    }
  }
  return { actions, shortOfRoom };
}

/**
 * Which instances a deployment scaled down stops: never one that is parked, moving (it has an
 * open replacement) or a replacement still taking over; of the rest, the ones serving least
 * first (not serving, on a draining node), then the newest. While the deployment keeps any
 * replica, its last serving instance is never the one stopped. Deterministic: the same snapshot
 * picks the same instances.
 */
function pickSurplus(
  holding: readonly Instance[],
  surplus: number,
  replicas: number,
  all: readonly Instance[],
  facts: { parked: ReadonlySet<string>; serving: (i: Instance) => boolean; drainingNodes: ReadonlySet<string> },
): string[] {
  const replaced = new Set(all.filter((i) => i.replaces !== null && i.desired === 'running').map((i) => i.replaces as string));
  // A replacement taking over in this pass is left for the next one (it is a plain instance then).
  const candidates = holding.filter((i) => i.replaces === null && !facts.parked.has(i.id) && !replaced.has(i.id) && i.desired === 'running');
  const rank = (i: Instance) => (facts.serving(i) ? 0 : 2) + (facts.drainingNodes.has(i.nodeId) ? 1 : 0);
  candidates.sort((a, b) => rank(b) - rank(a) || b.createdAt.getTime() - a.createdAt.getTime() || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
  let servingLeft = holding.filter(facts.serving).length;
  const picked: string[] = [];
  for (const candidate of candidates) {
    if (picked.length === surplus) break;
    if (facts.serving(candidate)) {
      if (replicas > 0 && servingLeft <= 1) continue;
      servingLeft--;
    }
    picked.push(candidate.id);
  }
  return picked;
}

/**
 * What a scope still waits for after a decision, so the reconciler knows when to look again
 * unasked: `work` while something is in flight (a drain, a replacement that may time out, an
 * instance asked to stop), `room` while it only waits for a free slot, null when it is settled
 * (a heartbeat or a write will enqueue it).
 */
export function waitingFor(snapshot: FleetSnapshot, decision: ScopeDecision): 'work' | 'room' | null {
  const drainState = new Map<string, DrainState>(snapshot.drains.map((d) => [d.nodeId, d.state]));
  for (const d of decision.actions.drains) drainState.set(d.nodeId, d.state);
  const draining = [...drainState.values()].some((state) => state === 'running' || state === 'blocked');
  const moving = snapshot.instances.some((i) => i.replaces !== null || (i.desired === 'stopped' && i.status !== 'stopped'));
  if (draining || moving) return 'work';
  return decision.shortOfRoom > 0 ? 'room' : null;
}
