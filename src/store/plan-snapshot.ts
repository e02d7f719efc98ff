import type { Db } from './db.js';

/**
 * The fleet as a rollout plan reads it, each table as one JSON text built by the database: only
 * the columns the plan reads, one array per row, in the order loadFleetSnapshot reads them (by
 * id). Issue 9: at 10,000 nodes / 200,000 instances, rows as objects cost the operator's event
 * loop hundreds of milliseconds (parsed row by row, then copied to the plan worker); one text
 * per table is received as it is and handed to the plan worker, which parses it off the loop.
 */
export interface PlanSnapshotText {
  /** `[[id, hostname, region, role, labels, status, cordoned, max_instances, last_heartbeat_at (epoch ms) | null, version of the component | null], …]` */
  nodes: string;
  /** `[[id, name, replicas, min_available, node_selector], …]` */
  deployments: string;
  /** `[[id, deployment_id, node_id, desired, status, volume, activity], …]` */
  instances: string;
  /** Every version of every component the nodes run, by component then version. */
  running: { component: string; version: string }[];
}

export async function loadPlanSnapshot(db: Db, component: string, others: readonly string[] = []): Promise<PlanSnapshotText> {
  // Several targets: the versions of the other target components too (null when there are none).
  const [nodes] = await db.query<{ nodes: string }>(
    `SELECT coalesce(json_agg(json_build_array(id, hostname, region, role, labels, status, cordoned, max_instances,
              extract(epoch FROM last_heartbeat_at) * 1000, components->>$1,
              CASE WHEN cardinality($2::text[]) > 0 THEN (SELECT coalesce(jsonb_object_agg(c.key, c.value), '{}'::jsonb) FROM jsonb_each_text(components) AS c WHERE c.key = ANY($2::text[])) END) ORDER BY id), '[]')::text AS nodes
       FROM nodes`,
    [component, [...others]],
  );
  const [deployments] = await db.query<{ deployments: string }>(
    `SELECT coalesce(json_agg(json_build_array(id, name, replicas, min_available, node_selector) ORDER BY id), '[]')::text AS deployments
       FROM deployments`,
  );
  const [instances] = await db.query<{ instances: string }>(
    `SELECT coalesce(json_agg(json_build_array(id, deployment_id, node_id, desired, status,
              CASE WHEN volume_expires_at IS NULL OR volume_expires_at > now() THEN volume END,
              CASE WHEN activity_expires_at IS NULL OR activity_expires_at > now() THEN activity END) ORDER BY id), '[]')::text AS instances
       FROM instances`,
  );
  const running = await db.query<{ component: string; version: string }>(
    `SELECT DISTINCT c.key AS component, c.value AS version FROM nodes, jsonb_each_text(nodes.components) AS c ORDER BY 1, 2`,
  );
  return {
    nodes: (nodes as { nodes: string }).nodes,
    deployments: (deployments as { deployments: string }).deployments,
    instances: (instances as { instances: string }).instances,
    running,
  };
}
