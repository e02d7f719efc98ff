import type { NodeSelector, Workload } from '../domain/types.js';
import type { Db } from './db.js';

export type DeploymentView = {
  id: string;
  name: string;
  replicas: number;
  min_available: number;
  workload: Workload;
  node_selector: NodeSelector | null;
  created_at: string;
  /** Deleted: its instances are being stopped; the deployment goes with the last one. */
  deleting: boolean;
  /** Instances that are published and healthy right now. */
  healthy_instances: number;
  instances: number;
};

export interface NewDeployment {
  name: string;
  replicas: number;
  min_available: number;
  workload: Workload;
  node_selector?: NodeSelector | null | undefined;
}

const DEPLOYMENT_VIEW = `
  SELECT d.id, d.name, d.replicas, d.min_available, d.workload, d.node_selector,
         to_char(d.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS created_at,
         d.deleting_since IS NOT NULL AS deleting,
         count(i.id) FILTER (WHERE i.published AND i.healthy AND i.desired = 'running' AND n.status <> 'down')::int AS healthy_instances,
         count(i.id) FILTER (WHERE i.desired = 'running' AND i.replaces IS NULL)::int AS instances
    FROM deployments d
    LEFT JOIN instances i ON i.deployment_id = d.id
    LEFT JOIN nodes n ON n.id = i.node_id`;

export async function listDeployments(db: Db): Promise<DeploymentView[]> {
  return db.query<DeploymentView>(`${DEPLOYMENT_VIEW} GROUP BY d.id ORDER BY d.name`);
}

export async function findDeployment(db: Db, idOrName: string): Promise<DeploymentView | undefined> {
  const rows = await db.query<DeploymentView>(`${DEPLOYMENT_VIEW} WHERE d.id = $1 OR d.name = $1 GROUP BY d.id LIMIT 1`, [idOrName]);
  return rows[0];
}

/** Inserts the deployment; returns false when the name is taken. */
export async function insertDeployment(tx: Db, id: string, spec: NewDeployment): Promise<boolean> {
  const rows = await tx.query(
    `INSERT INTO deployments (id, name, replicas, min_available, workload, node_selector)
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING RETURNING id`,
    [id, spec.name, spec.replicas, spec.min_available, JSON.stringify(spec.workload), spec.node_selector ? JSON.stringify(spec.node_selector) : null],
  );
  return rows.length > 0;
}

/**
 * Replaces the deployment's spec. Returns false (and changes nothing) when it is being deleted
 * or gone: an apply never brings a deleted deployment back.
 */
export async function updateDeploymentReplicas(tx: Db, id: string, spec: NewDeployment): Promise<boolean> {
  const rows = await tx.query(
    `UPDATE deployments SET replicas = $2, min_available = $3, workload = $4, node_selector = $5 WHERE id = $1 AND deleting_since IS NULL RETURNING id`,
    [id, spec.replicas, spec.min_available, JSON.stringify(spec.workload), spec.node_selector ? JSON.stringify(spec.node_selector) : null],
  );
  if (rows.length === 0) return false;
  // The workload is part of the desired state of every node running an instance of it (desired-cache.ts).
  await tx.query('UPDATE nodes SET generation = generation + 1 WHERE id IN (SELECT node_id FROM instances WHERE deployment_id = $1)', [id]);
  return true;
}

/** The deployment's spec row, locked for an apply or a delete (concurrent ones wait here). */
export async function lockDeploymentByName(tx: Db, name: string): Promise<{ id: string; deleting: boolean; instances: number } | undefined> {
  const rows = await tx.query<{ id: string; deleting: boolean }>('SELECT id, deleting_since IS NOT NULL AS deleting FROM deployments WHERE name = $1 FOR UPDATE', [name]);
  const row = rows[0];
  if (!row) return undefined;
  const counted = await tx.query<{ n: number }>('SELECT count(*)::int AS n FROM instances WHERE deployment_id = $1', [row.id]);
  return { ...row, instances: counted[0]?.n ?? 0 };
}

/** Marks the deployment deleted; the fleet reconciler stops and removes its instances, then the row. False when it was already. */
export async function markDeploymentDeleting(tx: Db, id: string, actor: string): Promise<boolean> {
  const rows = await tx.query('UPDATE deployments SET deleting_since = now(), deleted_by = $2 WHERE id = $1 AND deleting_since IS NULL RETURNING id', [id, actor]);
  return rows.length > 0;
}

/** Open moves of the deployment's instances (a delete waits for them). */
export async function openMigrationsOfDeployment(tx: Db, id: string): Promise<string[]> {
  const rows = await tx.query<{ id: string }>(
    `SELECT id FROM instance_migrations WHERE deployment_id = $1 AND state IN ('preparing', 'target_ready', 'transferring', 'switching') ORDER BY id`,
    [id],
  );
  return rows.map((r) => r.id);
}

/** Removes deleted deployments that hold no instance row any more; returns how many went. */
export async function deleteDrainedDeployments(tx: Db, ids: readonly string[]): Promise<number> {
  const rows = await tx.query(
    `DELETE FROM deployments d WHERE d.id = ANY($1::text[]) AND d.deleting_since IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.deployment_id = d.id) RETURNING d.id`,
    [[...ids]],
  );
  return rows.length;
}
