import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { collectProcessMetrics } from '../process-metrics.js';

export class EdgeMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'drydock_edge_requests_total',
    help: 'Requests routed by the edge, by deployment and status code.',
    labelNames: ['deployment', 'code'],
    registers: [this.registry],
  });
  readonly errors = new Counter({
    name: 'drydock_edge_upstream_errors_total',
    help: 'Upstream attempts that failed before the response reached the client (each may have been retried), by deployment and reason: connect, reset, timeout, bad_response.',
    labelNames: ['deployment', 'reason'],
    registers: [this.registry],
  });
  readonly retries = new Counter({
    name: 'drydock_edge_retries_total',
    help: 'Requests sent once more to another endpoint after a failed attempt, by deployment and the reason the first attempt failed.',
    labelNames: ['deployment', 'reason'],
    registers: [this.registry],
  });
  readonly upstreamSeconds = new Histogram({
    name: 'drydock_edge_upstream_duration_seconds',
    help: 'Time to the upstream response headers, by deployment.',
    labelNames: ['deployment'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  /**
   * Holds, not requests: a request held before its first attempt and again before its retry counts
   * twice (both share one `holdMs` budget). `served`: an endpoint appeared and the request was sent
   * to it (whatever it answered); `expired`: none appeared in time, the client got the edge's
   * error; `abandoned`: the client went away (or the edge stopped) while held.
   */
  readonly held = new Counter({
    name: 'drydock_edge_held_total',
    help: 'Requests the edge held because their deployment had no endpoint to send them to (none, or only the one that just failed), by deployment and outcome: served, expired, abandoned.',
    labelNames: ['deployment', 'outcome'],
    registers: [this.registry],
  });
  // Buckets around the gap being bridged: a live migration's switchover takes 100-800 ms from the
  // source quitting to the target's publication; the default hold is 3 s.
  readonly holdSeconds = new Histogram({
    name: 'drydock_edge_hold_seconds',
    help: 'Time requests spent held waiting for an endpoint, by deployment and outcome (as drydock_edge_held_total).',
    labelNames: ['deployment', 'outcome'],
    buckets: [0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10],
    registers: [this.registry],
  });
  readonly holding = new Gauge({
    name: 'drydock_edge_held_requests',
    help: 'Requests held right now waiting for an endpoint, by deployment.',
    labelNames: ['deployment'],
    registers: [this.registry],
  });

  constructor() {
    collectProcessMetrics(this.registry);
  }
}
