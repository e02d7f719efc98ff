// The desired state of many nodes at once (DESIGN.md §7): what the agent gateway's cache loads
// when several nodes' generations moved together (a start, a rollout batch), in three
// statements whatever the number of nodes.
import type { DesiredComponent, DesiredInstance, DesiredState } from '../domain/protocol.js';
import type { Db } from './db.js';

/**
 * Desired state per node id; ids that are not registered are missing from the map. The
 * generations are read first and the rest after, each statement seeing every commit before it:
 * every writer of desired state bumps the generation in the same transaction, so what is
 * returned is never older than the generation it claims.
 */
export async function loadDesiredStates(db: Db, nodeIds: readonly string[]): Promise<Map<string, DesiredState>> {
  const result = new Map<string, DesiredState>();
  if (nodeIds.length === 0) return result;
  const ids = [...new Set(nodeIds)];
  const nodes = await db.query<{ id: string; generation: string; draining: boolean }>(
    `SELECT n.id, n.generation, coalesce(d.state IN ('running', 'blocked'), false) AS draining
       FROM nodes n LEFT JOIN drains d ON d.node_id = n.id WHERE n.id = ANY($1::text[])`,
    [ids],
  );
  if (nodes.length === 0) return result;
  for (const n of nodes) result.set(n.id, { node_id: n.id, generation: Number(n.generation), draining: n.draining, instances: [], components: {} });
  const found = nodes.map((n) => n.id);
  // Same rows and order as desiredInstancesForNode: an instance stopped on request and reported stopped is gone.
  const instances = await db.query<DesiredInstance & { node_id: string }>(
    `SELECT i.node_id, i.id, i.deployment_id, d.name AS deployment, i.desired, d.workload
       FROM instances i JOIN deployments d ON d.id = i.deployment_id
      WHERE i.node_id = ANY($1::text[]) AND NOT (i.desired = 'stopped' AND i.status = 'stopped')
      ORDER BY i.node_id, i.id`,
    [found],
  );
  for (const { node_id: nodeId, ...instance } of instances) result.get(nodeId)?.instances.push(instance);
  // Same as desiredComponentsForNode, whose download URL the agent gateway serves.
  const components = await db.query<Omit<DesiredComponent, 'url'> & { node_id: string; component: string }>(
    `SELECT c.node_id, c.component, c.version, a.id AS artifact_id, a.kind, a.sha256, a.size::float8 AS size, a.signature,
            c.rollback, a.disruptive,
            to_char(c.updated_at AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISSUS') AS request_id
       FROM node_components c JOIN artifacts a ON a.id = c.artifact_id
      WHERE c.node_id = ANY($1::text[]) ORDER BY c.node_id, c.component`,
    [found],
  );
  for (const { node_id: nodeId, component, ...desired } of components) {
    const state = result.get(nodeId);
    if (!state) continue;
    state.components[component] = {
      ...desired,
      url: `/api/v1/agent/artifacts/${encodeURIComponent(desired.artifact_id)}/blob?node_id=${encodeURIComponent(nodeId)}`,
    };
  }
  return result;
}
