import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { collectProcessMetrics } from '../process-metrics.js';
import { ROLLOUT_STATUSES, TASK_STATES, TERMINAL_ROLLOUT_STATUSES } from '../domain/rollout/model.js';
import { NODE_STATUSES } from '../domain/types.js';
import type { Db } from '../store/db.js';
import { activeTaskCounts, instanceCounts, nodeCounts, nodeRegions, openDrains, pendingApprovalCounts, rolloutCounts, tasksPastDeadline } from '../store/metrics-facts.js';
import { outboxBacklog } from '../store/webhooks.js';
import { EventCounters } from './event-counters.js';
import type { WorkQueue } from './work-queue.js';

/** approvals.kind (0003_rollouts.pre.sql), listed even at 0 so the series never vanishes. */
const APPROVAL_KINDS = ['plan', 'continuation', 'gate'] as const;

export interface OperatorMetricsOptions {
  /** Whether this replica leads now (drydock_leader). */
  leader: () => boolean;
  version: string;
}

/**
 * The operator's Prometheus metrics; one registry per operator so tests can run several.
 * README "Monitoring" lists them; deploy/prometheus/alerts.yaml and deploy/grafana/drydock.json
 * use them. Gauges of state are read from the database at scrape time, so every replica
 * reports the same truth and nothing is kept in sync in memory.
 */
export class OperatorMetrics {
  /** Wires a work queue's passes into the reconcile metrics, with its depth as a gauge. */
  observe(queue: WorkQueue): void {
    queue.onReconciled = (_key, ms, ok) => {
      this.reconcileDuration.observe({ queue: queue.name }, ms / 1000);
      if (!ok) this.reconcileErrors.inc({ queue: queue.name });
    };
    this.queueDepth.set({ queue: queue.name }, 0);
    this.queues.push(queue);
  }

  private readonly queues: WorkQueue[] = [];
  private readonly queueDepth: Gauge;

  readonly registry = new Registry();
  readonly events: EventCounters;
  readonly heartbeats: Counter;
  readonly httpDuration: Histogram;
  readonly longPolls: Counter;
  readonly planInstanceReads: Counter;
  readonly reconcileDuration: Histogram;
  readonly reconcileErrors: Counter;
  readonly migrations: Counter;
  readonly migrationDuration: Histogram;
  readonly migrationDowntime: Histogram;
  readonly migrationElapsed: Histogram;
  readonly webhookDeliveries: Counter;
  readonly webhookFailures: Counter;

  /**
   * A move ended (DESIGN.md §10): counted by mode and outcome, its wall time from start observed
   * (both modes), and a live one's transfer time and downtime as QEMU measured them.
   */
  migrationEnded(mode: string, outcome: string, stats: { total_ms: number; downtime_ms: number } | null, elapsedMs?: number): void {
    this.migrations.inc({ mode, outcome });
    if (elapsedMs !== undefined) this.migrationElapsed.observe({ mode, outcome }, elapsedMs / 1000);
    if (!stats) return;
    this.migrationDuration.observe({ mode }, stats.total_ms / 1000);
    this.migrationDowntime.observe({ mode }, stats.downtime_ms / 1000);
  }

  /** One webhook delivery attempt was recorded (only the leader sends, so sum across replicas). */
  webhookAttempt(state: 'delivered' | 'pending' | 'failed'): void {
    if (state === 'delivered') this.webhookDeliveries.inc({ outcome: 'delivered' });
    else this.webhookFailures.inc();
    if (state === 'failed') this.webhookDeliveries.inc({ outcome: 'given_up' });
  }

  constructor(db: Db, options: OperatorMetricsOptions = { leader: () => false, version: 'unknown' }) {
    const registers = [this.registry];
    collectProcessMetrics(this.registry);
    this.events = new EventCounters(db, this.registry);
    new Gauge({
      name: 'drydock_build_info',
      help: 'Always 1; the labels say which drydock build and Node.js this replica runs, and its database engine.',
      labelNames: ['version', 'nodejs', 'engine'],
      registers,
    }).set({ version: options.version, nodejs: process.version, engine: db.engine }, 1);
    new Gauge({
      name: 'drydock_leader',
      help: 'Whether this replica holds the reconciler lease now (1) or not (0); exactly one replica should.',
      registers,
      collect() {
        this.set(options.leader() ? 1 : 0);
      },
    });
    this.heartbeats = new Counter({ name: 'drydock_heartbeats_received_total', help: 'Agent heartbeats received by this operator.', registers });
    this.httpDuration = new Histogram({
      name: 'drydock_http_request_duration_seconds',
      help: 'HTTP request duration by method, route and status code; long-polls and event streams are not in it (drydock_http_long_polls_total).',
      labelNames: ['method', 'route', 'status_code'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.longPolls = new Counter({
      name: 'drydock_http_long_polls_total',
      help: 'Long-polls and event streams answered, by route and status code: they last as long as they wait, so they stay out of the latency histogram.',
      labelNames: ['route', 'status_code'],
      registers,
    });
    this.planInstanceReads = new Counter({
      name: 'drydock_plan_instance_reads_total',
      help: 'Dry runs by how they read the instances: every row (complete) or only the rows written since the plan worker last read them (incremental).',
      labelNames: ['read'],
      registers,
    });
    this.reconcileDuration = new Histogram({
      name: 'drydock_reconcile_duration_seconds',
      help: 'Duration of one keyed reconcile pass by queue (liveness, node, deployment).',
      labelNames: ['queue'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.reconcileErrors = new Counter({
      name: 'drydock_reconcile_errors_total',
      help: 'Keyed reconcile passes that failed (retried with backoff), by queue.',
      labelNames: ['queue'],
      registers,
    });
    this.migrations = new Counter({
      name: 'drydock_migrations_total',
      help: 'Moves of instances that ended, by mode (live, restart) and outcome (completed, failed).',
      labelNames: ['mode', 'outcome'],
      registers,
    });
    // Buckets around the goals: downtime p50 100 ms / p99 300 ms, total p50 1.5 s (issue 10).
    this.migrationDuration = new Histogram({
      name: 'drydock_migration_duration_seconds',
      help: "A completed live migration's transfer time as QEMU measured it (total-time).",
      labelNames: ['mode'],
      buckets: [0.1, 0.25, 0.5, 1, 1.5, 2.5, 5, 10, 30, 60, 300],
      registers,
    });
    this.migrationDowntime = new Histogram({
      name: 'drydock_migration_downtime_seconds',
      help: "A completed live migration's guest pause at switchover as QEMU measured it.",
      labelNames: ['mode'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2.5],
      registers,
    });
    this.migrationElapsed = new Histogram({
      name: 'drydock_migration_elapsed_seconds',
      help: 'Wall time of a move from its start to its end as the operator saw it, by mode (live, restart) and outcome.',
      labelNames: ['mode', 'outcome'],
      buckets: [0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
      registers,
    });
    // Series exist from the start (at 0), so rate() and alerts see a first increase.
    for (const outcome of ['completed', 'failed']) this.migrations.inc({ mode: 'live', outcome }, 0);
    this.migrationDuration.zero({ mode: 'live' });
    this.migrationDowntime.zero({ mode: 'live' });
    for (const mode of ['live', 'restart']) this.migrationElapsed.zero({ mode, outcome: 'completed' });
    this.webhookDeliveries = new Counter({
      name: 'drydock_webhook_deliveries_total',
      help: 'Webhook deliveries that ended, by outcome (delivered: a 2xx; given_up: still failing after --webhook-give-up).',
      labelNames: ['outcome'],
      registers,
    });
    for (const outcome of ['delivered', 'given_up']) this.webhookDeliveries.inc({ outcome }, 0);
    this.webhookFailures = new Counter({
      name: 'drydock_webhook_delivery_failures_total',
      help: 'Webhook delivery attempts that failed (no answer, or not 2xx); each is retried with backoff.',
      registers,
    });
    const queues = this.queues;
    this.queueDepth = new Gauge({
      name: 'drydock_reconcile_queue_depth',
      help: 'Keys waiting in each reconcile queue.',
      labelNames: ['queue'],
      registers,
      collect() {
        for (const q of queues) this.set({ queue: q.name }, q.depth);
      },
    });
    new Gauge({
      name: 'drydock_nodes',
      help: 'Nodes by status and region; every status of a known region is listed, 0 when no node has it.',
      labelNames: ['status', 'region'],
      registers,
      async collect() {
        const [rows, regions] = await Promise.all([nodeCounts(db), nodeRegions(db)]);
        this.reset();
        // A node back from down leaves `down` at 0 instead of a vanished series, so an alert on
        // it resolves and a graph drops to 0.
        for (const region of regions) for (const status of NODE_STATUSES) this.set({ status, region }, 0);
        for (const row of rows) this.set({ status: row.status, region: row.region }, row.count);
      },
    });
    new Gauge({
      name: 'drydock_instances',
      help: 'Instances by status as last reported by their agents.',
      labelNames: ['status'],
      registers,
      async collect() {
        const rows = await instanceCounts(db);
        this.reset();
        for (const row of rows) this.set({ status: row.status }, row.count);
      },
    });
    new Gauge({
      name: 'drydock_rollouts',
      help: 'Rollouts by status (every status listed, 0 when none).',
      labelNames: ['status'],
      registers,
      async collect() {
        const rows = await rolloutCounts(db);
        for (const status of ROLLOUT_STATUSES) this.set({ status }, rows.find((r) => r.status === status)?.count ?? 0);
      },
    });
    new Gauge({
      name: 'drydock_rollout_tasks',
      help: 'Per-node tasks of rollouts that have not ended, by phase (every phase listed).',
      labelNames: ['phase'],
      registers,
      async collect() {
        const rows = await activeTaskCounts(db, TERMINAL_ROLLOUT_STATUSES);
        for (const phase of TASK_STATES) this.set({ phase }, rows.find((r) => r.state === phase)?.count ?? 0);
      },
    });
    new Gauge({
      name: 'drydock_rollout_tasks_past_deadline',
      help: "In-flight tasks older than their state's deadline (drain.timeout + 30 s, health.timeout): the reconciler should have failed them, so the rollout is stuck.",
      registers,
      async collect() {
        this.set(await tasksPastDeadline(db));
      },
    });
    new Gauge({
      name: 'drydock_approvals_pending',
      help: 'Approvals waiting for a person, by kind (plan, continuation: a tripped breaker, gate: a region gate).',
      labelNames: ['kind'],
      registers,
      async collect() {
        const rows = await pendingApprovalCounts(db);
        for (const kind of APPROVAL_KINDS) this.set({ kind }, rows.find((r) => r.kind === kind)?.count ?? 0);
      },
    });
    new Gauge({
      name: 'drydock_drains_open',
      help: 'Drains running or blocked.',
      registers,
      async collect() {
        this.set((await openDrains(db)).open);
      },
    });
    new Gauge({
      name: 'drydock_drain_oldest_open_seconds',
      help: 'How long the oldest running or blocked drain has run (0 when none).',
      registers,
      async collect() {
        this.set((await openDrains(db)).oldestSeconds);
      },
    });
    new Gauge({
      name: 'drydock_webhook_deliveries_pending',
      help: 'Webhook deliveries in the outbox not delivered yet (including ones waiting to retry).',
      registers,
      async collect() {
        this.set((await outboxBacklog(db)).pending);
      },
    });
    new Gauge({
      name: 'drydock_webhook_oldest_pending_seconds',
      help: 'Age of the oldest undelivered webhook delivery (0 when none): grows while a receiver fails.',
      registers,
      async collect() {
        this.set((await outboxBacklog(db)).oldestSeconds);
      },
    });
  }
}
