// Small pieces of the HTTP load generators in bench/: keep-alive JSON requests over node:http
// (lighter than fetch at thousands of requests a second), latency percentiles, and CPU / RSS
// of another process read from /proc.
import { readFileSync } from 'node:fs';
import http from 'node:http';

export const CREDENTIAL_HEADER = 'x-drydock-node-credential';

export interface Reply {
  status: number;
  text: string;
}

function request(agent: http.Agent, method: string, url: string, headers: Record<string, string>, body?: unknown): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(url, {
      method,
      agent,
      headers: { ...headers, ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }) },
    });
    req.setTimeout(30_000, () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

export const postJson = (agent: http.Agent, url: string, headers: Record<string, string>, body: unknown) => request(agent, 'POST', url, headers, body);
export const getJson = (agent: http.Agent, url: string, headers: Record<string, string>) => request(agent, 'GET', url, headers);

/** Runs `task(0)` … `task(count - 1)`, at most `concurrency` at a time, each index once; rejects with the first failure. */
export async function inParallel(count: number, concurrency: number, task: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) await task(next++);
    }),
  );
}

/** Latencies in ms; percentiles by sorting once at the end (a run holds at most a few 100k). */
export class Latencies {
  private values: number[] = [];
  get count(): number {
    return this.values.length;
  }
  add(ms: number): void {
    this.values.push(ms);
  }
  summary(): { count: number; p50: number; p95: number; p99: number; max: number } {
    const sorted = [...this.values].sort((a, b) => a - b);
    const at = (q: number) => Number((sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0).toFixed(1));
    return { count: sorted.length, p50: at(0.5), p95: at(0.95), p99: at(0.99), max: Number((sorted[sorted.length - 1] ?? 0).toFixed(1)) };
  }
}

/** Samples a process's CPU time and RSS once a second from /proc (Linux). */
export class ProcessSampler {
  private timer: NodeJS.Timeout | undefined;
  private startTicks = 0;
  private startedAt = 0;
  private rssMaxKb = 0;
  // USER_HZ is 100 on every Linux this runs on (sysconf(_SC_CLK_TCK)).
  private static readonly TICKS_PER_S = 100;

  constructor(private readonly pid: number) {}

  private ticks(): number {
    const stat = readFileSync(`/proc/${this.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]); // utime + stime
  }

  private sampleRss(): void {
    const match = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${this.pid}/status`, 'utf8'));
    if (match) this.rssMaxKb = Math.max(this.rssMaxKb, Number(match[1]));
  }

  start(): void {
    this.startTicks = this.ticks();
    this.startedAt = performance.now();
    this.sampleRss();
    this.timer = setInterval(() => {
      try {
        this.sampleRss();
      } catch {
        clearInterval(this.timer);
      }
    }, 1000);
  }

  stop(): { cpu_percent: number; rss_max_mb: number } {
    clearInterval(this.timer);
    const seconds = (performance.now() - this.startedAt) / 1000;
    let cpu = 0;
    try {
      cpu = (this.ticks() - this.startTicks) / ProcessSampler.TICKS_PER_S / seconds;
      this.sampleRss();
    } catch {
      cpu = Number.NaN;
    }
    return { cpu_percent: Math.round(cpu * 100), rss_max_mb: Math.round(this.rssMaxKb / 1024) };
  }
}

/**
 * Cumulative counts of the operator's own request-duration histogram for one route (all methods
 * and statuses), by bucket upper bound in seconds: the time a request spent inside the operator,
 * from its arrival to its reply, without the client's side.
 */
export function durationBuckets(metrics: string, route: string): Map<number, number> {
  const buckets = new Map<number, number>();
  for (const line of metrics.split('\n')) {
    if (!line.startsWith('drydock_http_request_duration_seconds_bucket{') || !line.includes(`route="${route}"`)) continue;
    const le = /le="([^"]+)"/.exec(line)?.[1];
    if (le === undefined) continue;
    const bound = le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le);
    buckets.set(bound, (buckets.get(bound) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return buckets;
}

/**
 * What the operator's /metrics says now: the route's duration buckets (durationBuckets) and
 * its event loop's delay p99 and max in ms since the previous scrape (prom-client resets them).
 */
export async function operatorReading(agent: http.Agent, base: string, route: string): Promise<{ buckets: Map<number, number>; loopDelayMs: { p99: number; max: number } }> {
  const text = (await getJson(agent, `${base}/metrics`, {})).text;
  const gauge = (name: string) => Math.round(1000 * metricValue(text, name));
  return { buckets: durationBuckets(text, route), loopDelayMs: { p99: gauge('nodejs_eventloop_lag_p99_seconds'), max: gauge('nodejs_eventloop_lag_max_seconds') } };
}

/** One series' value in Prometheus text (`name{labels}` exactly as written there), NaN when absent. */
export function metricValue(metrics: string, series: string): number {
  const line = metrics.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? Number.NaN : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/**
 * Waits until the operator's start-up resync, which reconciles every deployment once, is done:
 * the deployment queue empty with at least `deployments` passes behind it, twice in a row.
 * Returns the seconds it took; throws after `limitMs`.
 */
export async function waitForResync(agent: http.Agent, base: string, deployments: number, limitMs = 600_000): Promise<number> {
  const started = performance.now();
  for (let quiet = 0; quiet < 2; ) {
    const text = (await getJson(agent, `${base}/metrics`, {})).text;
    const depth = metricValue(text, 'drydock_reconcile_queue_depth{queue="deployment"}');
    const passes = metricValue(text, 'drydock_reconcile_duration_seconds_count{queue="deployment"}');
    quiet = depth === 0 && passes >= deployments ? quiet + 1 : 0;
    if (performance.now() - started > limitMs) throw new Error(`the start-up resync did not settle in ${limitMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 500));
  }
  return (performance.now() - started) / 1000;
}

/**
 * Between two readings of durationBuckets: the requests answered and, for each quantile,
 * the bucket bound it falls under (in ms; an upper bound, as precise as the buckets).
 */
export function bucketQuantiles(before: Map<number, number>, after: Map<number, number>, quantiles = [0.5, 0.95, 0.99]): { count: number; le_ms: Record<string, number | null> } {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const counts = bounds.map((b) => (after.get(b) ?? 0) - (before.get(b) ?? 0));
  const count = counts.at(-1) ?? 0;
  const le_ms: Record<string, number | null> = {};
  for (const q of quantiles) {
    const k = counts.findIndex((c) => c >= q * count);
    const bound = k === -1 ? undefined : bounds[k];
    le_ms[`p${Math.round(q * 100)}`] = bound === undefined || !Number.isFinite(bound) ? null : Math.round(bound * 1000);
  }
  return { count, le_ms };
}
