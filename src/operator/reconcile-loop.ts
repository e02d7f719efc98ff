import type { Logger } from 'pino';
import { isConnectionLost } from '../store/db.js';

/** Longest wait between passes that keep failing (a database outage): retries stay this frequent. */
export const MAX_FAILURE_BACKOFF_MS = 5_000;

/**
 * Runs a reconcile pass every `intervalMs`, or at once when woken. Passes never overlap; a
 * wake during a pass schedules one more pass right after it. A failed pass is logged and
 * retried after a backoff that doubles per consecutive failure, from `intervalMs` up to
 * MAX_FAILURE_BACKOFF_MS (level-triggered: nothing is lost by retrying); wakes do not cut a
 * backoff short, so a database outage is not hammered by every heartbeat.
 */
export class ReconcileLoop {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = true;
  private failures = 0;

  constructor(
    private readonly name: string,
    private readonly pass: () => Promise<void>,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** Ask for a pass soon (after an API write, a heartbeat that changed something, a conflict). */
  wake(): void {
    if (this.stopped || this.failures > 0) return;
    if (this.running) this.again = true;
    else this.schedule(0);
  }

  private schedule(delayMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.run(), delayMs);
  }

  private async run(): Promise<void> {
    if (this.stopped || this.running) return;
    this.running = this.pass()
      .then(() => {
        this.failures = 0;
      })
      .catch((error: unknown) => {
        this.failures++;
        const fields = { err: error, failures: this.failures };
        if (isConnectionLost(error)) this.log.warn(fields, `${this.name} pass lost its database connection; retrying`);
        else this.log.error(fields, `${this.name} pass failed; retrying`);
      })
      .finally(() => {
        this.running = undefined;
        if (this.stopped) return;
        const backoff = Math.min(this.intervalMs * 2 ** (this.failures - 1), MAX_FAILURE_BACKOFF_MS);
        const delay = this.failures > 0 ? backoff : this.again ? 0 : this.intervalMs;
        this.again = false;
        this.schedule(delay);
      });
    await this.running;
  }
}
