import type { Db } from './db.js';

// Serializes event appends (see the events table comment in 0001_fleet.pre.sql).
const EVENTS_LOCK = 0x64726576; // "drev"

export interface NewEvent {
  kind: string;
  actor: string;
  nodeId?: string | null;
  instanceId?: string | null;
  rolloutId?: string | null;
  data?: Record<string, unknown>;
}

export interface EventRow {
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
 * Appends events in one statement; call it inside the transaction of the change it records.
 * The same statement queues a webhook delivery for every subscription each event matches (the
 * outbox, 0015_webhooks.pre.sql), so a committed event always has its deliveries and a rolled
 * back one never does. `starts_with`, not LIKE: kinds hold `_`, which LIKE reads as a wildcard.
 */
export async function appendEvents(tx: Db, events: readonly NewEvent[]): Promise<void> {
  if (events.length === 0) return;
  await tx.query('SELECT pg_advisory_xact_lock($1)', [EVENTS_LOCK]);
  await tx.query(
    `WITH appended AS (
       INSERT INTO events (kind, actor, node_id, instance_id, rollout_id, data)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[])
       RETURNING id, kind
     )
     INSERT INTO webhook_deliveries (webhook_id, event_id)
     SELECT w.id, a.id FROM appended a JOIN webhooks w ON EXISTS (SELECT 1 FROM unnest(w.events) p WHERE starts_with(a.kind, p))`,
    [
      events.map((e) => e.kind),
      events.map((e) => e.actor),
      events.map((e) => e.nodeId ?? null),
      events.map((e) => e.instanceId ?? null),
      events.map((e) => e.rolloutId ?? null),
      events.map((e) => JSON.stringify(e.data ?? {})),
    ],
  );
}

export interface EventQuery {
  after?: number;
  kindPrefix?: string;
  nodeId?: string;
  rolloutId?: string;
  limit?: number;
  /** newest first (to find where the log ends); default oldest first */
  newestFirst?: boolean;
}

export async function listEvents(db: Db, query: EventQuery = {}): Promise<EventRow[]> {
  const rows = await db.query<EventRow & { id: string }>(
    `SELECT id, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS at, kind, rollout_id, node_id, instance_id, actor, data
       FROM events
      WHERE id > $1
        AND ($2::text IS NULL OR kind LIKE $2 || '%' ESCAPE '\\')
        AND ($3::text IS NULL OR node_id = $3)
        AND ($4::text IS NULL OR rollout_id = $4)
      ORDER BY CASE WHEN $6 THEN -id ELSE id END
      LIMIT $5`,
    [query.after ?? 0, query.kindPrefix === undefined ? null : query.kindPrefix.replace(/[\\%_]/g, '\\$&'), query.nodeId ?? null, query.rolloutId ?? null, query.limit ?? 500, query.newestFirst ?? false],
  );
  return rows.map((r) => ({ ...r, id: Number(r.id) }));
}
