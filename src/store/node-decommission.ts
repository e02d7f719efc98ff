// One operation: removing a drained node from the fleet (`DELETE /api/v1/nodes/:id`), and the
// tombstone its agent is refused by afterwards.
import { ACTIVE_ROLLOUT_STATUSES } from '../domain/rollout/model.js';
import type { DecommissionFacts } from '../domain/node-decommission.js';
import type { DrainState } from '../domain/types.js';
import type { Db } from './db.js';

export interface DecommissionedNode {
  id: string;
  hostname: string;
  region: string;
  decommissioned_by: string;
  decommissioned_at: string;
}

/**
 * Locks the node row (a concurrent placement, drain or registration of it waits) and reads what
 * decides whether it may go. Undefined: no such node.
 */
export async function lockDecommissionFacts(tx: Db, nodeId: string): Promise<(DecommissionFacts & { id: string; region: string }) | undefined> {
  const nodes = await tx.query<{ id: string; hostname: string; region: string; cordoned: boolean }>(
    'SELECT id, hostname, region, cordoned FROM nodes WHERE id = $1 FOR UPDATE',
    [nodeId],
  );
  const node = nodes[0];
  if (!node) return undefined;
  const drains = await tx.query<{ state: DrainState }>('SELECT state FROM drains WHERE node_id = $1', [nodeId]);
  const instances = await tx.query<{ n: number }>('SELECT count(*)::int AS n FROM instances WHERE node_id = $1', [nodeId]);
  const rollouts = await tx.query<{ id: string }>(
    `SELECT DISTINCT r.id FROM rollout_tasks t JOIN rollouts r ON r.id = t.rollout_id
      WHERE t.node_id = $1 AND r.status = ANY($2::text[]) ORDER BY r.id`,
    [nodeId, [...ACTIVE_ROLLOUT_STATUSES]],
  );
  return {
    ...node,
    drainState: drains[0]?.state ?? null,
    instances: instances[0]?.n ?? 0,
    activeRollouts: rollouts.map((r) => r.id),
  };
}

/**
 * Writes the tombstone and removes the node with its desired and reported component state and
 * its finished drain. Rollout tasks and events keep its id (and the tasks its hostname).
 */
export async function decommissionNode(tx: Db, node: { id: string; hostname: string; region: string }, actor: string): Promise<void> {
  await tx.query(
    `INSERT INTO decommissioned_nodes (id, hostname, region, decommissioned_by) VALUES ($1, $2, $3, $4)
     ON CONFLICT (id) DO UPDATE SET hostname = EXCLUDED.hostname, region = EXCLUDED.region,
       decommissioned_by = EXCLUDED.decommissioned_by, decommissioned_at = now()`,
    [node.id, node.hostname, node.region, actor],
  );
  await tx.query('DELETE FROM node_components WHERE node_id = $1', [node.id]);
  await tx.query('DELETE FROM node_installs WHERE node_id = $1', [node.id]);
  await tx.query('DELETE FROM drains WHERE node_id = $1', [node.id]);
  await tx.query('DELETE FROM nodes WHERE id = $1', [node.id]);
}

export async function findDecommissionedNode(db: Db, nodeId: string): Promise<DecommissionedNode | undefined> {
  const rows = await db.query<DecommissionedNode>(
    `SELECT id, hostname, region, decommissioned_by,
            to_char(decommissioned_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS decommissioned_at
       FROM decommissioned_nodes WHERE id = $1`,
    [nodeId],
  );
  return rows[0];
}
