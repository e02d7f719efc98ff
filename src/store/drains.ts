import type { DrainState } from '../domain/types.js';
import type { Db } from './db.js';
import { bumpGenerations } from './nodes.js';

/** Starts (or restarts) the drain of a node: any earlier drain record is replaced. */
export async function startDrain(tx: Db, nodeId: string, options: { force: boolean; timeoutMs: number }): Promise<void> {
  await tx.query(
    `INSERT INTO drains (node_id, state, force, started_at, deadline, message, blocked_by)
     VALUES ($1, 'running', $2, now(), now() + make_interval(secs => $3::double precision / 1000), 'drain started', '[]')
     ON CONFLICT (node_id) DO UPDATE SET state = 'running', force = excluded.force, started_at = excluded.started_at,
       deadline = excluded.deadline, message = excluded.message, blocked_by = '[]', updated_at = now()`,
    [nodeId, options.force, options.timeoutMs],
  );
  // `draining` is part of the node's desired state: its generation moves with it (desired-cache.ts).
  await bumpGenerations(tx, [nodeId]);
}

export async function updateDrains(
  tx: Db,
  updates: readonly { nodeId: string; state: DrainState; message: string; blockedBy: string[] }[],
): Promise<void> {
  if (updates.length === 0) return;
  // A drain that ends (or starts again) flips the node's `draining` flag: its generation moves.
  const written = await tx.query<{ node_id: string; flipped: boolean }>(
    `UPDATE drains d SET state = u.state, message = u.message, blocked_by = u.blocked_by, updated_at = now()
       FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[]) AS u(node_id, state, message, blocked_by),
            (SELECT node_id, state FROM drains WHERE node_id = ANY($1::text[])) AS before
      WHERE d.node_id = u.node_id AND before.node_id = d.node_id
      RETURNING d.node_id, (before.state IN ('running', 'blocked')) <> (u.state IN ('running', 'blocked')) AS flipped`,
    [updates.map((u) => u.nodeId), updates.map((u) => u.state), updates.map((u) => u.message), updates.map((u) => JSON.stringify(u.blockedBy))],
  );
  await bumpGenerations(tx, written.filter((w) => w.flipped).map((w) => w.node_id));
}

/** `enable` ends whatever drain the node had. */
export async function clearDrain(tx: Db, nodeId: string): Promise<void> {
  const ended = await tx.query('DELETE FROM drains WHERE node_id = $1 RETURNING node_id', [nodeId]);
  if (ended.length > 0) await bumpGenerations(tx, [nodeId]);
}
