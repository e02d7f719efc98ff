// The heartbeat bench splits the client's latency with the operator's own histogram: read here
// from what prom-client really prints, with the operator's buckets.
import { Gauge, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { bucketQuantiles, durationBuckets, inParallel, metricValue } from '../../bench/http-load.js';

const ROUTE = '/api/v1/agent/heartbeat';

function histogram() {
  const registry = new Registry();
  const duration = new Histogram({
    name: 'drydock_http_request_duration_seconds',
    help: 'test',
    labelNames: ['method', 'route', 'status_code'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [registry],
  });
  return { registry, duration };
}

describe('the operator-side latency of the heartbeat bench', () => {
  it('reads one route’s buckets over every status and says which bucket each quantile falls under, between two readings', async () => {
    const { registry, duration } = histogram();
    // Before the measured phase: 10 slow heartbeats that must not count.
    for (let k = 0; k < 10; k++) duration.observe({ method: 'POST', route: ROUTE, status_code: '200' }, 0.4);
    duration.observe({ method: 'GET', route: '/health', status_code: '200' }, 0.9);
    const before = durationBuckets(await registry.metrics(), ROUTE);
    // Measured: 95 fast (20 ms), 4 at 80 ms, 1 refused at 200 ms (another status, the same route).
    for (let k = 0; k < 95; k++) duration.observe({ method: 'POST', route: ROUTE, status_code: '200' }, 0.02);
    for (let k = 0; k < 4; k++) duration.observe({ method: 'POST', route: ROUTE, status_code: '200' }, 0.08);
    duration.observe({ method: 'POST', route: ROUTE, status_code: '401' }, 0.2);
    const after = durationBuckets(await registry.metrics(), ROUTE);

    expect(bucketQuantiles(before, after, [0.5, 0.95, 0.99, 1])).toEqual({ count: 100, le_ms: { p50: 25, p95: 25, p99: 100, p100: 250 } });
  });

  it('says null for a quantile past the last finite bucket, and counts nothing for a route never seen', async () => {
    const { registry, duration } = histogram();
    duration.observe({ method: 'POST', route: ROUTE, status_code: '200' }, 3);
    const after = durationBuckets(await registry.metrics(), ROUTE);
    expect(bucketQuantiles(new Map(), after, [0.5])).toEqual({ count: 1, le_ms: { p50: null } });
    expect(bucketQuantiles(new Map(), durationBuckets(await registry.metrics(), '/nowhere'), [0.5])).toEqual({ count: 0, le_ms: { p50: null } });
  });
});

describe('one series of the operator’s metrics', () => {
  it('reads the series named exactly, labels and all, and says NaN for one that is not there', async () => {
    const registry = new Registry();
    const depth = new Gauge({ name: 'drydock_reconcile_queue_depth', help: 'test', labelNames: ['queue'], registers: [registry] });
    depth.set({ queue: 'deployment' }, 3);
    depth.set({ queue: 'deployment_x' }, 9);
    new Gauge({ name: 'nodejs_eventloop_lag_max_seconds', help: 'test', registers: [registry] }).set(0.0421);
    const text = await registry.metrics();
    expect(metricValue(text, 'drydock_reconcile_queue_depth{queue="deployment"}')).toBe(3);
    expect(metricValue(text, 'nodejs_eventloop_lag_max_seconds')).toBe(0.0421);
    expect(metricValue(text, 'drydock_reconcile_queue_depth{queue="liveness"}')).toBeNaN();
  });
});

describe('the load generators’ bounded concurrency', () => {
  it('runs every index once, never more than the limit at a time, and fails with the first failure', async () => {
    const seen: number[] = [];
    let running = 0;
    let most = 0;
    await inParallel(25, 4, async (k) => {
      running++;
      most = Math.max(most, running);
      await new Promise((resolve) => setTimeout(resolve, 1 + (k % 3)));
      seen.push(k);
      running--;
    });
    expect([...seen].sort((a, b) => a - b)).toEqual(Array.from({ length: 25 }, (_, k) => k));
    expect(most).toBe(4);
    await expect(inParallel(5, 2, async (k) => { if (k === 3) throw new Error('task 3 failed'); })).rejects.toThrow('task 3 failed');
  });
});
