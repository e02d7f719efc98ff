import type { Logger } from 'pino';
import { RECONCILED_ROLLOUT_STATUSES } from '../domain/rollout/model.js';
import { decideRollout } from '../domain/rollout/decide.js';
import type { Db } from '../store/db.js';
import { assertTerm } from '../store/leases.js';
import { applyRolloutDecision } from '../store/rollout-apply.js';
import { loadNodeFacts, loadUnavailableVersions } from '../store/rollout-facts.js';
import { activeRolloutIds, loadRollout, TaskConflictError } from '../store/rollouts.js';
import type { DesiredWaiters } from './desired-waiters.js';
import type { FleetReconciler } from './fleet-reconciler.js';
import { type LeaderLease, RECONCILER_LEASE } from './leader-lease.js';
import { ReconcileLoop } from './reconcile-loop.js';

/**
 * The rollout loop (leader only): for each active rollout, in its own transaction fenced by the
 * leader's term: load the rollout, its tasks and its nodes' facts → decideRollout → apply.
 * Rollouts are reconciled by id from current state, so a crash between ticks loses nothing.
 */
export class RolloutReconciler {
  private readonly loop: ReconcileLoop;
  ticks = 0;

  constructor(
    private readonly db: Db,
    private readonly lease: LeaderLease,
    private readonly waiters: DesiredWaiters,
    private readonly fleet: FleetReconciler,
    log: Logger,
    /** Time between passes when nothing wakes the loop (default 500 ms). */
    intervalMs = 500,
  ) {
    this.loop = new ReconcileLoop('rollout reconcile', () => this.tick(), intervalMs, log);
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  wake(): void {
    this.loop.wake();
  }

  async tick(): Promise<void> {
    const term = this.lease.term;
    if (term === null) return;
    this.ticks++;
    for (const id of await activeRolloutIds(this.db, RECONCILED_ROLLOUT_STATUSES)) {
      try {
        await this.reconcile(id, term);
      } catch (error) {
        // Someone else moved a task first: decide again on the new state right after this pass.
        if (error instanceof TaskConflictError) this.loop.wake();
        else throw error;
      }
    }
  }

  private async reconcile(id: string, term: number): Promise<void> {
    const touched = await this.db.transaction(async (tx) => {
      await assertTerm(tx, RECONCILER_LEASE, this.lease.holder, term);
      const loaded = await loadRollout(tx, id, { lock: true });
      if (!loaded) return [];
      const component = loaded.rollout.spec.target.component;
      const facts = await loadNodeFacts(tx, loaded.tasks.map((t) => t.nodeId), component);
      const fromVersions = loaded.tasks.map((t) => t.fromVersion).filter((v): v is string => v !== null);
      const unavailable = await loadUnavailableVersions(tx, component, fromVersions);
      const [clock] = await tx.query<{ now: Date }>('SELECT now() AS now');
      const decision = decideRollout(loaded.rollout, loaded.tasks, facts, new Date((clock as { now: Date }).now), unavailable);
      const changed = decision.tasks.length + decision.commands.length + decision.events.length + Object.keys(decision.rollout).length;
      if (changed === 0) return [];
      return applyRolloutDecision(tx, loaded.rollout, loaded.tasks, decision);
    });
    if (touched.length > 0) {
      this.waiters.wake(touched);
      this.fleet.nodesChanged(touched);
    }
  }
}
