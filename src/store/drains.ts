import type { DrainState } from '../domain/types.js';
import type { Db } from './db.js';

/** Starts (or restarts) the drain of a node: any earlier drain record is replaced. */
export async function startDrain(tx: Db, nodeId: string, options: { force: boolean; timeoutMs: number }): Promise<void> {
  await tx.query(
    `INSERT INTO drains (node_id, state, force, started_at, deadline, message, blocked_by)
     VALUES ($1, 'running', $2, now(), now() + make_interval(secs => $3::double precision / 1000), 'drain started', '[]')
     ON CONFLICT (node_id) DO UPDATE SET state = 'running', force = excluded.force, started_at = excluded.started_at,
       deadline = excluded.deadline, message = excluded.message, blocked_by = '[]', updated_at = now()`,
    [nodeId, options.force, options.timeoutMs],
  );
}

export async function updateDrains(
  tx: Db,
  updates: readonly { nodeId: string; state: DrainState; message: string; blockedBy: string[] }[],
): Promise<void> {
  if (updates.length === 0) return;
  await tx.query(
    `UPDATE drains d SET state = u.state, message = u.message, blocked_by = u.blocked_by, updated_at = now()
       FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[]) AS u(node_id, state, message, blocked_by)
      WHERE d.node_id = u.node_id`,
    [updates.map((u) => u.nodeId), updates.map((u) => u.state), updates.map((u) => u.message), updates.map((u) => JSON.stringify(u.blockedBy))],
  );
}

/** `enable` ends whatever drain the node had. */
export async function clearDrain(tx: Db, nodeId: string): Promise<void> {
  await tx.query('DELETE FROM drains WHERE node_id = $1', [nodeId]);
}
