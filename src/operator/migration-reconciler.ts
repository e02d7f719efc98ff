import type { Logger } from 'pino';
import { decideMigration, type InstanceMigration, isOpenMigration, type MigrationDecision } from '../domain/instance-migration.js';
import type { Db } from '../store/db.js';
import { appendEvents, type NewEvent } from '../store/events.js';
import { applyMigrationDecision, loadOpenMigrations, openMigrationKeys } from '../store/instance-migrations.js';
import { stopInstances } from '../store/instances.js';
import { readClock } from '../store/fleet-snapshot.js';
import { assertTerm } from '../store/leases.js';
import { bumpGenerations } from '../store/nodes.js';
import type { DesiredWaiters } from './desired-waiters.js';
import { type LeaderLease, RECONCILER_LEASE } from './leader-lease.js';
import { type ReconcileResult, type SerialLane, WorkQueue } from './work-queue.js';

export interface MigrationReconcilerOptions {
  /** How often the open migrations are listed (a deadline, a wake that was lost), and an open one looked at again (default 1 s). */
  intervalMs: number;
}

/**
 * The migration reconciler (DESIGN.md §10), leader only, keyed by migration id and sharing the
 * fleet reconcilers' lane (both write instance rows). A pass loads the migration and the rows of
 * its two instances inside its fenced transaction, decides purely (decideMigration) and writes
 * the new state, the target's withdrawal on failure, the generations of the nodes told, and the
 * event, together. Heartbeats from either side's node and new moves enqueue it at once.
 */
export class MigrationReconciler {
  readonly queue: WorkQueue;
  /** Open migrations by the nodes of their two sides, as of the last listing. */
  private byNode = new Map<string, Set<string>>();
  private timer: NodeJS.Timeout | undefined;
  private listing = false;
  /** Told after a commit which nodes' instances changed (the fleet's node passes and the rollouts follow them). */
  onNodesChanged: (nodeIds: string[]) => void = () => {};
  /** Told after a commit that a move ended (metrics). */
  onEnded: (migration: InstanceMigration, decision: MigrationDecision) => void = () => {};

  constructor(
    private readonly db: Db,
    private readonly waiters: DesiredWaiters,
    private readonly log: Logger,
    private readonly options: MigrationReconcilerOptions,
    lane: SerialLane,
    private readonly lease?: LeaderLease,
  ) {
    this.queue = new WorkQueue('migration', (id) => this.pass(id), log, lane);
  }

  start(): void {
    this.queue.start();
    this.timer = setInterval(() => this.wake(), this.options.intervalMs);
    this.timer.unref();
    this.wake();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.queue.stop();
  }

  /** List the open migrations and look at each (a move was just placed, a timer). */
  wake(): void {
    if (this.listing) return;
    this.listing = true;
    openMigrationKeys(this.db)
      .then((open) => {
        const byNode = new Map<string, Set<string>>();
        for (const m of open) {
          for (const node of [m.source_node_id, m.target_node_id]) byNode.set(node, (byNode.get(node) ?? new Set()).add(m.id));
        }
        this.byNode = byNode;
        this.queue.addAll(open.map((m) => m.id));
      })
      .catch((error: unknown) => this.log.warn({ err: error }, 'could not list open migrations; the next tick retries'))
      .finally(() => {
        this.listing = false;
      });
  }

  /** A heartbeat or a write changed instances on these nodes: their open migrations are looked at now. */
  nodesChanged(nodeIds: Iterable<string>): void {
    for (const node of nodeIds) {
      const ids = this.byNode.get(node);
      if (ids) this.queue.addAll(ids);
    }
  }

  private async pass(id: string): Promise<ReconcileResult> {
    const lease = this.lease;
    const term = lease ? lease.term : 0;
    if (term === null) return {};
    const outcome = await this.db.transaction(async (tx) => {
      if (lease) await assertTerm(tx, RECONCILER_LEASE, lease.holder, term);
      const [loaded] = await loadOpenMigrations(tx, [id]);
      if (!loaded) return { open: false, touched: [] as string[], ended: undefined };
      const { migration, source, target } = loaded;
      const { now } = await readClock(tx);
      const decision = decideMigration(migration, { source, target }, now);
      if (!decision) return { open: true, touched: [] as string[], ended: undefined };
      if (!(await applyMigrationDecision(tx, migration, decision))) return { open: true, touched: [] as string[], ended: undefined };
      const touched = [...decision.wake];
      const events: NewEvent[] = [];
      const withdraw = [
        ...(decision.stopTarget ? [migration.targetInstanceId] : []),
        ...(decision.stopSource ? [migration.instanceId] : []),
      ];
      if (withdraw.length > 0) {
        for (const s of await stopInstances(tx, withdraw.map((instanceId) => ({ instanceId, restartOnEnable: false })))) {
          touched.push(s.node_id);
          if (s.was_published) {
            events.push({ kind: 'instance.withdrawn', actor: 'reconciler', nodeId: s.node_id, instanceId: s.id, data: { deployment_id: s.deployment_id } });
          }
        }
      }
      if (decision.event) {
        events.push({ kind: decision.event.kind, actor: 'reconciler', nodeId: migration.sourceNodeId, instanceId: migration.instanceId, data: decision.event.data });
      }
      await appendEvents(tx, events);
      await bumpGenerations(tx, touched);
      const open = isOpenMigration(decision.state);
      return { open, touched: [...new Set(touched)], ended: open ? undefined : { migration, decision } };
    });
    if (outcome.ended) this.onEnded(outcome.ended.migration, outcome.ended.decision);
    if (outcome.touched.length > 0) {
      this.waiters.wake(outcome.touched);
      this.onNodesChanged(outcome.touched);
    }
    return outcome.open ? { requeueAfterMs: this.options.intervalMs } : {};
  }
}
