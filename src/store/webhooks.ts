import type { DeliveryState, DeliveryUpdate, WebhookEvent, WebhookFormat } from '../domain/webhooks.js';
import type { Db } from './db.js';

const ISO = `'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'`;
const iso = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', ${ISO})`;

/** A subscription as the API shows it: never its secret. */
export interface WebhookView {
  id: string;
  url: string;
  events: string[];
  format: WebhookFormat;
  created_by: string;
  created_at: string;
  pending: number;
  delivered: number;
  failed: number;
}

export interface NewWebhook {
  id: string;
  url: string;
  events: readonly string[];
  format: WebhookFormat;
  secret: string;
  createdBy: string;
}

export async function insertWebhook(tx: Db, hook: NewWebhook): Promise<void> {
  await tx.query('INSERT INTO webhooks (id, url, events, format, secret, created_by) VALUES ($1, $2, $3::text[], $4, $5, $6)', [
    hook.id,
    hook.url,
    [...hook.events],
    hook.format,
    hook.secret,
    hook.createdBy,
  ]);
}

/** Every subscription (or one), with counts of its deliveries by state. */
export async function listWebhooks(db: Db, id?: string): Promise<WebhookView[]> {
  const rows = await db.query<WebhookView & { pending: string; delivered: string; failed: string }>(
    `SELECT w.id, w.url, w.events, w.format, w.created_by, ${iso('w.created_at')} AS created_at,
            count(d.id) FILTER (WHERE d.state = 'pending') AS pending,
            count(d.id) FILTER (WHERE d.state = 'delivered') AS delivered,
            count(d.id) FILTER (WHERE d.state = 'failed') AS failed
       FROM webhooks w LEFT JOIN webhook_deliveries d ON d.webhook_id = w.id
      WHERE $1::text IS NULL OR w.id = $1
      GROUP BY w.id ORDER BY w.created_at, w.id`,
    [id ?? null],
  );
  return rows.map((r) => ({ ...r, pending: Number(r.pending), delivered: Number(r.delivered), failed: Number(r.failed) }));
}

/** Deletes a subscription and its deliveries (sent or not); false when there is none. */
export async function deleteWebhook(tx: Db, id: string): Promise<boolean> {
  const rows = await tx.query('DELETE FROM webhooks WHERE id = $1 RETURNING id', [id]);
  return rows.length > 0;
}

export interface DeliveryView {
  id: string;
  webhook_id: string;
  event_id: number;
  event_kind: string;
  state: DeliveryState;
  attempts: number;
  next_attempt_at: string | null;
  last_attempt_at: string | null;
  last_status: number | null;
  last_error: string | null;
  delivered_at: string | null;
  created_at: string;
}

export interface DeliveryQuery {
  webhookId?: string | undefined;
  state?: DeliveryState | undefined;
  /** Newest first; default 100. */
  limit?: number | undefined;
}

export async function listDeliveries(db: Db, query: DeliveryQuery = {}): Promise<DeliveryView[]> {
  const rows = await db.query<DeliveryView & { event_id: string; id: string }>(
    `SELECT d.id::text AS id, d.webhook_id, d.event_id, e.kind AS event_kind, d.state, d.attempts,
            CASE WHEN d.state = 'pending' THEN ${iso('d.next_attempt_at')} END AS next_attempt_at,
            ${iso('d.last_attempt_at')} AS last_attempt_at, d.last_status, d.last_error,
            ${iso('d.delivered_at')} AS delivered_at, ${iso('d.created_at')} AS created_at
       FROM webhook_deliveries d JOIN events e ON e.id = d.event_id
      WHERE ($1::text IS NULL OR d.webhook_id = $1) AND ($2::text IS NULL OR d.state = $2)
      ORDER BY d.id DESC LIMIT $3`,
    [query.webhookId ?? null, query.state ?? null, query.limit ?? 100],
  );
  return rows.map((r) => ({ ...r, event_id: Number(r.event_id) }));
}

/** A delivery due now, with what sending it needs (the secret included: never leaves the operator). */
export interface DueDelivery {
  id: string;
  attempts: number;
  createdAt: Date;
  url: string;
  format: WebhookFormat;
  secret: string;
  event: WebhookEvent;
}

/**
 * Pending deliveries whose time has come, oldest first, at most `perWebhook` of each
 * subscription: a receiver that hangs until the timeout holds up only its own deliveries.
 */
export async function dueDeliveries(db: Db, perWebhook: number): Promise<DueDelivery[]> {
  const rows = await db.query<{
    id: string;
    attempts: number;
    created_at: Date;
    url: string;
    format: WebhookFormat;
    secret: string;
    event_id: string;
    at: string;
    kind: string;
    rollout_id: string | null;
    node_id: string | null;
    instance_id: string | null;
    actor: string;
    data: Record<string, unknown>;
  }>(
    `SELECT d.id::text AS id, d.attempts, d.created_at, w.url, w.format, w.secret,
            e.id AS event_id, ${iso('e.at')} AS at, e.kind, e.rollout_id, e.node_id, e.instance_id, e.actor, e.data
       FROM webhooks w
       CROSS JOIN LATERAL (
         SELECT * FROM webhook_deliveries
          WHERE webhook_id = w.id AND state = 'pending' AND next_attempt_at <= now()
          ORDER BY next_attempt_at, id LIMIT $1
       ) d
       JOIN events e ON e.id = d.event_id
      ORDER BY d.next_attempt_at, d.id`,
    [perWebhook],
  );
  return rows.map((r) => ({
    id: r.id,
    attempts: r.attempts,
    createdAt: r.created_at,
    url: r.url,
    format: r.format,
    secret: r.secret,
    event: { id: Number(r.event_id), at: r.at, kind: r.kind, rollout_id: r.rollout_id, node_id: r.node_id, instance_id: r.instance_id, actor: r.actor, data: r.data },
  }));
}

/**
 * Records one attempt. Guarded by the attempt count it was made from: a second sender that
 * raced this one (a deposed leader) records nothing. Returns whether the row was updated.
 */
export async function recordAttempt(tx: Db, id: string, fromAttempts: number, update: DeliveryUpdate): Promise<boolean> {
  const rows = await tx.query(
    `UPDATE webhook_deliveries
        SET state = $3, attempts = $4, last_status = $5, last_error = $6, last_attempt_at = now(),
            next_attempt_at = coalesce($7::timestamptz, next_attempt_at),
            delivered_at = CASE WHEN $3 = 'delivered' THEN now() END
      WHERE id = $1 AND attempts = $2 AND state = 'pending'
      RETURNING id`,
    [id, fromAttempts, update.state, update.attempts, update.lastStatus, update.lastError?.slice(0, 500) ?? null, update.nextAttemptAt],
  );
  return rows.length > 0;
}

/** The outbox at a glance (metrics): deliveries waiting and the age of the oldest, in seconds. */
export async function outboxBacklog(db: Db): Promise<{ pending: number; oldestSeconds: number }> {
  const rows = await db.query<{ pending: number; oldest: number | null }>(
    `SELECT count(*)::int AS pending, extract(epoch FROM now() - min(created_at))::float8 AS oldest
       FROM webhook_deliveries WHERE state = 'pending'`,
  );
  return { pending: rows[0]?.pending ?? 0, oldestSeconds: rows[0]?.oldest ?? 0 };
}
