// The operator_replicas table (DESIGN.md §11): every replica's own row, refreshed while it runs.
import type { Db } from './db.js';

export interface ReplicaRow {
  id: string;
  hostname: string;
  region: string;
  url: string;
  version: string;
  knowsSchemaVersion: number;
  /** Its build runs unharmed beside a newer build's expand migrations (BUILD_TOLERATES_EXPAND). */
  toleratesExpand: boolean;
  ready: boolean;
  reason: string;
  leader: boolean;
  startedAt: Date;
}

/** Registers or refreshes this replica's row (one statement; `last_seen_at` is the database's clock). */
export async function upsertReplica(db: Db, r: ReplicaRow): Promise<void> {
  await db.query(
    `INSERT INTO operator_replicas (id, hostname, region, url, version, knows_schema_version, ready, reason, leader, started_at, tolerates_expand, last_seen_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now())
     ON CONFLICT (id) DO UPDATE SET hostname = $2, region = $3, url = $4, version = $5, knows_schema_version = $6,
       ready = $7, reason = $8, leader = $9, tolerates_expand = $11, last_seen_at = now(), stopped_at = NULL`,
    [r.id, r.hostname, r.region, r.url, r.version, r.knowsSchemaVersion, r.ready, r.reason, r.leader, r.startedAt, r.toleratesExpand],
  );
}

/** A replica that stops says so: not ready, not leading, stopped now. */
export async function markReplicaStopped(db: Db, id: string): Promise<void> {
  await db.query(`UPDATE operator_replicas SET ready = false, leader = false, reason = 'stopped', stopped_at = now(), last_seen_at = now() WHERE id = $1`, [id]);
}

/** Rows of replicas not seen for this long are deleted (a crashed replica never says it stopped). */
export async function forgetReplicas(db: Db, notSeenForMs: number): Promise<number> {
  const rows = await db.query<{ id: string }>(
    `DELETE FROM operator_replicas WHERE last_seen_at < now() - $1 * interval '1 millisecond' RETURNING id`,
    [notSeenForMs],
  );
  return rows.length;
}

/** Whether the registry exists: a database no operator has migrated yet (`drydock migrate up` on a new one) has none. */
export async function hasReplicaRegistry(db: Db): Promise<boolean> {
  const rows = await db.query<{ present: boolean }>(`SELECT to_regclass('operator_replicas') IS NOT NULL AS present`);
  return rows[0]?.present === true;
}

export interface ReplicaView {
  id: string;
  hostname: string;
  region: string;
  url: string;
  version: string;
  knows_schema_version: number;
  tolerates_expand: boolean;
  /** The newest migration applied to the database. */
  database_schema_version: number;
  ready: boolean;
  reason: string;
  leader: boolean;
  /** Stopped, or silent longer than the stale bound: its `ready` and `leader` are history, not fact. */
  live: boolean;
  started_at: string;
  last_seen_at: string;
  stopped_at: string | null;
  seen_ago_ms: number;
}

const ISO = `'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'`;

/**
 * Every known replica, live ones first, then by region and hostname. A replica is live while it
 * has not stopped and was seen within `staleAfterMs`; a stale one is never reported ready or leader.
 */
export async function listReplicas(db: Db, staleAfterMs: number): Promise<ReplicaView[]> {
  return db.query<ReplicaView>(
    `WITH r AS (
       SELECT *, (stopped_at IS NULL AND last_seen_at >= now() - $1 * interval '1 millisecond') AS live FROM operator_replicas
     )
     SELECT id, hostname, region, url, version, knows_schema_version, tolerates_expand,
            coalesce((SELECT max(version) FROM schema_migrations), 0)::int AS database_schema_version,
            (ready AND live) AS ready, CASE WHEN live THEN reason ELSE coalesce(CASE WHEN stopped_at IS NOT NULL THEN 'stopped' END, 'not seen since ' || to_char(last_seen_at AT TIME ZONE 'UTC', ${ISO})) END AS reason,
            (leader AND live) AS leader, live,
            to_char(started_at AT TIME ZONE 'UTC', ${ISO}) AS started_at,
            to_char(last_seen_at AT TIME ZONE 'UTC', ${ISO}) AS last_seen_at,
            to_char(stopped_at AT TIME ZONE 'UTC', ${ISO}) AS stopped_at,
            (extract(epoch FROM now() - last_seen_at) * 1000)::float8 AS seen_ago_ms
       FROM r ORDER BY live DESC, region, hostname, started_at`,
    [staleAfterMs],
  );
}
