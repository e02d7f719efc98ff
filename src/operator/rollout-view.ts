import type { RolloutTask } from '../domain/rollout/model.js';
import { IN_FLIGHT } from '../domain/rollout/model.js';
import { nextWindowOpen } from '../domain/rollout/window.js';
import { nextBatchStartsAt } from '../domain/rollout/batch-wait.js';
import type { ApprovalView } from '../store/approvals.js';
import type { RolloutRow } from '../store/rollouts.js';

const iso = (d: Date | string | null) => (d === null ? null : new Date(d).toISOString());

function taskView(t: RolloutTask) {
  return {
    id: t.id,
    node_id: t.nodeId,
    hostname: t.hostname,
    region: t.region,
    batch: t.batch,
    state: t.state,
    direction: t.direction,
    from_version: t.fromVersion,
    state_since: t.stateSince.toISOString(),
    finished_at: iso(t.finishedAt),
    last_error: t.lastError,
  };
}

/** The short form for lists. */
export function rolloutSummary(row: RolloutRow, tasks?: readonly RolloutTask[]) {
  const counters = tasks
    ? {
        total: tasks.filter((t) => t.state !== 'skipped').length,
        done: tasks.filter((t) => t.state === 'done').length,
        failed: tasks.filter((t) => t.state === 'failed').length,
        in_flight: tasks.filter((t) => IN_FLIGHT.includes(t.state)).length,
        rolled_back: tasks.filter((t) => t.state === 'rolled_back').length,
        skipped: tasks.filter((t) => t.state === 'skipped').length,
      }
    : undefined;
  return {
    id: row.id,
    name: row.name,
    status: row.status,
    component: row.component,
    version: row.version,
    drain_mode: row.drain_mode,
    current_batch: row.current_batch,
    batch_count: row.batch_count,
    created_by: row.created_by,
    created_at: iso(row.created_at),
    updated_at: iso(row.updated_at),
    finished_at: iso(row.finished_at),
    duration_s: Math.round(((row.finished_at ? new Date(row.finished_at) : new Date()).getTime() - new Date(row.created_at).getTime()) / 1000),
    ...(counters ? { counters } : {}),
  };
}

/** Everything about one rollout: batches with each node's task, plan, preflight, approvals. */
export function rolloutDetail(row: RolloutRow, tasks: readonly RolloutTask[], approvals: readonly ApprovalView[], now: Date) {
  const byNode = new Map(tasks.map((t) => [t.nodeId, t]));
  const plan = row.plan as { batches: { index: number; canary: boolean; nodes: { id: string; hostname: string; region: string }[] }[] };
  return {
    ...rolloutSummary(row, tasks),
    spec: row.spec,
    overrides: row.overrides,
    next_window_open: row.status === 'waiting_for_window' ? (nextWindowOpen(row.spec.window, now)?.toISOString() ?? null) : null,
    /** When the next batch may start after the pause between batches (and the canary's soak); null when none waits. */
    next_batch_at: iso(nextBatchStartsAt({ spec: row.spec, status: row.status, currentBatch: row.current_batch, batchCount: row.batch_count, batchFinishedAt: row.batch_finished_at === null ? null : new Date(row.batch_finished_at) })),
    batches: plan.batches.map((b) => ({
      index: b.index,
      canary: b.canary,
      nodes: b.nodes.map((n) => {
        const t = byNode.get(n.id);
        return { node_id: n.id, hostname: n.hostname, region: n.region, state: t?.state ?? 'pending', direction: t?.direction ?? 'forward', last_error: t?.lastError ?? null };
      }),
    })),
    tasks: tasks.map(taskView),
    plan: row.plan,
    preflight: row.preflight,
    approvals,
  };
}
