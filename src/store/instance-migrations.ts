// The instance_migrations table (DESIGN.md §10): one row per move of an instance, written in
// the transaction that places its target instance, advanced by the migration reconciler.
import {
  type InstanceMigration,
  type MigrationDecision,
  type MigrationLimits,
  type MigrationMode,
  type MigrationReport,
  type MigrationSide,
  type MigrationState,
  type MigrationTrigger,
  OPEN_MIGRATION_STATES,
} from '../domain/instance-migration.js';
import type { InstanceStatus, NodeStatus } from '../domain/types.js';
import type { Db } from './db.js';

export interface NewMigration extends MigrationLimits {
  id: string;
  instanceId: string;
  deploymentId: string;
  sourceNodeId: string;
  targetNodeId: string;
  targetInstanceId: string;
  mode: MigrationMode;
  trigger: MigrationTrigger;
}

const OPEN = OPEN_MIGRATION_STATES as readonly string[];
/** The open states written out (constants, not input), so the planner matches the partial index of open rows. */
const OPEN_SQL = `(${OPEN.map((s) => `'${s}'`).join(', ')})`;

/** Inserts the rows in one statement; the unique index refuses a second open move of an instance (23505). */
export async function insertMigrations(tx: Db, rows: readonly NewMigration[]): Promise<void> {
  if (rows.length === 0) return;
  await tx.query(
    `INSERT INTO instance_migrations (id, instance_id, deployment_id, source_node_id, target_node_id, target_instance_id,
                                      mode, trigger, state, downtime_limit_ms, deadline_at)
     SELECT u.id, u.instance_id, u.deployment_id, u.source, u.target, u.target_instance, u.mode, u.trigger, 'preparing',
            u.downtime_limit_ms, now() + u.deadline_ms * interval '1 millisecond'
       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::int[], $10::float8[])
            AS u(id, instance_id, deployment_id, source, target, target_instance, mode, trigger, downtime_limit_ms, deadline_ms)`,
    [
      rows.map((r) => r.id),
      rows.map((r) => r.instanceId),
      rows.map((r) => r.deploymentId),
      rows.map((r) => r.sourceNodeId),
      rows.map((r) => r.targetNodeId),
      rows.map((r) => r.targetInstanceId),
      rows.map((r) => r.mode),
      rows.map((r) => r.trigger),
      rows.map((r) => r.downtimeLimitMs),
      rows.map((r) => r.deadlineMs),
    ],
  );
}

type MigrationRow = {
  id: string; instance_id: string; deployment_id: string; source_node_id: string; target_node_id: string; target_instance_id: string;
  mode: MigrationMode; trigger: MigrationTrigger; state: MigrationState; reason: string | null; target_address: string | null;
  downtime_limit_ms: number; deadline_at: Date; started_at: Date; ended_at: Date | null;
  total_ms: number | null; downtime_ms: number | null; transferred_bytes: string | number | null;
};

const COLUMNS = `id, instance_id, deployment_id, source_node_id, target_node_id, target_instance_id, mode, trigger, state, reason,
  target_address, downtime_limit_ms, deadline_at, started_at, ended_at, total_ms, downtime_ms, transferred_bytes`;

function toMigration(r: MigrationRow): InstanceMigration {
  return {
    id: r.id,
    instanceId: r.instance_id,
    deploymentId: r.deployment_id,
    sourceNodeId: r.source_node_id,
    targetNodeId: r.target_node_id,
    targetInstanceId: r.target_instance_id,
    mode: r.mode,
    trigger: r.trigger,
    state: r.state,
    reason: r.reason,
    targetAddress: r.target_address,
    downtimeLimitMs: r.downtime_limit_ms,
    deadlineAt: new Date(r.deadline_at),
    startedAt: new Date(r.started_at),
    endedAt: r.ended_at === null ? null : new Date(r.ended_at),
    stats:
      r.total_ms === null || r.downtime_ms === null || r.transferred_bytes === null
        ? null
        : { total_ms: r.total_ms, downtime_ms: r.downtime_ms, transferred_bytes: Number(r.transferred_bytes) },
  };
}

/** The open migrations with the instance rows of both sides, as decideMigration wants them. */
export async function loadOpenMigrations(
  db: Db,
  ids: readonly string[],
): Promise<{ migration: InstanceMigration; source?: MigrationSide; target?: MigrationSide }[]> {
  const rows = await db.query<MigrationRow>(
    `SELECT ${COLUMNS} FROM instance_migrations WHERE state IN ${OPEN_SQL} AND id = ANY($1::text[]) ORDER BY started_at, id`,
    [[...ids]],
  );
  if (rows.length === 0) return [];
  const instanceIds = rows.flatMap((r) => [r.instance_id, r.target_instance_id]);
  const sides = await db.query<{
    id: string; desired: 'running' | 'stopped'; status: InstanceStatus; healthy: boolean; published: boolean;
    node_status: NodeStatus; migration_report: MigrationReport | null;
  }>(
    `SELECT i.id, i.desired, i.status, i.healthy, i.published, n.status AS node_status, i.migration_report
       FROM instances i JOIN nodes n ON n.id = i.node_id WHERE i.id = ANY($1::text[])`,
    [instanceIds],
  );
  const byId = new Map(
    sides.map((s) => [
      s.id,
      { desired: s.desired, status: s.status, healthy: s.healthy, published: s.published, nodeStatus: s.node_status, report: s.migration_report },
    ]),
  );
  return rows.map((r) => {
    const source = byId.get(r.instance_id);
    const target = byId.get(r.target_instance_id);
    return { migration: toMigration(r), ...(source ? { source } : {}), ...(target ? { target } : {}) };
  });
}

/**
 * Writes one decision if the row is still in the state it was decided from; returns false when
 * someone else moved it first (the caller decides again on fresh rows).
 */
export async function applyMigrationDecision(tx: Db, m: InstanceMigration, d: MigrationDecision): Promise<boolean> {
  const ended = !OPEN.includes(d.state);
  const rows = await tx.query<{ id: string }>(
    `UPDATE instance_migrations SET state = $3, reason = coalesce($4, reason), target_address = coalesce($5, target_address),
            total_ms = coalesce($6, total_ms), downtime_ms = coalesce($7, downtime_ms), transferred_bytes = coalesce($8, transferred_bytes),
            ended_at = CASE WHEN $9 THEN now() ELSE ended_at END, updated_at = now()
      WHERE id = $1 AND state = $2 RETURNING id`,
    [
      m.id,
      m.state,
      d.state,
      d.reason ?? null,
      d.targetAddress ?? null,
      d.stats?.total_ms ?? null,
      d.stats?.downtime_ms ?? null,
      d.stats?.transferred_bytes ?? null,
      ended,
    ],
  );
  return rows.length === 1;
}

export interface MigrationView {
  id: string;
  instance_id: string;
  deployment_id: string;
  deployment: string | null;
  source_node_id: string;
  source_hostname: string | null;
  target_node_id: string;
  target_hostname: string | null;
  target_instance_id: string;
  mode: MigrationMode;
  trigger: MigrationTrigger;
  state: MigrationState;
  reason: string | null;
  target_address: string | null;
  downtime_limit_ms: number;
  deadline_at: string;
  started_at: string;
  ended_at: string | null;
  total_ms: number | null;
  downtime_ms: number | null;
  transferred_bytes: number | null;
}

const ISO = `'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'`;

export interface MigrationFilter {
  id?: string | undefined;
  state?: 'open' | MigrationState | undefined;
  instanceId?: string | undefined;
  nodeId?: string | undefined;
  limit: number;
}

/** Newest first; `state: open` is every state still in flight. */
export async function listMigrations(db: Db, filter: MigrationFilter): Promise<MigrationView[]> {
  const states = filter.state === undefined ? null : filter.state === 'open' ? [...OPEN] : [filter.state];
  const rows = await db.query<MigrationView & { transferred_bytes: string | number | null }>(
    `SELECT m.id, m.instance_id, m.deployment_id, d.name AS deployment, m.source_node_id, s.hostname AS source_hostname,
            m.target_node_id, t.hostname AS target_hostname, m.target_instance_id, m.mode, m.trigger, m.state, m.reason,
            m.target_address, m.downtime_limit_ms,
            to_char(m.deadline_at AT TIME ZONE 'UTC', ${ISO}) AS deadline_at,
            to_char(m.started_at AT TIME ZONE 'UTC', ${ISO}) AS started_at,
            to_char(m.ended_at AT TIME ZONE 'UTC', ${ISO}) AS ended_at,
            m.total_ms, m.downtime_ms, m.transferred_bytes
       FROM instance_migrations m
       LEFT JOIN deployments d ON d.id = m.deployment_id
       LEFT JOIN nodes s ON s.id = m.source_node_id
       LEFT JOIN nodes t ON t.id = m.target_node_id
      WHERE ($1::text[] IS NULL OR m.state = ANY($1::text[]))
        AND ($2::text IS NULL OR m.instance_id = $2 OR m.target_instance_id = $2)
        AND ($3::text IS NULL OR m.source_node_id = $3 OR m.target_node_id = $3)
        AND ($5::text IS NULL OR m.id = $5)
      ORDER BY m.started_at DESC, m.id DESC LIMIT $4`,
    [states, filter.instanceId ?? null, filter.nodeId ?? null, filter.limit, filter.id ?? null],
  );
  return rows.map((r) => ({ ...r, transferred_bytes: r.transferred_bytes === null ? null : Number(r.transferred_bytes) }));
}

export async function findMigration(db: Db, id: string): Promise<MigrationView | undefined> {
  return (await listMigrations(db, { id, limit: 1 }))[0];
}

/** The open migrations' ids and the nodes of their sides: what the reconciler's listing needs, no instance rows. */
export async function openMigrationKeys(db: Db): Promise<{ id: string; source_node_id: string; target_node_id: string }[]> {
  return db.query(`SELECT id, source_node_id, target_node_id FROM instance_migrations WHERE state IN ${OPEN_SQL}`);
}

/**
 * The open live migrations with a side on these nodes, for rendering their desired state.
 */
export async function openLiveMigrationsOn(db: Db, nodeIds: readonly string[]): Promise<InstanceMigration[]> {
  if (nodeIds.length === 0) return [];
  const rows = await db.query<MigrationRow>(
    `SELECT ${COLUMNS} FROM instance_migrations
      WHERE state IN ${OPEN_SQL} AND mode = 'live'
        AND (source_node_id = ANY($1::text[]) OR target_node_id = ANY($1::text[]))`,
    [[...nodeIds]],
  );
  return rows.map(toMigration);
}
