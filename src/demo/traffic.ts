import { Agent, request } from 'node:http';

export interface TrafficStats {
  sent: number;
  failed: number;
  /** The first few failures, for the report. */
  errors: string[];
}

/**
 * A steady request rate through the edge, spread over deployments (`/d/<name>/`), on
 * keep-alive connections like a real client. A request counts as failed on any error or a
 * non-200 answer; every request is awaited, so none is left out of the count.
 */
export class TrafficGenerator {
  readonly stats: TrafficStats = { sent: 0, failed: 0, errors: [] };
  private timer: NodeJS.Timeout | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 64 });
  private next = 0;

  constructor(
    private readonly edgeUrl: string,
    private readonly deployments: readonly string[],
    /** Requests per second (default 50). */
    private readonly rate = 50,
  ) {}

  start(): void {
    const interval = 1000 / this.rate;
    let due = performance.now();
    const tick = () => {
      // Catch up after a slow event loop instead of silently sending less.
      while (performance.now() >= due) {
        this.send();
        due += interval;
      }
      this.timer = setTimeout(tick, Math.max(0, due - performance.now()));
    };
    tick();
  }

  async stop(): Promise<TrafficStats> {
    clearTimeout(this.timer);
    await Promise.all(this.inFlight);
    this.agent.destroy();
    return this.stats;
  }

  private send(): void {
    const deployment = this.deployments[this.next++ % this.deployments.length];
    this.stats.sent++;
    const done = new Promise<void>((resolve) => {
      const req = request(`${this.edgeUrl}/d/${deployment}/`, { agent: this.agent, timeout: 10_000 }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode !== 200) this.fail(`${deployment}: HTTP ${res.statusCode}`);
          resolve();
        });
        res.on('error', (error) => {
          this.fail(`${deployment}: ${error.message}`);
          resolve();
        });
      });
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', (error) => {
        this.fail(`${deployment}: ${error.message}`);
        resolve();
      });
      req.end();
    });
    this.inFlight.add(done);
    void done.then(() => this.inFlight.delete(done));
  }

  private fail(reason: string): void {
    this.stats.failed++;
    if (this.stats.errors.length < 20) this.stats.errors.push(reason);
  }
}
