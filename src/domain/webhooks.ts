// Webhook subscriptions and deliveries (DESIGN.md §4, §9): which events a subscription takes,
// what a delivery's body is, and when a failed delivery is tried again. Pure: the clock is an
// argument, the HMAC is computed by the operator (src/operator/webhook-signature.ts).

export const WEBHOOK_FORMATS = ['drydock', 'slack'] as const;
export type WebhookFormat = (typeof WEBHOOK_FORMATS)[number];

export const DELIVERY_STATES = ['pending', 'delivered', 'failed'] as const;
export type DeliveryState = (typeof DELIVERY_STATES)[number];

/**
 * A subscription names event kinds by prefix (`rollout.` takes every rollout event,
 * `node.down` only that one). Returns the prefixes that match no kind in `kinds`, so a typo
 * (`rolout.`) is refused instead of silently never firing.
 */
export function unmatchedPrefixes(prefixes: readonly string[], kinds: readonly string[]): string[] {
  return prefixes.filter((prefix) => !kinds.some((kind) => kind.startsWith(prefix)));
}

/**
 * A URL as people below admin see it: scheme, host and port only. Many receivers put their own
 * credential in the path (a Slack incoming webhook's URL is enough to post to the channel).
 */
export function redactUrl(url: string): string {
  const match = /^(https?:\/\/[^/?#]+)(.*)$/.exec(url);
  if (!match) return '…';
  return match[2] === '' || match[2] === '/' ? url : `${match[1]}/…`;
}

export function subscribes(prefixes: readonly string[], kind: string): boolean {
  return prefixes.some((prefix) => kind.startsWith(prefix));
}

/** How long failed deliveries are retried. */
export interface RetryPolicy {
  /** Wait after the first failed attempt (default 5 s); doubled after each further failure. */
  initialMs: number;
  /** Longest wait between two attempts (default 10 min). */
  maxMs: number;
  /** A delivery still failing this long after its event is given up (default 24 h). */
  giveUpAfterMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { initialMs: 5_000, maxMs: 10 * 60_000, giveUpAfterMs: 24 * 3_600_000 };

/** The wait after the `failures`-th failed attempt (1-based): initial · 2^(failures-1), capped. */
export function retryDelayMs(failures: number, policy: RetryPolicy): number {
  const exponent = Math.max(0, Math.min(failures - 1, 40));
  return Math.min(policy.maxMs, policy.initialMs * 2 ** exponent);
}

export type AttemptOutcome = { ok: true; status: number } | { ok: false; status: number | null; error: string };

export type DeliveryUpdate =
  | { state: 'delivered'; attempts: number; lastStatus: number; lastError: null; nextAttemptAt: null }
  | { state: 'pending'; attempts: number; lastStatus: number | null; lastError: string; nextAttemptAt: Date }
  | { state: 'failed'; attempts: number; lastStatus: number | null; lastError: string; nextAttemptAt: null };

/**
 * What one attempt makes of a delivery: delivered on a 2xx, otherwise tried again after the
 * backoff, or given up once the next try would fall past `giveUpAfterMs` from `createdAt`.
 */
export function afterAttempt(delivery: { attempts: number; createdAt: Date }, outcome: AttemptOutcome, policy: RetryPolicy, now: Date): DeliveryUpdate {
  const attempts = delivery.attempts + 1;
  if (outcome.ok) return { state: 'delivered', attempts, lastStatus: outcome.status, lastError: null, nextAttemptAt: null };
  const next = new Date(now.getTime() + retryDelayMs(attempts, policy));
  if (next.getTime() - delivery.createdAt.getTime() > policy.giveUpAfterMs) {
    return { state: 'failed', attempts, lastStatus: outcome.status, lastError: outcome.error, nextAttemptAt: null };
  }
  return { state: 'pending', attempts, lastStatus: outcome.status, lastError: outcome.error, nextAttemptAt: next };
}

/** An event as a webhook carries it (the same fields as GET /api/v1/events). */
export interface WebhookEvent {
  id: number;
  at: string;
  kind: string;
  rollout_id: string | null;
  node_id: string | null;
  instance_id: string | null;
  actor: string;
  data: Record<string, unknown>;
}

/**
 * The body of one delivery. `drydock`: the delivery id and the event as the events API shows
 * it. `slack`: an incoming-webhook message (`text`, mrkdwn), which Slack, Mattermost and
 * Rocket.Chat accept as is.
 */
export function webhookBody(format: WebhookFormat, deliveryId: string, event: WebhookEvent): Record<string, unknown> {
  if (format === 'drydock') return { delivery_id: deliveryId, event };
  const subject = [
    event.rollout_id ? `rollout \`${event.rollout_id}\`` : '',
    typeof event.data.hostname === 'string' ? `node \`${event.data.hostname}\`` : event.node_id ? `node \`${event.node_id}\`` : '',
    event.instance_id ? `instance \`${event.instance_id}\`` : '',
    typeof event.data.name === 'string' ? `\`${event.data.name}\`` : '',
  ].filter(Boolean);
  const reason = typeof event.data.reason === 'string' ? ` — ${event.data.reason}` : '';
  return { text: `*${event.kind}*${subject.length ? ` ${subject.join(', ')}` : ''} by ${event.actor} at ${event.at}${reason} (event ${event.id})` };
}
