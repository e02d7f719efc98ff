// The journal of rollout hook runs (hook_runs, 0013): what the rollout decides from, what a
// node's desired state lists, what agents and the operator's own runner report into. Every
// write is guarded by the run's status and attempt, so a late or repeated report changes nothing
// and a finished run never opens again.
import { EVENT } from '../domain/events.js';
import type { DesiredHook, HookReport } from '../domain/protocol.js';
import { describeHook, type HookAction, type HookPoint, type HookRunFact, type HookRunStatus, type HookSpec } from '../domain/rollout/hooks.js';
import type { Db } from './db.js';
import { appendEvents, type NewEvent } from './events.js';
import { bumpGenerations } from './nodes.js';

interface HookRunRow {
  id: string;
  rollout_id: string;
  node_id: string | null;
  point: HookPoint;
  hook_index: number;
  attempt: number;
  status: HookRunStatus;
  hook: HookSpec;
  env: Record<string, string>;
  exit_code: number | null;
  output_tail: string | null;
  reason: string | null;
  owner: string | null;
  requested_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
}

/** An operator-side run this process started and must carry out (after its transaction commits). */
export interface OperatorHookRun {
  id: string;
  rolloutId: string;
  attempt: number;
  hook: HookSpec;
  env: Record<string, string>;
}

const OPEN: readonly HookRunStatus[] = ['requested', 'running'];

/** A rollout's runs as decision facts; `orphaned` marks an open operator-side run nobody here carries out. */
export async function loadHookRunFacts(db: Db, rolloutId: string, runningHere: (id: string) => boolean): Promise<Map<string, HookRunFact>> {
  const rows = await db.query<HookRunRow>('SELECT * FROM hook_runs WHERE rollout_id = $1', [rolloutId]);
  return new Map(
    rows.map((r) => [
      r.id,
      {
        id: r.id,
        attempt: r.attempt,
        status: r.status,
        requestedAt: new Date(r.requested_at),
        startedAt: r.started_at === null ? null : new Date(r.started_at),
        reason: r.reason,
        ...(r.node_id === null && OPEN.includes(r.status) && !runningHere(r.id) ? { orphaned: true } : {}),
      },
    ]),
  );
}

function eventBase(r: Pick<HookRunRow, 'id' | 'point' | 'hook_index' | 'attempt' | 'hook'>) {
  return { hook_id: r.id, point: r.point, index: r.hook_index, attempt: r.attempt, hook: describeHook(r.hook) };
}

/**
 * Applies a decision's hook actions inside its (fenced) transaction. A node hook is asked for in
 * its node's desired state (generation bumped); an operator hook is marked running, owned by
 * `owner`, and returned for the caller to start once the transaction commits.
 */
export async function applyHookActions(tx: Db, actions: readonly HookAction[], owner: string, actor = 'reconciler'): Promise<{ nodes: string[]; operatorRuns: OperatorHookRun[] }> {
  const nodes: string[] = [];
  const operatorRuns: OperatorHookRun[] = [];
  const events: NewEvent[] = [];
  for (const action of actions) {
    if (action.kind === 'expire') {
      const rows = await tx.query<HookRunRow>(
        `UPDATE hook_runs SET status = 'failed', reason = $2, finished_at = now() WHERE id = $1 AND status IN ('requested', 'running') RETURNING *`,
        [action.id, action.reason],
      );
      for (const r of rows) {
        if (r.node_id !== null) nodes.push(r.node_id);
        events.push({ kind: EVENT.rollout.hook_failed, actor, rolloutId: r.rollout_id, nodeId: r.node_id, data: { ...eventBase(r), exit_code: null, reason: action.reason, output_tail: r.output_tail ?? '' } });
      }
      continue;
    }
    const operatorSide = action.nodeId === null;
    // A new run, or the next attempt of an open one whose runner died: never a finished one.
    const rows = await tx.query<HookRunRow>(
      `INSERT INTO hook_runs AS h (id, rollout_id, node_id, point, hook_index, attempt, status, hook, env, owner, started_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, CASE WHEN $7::text = 'running' THEN now() END)
       ON CONFLICT (id) DO UPDATE SET attempt = EXCLUDED.attempt, status = EXCLUDED.status, owner = EXCLUDED.owner,
              requested_at = now(), started_at = EXCLUDED.started_at, exit_code = NULL, output_tail = NULL, reason = NULL
        WHERE h.status IN ('requested', 'running') AND h.attempt < EXCLUDED.attempt
       RETURNING *`,
      [
        action.id, action.rolloutId, action.nodeId, action.point, action.index, action.attempt,
        operatorSide ? 'running' : 'requested', JSON.stringify(action.hook), JSON.stringify(action.env), operatorSide ? owner : null,
      ],
    );
    const row = rows[0];
    if (!row) continue;
    if (operatorSide) {
      operatorRuns.push({ id: row.id, rolloutId: row.rollout_id, attempt: row.attempt, hook: row.hook, env: row.env });
      events.push({ kind: EVENT.rollout.hook_started, actor, rolloutId: row.rollout_id, nodeId: null, data: eventBase(row) });
    } else nodes.push(action.nodeId as string);
  }
  await bumpGenerations(tx, nodes);
  await appendEvents(tx, events);
  return { nodes: [...new Set(nodes)], operatorRuns };
}

/** The outcome of an operator-side run, recorded only while it is still this owner's open attempt. */
export async function finishOperatorHookRun(
  db: Db,
  run: OperatorHookRun,
  owner: string,
  outcome: { status: 'succeeded' | 'failed'; exitCode: number | null; outputTail: string; reason: string | null },
): Promise<boolean> {
  return db.transaction(async (tx) => {
    const rows = await tx.query<HookRunRow>(
      `UPDATE hook_runs SET status = $4, exit_code = $5, output_tail = $6, reason = $7, finished_at = now()
        WHERE id = $1 AND attempt = $2 AND owner = $3 AND status = 'running' RETURNING *`,
      [run.id, run.attempt, owner, outcome.status, outcome.exitCode, outcome.outputTail, outcome.reason],
    );
    const row = rows[0];
    if (!row) return false;
    await appendEvents(tx, [finishedEvent(row, 'operator')]);
    return true;
  });
}

function finishedEvent(row: HookRunRow, actor: string): NewEvent {
  const durationMs = row.started_at && row.finished_at ? new Date(row.finished_at).getTime() - new Date(row.started_at).getTime() : null;
  return {
    kind: row.status === 'succeeded' ? EVENT.rollout.hook_completed : EVENT.rollout.hook_failed,
    actor,
    rolloutId: row.rollout_id,
    nodeId: row.node_id,
    data: { ...eventBase(row), exit_code: row.exit_code, duration_ms: durationMs, ...(row.reason ? { reason: row.reason } : {}), output_tail: row.output_tail ?? '' },
  };
}

const parseTime = (value: string | undefined): Date | null => {
  if (value === undefined) return null;
  const at = new Date(value);
  return Number.isNaN(at.getTime()) ? null : at;
};

/**
 * An agent's reports about the runs of its node: requested → running → succeeded | failed, each
 * step once (guarded by node, attempt and status). A finished run leaves the node's desired state
 * (its generation is bumped). Returns the rollouts to wake and whether the desired state moved.
 */
export async function recordHookReports(db: Db, nodeId: string, reports: readonly HookReport[]): Promise<{ rollouts: string[]; desiredChanged: boolean }> {
  return db.transaction(async (tx) => {
    const rollouts = new Set<string>();
    const events: NewEvent[] = [];
    let finished = false;
    for (const report of reports) {
      const found = await tx.query<HookRunRow>(
        `SELECT * FROM hook_runs WHERE id = $1 AND node_id = $2 AND attempt = $3 AND status IN ('requested', 'running') FOR UPDATE`,
        [report.id, nodeId, report.attempt],
      );
      const before = found[0];
      if (!before) continue;
      const startedAt = parseTime(report.started_at);
      if (report.status === 'running') {
        if (before.status !== 'requested') continue;
        const [row] = await tx.query<HookRunRow>(`UPDATE hook_runs SET status = 'running', started_at = coalesce($2, now()) WHERE id = $1 RETURNING *`, [before.id, startedAt]);
        if (row) events.push({ kind: EVENT.rollout.hook_started, actor: 'agent', rolloutId: row.rollout_id, nodeId, data: eventBase(row) });
      } else {
        const [row] = await tx.query<HookRunRow>(
          `UPDATE hook_runs SET status = $2, exit_code = $3, output_tail = $4, reason = $5,
                  started_at = coalesce(started_at, $6, now()), finished_at = coalesce($7, now())
            WHERE id = $1 RETURNING *`,
          [before.id, report.status, report.exit_code ?? null, report.output_tail ?? '', report.reason ?? null, startedAt, parseTime(report.finished_at)],
        );
        if (!row) continue;
        if (before.status === 'requested') events.push({ kind: EVENT.rollout.hook_started, actor: 'agent', rolloutId: row.rollout_id, nodeId, data: eventBase(row) });
        events.push(finishedEvent(row, 'agent'));
        finished = true;
      }
      rollouts.add(before.rollout_id);
    }
    if (finished) await bumpGenerations(tx, [nodeId]);
    await appendEvents(tx, events);
    return { rollouts: [...rollouts], desiredChanged: finished };
  });
}

/** Open node-hook runs per node, for the desired state (oldest first). */
export async function openNodeHooks(db: Db, nodeIds: readonly string[]): Promise<Map<string, DesiredHook[]>> {
  const rows = await db.query<HookRunRow>(
    `SELECT * FROM hook_runs WHERE node_id = ANY($1::text[]) AND status IN ('requested', 'running') ORDER BY node_id, requested_at, id`,
    [nodeIds],
  );
  const result = new Map<string, DesiredHook[]>();
  for (const r of rows) {
    const hook: DesiredHook = {
      id: r.id,
      attempt: r.attempt,
      point: r.point as DesiredHook['point'],
      ...('run' in r.hook ? { run: r.hook.run } : { webhook: r.hook.webhook }),
      timeout_ms: r.hook.timeout,
      env: r.env,
    };
    const list = result.get(r.node_id as string) ?? [];
    list.push(hook);
    result.set(r.node_id as string, list);
  }
  return result;
}

export interface HookRunView {
  id: string;
  node_id: string | null;
  point: HookPoint;
  index: number;
  attempt: number;
  status: HookRunStatus;
  hook: string;
  continue_on_error: boolean;
  timeout_ms: number;
  exit_code: number | null;
  reason: string | null;
  output_tail: string | null;
  requested_at: string;
  started_at: string | null;
  finished_at: string | null;
}

const iso = (d: Date | null) => (d === null ? null : new Date(d).toISOString());

/** Every run of a rollout, for its API view (by point order, then node, then index). */
export async function listHookRuns(db: Db, rolloutId: string): Promise<HookRunView[]> {
  const rows = await db.query<HookRunRow>(
    `SELECT * FROM hook_runs WHERE rollout_id = $1
      ORDER BY array_position(ARRAY['preRollout', 'preNode', 'postNode', 'postRollout'], point), requested_at, node_id, hook_index`,
    [rolloutId],
  );
  return rows.map((r) => ({
    id: r.id,
    node_id: r.node_id,
    point: r.point,
    index: r.hook_index,
    attempt: r.attempt,
    status: r.status,
    hook: describeHook(r.hook),
    continue_on_error: r.hook.continueOnError,
    timeout_ms: r.hook.timeout,
    exit_code: r.exit_code,
    reason: r.reason,
    output_tail: r.output_tail,
    requested_at: iso(r.requested_at) as string,
    started_at: iso(r.started_at),
    finished_at: iso(r.finished_at),
  }));
}
