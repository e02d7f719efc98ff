import type { DesiredInstance } from '../domain/protocol.js';
import type { Db } from './db.js';

/**
 * Who set an instance's volume or activity: `api` (PUT …/volume, …/activity, with an expiry) or
 * `agent` (the workload's own report in its heartbeat). An unexpired `api` value wins; an agent
 * reporting nothing clears only what it set (store/nodes.ts writeHeartbeats).
 */
export type ReportSource = 'api' | 'agent';

export type InstanceView = {
  id: string;
  deployment_id: string;
  deployment: string;
  node_id: string;
  hostname: string;
  region: string;
  desired: 'running' | 'stopped';
  status: string;
  /** Healthy as last reported, and its node is alive. */
  healthy: boolean;
  published: boolean;
  migratable: boolean;
  replaces: string | null;
  restart_on_enable: boolean;
  pid: number | null;
  port: number | null;
  url: string | null;
  message: string | null;
  /**
   * The volume's replica health, while it holds: set by a storage system (PUT …/volume, until it
   * expires) or reported by the instance's agent (in its heartbeats, while it repeats it).
   */
  volume: { replicas: number; healthy_replicas: number } | null;
  volume_expires_at: string | null;
  /** Who set `volume` (null: nobody). */
  volume_source: ReportSource | null;
  /** A backup, snapshot or restore running on the instance's data, from the API or the agent as `volume`. */
  activity: string | null;
  activity_expires_at: string | null;
  activity_source: ReportSource | null;
  created_at: string;
  updated_at: string;
};

const ISO = `'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'`;
const INSTANCE_VIEW = `
  SELECT i.id, i.deployment_id, d.name AS deployment, i.node_id, n.hostname, n.region, i.desired, i.status,
         (i.healthy AND n.status <> 'down') AS healthy, i.published,
         (d.node_selector IS NULL OR d.node_selector = '{}'::jsonb) AS migratable,
         i.replaces, i.restart_on_enable, i.pid, i.port,
         CASE WHEN i.port IS NULL THEN NULL ELSE 'http://' || ${hostOf('n.agent_url')} || ':' || i.port END AS url,
         i.message,
         CASE WHEN i.volume_expires_at IS NULL OR i.volume_expires_at > now() THEN i.volume END AS volume,
         CASE WHEN i.volume_expires_at > now() THEN to_char(i.volume_expires_at AT TIME ZONE 'UTC', ${ISO}) END AS volume_expires_at,
         CASE WHEN i.volume_expires_at IS NULL OR i.volume_expires_at > now() THEN i.volume_source END AS volume_source,
         CASE WHEN i.activity_expires_at IS NULL OR i.activity_expires_at > now() THEN i.activity END AS activity,
         CASE WHEN i.activity_expires_at > now() THEN to_char(i.activity_expires_at AT TIME ZONE 'UTC', ${ISO}) END AS activity_expires_at,
         CASE WHEN i.activity_expires_at IS NULL OR i.activity_expires_at > now() THEN i.activity_source END AS activity_source,
         to_char(i.created_at AT TIME ZONE 'UTC', ${ISO}) AS created_at,
         to_char(i.updated_at AT TIME ZONE 'UTC', ${ISO}) AS updated_at
    FROM instances i
    JOIN deployments d ON d.id = i.deployment_id
    JOIN nodes n ON n.id = i.node_id`;

/** The host part of the agent's URL: instances listen on the agent's address. */
function hostOf(column: string): string {
  return `coalesce(substring(${column} from '^https?://([^:/]+)'), '127.0.0.1')`;
}

export interface InstanceFilter {
  nodeId?: string;
  deploymentId?: string;
}

export async function listInstances(db: Db, filter: InstanceFilter = {}): Promise<InstanceView[]> {
  return db.query<InstanceView>(
    `${INSTANCE_VIEW}
      WHERE ($1::text IS NULL OR i.node_id = $1) AND ($2::text IS NULL OR i.deployment_id = $2)
      ORDER BY d.name, n.hostname, i.id`,
    [filter.nodeId ?? null, filter.deploymentId ?? null],
  );
}

export async function findInstance(db: Db, id: string): Promise<InstanceView | undefined> {
  const rows = await db.query<InstanceView>(`${INSTANCE_VIEW} WHERE i.id = $1`, [id]);
  return rows[0];
}

export interface NewInstance {
  id: string;
  deploymentId: string;
  nodeId: string;
  replaces: string | null;
}

export async function insertInstances(tx: Db, instances: readonly NewInstance[]): Promise<void> {
  if (instances.length === 0) return;
  await tx.query(
    `INSERT INTO instances (id, deployment_id, node_id, replaces)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])`,
    [instances.map((i) => i.id), instances.map((i) => i.deploymentId), instances.map((i) => i.nodeId), instances.map((i) => i.replaces)],
  );
}

/**
 * The reconciler's placements: each is written only if its node is still ready and uncordoned
 * (the decision picked it as such). Returns how many were written; a second open replacement of
 * one instance fails with 23505 (index instances_one_open_replacement).
 */
export async function insertPlacedInstances(tx: Db, instances: readonly NewInstance[]): Promise<number> {
  if (instances.length === 0) return 0;
  const rows = await tx.query(
    `INSERT INTO instances (id, deployment_id, node_id, replaces)
     SELECT u.id, u.deployment_id, u.node_id, u.replaces
       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u(id, deployment_id, node_id, replaces)
       JOIN nodes n ON n.id = u.node_id
      WHERE n.status = 'ready' AND NOT n.cordoned
     RETURNING id`,
    [instances.map((i) => i.id), instances.map((i) => i.deploymentId), instances.map((i) => i.nodeId), instances.map((i) => i.replaces)],
  );
  return rows.length;
}

/** A healthy instance becomes an endpoint; a replacement stops being one (it is the instance now). */
export async function publishInstances(tx: Db, ids: readonly string[]): Promise<EndpointChange[]> {
  if (ids.length === 0) return [];
  return tx.query<EndpointChange>(
    `UPDATE instances SET published = true, replaces = NULL, updated_at = now()
      WHERE id = ANY($1::text[]) AND NOT published RETURNING id, node_id, deployment_id`,
    [ids],
  );
}

/** An instance that became or stopped being an endpoint (routers follow these events). */
export interface EndpointChange {
  id: string;
  node_id: string;
  deployment_id: string;
}

/**
 * Withdraws the endpoints first, then asks their agents to stop them. Returns each stopped
 * instance with whether it was an endpoint until now.
 */
export async function stopInstances(
  tx: Db,
  stops: readonly { instanceId: string; restartOnEnable: boolean }[],
): Promise<(EndpointChange & { was_published: boolean })[]> {
  if (stops.length === 0) return [];
  return tx.query<EndpointChange & { was_published: boolean }>(
    `UPDATE instances i SET desired = 'stopped', published = false, replaces = NULL,
            restart_on_enable = s.restart_on_enable, updated_at = now()
       FROM unnest($1::text[], $2::bool[]) AS s(id, restart_on_enable),
            (SELECT id, published FROM instances WHERE id = ANY($1::text[])) AS before
      WHERE i.id = s.id AND before.id = i.id
      RETURNING i.id, i.node_id, i.deployment_id, before.published AS was_published`,
    [stops.map((s) => s.instanceId), stops.map((s) => s.restartOnEnable)],
  );
}

export async function removeInstances(tx: Db, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  await tx.query(`DELETE FROM instances WHERE id = ANY($1::text[]) AND desired = 'stopped'`, [ids]);
}

/** Pinned instances parked by a forced drain start again on their node. Returns their ids. */
export async function restartParkedInstances(tx: Db, nodeId: string): Promise<string[]> {
  const rows = await tx.query<{ id: string }>(
    `UPDATE instances SET desired = 'running', restart_on_enable = false, status = 'pending', healthy = false, updated_at = now()
      WHERE node_id = $1 AND restart_on_enable RETURNING id`,
    [nodeId],
  );
  return rows.map((r) => r.id);
}

/** The instance set an agent must converge to. */
export async function desiredInstancesForNode(db: Db, nodeId: string): Promise<DesiredInstance[]> {
  return db.query<DesiredInstance>(
    `SELECT i.id, i.deployment_id, d.name AS deployment, i.desired, d.workload
       FROM instances i JOIN deployments d ON d.id = i.deployment_id
      WHERE i.node_id = $1 AND NOT (i.desired = 'stopped' AND i.status = 'stopped')
      ORDER BY i.id`,
    [nodeId],
  );
}

/**
 * A storage system's report of an instance's volume (replicas healthy of total), good until
 * `expiresInMs` from now; null clears it (whoever set it: an agent that still reports one sets
 * it again at its next heartbeat). Returns false when there is no such instance.
 */
export async function reportVolume(
  db: Db,
  id: string,
  volume: { replicas: number; healthy_replicas: number } | null,
  expiresInMs: number,
): Promise<boolean> {
  const rows = await db.query(
    `UPDATE instances SET volume = $2::jsonb, volume_expires_at = CASE WHEN $2::jsonb IS NULL THEN NULL ELSE now() + $3 * interval '1 millisecond' END,
            volume_source = CASE WHEN $2::jsonb IS NULL THEN NULL ELSE 'api' END, updated_at = now()
      WHERE id = $1 RETURNING id`,
    [id, volume === null ? null : JSON.stringify(volume), expiresInMs],
  );
  return rows.length === 1;
}

/** A backup system's report of what runs on an instance's data (backup, snapshot, restore), or null: none. */
export async function reportActivity(db: Db, id: string, activity: string | null, expiresInMs: number): Promise<boolean> {
  const rows = await db.query(
    `UPDATE instances SET activity = $2, activity_expires_at = CASE WHEN $2::text IS NULL THEN NULL ELSE now() + $3 * interval '1 millisecond' END,
            activity_source = CASE WHEN $2::text IS NULL THEN NULL ELSE 'api' END, updated_at = now()
      WHERE id = $1 RETURNING id`,
    [id, activity, expiresInMs],
  );
  return rows.length === 1;
}
