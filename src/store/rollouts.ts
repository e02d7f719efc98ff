import type { Rollout, RolloutStatus, RolloutTask, TaskState } from '../domain/rollout/model.js';
import type { RolloutSpec } from '../domain/rollout/spec.js';
import type { Db } from './db.js';

interface RolloutRow {
  id: string;
  name: string;
  component: string;
  version: string;
  spec_input: unknown;
  spec: RolloutSpec;
  status: RolloutStatus;
  drain_mode: Rollout['drainMode'];
  disruptive: boolean;
  current_batch: number;
  batch_count: number;
  batch_started_at: Date | null;
  batch_finished_at: Date | null;
  breaker_reset_at: Date | null;
  gate_passed_batch: number;
  schema_pre_applied_at: Date | null;
  schema_post_applied_at: Date | null;
  rollback_regions: string[] | null;
  traffic_switched_at: Date | null;
  previous_retired_at: Date | null;
  plan: Record<string, unknown>;
  preflight: Record<string, unknown>;
  overrides: string[];
  created_by: string;
  created_at: Date;
  updated_at: Date;
  finished_at: Date | null;
}

interface TaskRow {
  id: string;
  rollout_id: string;
  node_id: string;
  hostname: string;
  region: string;
  batch: number;
  state: TaskState;
  direction: 'forward' | 'rollback';
  from_version: string | null;
  state_since: Date;
  healthy_since: Date | null;
  finished_at: Date | null;
  last_error: string | null;
  cordoned_by_us: boolean;
  target_step: number | null;
  from_versions: Record<string, string | null> | null;
}

const date = (value: Date | string | null): Date | null => (value === null ? null : new Date(value));

export function toRollout(row: RolloutRow): Rollout {
  return {
    id: row.id,
    spec: row.spec,
    status: row.status,
    drainMode: row.drain_mode,
    currentBatch: row.current_batch,
    batchCount: row.batch_count,
    batchStartedAt: date(row.batch_started_at),
    batchFinishedAt: date(row.batch_finished_at),
    breakerResetAt: date(row.breaker_reset_at),
    gatePassedBatch: row.gate_passed_batch ?? -1,
    schemaPreAppliedAt: date(row.schema_pre_applied_at ?? null),
    schemaPostAppliedAt: date(row.schema_post_applied_at ?? null),
    rollbackRegions: row.rollback_regions ?? null,
    trafficSwitchedAt: date(row.traffic_switched_at ?? null),
    previousRetiredAt: date(row.previous_retired_at ?? null),
  };
}

function toTask(row: TaskRow): RolloutTask {
  return {
    id: row.id,
    nodeId: row.node_id,
    hostname: row.hostname,
    region: row.region,
    batch: row.batch,
    state: row.state,
    direction: row.direction,
    fromVersion: row.from_version,
    stateSince: new Date(row.state_since),
    healthySince: date(row.healthy_since),
    finishedAt: date(row.finished_at),
    lastError: row.last_error,
    cordonedByUs: row.cordoned_by_us,
    ...(row.target_step ? { step: row.target_step } : {}),
    ...(row.from_versions ? { fromVersions: row.from_versions } : {}),
  };
}

export interface NewRollout {
  id: string;
  name: string;
  specInput: unknown;
  spec: RolloutSpec;
  status: RolloutStatus;
  drainMode: Rollout['drainMode'];
  disruptive: boolean;
  batchCount: number;
  plan: unknown;
  preflight: unknown;
  overrides: string[];
  createdBy: string;
}

export async function insertRollout(tx: Db, r: NewRollout, tasks: readonly RolloutTask[]): Promise<void> {
  await tx.query(
    `INSERT INTO rollouts (id, name, component, version, spec_input, spec, status, drain_mode, disruptive, batch_count, plan, preflight, overrides, created_by)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
    [
      r.id, r.name, r.spec.target.component, r.spec.target.version, JSON.stringify(r.specInput), JSON.stringify(r.spec), r.status,
      r.drainMode, r.disruptive, r.batchCount, JSON.stringify(r.plan), JSON.stringify(r.preflight), JSON.stringify(r.overrides), r.createdBy,
    ],
  );
  await replaceTasks(tx, r.id, tasks);
}

/** Replaces the tasks of a rollout that has not started (an approver's edits re-plan it). */
export async function replaceTasks(tx: Db, rolloutId: string, tasks: readonly RolloutTask[]): Promise<void> {
  await tx.query('DELETE FROM rollout_tasks WHERE rollout_id = $1', [rolloutId]);
  if (tasks.length === 0) return;
  await tx.query(
    `INSERT INTO rollout_tasks (id, rollout_id, node_id, hostname, region, batch, state, from_version, last_error, from_versions, state_since)
     SELECT t.id, $1, t.node_id, t.hostname, t.region, t.batch, t.state, t.from_version, t.last_error, t.from_versions::jsonb, now()
       FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::text[], $8::text[], $9::text[], $10::text[])
            AS t(id, node_id, hostname, region, batch, state, from_version, last_error, from_versions)`,
    [
      rolloutId,
      tasks.map((t) => t.id),
      tasks.map((t) => t.nodeId),
      tasks.map((t) => t.hostname),
      tasks.map((t) => t.region),
      tasks.map((t) => t.batch),
      tasks.map((t) => t.state),
      tasks.map((t) => t.fromVersion),
      tasks.map((t) => t.lastError),
      tasks.map((t) => (t.fromVersions ? JSON.stringify(t.fromVersions) : null)),
    ],
  );
}

export async function loadRollout(db: Db, id: string, options: { lock?: boolean } = {}): Promise<{ row: RolloutRow; rollout: Rollout; tasks: RolloutTask[] } | undefined> {
  const rows = await db.query<RolloutRow>(`SELECT * FROM rollouts WHERE id = $1${options.lock ? ' FOR UPDATE' : ''}`, [id]);
  const row = rows[0];
  if (!row) return undefined;
  const tasks = await db.query<TaskRow>('SELECT * FROM rollout_tasks WHERE rollout_id = $1 ORDER BY batch, hostname', [id]);
  return { row, rollout: toRollout(row), tasks: tasks.map(toTask) };
}

export async function findRolloutId(db: Db, idOrName: string): Promise<string | undefined> {
  const rows = await db.query<{ id: string }>('SELECT id FROM rollouts WHERE id = $1 OR name = $1 ORDER BY created_at DESC LIMIT 1', [idOrName]);
  return rows[0]?.id;
}

export async function listRolloutRows(db: Db, filter: { status?: string | undefined } = {}): Promise<RolloutRow[]> {
  return db.query<RolloutRow>('SELECT * FROM rollouts WHERE ($1::text IS NULL OR status = $1) ORDER BY created_at DESC', [filter.status ?? null]);
}

/** The active rollouts of `component` (oldest first), as the domain reads them (no tasks). */
export async function activeRolloutsOf(db: Db, component: string, statuses: readonly string[]): Promise<Rollout[]> {
  const rows = await db.query<RolloutRow>('SELECT * FROM rollouts WHERE component = $1 AND status = ANY($2::text[]) ORDER BY created_at', [component, statuses]);
  return rows.map(toRollout);
}

export async function activeRolloutIds(db: Db, statuses: readonly string[]): Promise<string[]> {
  const rows = await db.query<{ id: string }>('SELECT id FROM rollouts WHERE status = ANY($1::text[]) ORDER BY created_at', [statuses]);
  return rows.map((r) => r.id);
}

/** Node ids held by active rollouts (for the one-rollout-per-node preflight check). */
export async function nodesInActiveRollouts(db: Db, statuses: readonly string[]): Promise<{ node_id: string; rollout_id: string; name: string }[]> {
  return db.query(
    `SELECT t.node_id, r.id AS rollout_id, r.name FROM rollout_tasks t JOIN rollouts r ON r.id = t.rollout_id
      WHERE r.status = ANY($1::text[]) AND t.state NOT IN ('skipped')`,
    [statuses],
  );
}

const ROLLOUT_COLUMNS: Record<string, string> = {
  status: 'status',
  currentBatch: 'current_batch',
  batchStartedAt: 'batch_started_at',
  batchFinishedAt: 'batch_finished_at',
  breakerResetAt: 'breaker_reset_at',
  gatePassedBatch: 'gate_passed_batch',
  schemaPreAppliedAt: 'schema_pre_applied_at',
  schemaPostAppliedAt: 'schema_post_applied_at',
  rollbackRegions: 'rollback_regions',
  trafficSwitchedAt: 'traffic_switched_at',
  previousRetiredAt: 'previous_retired_at',
  drainMode: 'drain_mode',
  batchCount: 'batch_count',
};

/** Writes the changed fields of a rollout (column names come from a fixed map, never input). */
export async function updateRollout(tx: Db, id: string, changes: Partial<Rollout>, extra: { finished?: boolean } = {}): Promise<void> {
  const sets: string[] = [];
  const values: unknown[] = [id];
  for (const [key, value] of Object.entries(changes)) {
    const column = ROLLOUT_COLUMNS[key];
    if (!column) continue;
    values.push(value);
    sets.push(`${column} = $${values.length}`);
  }
  if (extra.finished) sets.push('finished_at = now()');
  if (sets.length === 0) return;
  await tx.query(`UPDATE rollouts SET ${sets.join(', ')}, updated_at = now() WHERE id = $1`, values);
}

/** Records that the rollout applied its target's migrations of `phase` (once: a repeat changes nothing). */
export async function recordSchemaStep(tx: Db, id: string, phase: 'pre' | 'post'): Promise<void> {
  const column = phase === 'pre' ? 'schema_pre_applied_at' : 'schema_post_applied_at';
  await tx.query(`UPDATE rollouts SET ${column} = now(), updated_at = now() WHERE id = $1 AND ${column} IS NULL`, [id]);
}

export class TaskConflictError extends Error {
  constructor(readonly taskId: string) {
    super(`task ${taskId} changed under us; the tick is retried`);
  }
}

const TASK_COLUMNS: Record<string, string> = {
  state: 'state',
  direction: 'direction',
  stateSince: 'state_since',
  healthySince: 'healthy_since',
  finishedAt: 'finished_at',
  lastError: 'last_error',
  cordonedByUs: 'cordoned_by_us',
  batch: 'batch',
  step: 'target_step',
};

/**
 * Applies task changes, each guarded by the state it was decided from: a task is never moved
 * twice from the same state (DESIGN.md §8.3), and a conflict aborts the whole tick.
 */
/** Ends every task that has not started as `skipped`, saying why (a skipped task always does). */
export async function skipPendingTasks(tx: Db, rolloutId: string, reason: string): Promise<void> {
  await tx.query(`UPDATE rollout_tasks SET state = 'skipped', state_since = now(), last_error = $2 WHERE rollout_id = $1 AND state = 'pending'`, [rolloutId, reason]);
}

export async function updateTasks(tx: Db, changes: readonly { id: string; from: TaskState; changes: Partial<RolloutTask> }[]): Promise<void> {
  for (const change of changes) {
    const sets: string[] = [];
    const values: unknown[] = [change.id, change.from];
    for (const [key, value] of Object.entries(change.changes)) {
      const column = TASK_COLUMNS[key];
      if (!column) continue;
      values.push(value);
      sets.push(`${column} = $${values.length}`);
    }
    if (sets.length === 0) continue;
    const rows = await tx.query(`UPDATE rollout_tasks SET ${sets.join(', ')} WHERE id = $1 AND state = $2 RETURNING id`, values);
    if (rows.length === 0) throw new TaskConflictError(change.id);
  }
}

export type { RolloutRow, TaskRow };
