import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { type FleetOptions, reconcileFleet } from '../domain/fleet-reconcile.js';
import { DEFAULT_REGION_SILENCE, type HearingState, livenessConditions, nextHearing } from '../domain/liveness-guard.js';
import type { Db } from '../store/db.js';
import { applyFleetActions } from '../store/fleet-apply.js';
import { loadFleetSnapshot, loadLivenessConditions } from '../store/fleet-snapshot.js';
import { assertTerm } from '../store/leases.js';
import type { DesiredWaiters } from './desired-waiters.js';
import { type LeaderLease, RECONCILER_LEASE } from './leader-lease.js';
import { ReconcileLoop } from './reconcile-loop.js';

export interface FleetReconcilerOptions extends FleetOptions {
  /** Time between passes when nothing wakes the loop (default 500 ms). */
  intervalMs: number;
  /**
   * Trouble hearing heartbeats longer than this (a heartbeat uncommitted this long, this long
   * since the previous pass ended) is a deaf period that counts against no node (default: a
   * quarter of the grace, at least two intervals).
   */
  hearingToleranceMs?: number;
}

/** Heartbeats received and not committed yet, on this process's monotonic clock (HeartbeatBuffer.uncommitted). */
export interface UncommittedHeartbeats {
  oldest: number | undefined;
  byNode: ReadonlyMap<string, number>;
}

/** The fleet loop: load a snapshot, decide purely, apply in one transaction (leader only). */
export class FleetReconciler {
  private readonly loop: ReconcileLoop;
  passes = 0;
  /** What this operator has received and not committed yet; server.ts points it at the heartbeat buffer. */
  heartbeatBacklog: () => UncommittedHeartbeats = () => ({ oldest: undefined, byNode: new Map() });
  /** The lease term of the previous pass: a pass under another term has just taken over. */
  private lastTerm: number | null = null;
  /** Monotonic end of the last successful pass. */
  private lastPassEnd: number | undefined;
  private hearing: HearingState | undefined;
  /** Trouble hearing seen since the last pass, on the monotonic clock (see `sampleHearing`). */
  private troubles: { from: number; to: number }[] = [];
  private lastSample: number | undefined;
  private sampler: NodeJS.Timeout | undefined;
  /** Liveness conditions in force (undefined: read them from the event log first). */
  private conditions: Set<string> | undefined;

  constructor(
    private readonly db: Db,
    private readonly waiters: DesiredWaiters,
    log: Logger,
    private readonly options: FleetReconcilerOptions,
    /** Only the leader reconciles; without a lease (tests of one operator) it always does. */
    private readonly lease?: LeaderLease,
  ) {
    this.loop = new ReconcileLoop('fleet reconcile', () => this.tick(), options.intervalMs, log);
  }

  start(): void {
    this.loop.start();
    // Sampled between passes too: a pass in flight across a stall would otherwise hide it.
    this.sampler = setInterval(() => this.sampleHearing(), Math.min(100, this.tolerance() / 2));
    this.sampler.unref();
  }

  stop(): Promise<void> {
    clearInterval(this.sampler);
    return this.loop.stop();
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

  /** Ask for a pass soon (after an API write or a heartbeat that changed something). */
  wake(): void {
    this.loop.wake();
  }

  /** One pass; exported for tests that want to step the loop by hand. */
  async tick(): Promise<void> {
    const term = this.lease ? this.lease.term : 0;
    if (term === null) {
      this.lastTerm = null;
      this.troubles = [];
      return;
    }
    this.passes++;
    // Taken before the snapshot: whatever arrived earlier than its oldest entry is committed
    // by then, so it is in the snapshot (heardUntil below).
    const backlog = this.heartbeatBacklog();
    const { snapshot, now, clockReadAt } = await loadFleetSnapshot(this.db);
    const tookOver = term !== this.lastTerm;
    if (tookOver || this.conditions === undefined) this.conditions = livenessConditions(new Set(), await loadLivenessConditions(this.db));
    // Arrivals measured here are put on the database's clock (the one last_heartbeat_at and `now` use).
    const onDbClock = (at: number) => new Date(now.getTime() - Math.max(0, clockReadAt - at));
    this.sampleHearing();
    // Kept until this pass gets through: a failed pass must not forget them.
    const seen = this.troubles.length;
    const troubles = this.troubles.slice(0, seen);
    // A failing or stalled reconcile loop (a database outage: heartbeats fail too) is trouble as well.
    if (this.lastPassEnd !== undefined && clockReadAt - this.lastPassEnd > this.tolerance()) troubles.push({ from: this.lastPassEnd, to: clockReadAt });
    const hearing = nextHearing(
      this.hearing,
      now,
      { tookOver, troubles: troubles.map((p) => ({ from: onDbClock(p.from), to: onDbClock(p.to) })) },
      this.options.heartbeatGraceMs,
    );
    const options = { ...this.options, regionSilence: this.options.regionSilence ?? DEFAULT_REGION_SILENCE };
    const actions = reconcileFleet(snapshot, now, options, {
      heardUntil: backlog.oldest === undefined ? now : onDbClock(backlog.oldest),
      pending: new Map([...backlog.byNode].map(([id, at]) => [id, onDbClock(at)])),
      listeningSince: hearing.listeningSince,
      deaf: hearing.deaf,
      conditions: this.conditions,
    });
    const changes =
      actions.nodeStatus.length + actions.create.length + actions.publish.length + actions.stop.length +
      actions.remove.length + actions.drains.length + actions.events.length;
    if (changes > 0) {
      const lease = this.lease;
      const fence = lease ? (tx: Db) => assertTerm(tx, RECONCILER_LEASE, lease.holder, term) : undefined;
      const touched = await applyFleetActions(this.db, actions, randomUUID, 'reconciler', fence);
      this.waiters.wake(touched);
      this.conditions = livenessConditions(this.conditions, actions.events);
    }
    // Only a pass that got through counts as listening: a failed one is retried and its trouble
    // (a database outage) shows up as time since the last pass.
    this.lastTerm = term;
    this.hearing = hearing;
    this.troubles.splice(0, seen);
    this.lastPassEnd = performance.now();
  }
}
