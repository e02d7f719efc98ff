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

export async function updateDeploymentReplicas(tx: Db, id: string, spec: NewDeployment): Promise<void> {
  await tx.query(
    `UPDATE deployments SET replicas = $2, min_available = $3, workload = $4, node_selector = $5 WHERE id = $1`,
    [id, spec.replicas, spec.min_available, JSON.stringify(spec.workload), spec.node_selector ? JSON.stringify(spec.node_selector) : null],
  );  // The workload is part of the desired state of every node running an instance of it (desired-cache.ts).
  await tx.query('UPDATE nodes SET generation = generation + 1 WHERE id IN (SELECT node_id FROM instances WHERE deployment_id = $1)', [id]);
}
