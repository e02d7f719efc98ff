import type { Logger } from 'pino';
import { isConnectionLost } from '../store/db.js';

/** What a reconcile of one key asks for next (controller-runtime's Result). */
export interface ReconcileResult {
  /** Reconcile this key again after this long (a wait, a deadline, work in flight); absent: only when enqueued. */
  requeueAfterMs?: number;
}

export type Reconcile = (key: string) => Promise<ReconcileResult | void>;

/** First retry of a key whose reconcile threw, doubling per consecutive failure of that key. */
export const BASE_FAILURE_BACKOFF_MS = 100;
/** Longest wait between retries of a key that keeps failing (a database outage): retries stay this frequent. */
export const MAX_FAILURE_BACKOFF_MS = 5_000;

/**
 * Runs one key at a time, across every queue that shares it: passes of different kinds must not
 * place instances onto the same free slot at once. FIFO, so no queue starves another.
 */
export class SerialLane {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(work: () => Promise<T>): Promise<T> {
    const result = this.tail.then(work, work);
    this.tail = result.catch(() => {});
    return result;
  }
}

/**
 * A keyed work queue (DESIGN.md §3, controller-runtime's shape): a key is a name, never the
 * event that caused it; adding a queued key does nothing (deduplicated), adding the key being
 * reconciled runs it once more right after; `requeueAfterMs` is honoured; a key whose reconcile
 * throws is retried with backoff (100 ms doubling to 5 s) without holding up other keys, and an
 * `add` does not cut that backoff short, so a database outage is not hammered by every heartbeat.
 */
export class WorkQueue {
  private readonly queued = new Set<string>();
  private readonly order: string[] = [];
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly failures = new Map<string, number>();
  private readonly backingOff = new Set<string>();
  private processing: string | undefined;
  private dirty = false;
  private running: Promise<void> | undefined;
  private stopped = true;
  /** Reconciles finished (successfully or not) since start. */
  processed = 0;
  /** Reconciles that threw since start. */
  failed = 0;
  /** Told after every reconcile (metrics, tests): the key, how long it took, whether it threw. */
  onReconciled: (key: string, ms: number, ok: boolean) => void = () => {};

  constructor(
    readonly name: string,
    private readonly reconcile: Reconcile,
    private readonly log: Logger,
    private readonly lane: SerialLane = new SerialLane(),
  ) {}

  start(): void {
    this.stopped = false;
    this.kick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    await this.running;
  }

  /** Keys waiting (queued now, not counting delayed ones). */
  get depth(): number {
    return this.order.length;
  }

  /** Is `key` waiting to run now (not delayed, not running)? */
  isQueued(key: string): boolean {
    return this.queued.has(key);
  }

  /** Reconcile `key` soon. */
  add(key: string): void {
    if (this.backingOff.has(key)) return;
    this.enqueue(key);
  }

  addAll(keys: Iterable<string>): void {
    for (const key of keys) this.add(key);
  }

  /** Reconcile `key` after `delayMs` (an earlier pending time wins). */
  addAfter(key: string, delayMs: number): void {
    if (this.stopped) return;
    if (delayMs <= 0) return this.enqueue(key);
    const at = Date.now() + delayMs;
    const pending = this.timers.get(key);
    if (pending && pending.at <= at) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.backingOff.delete(key);
      this.enqueue(key);
    }, delayMs);
    timer.unref();
    this.timers.set(key, { at, timer });
  }

  private enqueue(key: string): void {
    if (this.processing === key) {
      this.dirty = true;
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.order.push(key);
    this.kick();
  }

  private kick(): void {
    if (this.stopped || this.running || this.order.length === 0) return;
    this.running = this.drain().finally(() => {
      this.running = undefined;
      this.kick();
    });
  }

  private async drain(): Promise<void> {
    while (!this.stopped && this.order.length > 0) {
      const key = this.order.shift() as string;
      this.queued.delete(key);
      await this.lane.run(() => this.runOne(key));
    }
  }

  private async runOne(key: string): Promise<void> {
    if (this.stopped) return;
    this.processing = key;
    this.dirty = false;
    let next: number | undefined;
    const started = performance.now();
    let ok = false;
    try {
      const result = await this.reconcile(key);
      this.failures.delete(key);
      next = result?.requeueAfterMs;
      ok = true;
    } catch (error) {
      this.failed++;
      const failures = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, failures);
      const fields = { err: error, key, failures };
      if (isConnectionLost(error)) this.log.warn(fields, `${this.name} reconcile lost its database connection; retrying`);
      else this.log.error(fields, `${this.name} reconcile failed; retrying`);
      this.backingOff.add(key);
      this.dirty = false;
      next = Math.min(BASE_FAILURE_BACKOFF_MS * 2 ** (failures - 1), MAX_FAILURE_BACKOFF_MS);
    } finally {
      this.processed++;
      this.processing = undefined;
      this.onReconciled(key, performance.now() - started, ok);
    }
    if (this.dirty) this.enqueue(key);
    else if (next !== undefined) this.addAfter(key, next);
  }
}
