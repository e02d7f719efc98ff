import type { Db } from './db.js';

/**
 * The fleet as a rollout plan reads it, each table as one JSON text built by the database: only
 * the columns the plan reads, one array per row, in the order loadFleetSnapshot reads them (by
 * id). Issue 9: at 10,000 nodes / 200,000 instances, rows as objects cost the operator's event
 * loop hundreds of milliseconds (parsed row by row, then copied to the plan worker); one text
 * per table is received as it is and handed to the plan worker, which parses it off the loop.
 */
export interface PlanSnapshotText {
  /** `[[id, hostname, region, role, labels, status, cordoned, max_instances, last_heartbeat_at (epoch ms) | null, version of the component | null], …]` */
  nodes: string;
  /** `[[id, name, replicas, min_available, node_selector], …]` */
  deployments: string;
  instances: InstanceRowsText;
  /** Every version of every component the nodes run, by component then version. */
  running: { component: string; version: string }[];
}

/**
 * The instances, all of them or only those written since an earlier load (its `cursor`): the
 * plan worker keeps the fleet's 200,000 instances between dry runs and applies what changed
 * (plan-fleet-cache.ts), so a plan does not read and parse them all again (issue 9, goal 3).
 */
export interface InstanceRowsText {
  /**
   * `[[id, deployment_id, node_id, desired, status, volume, volume_expires_at (epoch ms) | null,
   * activity, activity_expires_at (epoch ms) | null], …]` by id in byte order (COLLATE "C").
   */
  rows: string;
  /** Every instance (true), or only those inserted or updated since the `since` cursor given. */
  complete: boolean;
  /** How many instances there are: fewer than a cache holds after applying `rows` means some were deleted. */
  count: number;
  /** The snapshot the rows were read in (`pg_current_snapshot()`): the `since` of the next load. */
  cursor: string;
  /** The database's clock at the read (epoch ms): reported volume and activity expire against it. */
  now: number;
  /**
   * Every instance id there is, a JSON array, so a kept copy can drop the deleted ones: when asked
   * for (`withIds`), or when fewer instances exist than the copy holds (`kept`: some were deleted).
   */
  ids?: string;
}

/**
 * An incremental load is refused (everything is read instead) once this many transaction ids
 * have been assigned since its cursor: the row filter compares 32-bit xids, which is sound well
 * inside 2^31 of them, and rows frozen by VACUUM (after 50 million by default) stay found.
 */
export const FULL_RELOAD_AFTER_XIDS = 1_000_000;

export async function loadPlanSnapshot(
  db: Db,
  component: string,
  others: readonly string[] = [],
  options: { since?: string; withIds?: boolean; kept?: number } = {},
): Promise<PlanSnapshotText> {
  // Several targets: the versions of the other target components too (null when there are none).
  // Four independent reads, side by side (each its own session on a server engine).
  const [[nodes], [deployments], instances, running] = await Promise.all([
    db.query<{ nodes: string }>(
      `SELECT coalesce(json_agg(json_build_array(id, hostname, region, role, labels, status, cordoned, max_instances,
                extract(epoch FROM last_heartbeat_at) * 1000, components->>$1,
                CASE WHEN cardinality($2::text[]) > 0 THEN (SELECT coalesce(jsonb_object_agg(c.key, c.value), '{}'::jsonb) FROM jsonb_each_text(components) AS c WHERE c.key = ANY($2::text[])) END) ORDER BY id), '[]')::text AS nodes
         FROM nodes`,
      [component, [...others]],
    ),
    db.query<{ deployments: string }>(
      `SELECT coalesce(json_agg(json_build_array(id, name, replicas, min_available, node_selector) ORDER BY id), '[]')::text AS deployments
         FROM deployments`,
    ),
    loadInstanceRows(db, options.since, options.withIds ?? false, options.kept),
    db.query<{ component: string; version: string }>(
      `SELECT DISTINCT c.key AS component, c.value AS version FROM nodes, jsonb_each_text(nodes.components) AS c ORDER BY 1, 2`,
    ),
  ]);
  return {
    nodes: (nodes as { nodes: string }).nodes,
    deployments: (deployments as { deployments: string }).deployments,
    instances,
    running,
  };
}

/**
 * The instances as one JSON text, with the snapshot it was read in, in ONE statement: its rows,
 * count and cursor agree even in READ COMMITTED. With `since` (an earlier cursor, a snapshot)
 * only the rows that snapshot could not see are read: those inserted or updated by transactions
 * that committed after it, whatever else the server runs. Deletions leave no row behind; `count`
 * tells the cache to start over (plan-fleet-cache.ts).
 *
 * A row's xmin is a 32-bit xid. A cheap test first keeps rows whose xmin lies (modulo 2^32)
 * between the old snapshot's xmin and the new one's xmax; those get the exact test, their xid
 * widened to 64 bits with the epoch of the new snapshot (the one before when the 32 bits are
 * past its xmax: the counter wrapped in between) and checked with pg_visible_in_snapshot. The
 * exact test matters on a shared server: its xids are cluster-wide, and another database's long
 * transaction holds every snapshot's xmin back. pg_visible_in_snapshot does not know
 * subtransactions: a row written in a savepoint of a transaction still open when `since` was
 * taken is missed (drydock writes in none; the operator reads every row every few minutes,
 * rollout-planning.ts COMPLETE_READ_EVERY_MS). Everything is read instead when `since` is
 * missing, too old (FULL_RELOAD_AFTER_XIDS) or ahead of the database (a cursor from another
 * cluster or from before a restore).
 */
async function loadInstanceRows(db: Db, since: string | undefined, withIds: boolean, kept: number | undefined): Promise<InstanceRowsText> {
  if (since !== undefined && !SNAPSHOT_TEXT.test(since)) throw new Error(`not a pg_snapshot cursor: ${since}`);
  const [row] = await db.query<{ cursor: string; complete: boolean; now: number; count: number; rows: string; ids: string | null }>(
    `WITH s AS (
       SELECT pg_current_snapshot() AS snap, pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xmax, $1::pg_snapshot AS old,
              pg_snapshot_xmin($1::pg_snapshot)::text::bigint AS since
     ), f AS (
       SELECT s.*, coalesce(s.xmax - s.since BETWEEN 0 AND $2, false) AS partial, (SELECT count(*) FROM instances)::int AS count FROM s
     )
     SELECT f.snap::text AS cursor, NOT f.partial AS complete, extract(epoch FROM now()) * 1000 AS now, f.count,
            (SELECT coalesce(json_agg(json_build_array(i.id, i.deployment_id, i.node_id, i.desired, i.status,
                      i.volume, extract(epoch FROM i.volume_expires_at) * 1000,
                      i.activity, extract(epoch FROM i.activity_expires_at) * 1000) ORDER BY i.id COLLATE "C"), '[]')::text
               FROM instances i
              WHERE NOT f.partial
                 OR ((i.xmin::text::bigint - f.since % 4294967296 + 4294967296) % 4294967296 <= f.xmax - f.since
                     AND NOT pg_visible_in_snapshot(
                       ((f.xmax / 4294967296 - CASE WHEN i.xmin::text::bigint > f.xmax % 4294967296 THEN 1 ELSE 0 END) * 4294967296
                         + i.xmin::text::bigint)::text::xid8,
                       f.old))) AS rows,
            CASE WHEN f.partial AND ($3::boolean OR f.count < $4::int) THEN (SELECT coalesce(json_agg(id ORDER BY id COLLATE "C"), '[]')::text FROM instances) END AS ids
       FROM f`,
    [since ?? null, FULL_RELOAD_AFTER_XIDS, withIds, kept ?? null],
  );
  const { cursor, complete, now, count, rows, ids } = row as { cursor: string; complete: boolean; now: number; count: number; rows: string; ids: string | null };
  return { cursor, complete, now: Number(now), count, rows, ...(ids === null ? {} : { ids }) };
}

/** `xmin:xmax:xip,…` as pg_current_snapshot() writes it. */
const SNAPSHOT_TEXT = /^[0-9]+:[0-9]+:([0-9]+(,[0-9]+)*)?$/;
