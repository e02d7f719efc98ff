import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { type FleetOptions, reconcileFleet } from '../domain/fleet-reconcile.js';
import type { Db } from '../store/db.js';
import { applyFleetActions } from '../store/fleet-apply.js';
import { loadFleetSnapshot } from '../store/fleet-snapshot.js';
import { assertTerm } from '../store/leases.js';
import type { DesiredWaiters } from './desired-waiters.js';
import { type LeaderLease, RECONCILER_LEASE } from './leader-lease.js';
import { ReconcileLoop } from './reconcile-loop.js';

export interface FleetReconcilerOptions extends FleetOptions {
  /** Time between passes when nothing wakes the loop (default 500 ms). */
  intervalMs: number;
}

/** The fleet loop: load a snapshot, decide purely, apply in one transaction (leader only). */
export class FleetReconciler {
  private readonly loop: ReconcileLoop;
  passes = 0;

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
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  /** Ask for a pass soon (after an API write or a heartbeat that changed something). */
  wake(): void {
    this.loop.wake();
  }

  /** One pass; exported for tests that want to step the loop by hand. */
  async tick(): Promise<void> {
    const term = this.lease ? this.lease.term : 0;
    if (term === null) return;
    this.passes++;
    const { snapshot, now } = await loadFleetSnapshot(this.db);
    const actions = reconcileFleet(snapshot, now, this.options);
    const changes =
      actions.nodeStatus.length + actions.create.length + actions.publish.length + actions.stop.length +
      actions.remove.length + actions.drains.length + actions.events.length;
    if (changes === 0) return;
    const lease = this.lease;
    const fence = lease ? (tx: Db) => assertTerm(tx, RECONCILER_LEASE, lease.holder, term) : undefined;
    const touched = await applyFleetActions(this.db, actions, randomUUID, 'reconciler', fence);
    this.waiters.wake(touched);
  }
}
