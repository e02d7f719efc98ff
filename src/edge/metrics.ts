import { Counter, Histogram, Registry } from 'prom-client';
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

  constructor() {
    collectProcessMetrics(this.registry, 'drydock_edge_');
  }
}
