import type { Logger } from 'pino';
import { afterAttempt, type AttemptOutcome, DEFAULT_RETRY_POLICY, type DeliveryUpdate, type RetryPolicy, webhookBody } from '../domain/webhooks.js';
import type { Db } from '../store/db.js';
import { assertTerm, StaleTermError } from '../store/leases.js';
import { type DueDelivery, dueDeliveries, recordAttempt } from '../store/webhooks.js';
import { type LeaderLease, RECONCILER_LEASE } from './leader-lease.js';
import { SIGNATURE_HEADER, signatureHeader } from './webhook-signature.js';

export interface WebhookDispatcherOptions {
  /** How often the outbox is polled for due deliveries (default 1 s). */
  pollMs?: number;
  /** How long one attempt may take before it counts as failed (default 10 s). */
  timeoutMs?: number;
  /** Deliveries of one subscription sent at once per poll (default 8). */
  perWebhook?: number;
  retry?: RetryPolicy;
  version: string;
}

/**
 * Sends the webhook outbox (0015_webhooks.pre.sql). Only the leader sends: every replica polls,
 * but a follower's tick does nothing, and each attempt is recorded in a transaction fenced by
 * the leader's term and guarded by the attempt count it started from.
 *
 * At least once, never silently twice: a delivery is marked delivered only after the receiver
 * answered 2xx, so an operator that dies between the answer and the write sends it again after
 * a restart — with the same `x-drydock-delivery` id, which is what receivers dedupe on.
 */
export class WebhookDispatcher {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly retry: RetryPolicy;
  /** Aborted by stop(): requests in flight end at once and are not recorded (sent again later, same id). */
  private readonly stopping = new AbortController();

  /** Called once per recorded attempt (metrics). */
  onAttempt: (update: DeliveryUpdate) => void = () => {};

  constructor(
    private readonly db: Db,
    private readonly lease: LeaderLease,
    private readonly log: Logger,
    private readonly options: WebhookDispatcherOptions,
  ) {
    this.retry = options.retry ?? DEFAULT_RETRY_POLICY;
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.options.pollMs ?? 1000);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.stopping.abort();
    await this.running;
  }

  /** One poll: sends what is due if this replica leads. One at a time; a poll still running is not doubled. */
  tick(): Promise<void> {
    if (this.running) return this.running;
    this.running = this.sendDue()
      .catch((error: unknown) => this.log.warn({ err: error }, 'webhook poll failed; the next one retries'))
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  private async sendDue(): Promise<void> {
    const term = this.lease.term;
    if (term === null || this.stopping.signal.aborted) return;
    const due = await dueDeliveries(this.db, this.options.perWebhook ?? 8);
    await Promise.all(due.map((delivery) => this.send(delivery, term)));
  }

  private async send(delivery: DueDelivery, term: number): Promise<void> {
    const body = JSON.stringify(webhookBody(delivery.format, delivery.id, delivery.event));
    const outcome = await this.post(delivery, body);
    // Cut short by a shutdown: not the receiver's failure, so no attempt is counted.
    if (this.stopping.signal.aborted) return;
    const update = afterAttempt(delivery, outcome, this.retry, new Date());
    try {
      const recorded = await this.db.transaction(async (tx) => {
        await assertTerm(tx, RECONCILER_LEASE, this.lease.holder, term);
        return recordAttempt(tx, delivery.id, delivery.attempts, update);
      });
      if (!recorded) return;
    } catch (error) {
      if (error instanceof StaleTermError) return;
      throw error;
    }
    this.onAttempt(update);
    if (update.state === 'failed') this.log.warn({ delivery: delivery.id, url: delivery.url, attempts: update.attempts, error: update.lastError }, 'webhook delivery given up');
    else if (update.state === 'pending') this.log.info({ delivery: delivery.id, attempts: update.attempts, error: update.lastError, retry_at: update.nextAttemptAt }, 'webhook delivery failed; retrying');
  }

  private async post(delivery: DueDelivery, body: string): Promise<AttemptOutcome> {
    try {
      const response = await fetch(delivery.url, {
        method: 'POST',
        redirect: 'manual',
        headers: {
          'content-type': 'application/json',
          'user-agent': `drydock/${this.options.version}`,
          'x-drydock-delivery': delivery.id,
          'x-drydock-event': delivery.event.kind,
          [SIGNATURE_HEADER]: signatureHeader(delivery.secret, body, Math.floor(Date.now() / 1000)),
        },
        body,
        signal: AbortSignal.any([AbortSignal.timeout(this.options.timeoutMs ?? 10_000), this.stopping.signal]),
      });
      await response.body?.cancel();
      if (response.status >= 200 && response.status < 300) return { ok: true, status: response.status };
      return { ok: false, status: response.status, error: `HTTP ${response.status}` };
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      return { ok: false, status: null, error: cause?.code ?? cause?.message ?? (error as Error).message };
    }
  }
}
