import { performance } from 'node:perf_hooks';
import type { FleetSnapshot, LivenessSnapshot } from '../domain/fleet-reconcile.js';
import type { LivenessNode } from '../domain/liveness-guard.js';
import { LIVENESS_CONDITION_KINDS } from '../domain/liveness-guard.js';
import type { Deployment, Drain, FleetNode, Instance, InstanceStatus, NodeRole, NodeStatus, DrainState, DrainMode } from '../domain/types.js';
import type { Db } from './db.js';

/**
 * Loads what `reconcileFleet` decides on, with the database's clock as `now` (the clock
 * last_heartbeat_at is written in, whichever replica received the heartbeat).
 * `clockReadAt` is this process's monotonic clock (performance.now()) right after `now` was
 * read, so times measured here (a heartbeat's arrival) can be put on the database's clock.
 */
export async function loadFleetSnapshot(db: Db): Promise<{ snapshot: FleetSnapshot; now: Date; clockReadAt: number }> {
  const { now, clockReadAt } = await readClock(db);
  const nodes = await db.query<NodeRow>(`SELECT ${NODE_COLUMNS} FROM nodes ORDER BY id`);
  const deployments = await db.query<DeploymentRow>(`SELECT ${DEPLOYMENT_COLUMNS} FROM deployments ORDER BY id`);
  const instances = await db.query<InstanceRow>(`SELECT ${INSTANCE_COLUMNS} FROM instances ORDER BY id`);
  const drains = await db.query<DrainRow>(`SELECT ${DRAIN_COLUMNS} FROM drains ORDER BY node_id`);
  const snapshot: FleetSnapshot = {
    nodes: nodes.map(toNode),
    deployments: deployments.map(toDeployment),
    instances: instances.map(toInstance),
    drains: drains.map(toDrain),
  };
  return { snapshot, now, clockReadAt };
}

/**
 * The database's clock (`now` of every decision, the clock last_heartbeat_at is written in) and
 * this process's monotonic clock right after it was read.
 */
export async function readClock(db: Db): Promise<{ now: Date; clockReadAt: number }> {
  const [clock] = await db.query<{ now: Date }>('SELECT now() AS now');
  return { now: new Date((clock as { now: Date }).now), clockReadAt: performance.now() };
}

/**
 * What a liveness pass decides on (DESIGN.md §13: no whole-fleet load on a hot path): only the
 * nodes that may change status — down, never heard, silent for more than half a grace (the
 * liveness guard counts those toward region silence), or named in `touched` (a heartbeat back
 * from down, a cordon, a drain that ended) — with their drains, and the node count per region.
 * `all` loads every node (the rare full resync).
 */
export async function loadLivenessSnapshot(
  db: Db,
  options: { graceMs: number; touched: readonly string[]; all?: boolean },
): Promise<{ snapshot: LivenessSnapshot; now: Date; clockReadAt: number }> {
  const { now, clockReadAt } = await readClock(db);
  // Two selections joined by UNION: the touched ones by primary key (an `OR id = ANY(...)` beside
  // the others would compare every row with every touched id), the rest by one scan of `nodes`.
  // Only what liveness reads, the heartbeat as epoch milliseconds: under a silent region this
  // runs every pass over thousands of rows, and parsing timestamps and labels was most of its cost.
  const columns = `n.id, n.hostname, n.region, n.status, n.cordoned, (extract(epoch FROM n.last_heartbeat_at) * 1000)::float8 AS heard_ms, d.state AS drain_state`;
  const nodes = await db.query<LivenessRow>(
    `SELECT ${columns} FROM nodes n LEFT JOIN drains d ON d.node_id = n.id
      WHERE $1::boolean OR n.status = 'down' OR n.last_heartbeat_at IS NULL
         OR n.last_heartbeat_at < $2::timestamptz - make_interval(secs => $3::double precision / 2000)
     UNION
     SELECT ${columns} FROM nodes n LEFT JOIN drains d ON d.node_id = n.id
      WHERE n.id IN (SELECT unnest($4::text[]))
     ORDER BY id`,
    [options.all ?? false, now, options.graceMs, [...options.touched]],
  );
  const regions = await db.query<{ region: string; nodes: number }>('SELECT region, count(*)::int AS nodes FROM nodes GROUP BY region');
  const snapshot: LivenessSnapshot = {
    nodes: nodes.map(toLivenessNode),
    drains: nodes.filter((n) => n.drain_state !== null).map((n) => ({ nodeId: n.id, state: n.drain_state as DrainState })),
    regionTotals: new Map(regions.map((r) => [r.region, r.nodes])),
  };
  return { snapshot, now, clockReadAt };
}

/**
 * What a scoped pass decides on: every instance of the given deployments, the drains of the given
 * nodes, the nodes those instances and drains are on (and `nodeIds`), and — with `candidates` — every node with
 * a free slot that placement may pick, with the load of every node (all deployments) in `load`.
 * Without `candidates` no node has room (`load` says each is full).
 */
export async function loadScopeSnapshot(
  db: Db,
  scope: { deploymentIds: readonly string[]; drainNodeIds: readonly string[]; candidates: boolean; nodeIds?: readonly string[] },
): Promise<FleetSnapshot> {
  const deploymentIds = [...scope.deploymentIds];
  const deployments = await db.query<DeploymentRow>(`SELECT ${DEPLOYMENT_COLUMNS} FROM deployments WHERE id = ANY($1::text[]) ORDER BY id`, [deploymentIds]);
  const instances = await db.query<InstanceRow>(`SELECT ${INSTANCE_COLUMNS} FROM instances WHERE deployment_id = ANY($1::text[]) ORDER BY id`, [deploymentIds]);
  const drains = await db.query<DrainRow>(`SELECT ${DRAIN_COLUMNS} FROM drains WHERE node_id = ANY($1::text[]) ORDER BY node_id`, [[...scope.drainNodeIds]]);
  const hosting = [...new Set([...instances.map((i) => i.node_id), ...scope.drainNodeIds, ...(scope.nodeIds ?? [])])];
  let load: Map<string, number> | undefined;
  let nodes: NodeRow[];
  if (scope.candidates) {
    // One scan of the instances for the load of every node; only nodes with a free slot (or the
    // scope's own) come back.
    const rows = await db.query<NodeRow & { load: number }>(
      `SELECT ${NODE_COLUMNS_OF_N}, coalesce(a.active, 0)::int AS load
         FROM nodes n
         LEFT JOIN (SELECT node_id, count(*) AS active FROM instances WHERE status <> 'stopped' GROUP BY node_id) a ON a.node_id = n.id
        WHERE n.id = ANY($1::text[])
           OR (n.status = 'ready' AND NOT n.cordoned AND n.max_instances > coalesce(a.active, 0))
        ORDER BY n.id`,
      [hosting],
    );
    load = new Map(rows.map((r) => [r.id, r.load]));
    nodes = rows;
  } else {
    nodes = await db.query<NodeRow>(`SELECT ${NODE_COLUMNS} FROM nodes WHERE id = ANY($1::text[]) ORDER BY id`, [hosting]);
    // Without the candidates every node counts as full: a placement is decided only with the
    // true load of every node that could take it (the caller loads them when it wants room).
    load = new Map(nodes.map((n) => [n.id, n.max_instances]));
  }
  return {
    nodes: nodes.map(toNode),
    deployments: deployments.map(toDeployment),
    instances: instances.map(toInstance),
    drains: drains.map(toDrain),
    ...(load ? { load } : {}),
  };
}

/** The deployments with an instance on any of the given nodes (a node's pass covers them). */
export async function deploymentsOnNodes(db: Db, nodeIds: readonly string[]): Promise<string[]> {
  const rows = await db.query<{ deployment_id: string }>('SELECT DISTINCT deployment_id FROM instances WHERE node_id = ANY($1::text[])', [[...nodeIds]]);
  return rows.map((r) => r.deployment_id);
}

/** Every key a full resync enqueues: all deployments, and the nodes with a drain in progress. */
export async function resyncKeys(db: Db): Promise<{ deployments: string[]; drainingNodes: string[] }> {
  const deployments = await db.query<{ id: string }>('SELECT id FROM deployments ORDER BY id');
  const drains = await db.query<{ node_id: string }>(`SELECT node_id FROM drains WHERE state IN ('running', 'blocked') ORDER BY node_id`);
  return { deployments: deployments.map((d) => d.id), drainingNodes: drains.map((d) => d.node_id) };
}

type LivenessRow = Pick<NodeRow, 'id' | 'hostname' | 'region' | 'status' | 'cordoned'> & { heard_ms: number | null; drain_state: DrainState | null };
// A Date from epoch milliseconds truncates the microseconds, as date_trunc('milliseconds') does
// where the status write compares the heartbeat it decided from (setNodeStatusesAsSeen).
const toLivenessNode = (n: LivenessRow): LivenessNode => ({
  id: n.id,
  hostname: n.hostname,
  region: n.region,
  status: n.status,
  cordoned: n.cordoned,
  lastHeartbeatAt: n.heard_ms === null ? null : new Date(n.heard_ms),
});

const NODE_COLUMNS = 'id, hostname, region, role, labels, status, cordoned, max_instances, last_heartbeat_at';
/** The same columns of `nodes n` (in joins). */
const NODE_COLUMNS_OF_N = NODE_COLUMNS.split(', ').map((c) => `n.${c}`).join(', ');
type NodeRow = {
  id: string; hostname: string; region: string; role: NodeRole; labels: Record<string, string>;
  status: NodeStatus; cordoned: boolean; max_instances: number; last_heartbeat_at: Date | null;
};
const toNode = (n: NodeRow): FleetNode => ({
  id: n.id, hostname: n.hostname, region: n.region, role: n.role, labels: n.labels, status: n.status,
  cordoned: n.cordoned, maxInstances: n.max_instances, lastHeartbeatAt: n.last_heartbeat_at ? new Date(n.last_heartbeat_at) : null,
});

const DEPLOYMENT_COLUMNS = 'id, name, replicas, min_available, workload, node_selector, deleting_since IS NOT NULL AS deleting';
type DeploymentRow = {
  id: string; name: string; replicas: number; min_available: number; workload: Deployment['workload']; node_selector: Deployment['nodeSelector'];
  deleting: boolean;
};
const toDeployment = (d: DeploymentRow): Deployment => ({
  id: d.id, name: d.name, replicas: d.replicas, minAvailable: d.min_available, workload: d.workload, nodeSelector: d.node_selector,
  ...(d.deleting ? { deleting: true } : {}),
});

const INSTANCE_COLUMNS = 'id, deployment_id, node_id, desired, status, healthy, published, replaces, restart_on_enable, created_at';
type InstanceRow = {
  id: string; deployment_id: string; node_id: string; desired: 'running' | 'stopped'; status: InstanceStatus;
  healthy: boolean; published: boolean; replaces: string | null; restart_on_enable: boolean; created_at: Date;
};
const toInstance = (i: InstanceRow): Instance => ({
  id: i.id, deploymentId: i.deployment_id, nodeId: i.node_id, desired: i.desired, status: i.status, healthy: i.healthy,
  published: i.published, replaces: i.replaces, restartOnEnable: i.restart_on_enable, createdAt: new Date(i.created_at),
});

const DRAIN_COLUMNS = 'node_id, state, force, mode, started_at, deadline, message, blocked_by';
type DrainRow = { node_id: string; state: DrainState; force: boolean; mode: DrainMode; started_at: Date; deadline: Date; message: string; blocked_by: string[] };
const toDrain = (d: DrainRow): Drain => ({
  nodeId: d.node_id, state: d.state, force: d.force, mode: d.mode, startedAt: new Date(d.started_at), deadline: new Date(d.deadline),
  message: d.message, blockedBy: d.blocked_by,
});

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
