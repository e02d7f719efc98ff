import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { collectProcessMetrics } from '../process-metrics.js';
import type { Db } from '../store/db.js';
import type { WorkQueue } from './work-queue.js';

/** The operator's Prometheus metrics; one registry per operator so tests can run several. */
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
  readonly heartbeats: Counter;
  readonly httpDuration: Histogram;
  readonly reconcileDuration: Histogram;
  readonly reconcileErrors: Counter;
  readonly migrations: Counter;
  readonly migrationDuration: Histogram;
  readonly migrationDowntime: Histogram;

  /** A move ended (DESIGN.md §10): counted by mode and outcome; a live one's transfer time and downtime observed. */
  migrationEnded(mode: string, outcome: string, stats: { total_ms: number; downtime_ms: number } | null): void {
    this.migrations.inc({ mode, outcome });
    if (!stats) return;
    this.migrationDuration.observe({ mode }, stats.total_ms / 1000);
    this.migrationDowntime.observe({ mode }, stats.downtime_ms / 1000);
  }

  constructor(db: Db) {
    collectProcessMetrics(this.registry, 'drydock_operator_');
    this.heartbeats = new Counter({
      name: 'drydock_heartbeats_received_total',
      help: 'Agent heartbeats received by this operator.',
      registers: [this.registry],
    });
    this.httpDuration = new Histogram({
      name: 'drydock_http_request_duration_seconds',
      help: 'HTTP request duration by method, route and status code.',
      labelNames: ['method', 'route', 'status_code'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [this.registry],
    });
    this.reconcileDuration = new Histogram({
      name: 'drydock_reconcile_duration_seconds',
      help: 'Duration of one keyed reconcile pass by queue (liveness, node, deployment).',
      labelNames: ['queue'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [this.registry],
    });
    this.reconcileErrors = new Counter({
      name: 'drydock_reconcile_errors_total',
      help: 'Keyed reconcile passes that failed (retried with backoff), by queue.',
      labelNames: ['queue'],
      registers: [this.registry],
    });
    this.migrations = new Counter({
      name: 'drydock_migrations_total',
      help: 'Moves of instances that ended, by mode (live, restart) and outcome (completed, failed).',
      labelNames: ['mode', 'outcome'],
      registers: [this.registry],
    });
    // Buckets around the goals: downtime p50 100 ms / p99 300 ms, total p50 1.5 s (issue 10).
    this.migrationDuration = new Histogram({
      name: 'drydock_migration_duration_seconds',
      help: "A completed live migration's transfer time as QEMU measured it (total-time).",
      labelNames: ['mode'],
      buckets: [0.1, 0.25, 0.5, 1, 1.5, 2.5, 5, 10, 30, 60, 300],
      registers: [this.registry],
    });
    this.migrationDowntime = new Histogram({
      name: 'drydock_migration_downtime_seconds',
      help: "A completed live migration's guest pause at switchover as QEMU measured it.",
      labelNames: ['mode'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2.5],
      registers: [this.registry],
    });
    const queues = this.queues;
    this.queueDepth = new Gauge({
      name: 'drydock_reconcile_queue_depth',
      help: 'Keys waiting in each reconcile queue.',
      labelNames: ['queue'],
      registers: [this.registry],
      collect() {
        for (const q of queues) this.set({ queue: q.name }, q.depth);
      },
    });
    // Fleet gauges are read from the database at scrape time: every operator replica reports
    // the same truth, and nothing has to be kept in sync in memory.
    new Gauge({
      name: 'drydock_nodes',
      help: 'Nodes by status and region.',
      labelNames: ['status', 'region'],
      registers: [this.registry],
      async collect() {
        this.reset();
        const rows = await db.query<{ status: string; region: string; count: number }>(
          'SELECT status, region, count(*)::int AS count FROM nodes GROUP BY status, region',
        );
        for (const row of rows) this.set({ status: row.status, region: row.region }, row.count);
      },
    });
    new Gauge({
      name: 'drydock_instances',
      help: 'Instances by status as last reported by their agents.',
      labelNames: ['status'],
      registers: [this.registry],
      async collect() {
        this.reset();
        const rows = await db.query<{ status: string; count: number }>('SELECT status, count(*)::int AS count FROM instances GROUP BY status');
        for (const row of rows) this.set({ status: row.status }, row.count);
      },
    });
  }
}
