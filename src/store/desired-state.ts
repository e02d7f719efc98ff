// The desired state of many nodes at once (DESIGN.md §7): what the agent gateway's cache loads
// when several nodes' generations moved together (a start, a rollout batch), in three
// statements whatever the number of nodes.
import type { DesiredComponent, DesiredInstance, DesiredState } from '../domain/protocol.js';
import { desiredMigrationFor, type InstanceMigration } from '../domain/instance-migration.js';
import type { Db } from './db.js';
import { openNodeHooks } from './hook-runs.js';
import { openLiveMigrationsOn } from './instance-migrations.js';

/** Where the agent downloads an artifact's bytes (the agent gateway streams them). */
function artifactUrl(artifactId: string, nodeId: string): string {
  return `/api/v1/agent/artifacts/${encodeURIComponent(artifactId)}/blob?node_id=${encodeURIComponent(nodeId)}`;
}

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
  // An instance stopped on request and reported stopped is gone.
  const instances = await db.query<
    Omit<DesiredInstance, 'image' | 'migration'> & {
      node_id: string;
      image_component: string | null;
      image_version: string | null;
      image_sha256: string | null;
      image_size: number | null;
      image_signature: string | null;
    }
  >(
    `SELECT i.node_id, i.id, i.deployment_id, d.name AS deployment, i.desired, d.workload,
            a.component AS image_component, a.version AS image_version, a.sha256 AS image_sha256,
            a.size::float8 AS image_size, a.signature AS image_signature
       FROM instances i JOIN deployments d ON d.id = i.deployment_id
       LEFT JOIN artifacts a ON a.id = d.workload->>'image_artifact_id'
      WHERE i.node_id = ANY($1::text[]) AND NOT (i.desired = 'stopped' AND i.status = 'stopped')
      ORDER BY i.node_id, i.id`,
    [found],
  );
  // Each side of an open live migration is told its part (domain/instance-migration.ts).
  const migrations = new Map<string, InstanceMigration>();
  for (const m of await openLiveMigrationsOn(db, found)) migrations.set(m.instanceId, m).set(m.targetInstanceId, m);
  for (const row of instances) {
    const { node_id: nodeId, image_component: component, image_version: version, image_sha256: sha256, image_size: size, image_signature: signature, ...instance } = row;
    const desired: DesiredInstance = { ...instance };
    if (instance.workload.driver === 'vm' && component !== null && version !== null && sha256 !== null && size !== null) {
      const artifactId = instance.workload.image_artifact_id;
      desired.image = { artifact_id: artifactId, component, version, sha256, size, signature, url: artifactUrl(artifactId, nodeId) };
    }
    const m = migrations.get(instance.id);
    const migration = m && desiredMigrationFor(m, instance.id);
    if (migration) desired.migration = migration;
    result.get(nodeId)?.instances.push(desired);
  }
  // Same as desiredComponentsForNode, whose download URL the agent gateway serves.
  const components = await db.query<Omit<DesiredComponent, 'url' | 'ref'> & { node_id: string; component: string; ref: string | null }>(
    `SELECT c.node_id, c.component, c.version, a.id AS artifact_id, a.kind, a.sha256, a.size::float8 AS size, a.signature, a.ref,
            c.rollback, a.disruptive, c.previous_version, c.keep_previous, c.prestage,
            to_char(c.updated_at AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISSUS') AS request_id
       FROM node_components c JOIN artifacts a ON a.id = c.artifact_id
      WHERE c.node_id = ANY($1::text[]) ORDER BY c.node_id, c.component`,
    [found],
  );
  for (const { node_id: nodeId, component, keep_previous: keepPrevious, prestage, ref, ...desired } of components) {
    const state = result.get(nodeId);
    if (!state) continue;
    state.components[component] = {
      ...desired,
      url: artifactUrl(desired.artifact_id, nodeId),
      ...(ref === null ? {} : { ref }),
      // Said only when true: absent means false to every agent, old ones included.
      ...(keepPrevious ? { keep_previous: true } : {}),
      ...(prestage ? { prestage: true } : {}),
    };
  }
  // Node hooks asked for and not finished (DESIGN.md §12): the agent runs them, in this order.
  for (const [nodeId, hooks] of await openNodeHooks(db, found)) {
    const state = result.get(nodeId);
    if (state) state.hooks = hooks;
  }
  return result;
}

/** Whether an instance on the node boots this `vm-image` artifact (so its agent may download it). */
export async function nodeHostsImage(db: Db, nodeId: string, artifactId: string): Promise<boolean> {
  const rows = await db.query<{ one: number }>(
    `SELECT 1 AS one FROM instances i JOIN deployments d ON d.id = i.deployment_id
      WHERE i.node_id = $1 AND d.workload->>'image_artifact_id' = $2 LIMIT 1`,
    [nodeId, artifactId],
  );
  return rows.length > 0;
}
