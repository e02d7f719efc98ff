import type { Logger } from 'pino';

/**
 * Runs a reconcile pass every `intervalMs`, or at once when woken. Passes never overlap; a
 * wake during a pass schedules one more pass right after it. A failed pass is logged and the
 * next one retries (level-triggered: nothing is lost by retrying).
 */
export class ReconcileLoop {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = true;

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
    if (this.stopped) return;
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
      .catch((error) => this.log.error({ err: error }, `${this.name} pass failed; retrying`))
      .finally(() => {
        this.running = undefined;
        if (this.stopped) return;
        const delay = this.again ? 0 : this.intervalMs;
        this.again = false;
        this.schedule(delay);
      });
    await this.running;
  }
}
