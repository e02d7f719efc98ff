import type { DrainMode, DrainState } from '../domain/types.js';
import type { Db } from './db.js';
import { bumpGenerations } from './nodes.js';

/** Starts (or restarts) the drain of a node: any earlier drain record is replaced. */
export async function startDrain(tx: Db, nodeId: string, options: { force: boolean; timeoutMs: number; mode?: DrainMode }): Promise<void> {
  await tx.query(
    `INSERT INTO drains (node_id, state, force, mode, started_at, deadline, message, blocked_by)
     VALUES ($1, 'running', $2, $4, now(), now() + make_interval(secs => $3::double precision / 1000), 'drain started', '[]')
     ON CONFLICT (node_id) DO UPDATE SET state = 'running', force = excluded.force, mode = excluded.mode, started_at = excluded.started_at,
       deadline = excluded.deadline, message = excluded.message, blocked_by = '[]', updated_at = now()`,
    [nodeId, options.force, options.timeoutMs, options.mode ?? 'migrate'],
  );
  // `draining` is part of the node's desired state: its generation moves with it (desired-cache.ts).
  await bumpGenerations(tx, [nodeId]);
}

/**
 * Updates drains; returns how many rows were written. With `startedAt` (the drain the decision
 * saw), an update applies only to that same drain: one ended by `enable` or started again since
 * is left alone, and the caller learns it from the count.
 */
export async function updateDrains(
  tx: Db,
  updates: readonly { nodeId: string; state: DrainState; message: string; blockedBy: string[]; startedAt?: Date | null }[],
): Promise<number> {
  if (updates.length === 0) return 0;
  // A drain that ends (or starts again) flips the node's `draining` flag: its generation moves.
  // started_at is compared at millisecond precision: the decision saw it as a JavaScript Date.
  const written = await tx.query<{ node_id: string; flipped: boolean }>(
    `UPDATE drains d SET state = u.state, message = u.message, blocked_by = u.blocked_by, updated_at = now()
       FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::timestamptz[], $6::bool[])
              AS u(node_id, state, message, blocked_by, started_at, guarded),
            (SELECT node_id, state FROM drains WHERE node_id = ANY($1::text[])) AS before
      WHERE d.node_id = u.node_id AND before.node_id = d.node_id
        AND (NOT u.guarded OR date_trunc('milliseconds', d.started_at) = u.started_at)
      RETURNING d.node_id, (before.state IN ('running', 'blocked')) <> (u.state IN ('running', 'blocked')) AS flipped`,
    [
      updates.map((u) => u.nodeId),
      updates.map((u) => u.state),
      updates.map((u) => u.message),
      updates.map((u) => JSON.stringify(u.blockedBy)),
      updates.map((u) => u.startedAt ?? null),
      updates.map((u) => u.startedAt !== undefined),
    ],
  );
  await bumpGenerations(tx, written.filter((w) => w.flipped).map((w) => w.node_id));
  return written.length;
}

/** `enable` ends whatever drain the node had. */
export async function clearDrain(tx: Db, nodeId: string): Promise<void> {
  const ended = await tx.query('DELETE FROM drains WHERE node_id = $1 RETURNING node_id', [nodeId]);
  if (ended.length > 0) await bumpGenerations(tx, [nodeId]);
}
