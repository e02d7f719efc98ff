import { performance } from 'node:perf_hooks';
import type { FleetSnapshot } from '../domain/fleet-reconcile.js';
import { LIVENESS_CONDITION_KINDS } from '../domain/liveness-guard.js';
import type { Deployment, Drain, FleetNode, Instance, InstanceStatus, NodeRole, NodeStatus, DrainState } from '../domain/types.js';
import type { Db } from './db.js';

/**
 * Loads what `reconcileFleet` decides on, with the database's clock as `now` (the clock
 * last_heartbeat_at is written in, whichever replica received the heartbeat).
 * `clockReadAt` is this process's monotonic clock (performance.now()) right after `now` was
 * read, so times measured here (a heartbeat's arrival) can be put on the database's clock.
 */
export async function loadFleetSnapshot(db: Db): Promise<{ snapshot: FleetSnapshot; now: Date; clockReadAt: number }> {
  const [clock] = await db.query<{ now: Date }>('SELECT now() AS now');
  const clockReadAt = performance.now();
  const nodes = await db.query<{
    id: string; hostname: string; region: string; role: NodeRole; labels: Record<string, string>;
    status: NodeStatus; cordoned: boolean; max_instances: number; last_heartbeat_at: Date | null;
  }>('SELECT id, hostname, region, role, labels, status, cordoned, max_instances, last_heartbeat_at FROM nodes ORDER BY id');
  const deployments = await db.query<{
    id: string; name: string; replicas: number; min_available: number; workload: Deployment['workload'];
    node_selector: Deployment['nodeSelector'];
  }>('SELECT id, name, replicas, min_available, workload, node_selector FROM deployments ORDER BY id');
  const instances = await db.query<{
    id: string; deployment_id: string; node_id: string; desired: 'running' | 'stopped'; status: InstanceStatus;
    healthy: boolean; published: boolean; replaces: string | null; restart_on_enable: boolean; created_at: Date;
  }>('SELECT id, deployment_id, node_id, desired, status, healthy, published, replaces, restart_on_enable, created_at FROM instances ORDER BY id');
  const drains = await db.query<{
    node_id: string; state: DrainState; force: boolean; started_at: Date; deadline: Date; message: string; blocked_by: string[];
  }>('SELECT node_id, state, force, started_at, deadline, message, blocked_by FROM drains ORDER BY node_id');

  const snapshot: FleetSnapshot = {
    nodes: nodes.map(
      (n): FleetNode => ({
        id: n.id, hostname: n.hostname, region: n.region, role: n.role, labels: n.labels, status: n.status,
        cordoned: n.cordoned, maxInstances: n.max_instances, lastHeartbeatAt: n.last_heartbeat_at ? new Date(n.last_heartbeat_at) : null,
      }),
    ),
    deployments: deployments.map(
      (d): Deployment => ({
        id: d.id, name: d.name, replicas: d.replicas, minAvailable: d.min_available, workload: d.workload, nodeSelector: d.node_selector,
      }),
    ),
    instances: instances.map(
      (i): Instance => ({
        id: i.id, deploymentId: i.deployment_id, nodeId: i.node_id, desired: i.desired, status: i.status, healthy: i.healthy,
        published: i.published, replaces: i.replaces, restartOnEnable: i.restart_on_enable, createdAt: new Date(i.created_at),
      }),
    ),
    drains: drains.map(
      (d): Drain => ({
        nodeId: d.node_id, state: d.state, force: d.force, startedAt: new Date(d.started_at), deadline: new Date(d.deadline),
        message: d.message, blockedBy: d.blocked_by,
      }),
    ),
  };
  return { snapshot, now: new Date((clock as { now: Date }).now), clockReadAt };
}

/**
 * The liveness conditions in force as the event log says (the latest start or end event of
 * each): a new leader carries them on instead of announcing them again. Uses `events_kind`.
 */
export async function loadLivenessConditions(db: Db): Promise<{ kind: string; data: Record<string, unknown> }[]> {
  return db.query<{ kind: string; data: Record<string, unknown> }>(
    `SELECT DISTINCT ON (data->>'condition') kind, data FROM events
      WHERE kind = ANY($1::text[]) ORDER BY data->>'condition', id DESC`,
    [LIVENESS_CONDITION_KINDS],
  );
}
