import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { type FleetOptions, reconcileLiveness, reconcileScope, waitingFor } from '../domain/fleet-reconcile.js';
import { DEFAULT_REGION_SILENCE, type HearingState, livenessConditions, nextHearing } from '../domain/liveness-guard.js';
import type { Db } from '../store/db.js';
import { applyFleetDecision, FleetConflictError } from '../store/fleet-apply.js';
import { deploymentsOnNodes, loadLivenessConditions, loadLivenessSnapshot, loadScopeSnapshot, readClock, resyncKeys } from '../store/fleet-snapshot.js';
import { assertTerm } from '../store/leases.js';
import type { DesiredWaiters } from './desired-waiters.js';
import { type LeaderLease, RECONCILER_LEASE } from './leader-lease.js';
import { type ReconcileResult, SerialLane, WorkQueue } from './work-queue.js';

export interface FleetReconcilerOptions extends FleetOptions {
  /** Time between liveness passes, and between passes of a key with work in flight (default 500 ms). */
  intervalMs: number;
  /**
   * Trouble hearing heartbeats longer than this (a heartbeat uncommitted this long, this long
   * since the previous pass ended) is a deaf period that counts against no node (default: a
   * quarter of the grace, at least two intervals).
   */
  hearingToleranceMs?: number;
  /** A full resync (every deployment, every drain, every node's liveness) this often, as a safety net (default 5 min). */
  resyncIntervalMs?: number;
}

/** Heartbeats received and not committed yet, on this process's monotonic clock, and nodes waiting for a reply (HeartbeatBuffer.uncommitted). */
export interface UncommittedHeartbeats {
  oldest: number | undefined;
  byNode: ReadonlyMap<string, number>;
  unanswered?: ReadonlySet<string>;
  answeredAt?: ReadonlyMap<string, number>;
}

const LIVENESS_KEY = 'fleet';
/** A key short of room (replicas or drain moves with nowhere to go) is looked at again this much less often than one with work in flight. */
const SHORT_OF_ROOM_FACTOR = 10;

/**
 * The fleet's keyed reconcilers (DESIGN.md §3, §13), leader only, one key at a time:
 * - `liveness` (one key): node statuses from heartbeats, judged over the nodes that may change
 *   status only (silent, down, or touched since the last pass), every `intervalMs`;
 * - `nodes` (node id): the node's drain and every deployment with an instance on it;
 * - `deployments` (deployment id): its instances, migrations and replica count.
 * A heartbeat that changed something, an API write or a timer enqueues only the keys it touches;
 * each pass loads its key's rows inside its fenced transaction, decides purely and applies guarded
 * by the rows it decided from (a stale decision fails and is decided again). A full resync runs
 * every `resyncIntervalMs` and when this replica takes the lease.
 */
export class FleetReconciler {
  /** Shared with the migration reconciler: both write instance rows. */
  readonly lane = new SerialLane();
  readonly liveness: WorkQueue;
  readonly nodes: WorkQueue;
  readonly deployments: WorkQueue;
  /** Liveness passes that ran as leader (tests wait for them). */
  passes = 0;
  /** What this operator has received and not committed yet; server.ts points it at the heartbeat buffer. */
  heartbeatBacklog: () => UncommittedHeartbeats = () => ({ oldest: undefined, byNode: new Map() });
  /** Told after a commit which nodes' drains, instances or statuses changed (the rollout reconciler follows them). */
  onNodesChanged: (nodeIds: string[]) => void = () => {};
  /** Nodes to judge in the next liveness pass besides the silent and the down. */
  private touched = new Set<string>();
  private fullLiveness = true;
  /** The lease term of the previous liveness pass: a pass under another term has just taken over. */
  private lastTerm: number | null = null;
  /** Monotonic end of the last successful liveness pass. */
  private lastPassEnd: number | undefined;
  private hearing: HearingState | undefined;
  /** Trouble hearing seen since the last pass, on the monotonic clock (see `sampleHearing`). */
  private troubles: { from: number; to: number }[] = [];
  private lastSample: number | undefined;
  private sampler: NodeJS.Timeout | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  /** Liveness conditions in force (undefined: read them from the event log first). */
  private conditions: Set<string> | undefined;

  constructor(
    private readonly db: Db,
    private readonly waiters: DesiredWaiters,
    private readonly log: Logger,
    private readonly options: FleetReconcilerOptions,
    /** Only the leader reconciles; without a lease (tests of one operator) it always does. */
    private readonly lease?: LeaderLease,
  ) {
    this.liveness = new WorkQueue('liveness', () => this.livenessPass(), log, this.lane);
    this.nodes = new WorkQueue('node', (id) => this.nodePass(id), log, this.lane);
    this.deployments = new WorkQueue('deployment', (id) => this.deploymentPass(id), log, this.lane);
  }

  start(): void {
    this.liveness.start();
    this.nodes.start();
    this.deployments.start();
    this.liveness.add(LIVENESS_KEY);
    // Sampled between passes too: a pass in flight across a stall would otherwise hide it.
    this.sampler = setInterval(() => this.sampleHearing(), Math.min(100, this.tolerance() / 2));
    this.sampler.unref();
    const every = this.options.resyncIntervalMs ?? 5 * 60_000;
    this.resyncTimer = setInterval(() => this.resync(), every);
    this.resyncTimer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.sampler);
    clearInterval(this.resyncTimer);
    await Promise.all([this.liveness.stop(), this.nodes.stop(), this.deployments.stop()]);
  }

  /** Judge liveness soon. */
  wake(): void {
    this.liveness.add(LIVENESS_KEY);
  }

  /** Something about these nodes changed (a heartbeat, a registration, a cordon, a drain): judge them and reconcile what is on them. */
  nodesChanged(nodeIds: Iterable<string>): void {
    for (const id of nodeIds) {
      this.touched.add(id);
      this.nodes.add(id);
    }
    this.liveness.add(LIVENESS_KEY);
  }

  /** Judge these nodes' status in the next liveness pass (a registration, new components: nothing they host changed). */
  nodesTouched(nodeIds: Iterable<string>): void {
    for (const id of nodeIds) this.touched.add(id);
    this.liveness.add(LIVENESS_KEY);
  }

  deploymentsChanged(deploymentIds: Iterable<string>): void {
    this.deployments.addAll(deploymentIds);
  }

  /** Every key, once: the safety net for a change nobody enqueued (another replica's write, a lost wake). */
  resync(): void {
    this.fullLiveness = true;
    this.liveness.add(LIVENESS_KEY);
    resyncKeys(this.db)
      .then((keys) => {
        this.deployments.addAll(keys.deployments);
        this.nodes.addAll(keys.drainingNodes);
      })
      .catch((error: unknown) => this.log.warn({ err: error }, 'resync could not list the keys; the next one retries'));
  }

  private term(): number | null {
    return this.lease ? this.lease.term : 0;
  }

  private fence(term: number) {
    const lease = this.lease;
    return lease ? (tx: Db) => assertTerm(tx, RECONCILER_LEASE, lease.holder, term) : undefined;
  }

  private tolerance(): number {
    return this.options.hearingToleranceMs ?? Math.max(this.options.heartbeatGraceMs / 4, 2 * this.options.intervalMs);
  }

  /**
   * Records trouble hearing: a heartbeat uncommitted longer than the tolerance (from its
   * arrival until now), or this timer itself late by more than it (the event loop stalled, so
   * nothing was read from the sockets).
   */
  private sampleHearing(): void {
    const at = performance.now();
    const tolerance = this.tolerance();
    if (this.lastSample !== undefined && at - this.lastSample > tolerance) this.troubles.push({ from: this.lastSample, to: at });
    this.lastSample = at;
    const { oldest } = this.heartbeatBacklog();
    if (oldest !== undefined && at - oldest > tolerance) this.troubles.push({ from: oldest, to: at });
  }

  private async livenessPass(): Promise<ReconcileResult> {
    const next = { requeueAfterMs: this.options.intervalMs };
    const term = this.term();
    if (term === null) {
      this.lastTerm = null;
      this.troubles = [];
      return next;
    }
    this.passes++;
    const tookOver = term !== this.lastTerm;
    // A new leader knows nothing of what was enqueued on the replica that led before.
    if (tookOver && this.lease) this.resync();
    const all = this.fullLiveness || tookOver;
    const touched = [...this.touched];
    this.touched.clear();
    // Taken before the snapshot: whatever arrived earlier than its oldest entry is committed
    // by then, so it is in the snapshot (heardUntil below).
    const backlog = this.heartbeatBacklog();
    const backlogAt = performance.now();
    let loaded;
    try {
      loaded = await loadLivenessSnapshot(this.db, { graceMs: this.options.heartbeatGraceMs, touched, all });
    } catch (error) {
      for (const id of touched) this.touched.add(id);
      throw error;
    }
    const { snapshot, now, clockReadAt } = loaded;
    if (tookOver || this.conditions === undefined) this.conditions = livenessConditions(new Set(), await loadLivenessConditions(this.db));
    // Arrivals and troubles measured here are put on the database's clock (the one
    // last_heartbeat_at and `now` use), linearly: a pass whose clock was read before a stall and
    // whose load finished after it must keep the stall's troubles as deaf periods after its `now`
    // (clamped to `now` they would be empty and lost, and the next pass would blame the nodes).
    const onDbClock = (at: number) => new Date(now.getTime() + (at - clockReadAt));
    this.sampleHearing();
    // Kept until this pass gets through: a failed pass must not forget them.
    const seen = this.troubles.length;
    const troubles = this.troubles.slice(0, seen);
    // A failing or stalled pass (a database outage: heartbeats fail too) is trouble as well.
    if (this.lastPassEnd !== undefined && clockReadAt - this.lastPassEnd > this.tolerance()) troubles.push({ from: this.lastPassEnd, to: clockReadAt });
    const hearing = nextHearing(
      this.hearing,
      now,
      { tookOver, troubles: troubles.map((p) => ({ from: onDbClock(p.from), to: onDbClock(p.to) })) },
      this.options.heartbeatGraceMs,
    );
    const options = { ...this.options, regionSilence: this.options.regionSilence ?? DEFAULT_REGION_SILENCE };
    const decision = reconcileLiveness(snapshot, now, options, {
      // A heartbeat that arrived after the backlog was taken may commit after the snapshot was
      // read: what the snapshot holds is complete only up to then (or to the oldest uncommitted).
      heardUntil: onDbClock(Math.min(backlogAt, backlog.oldest ?? backlogAt)),
      pending: new Map([...backlog.byNode].map(([id, at]) => [id, onDbClock(at)])),
      unanswered: backlog.unanswered ?? new Set(),
      answeredAt: new Map(snapshot.nodes.flatMap((n) => {
        const at = backlog.answeredAt?.get(n.id);
        return at === undefined ? [] : [[n.id, onDbClock(at)] as const];
      })),
      listeningSince: hearing.listeningSince,
      deaf: hearing.deaf,
      conditions: this.conditions,
    });
    if (decision.nodeStatus.length + decision.events.length > 0) {
      const actions = { create: [], publish: [], stop: [], remove: [], drains: [], ...decision };
      const { statusChanged } = await applyFleetDecision(this.db, actions, randomUUID, 'reconciler', this.fence(term), { nodes: snapshot.nodes, drains: [] });
      this.conditions = livenessConditions(this.conditions, decision.events);
      // A node that went down or came back: what it hosts is judged again (stale health, endpoints).
      for (const id of statusChanged) this.nodes.add(id);
      if (statusChanged.length > 0) this.onNodesChanged(statusChanged);
    }
    if (all) this.fullLiveness = false;
    // Only a pass that got through counts as listening: a failed one is retried and its trouble
    // (a database outage) shows up as time since the last pass.
    this.lastTerm = term;
    this.hearing = hearing;
    this.troubles.splice(0, seen);
    this.lastPassEnd = performance.now();
    return next;
  }

  private async nodePass(nodeId: string): Promise<ReconcileResult> {
    return this.scopePass((tx) => deploymentsOnNodes(tx, [nodeId]).then((deploymentIds) => ({ deploymentIds, drainNodeIds: [nodeId] })));
  }

  private async deploymentPass(deploymentId: string): Promise<ReconcileResult> {
    return this.scopePass(async () => ({ deploymentIds: [deploymentId], drainNodeIds: [] }));
  }

  /**
   * Load a key's rows, decide, apply — in one transaction fenced by the lease term. Placement
   * needs every node with a free slot and the load of each: loaded only when the decision wants
   * room (most passes publish, finish or wait, and read a few dozen rows).
   */
  private async scopePass(scopeOf: (tx: Db) => Promise<{ deploymentIds: string[]; drainNodeIds: string[] }>): Promise<ReconcileResult> {
    const term = this.term();
    if (term === null) return {};
    let outcome;
    try {
      outcome = await this.db.transaction(async (tx) => {
        await this.fence(term)?.(tx);
        const scope = await scopeOf(tx);
        const { now } = await readClock(tx);
        let snapshot = await loadScopeSnapshot(tx, { ...scope, candidates: false });
        let decision = reconcileScope(snapshot, now, this.options);
        if (decision.shortOfRoom > 0) {
          snapshot = await loadScopeSnapshot(tx, { ...scope, candidates: true });
          decision = reconcileScope(snapshot, now, this.options);
        }
        const { actions } = decision;
        const changes =
          actions.create.length + actions.publish.length + actions.stop.length + actions.remove.length + actions.drains.length + actions.events.length + (actions.deleteDeployments?.length ?? 0);
        const applied = changes > 0 ? await applyFleetDecision(tx, actions, randomUUID, 'reconciler', undefined, snapshot) : undefined;
        return { snapshot, decision, applied };
      });
    } catch (error) {
      // Someone changed the rows this decision was made from: decide again at once.
      if (error instanceof FleetConflictError) return { requeueAfterMs: 0 };
      throw error;
    }
    const { snapshot, decision, applied } = outcome;
    if (applied) {
      this.waiters.wake(applied.touched);
      const { actions } = decision;
      const drained = actions.drains.map((d) => d.nodeId);
      // A drain that ended changes its node's status (draining → cordoned): judged in the next liveness pass.
      if (drained.length > 0) this.nodesTouched(drained);
      // The old side of a migration stops on its node, where a drain may be waiting for it.
      const sources = actions.stop.map((s) => snapshot.instances.find((i) => i.id === s.instanceId)?.nodeId).filter((id): id is string => id !== undefined);
      this.nodes.addAll(sources);
      this.onNodesChanged([...new Set([...drained, ...sources, ...applied.touched])]);
    }
    switch (waitingFor(snapshot, decision)) {
      case 'work':
        return { requeueAfterMs: this.options.intervalMs };
      case 'room':
        return { requeueAfterMs: this.options.intervalMs * SHORT_OF_ROOM_FACTOR };
      case null:
        return {};
    }
  }
}
