import { performance } from 'node:perf_hooks';
import type { ActualInstance, BootSlotsReport, InstallReport, RegisterRequest } from '../domain/protocol.js';
import type { NodeStatus } from '../domain/types.js';
import type { Db, SessionOptions } from './db.js';
import { recordInstallReports } from './node-components.js';

/** A node as the API shows it (DESIGN.md §6 field names). */
export type NodeView = {
  id: string;
  hostname: string;
  region: string;
  role: string;
  labels: Record<string, string>;
  status: NodeStatus;
  draining: boolean;
  cordoned: boolean;
  schedulable: boolean;
  max_instances: number;
  active_instances: number;
  available_capacity: number;
  components: Record<string, string>;
  agent_version: string | null;
  agent_url: string | null;
  /** The node's desired-state generation, and the one its agent last said it has. */
  generation: number;
  observed_generation: number | null;
  last_heartbeat_at: string | null;
  registered_at: string;
  drain: {
    state: string;
    force: boolean;
    message: string;
    blocked_by: string[];
    started_at: string;
    deadline: string;
  } | null;
  /** The latest install report per component, as the node's agent sent it. */
  installs: (Omit<InstallReport, 'reason'> & { reason: string | null; received_at: string })[];
  /** The A/B boot slots of its os-image, as its agent last reported them (null: it has none). */
  slots: BootSlotsReport | null;
};

const ISO = `'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'`;
const iso = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', ${ISO})`;

const NODE_VIEW = `
  SELECT n.id, n.hostname, n.region, n.role, n.labels, n.status,
         coalesce(d.state IN ('running', 'blocked'), false) AS draining,
         n.cordoned,
         n.status = 'ready' AS schedulable,
         n.max_instances,
         coalesce(a.active, 0)::int AS active_instances,
         greatest(n.max_instances - coalesce(a.active, 0), 0)::int AS available_capacity,
         n.components, n.agent_version, n.agent_url,
         n.generation::float8 AS generation, n.observed_generation::float8 AS observed_generation,
         ${iso('n.last_heartbeat_at')} AS last_heartbeat_at,
         ${iso('n.registered_at')} AS registered_at,
         CASE WHEN d.node_id IS NULL THEN NULL ELSE json_build_object(
           'state', d.state, 'force', d.force, 'message', d.message, 'blocked_by', d.blocked_by,
           'started_at', ${iso('d.started_at')}, 'deadline', ${iso('d.deadline')}) END AS drain,
         coalesce((SELECT json_agg(json_build_object(
             'component', i.component, 'version', i.version, 'previous_version', i.previous_version, 'phase', i.phase,
             'reason', i.reason, 'updated_at', i.reported_at, 'received_at', ${iso('i.updated_at')}) ORDER BY i.component)
           FROM node_installs i WHERE i.node_id = n.id), '[]') AS installs,
         n.boot_slots AS slots
    FROM nodes n
    LEFT JOIN drains d ON d.node_id = n.id
    -- An instance counts until its agent reports it stopped; a pinned instance parked by a
    -- forced drain does not (it is not running, it only waits for enable). Counted per node
    -- through instances_node, so reading one node does not count the whole fleet's instances.
    LEFT JOIN LATERAL (
      SELECT count(*) AS active FROM instances WHERE node_id = n.id AND status <> 'stopped'
    ) a ON true`;

export interface NodeListFilter {
  region?: string | undefined;
  status?: string | undefined;
  role?: string | undefined;
  /** `component@version`: nodes that report that component at that version. */
  version?: string | undefined;
  /** A page of the list (in its order: region, hostname); without `limit`, every node from `offset`. */
  limit?: number | undefined;
  offset?: number | undefined;
}

/** The WHERE of a node list or summary (parameters $1..$4), over `nodes n`. */
const NODE_FILTER = `($1::text IS NULL OR n.region = $1) AND ($2::text IS NULL OR n.status = $2) AND ($3::text IS NULL OR n.role = $3)
   AND ($4::text IS NULL OR n.components ->> split_part($4, '@', 1) = substr($4, length(split_part($4, '@', 1)) + 2))`;
const filterValues = (f: NodeListFilter) => [f.region ?? null, f.status ?? null, f.role ?? null, f.version ?? null];

export async function listNodes(db: Db, filter: NodeListFilter = {}): Promise<NodeView[]> {
  // The page's ids first, then the view of those nodes only: the per-node subqueries (installs,
  // instance counts) run for the page, not for every node the sort passes over.
  return db.query<NodeView>(
    `${NODE_VIEW}
      WHERE n.id IN (SELECT n.id FROM nodes n WHERE ${NODE_FILTER} ORDER BY n.region, n.hostname LIMIT $5 OFFSET $6)
      ORDER BY n.region, n.hostname`,
    [...filterValues(filter), filter.limit ?? null, filter.offset ?? 0],
  );
}

/** Counts over the fleet (or the nodes a filter selects), for a view that needs no rows. */
export interface FleetSummary {
  nodes: number;
  ready: number;
  down: number;
  cordoned: number;
  draining: number;
  /** Instances counted as on the nodes (active_instances summed). */
  instances: number;
  regions: { region: string; nodes: number }[];
  /** Every role and `component@version` the fleet has (the filters' choices; not narrowed by the filter). */
  roles: string[];
  versions: string[];
}

export async function fleetSummary(db: Db, filter: NodeListFilter = {}): Promise<FleetSummary> {
  const [counts] = await db.query<Omit<FleetSummary, 'roles' | 'versions'>>(
    `SELECT count(*)::int AS nodes,
            count(*) FILTER (WHERE n.status = 'ready')::int AS ready,
            count(*) FILTER (WHERE n.status = 'down')::int AS down,
            count(*) FILTER (WHERE n.cordoned)::int AS cordoned,
            count(*) FILTER (WHERE d.state IN ('running', 'blocked'))::int AS draining,
            coalesce(sum(a.active), 0)::int AS instances,
            coalesce((SELECT json_agg(json_build_object('region', r.region, 'nodes', r.nodes) ORDER BY r.region)
                        FROM (SELECT n2.region, count(*)::int AS nodes FROM nodes n2
                               WHERE ${NODE_FILTER.replaceAll('n.', 'n2.')} GROUP BY n2.region) r), '[]') AS regions
       FROM nodes n
       LEFT JOIN drains d ON d.node_id = n.id
       LEFT JOIN LATERAL (SELECT count(*) AS active FROM instances WHERE node_id = n.id AND status <> 'stopped') a ON true
      WHERE ${NODE_FILTER}`,
    filterValues(filter),
  );
  const [choices] = await db.query<{ roles: string[]; versions: string[] }>(
    `SELECT coalesce((SELECT array_agg(DISTINCT role ORDER BY role) FROM nodes), '{}') AS roles,
            coalesce((SELECT array_agg(DISTINCT c.key || '@' || c.value ORDER BY c.key || '@' || c.value) FROM nodes, jsonb_each_text(nodes.components) c), '{}') AS versions`,
  );
  return { ...(counts as Omit<FleetSummary, 'roles' | 'versions'>), roles: choices?.roles ?? [], versions: choices?.versions ?? [] };
}

/** Finds a node by id or by hostname (the CLI accepts either). */
export async function findNode(db: Db, idOrHostname: string): Promise<NodeView | undefined> {
  const rows = await db.query<NodeView>(`${NODE_VIEW} WHERE n.id = $1 OR n.hostname = $1 ORDER BY (n.id = $1) DESC LIMIT 1`, [
    idOrHostname,
  ]);
  return rows[0];
}

/** What an agent says about its node when it registers, in the column order the three writes below use. */
function registrationValues(request: RegisterRequest): unknown[] {
  return [
    request.region,
    request.role,
    JSON.stringify(request.labels ?? {}),
    request.max_instances,
    request.agent_version,
    request.agent_url ?? null,
    request.protocol_version,
  ];
}

/**
 * Registers an agent, unconditionally (store tests and fixtures use it). The hostname is the
 * node's identity: the same hostname always gets the same id. An agent that remembers an id
 * from before (a wiped database) gets it back. The agent gateway does not call this: it checks
 * the node's credential first (DESIGN.md §9) and writes with insertNode/updateNodeRegistration.
 */
export async function registerNode(db: Db, request: RegisterRequest, newId: string, credentialHash: string | null = null): Promise<{ id: string }> {
  const rows = await db.query<{ id: string }>(
    `INSERT INTO nodes (id, hostname, region, role, labels, max_instances, agent_version, agent_url, protocol_version, last_heartbeat_at, status, credential_hash)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now(), 'ready', $10)
     ON CONFLICT (hostname) DO UPDATE SET
       region = excluded.region, role = excluded.role, labels = excluded.labels,
       max_instances = excluded.max_instances, agent_version = excluded.agent_version,
       agent_url = excluded.agent_url, protocol_version = excluded.protocol_version,
       credential_hash = excluded.credential_hash, last_heartbeat_at = now(), updated_at = now()
     RETURNING id`,
    [request.node_id ?? newId, request.hostname, ...registrationValues(request), credentialHash],
  );
  return rows[0] as { id: string };
}

export interface HeartbeatRecord {
  nodeId: string;
  agentVersion: string;
  protocolVersion: number;
  components: Record<string, string>;
  instances: ActualInstance[];
  /** Install progress per component; absent from agents that predate installs. */
  installs?: InstallReport[];
  /**
   * When the request reached the operator, on its monotonic clock (performance.now()). Liveness
   * counts from arrival, not commit: a heartbeat that waited in the operator's queues still
   * proves the node was alive when it arrived (issue 9). Absent: now.
   */
  arrivedAt?: number;
  /** When set, the heartbeat is written only if this is the node's stored credential digest (hex SHA-256). */
  credentialHash?: string;
  /** The desired generation the agent has (absent from callers that do not know it). */
  observedGeneration?: number;
  /** The node's A/B boot slots (absent: the agent has none, or predates them; the stored value stays). */
  slots?: BootSlotsReport;
}

/** The agent-clock time of the newest install report, as ISO text (null: none, or unreadable). */
function newestInstallReport(installs: readonly InstallReport[] | undefined): string | null {
  const times = (installs ?? []).map((i) => Date.parse(i.updated_at)).filter((t) => Number.isFinite(t));
  return times.length > 0 ? new Date(Math.max(...times)).toISOString() : null;
}

/**
 * How long each heartbeat has waited in this process since it arrived, in ms. last_heartbeat_at
 * is written on the database's clock (statement_timestamp() minus this wait), like `now` of the
 * fleet snapshot: one clock for the write and the liveness decision, whichever replica took the
 * heartbeat, and only a duration is measured here (on the monotonic clock, immune to clock
 * steps). The one-way trip to the database makes an arrival look a few ms later, never earlier.
 */
function heartbeatWaits(batch: readonly HeartbeatRecord[]): number[] {
  const sentAt = performance.now();
  return batch.map((h) => (h.arrivedAt === undefined ? 0 : Math.max(0, sentAt - h.arrivedAt)));
}

/** What one batched heartbeat write tells its caller. */
export interface HeartbeatOutcome {
  /**
   * The generation of each node whose heartbeat was written. A node missing here was not
   * written: it is not registered, or its `credentialHash` did not match the stored one.
   */
  written: Map<string, number>;
  /**
   * Nodes whose reported state changed something a reconciler decides from: an instance's
   * status/health/pid/port/message/volume/activity, components, agent version, an install report, or the node
   * coming back from `down` (rollouts follow all of it). A heartbeat that repeats the last one
   * is in neither set.
   */
  changed: Set<string>;
  /**
   * The part of `changed` the fleet reconcilers decide from: an instance row changed or the node
   * came back from `down`. Components and installs matter to rollouts only, so a fleet's first
   * heartbeats (every node reporting its components) do not cost a fleet pass per node.
   */
  fleetChanged: Set<string>;
}

export async function recordHeartbeats(db: Db, batch: readonly HeartbeatRecord[]): Promise<void> {
  await writeHeartbeats(db, batch);
}

/**
 * Writes a batch of heartbeats in one transaction of at most four statements, whatever the
 * batch size (row-by-row writes are ~20x slower, STACK.md), and returns each written node's
 * generation, so the agent gateway needs no read to answer (DESIGN.md §13). An agent only
 * updates instances that belong to its own node. A batch that reports no install and no
 * instance is one statement, atomic on its own: it is sent without BEGIN and COMMIT, two
 * round trips fewer for a batch of idle nodes.
 */
export async function writeHeartbeats(db: Db, batch: readonly HeartbeatRecord[]): Promise<HeartbeatOutcome> {
  const outcome: HeartbeatOutcome = { written: new Map(), changed: new Set(), fleetChanged: new Set() };
  if (batch.length === 0) return outcome;
  // Urgent: on the embedded engine's one session the batch goes before reconciler reads that
  // wait for it, since every agent's reply and every node's liveness wait for this commit.
  const urgent = { urgent: true };
  if (batch.every((h) => h.instances.length === 0 && (h.installs ?? []).length === 0)) {
    await writeNodeRows(db, batch, outcome, urgent);
    return outcome;
  }
  return db.transaction(async (tx) => {
    await writeNodeRows(tx, batch, outcome);
    // Only what was written above may touch its node's installs and instances.
    const accepted = batch.filter((h) => outcome.written.has(h.nodeId));
    const installChanges = await recordInstallReports(
      tx,
      accepted.map((h) => ({ nodeId: h.nodeId, installs: h.installs ?? [] })),
    );
    for (const id of installChanges) outcome.changed.add(id);
    const reports = accepted.flatMap((h) => h.instances.map((i) => ({ ...i, nodeId: h.nodeId })));
    if (reports.length === 0) return outcome;
    // An instance asked to stop leaves its node's desired state once it reports `stopped`
    // (desiredInstancesForNode): that is a change of desired state, so the generation moves
    // with it and a reply cached by generation never lists it again.
    // A workload's volume and activity (domain/workload-report.ts): what the agent reports
    // replaces what it reported before, and an agent that stops reporting one clears it. A value
    // a storage or backup system set through the API (`api`) wins while it has not expired: the
    // agent neither overwrites nor clears it (`held`); once expired, the agent's report takes over.
    const instances = await tx.query<{ node_id: string; left_desired: boolean }>(
      `UPDATE instances i SET status = n.status, healthy = n.healthy, pid = n.pid, port = n.port,
              message = n.message, migration_report = n.migration,
              volume = n.volume, volume_source = n.volume_source, volume_expires_at = n.volume_expires_at,
              activity = n.activity, activity_source = n.activity_source, activity_expires_at = n.activity_expires_at,
              updated_at = now()
         FROM (SELECT r.id, r.status, r.healthy, r.pid, r.port, r.message, r.migration, b.status AS before_status,
                      CASE WHEN held.volume THEN b.volume ELSE r.volume END AS volume,
                      CASE WHEN held.volume THEN b.volume_source WHEN r.volume IS NOT NULL THEN 'agent' END AS volume_source,
                      CASE WHEN held.volume THEN b.volume_expires_at END AS volume_expires_at,
                      CASE WHEN held.activity THEN b.activity ELSE r.activity END AS activity,
                      CASE WHEN held.activity THEN b.activity_source WHEN r.activity IS NOT NULL THEN 'agent' END AS activity_source,
                      CASE WHEN held.activity THEN b.activity_expires_at END AS activity_expires_at
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[], $5::int[], $6::int[], $7::text[], $8::jsonb[], $9::jsonb[], $10::text[])
                      AS r(id, node_id, status, healthy, pid, port, message, migration, volume, activity)
                 JOIN instances b ON b.id = r.id AND b.node_id = r.node_id
                 CROSS JOIN LATERAL (
                   SELECT b.volume_source IS NOT DISTINCT FROM 'api' AND (b.volume_expires_at IS NULL OR b.volume_expires_at > now()) AS volume,
                          b.activity_source IS NOT DISTINCT FROM 'api' AND (b.activity_expires_at IS NULL OR b.activity_expires_at > now()) AS activity
                 ) AS held) AS n
        WHERE i.id = n.id
          AND (i.status, i.healthy, i.pid, i.port, i.message, i.migration_report,
               i.volume, i.volume_source, i.volume_expires_at, i.activity, i.activity_source, i.activity_expires_at)
              IS DISTINCT FROM (n.status, n.healthy, n.pid, n.port, n.message, n.migration,
               n.volume, n.volume_source, n.volume_expires_at, n.activity, n.activity_source, n.activity_expires_at)
        RETURNING i.node_id, (i.desired = 'stopped' AND n.status = 'stopped' AND n.before_status <> 'stopped') AS left_desired`,
      [
        reports.map((r) => r.id),
        reports.map((r) => r.nodeId),
        reports.map((r) => r.status),
        reports.map((r) => r.healthy),
        reports.map((r) => r.pid),
        reports.map((r) => r.port),
        reports.map((r) => r.message ?? null),
        reports.map((r) => (r.migration ? JSON.stringify(r.migration) : null)),
        reports.map((r) => (r.volume ? JSON.stringify({ replicas: r.volume.replicas, healthy_replicas: r.volume.healthy_replicas }) : null)),
        reports.map((r) => r.activity ?? null),
      ],
    );
    for (const i of instances) {
      outcome.changed.add(i.node_id);
      outcome.fleetChanged.add(i.node_id);
    }
    const left = [...new Set(instances.filter((i) => i.left_desired).map((i) => i.node_id))];
    if (left.length > 0) {
      const bumped = await tx.query<{ id: string; generation: string }>(
        'UPDATE nodes SET generation = generation + 1 WHERE id = ANY($1::text[]) RETURNING id, generation',
        [left],
      );
      for (const b of bumped) outcome.written.set(b.id, Number(b.generation));
    }
    return outcome;
  }, urgent);
}

/** The heartbeat batch's `UPDATE nodes`: fills `outcome` with the nodes written, changed and back from down. */
async function writeNodeRows(db: Db, batch: readonly HeartbeatRecord[], outcome: HeartbeatOutcome, options?: SessionOptions): Promise<void> {
  // An agent heartbeats on a timer and at once on every install phase change, so a heartbeat
  // built earlier can arrive after a newer one. Its components would take a node back to the
  // version it just left (and a rollout's health gate would see a revert that never happened):
  // a heartbeat whose newest install report is older than one already stored keeps the
  // stored components. The agent writes `updated_at` with toISOString, whose text order is
  // time order.
  // The credential check is part of the write (a heartbeat with a stale credential changes
  // no row), so a credential revoked by any replica is refused at its next heartbeat. The
  // digests compared are SHA-256 of 32 random bytes: timing reveals nothing usable.
  // `before` is the statement's snapshot, i.e. the rows as they were before this update.
  const nodes = await db.query<{ id: string; generation: string; changed: boolean; was_down: boolean }>(
    `UPDATE nodes n SET last_heartbeat_at = greatest(n.last_heartbeat_at, statement_timestamp() - h.waited_ms * interval '1 millisecond'),
            updated_at = now(), agent_version = h.agent_version, protocol_version = h.protocol_version,
            observed_generation = coalesce(h.observed_generation, n.observed_generation),
            boot_slots = coalesce(h.boot_slots, n.boot_slots),
            components = CASE
              WHEN h.newest_install < (SELECT max(i.reported_at) FROM node_installs i WHERE i.node_id = n.id) THEN n.components
              ELSE h.components END
       FROM unnest($1::text[], $2::text[], $3::int[], $4::jsonb[], $5::text[], $6::text[], $7::float8[], $8::bigint[], $9::jsonb[])
              AS h(id, agent_version, protocol_version, components, newest_install, credential_hash, waited_ms, observed_generation, boot_slots),
            (SELECT id, status, components, agent_version, boot_slots FROM nodes WHERE id = ANY($1::text[])) AS before
      WHERE n.id = h.id AND before.id = n.id
        AND (h.credential_hash IS NULL OR n.credential_hash = h.credential_hash)
      RETURNING n.id, n.generation,
                (before.status = 'down' OR before.components IS DISTINCT FROM n.components
                 OR before.agent_version IS DISTINCT FROM n.agent_version
                 OR before.boot_slots IS DISTINCT FROM n.boot_slots) AS changed,
                before.status = 'down' AS was_down`,
    [
      batch.map((h) => h.nodeId),
      batch.map((h) => h.agentVersion),
      batch.map((h) => h.protocolVersion),
      batch.map((h) => JSON.stringify(h.components)),
      batch.map((h) => newestInstallReport(h.installs)),
      batch.map((h) => h.credentialHash ?? null),
      heartbeatWaits(batch),
      batch.map((h) => h.observedGeneration ?? null),
      batch.map((h) => (h.slots ? JSON.stringify(h.slots) : null)),
    ],
    options,
  );
  for (const n of nodes) {
    outcome.written.set(n.id, Number(n.generation));
    if (n.changed) outcome.changed.add(n.id);
    if (n.was_down) outcome.fleetChanged.add(n.id);
  }
}

export async function setCordoned(tx: Db, nodeId: string, cordoned: boolean): Promise<void> {
  await tx.query('UPDATE nodes SET cordoned = $2, updated_at = now() WHERE id = $1', [nodeId, cordoned]);
}

export async function setNodeStatuses(tx: Db, changes: readonly { nodeId: string; status: NodeStatus }[]): Promise<void> {
  if (changes.length === 0) return;
  await tx.query(
    `UPDATE nodes n SET status = c.status, updated_at = now()
       FROM unnest($1::text[], $2::text[]) AS c(id, status) WHERE n.id = c.id`,
    [changes.map((c) => c.nodeId), changes.map((c) => c.status)],
  );
}

/**
 * Status changes decided from a snapshot: each applies only if the row's status is still the
 * one seen, and — for `down` — no heartbeat newer than the one seen has landed since (compared
 * at millisecond precision, as the decision saw it). Returns the ids written.
 */
export async function setNodeStatusesAsSeen(
  tx: Db,
  changes: readonly { nodeId: string; status: NodeStatus; seen: { status: NodeStatus | null; lastHeartbeatAt: Date | null } }[],
): Promise<string[]> {
  if (changes.length === 0) return [];
  const rows = await tx.query<{ id: string }>(
    `UPDATE nodes n SET status = c.status, updated_at = now()
       FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[]) AS c(id, status, seen_status, seen_heartbeat)
      WHERE n.id = c.id AND n.status = c.seen_status
        AND (c.status <> 'down' OR date_trunc('milliseconds', n.last_heartbeat_at) IS NOT DISTINCT FROM c.seen_heartbeat)
      RETURNING n.id`,
    [changes.map((c) => c.nodeId), changes.map((c) => c.status), changes.map((c) => c.seen.status), changes.map((c) => c.seen.lastHeartbeatAt)],
  );
  return rows.map((r) => r.id);
}

/** Marks the nodes' desired state as changed; their agents' long-polls wake up on it. */
export async function bumpGenerations(tx: Db, nodeIds: readonly string[]): Promise<void> {
  if (nodeIds.length === 0) return;
  await tx.query('UPDATE nodes SET generation = generation + 1 WHERE id = ANY($1::text[])', [[...new Set(nodeIds)]]);
}

export async function nodeGenerations(db: Db): Promise<Map<string, number>> {
  const rows = await db.query<{ id: string; generation: string }>('SELECT id, generation FROM nodes');
  return new Map(rows.map((r) => [r.id, Number(r.generation)]));
}

/**
 * One number that moves whenever any node's generation moves (generations only grow and nodes
 * are never deleted; a new node changes the count): the generation poll compares it each
 * second instead of reading every node's generation.
 */
export async function generationChecksum(db: Db): Promise<string> {
  const [row] = await db.query<{ total: string; nodes: string }>('SELECT coalesce(sum(generation), 0)::text AS total, count(*)::text AS nodes FROM nodes');
  return `${row?.total ?? 0}/${row?.nodes ?? 0}`;
}

/** The generations of the given nodes (missing ids are left out). */
export async function generationsOf(db: Db, nodeIds: readonly string[]): Promise<Map<string, number>> {
  if (nodeIds.length === 0) return new Map();
  const rows = await db.query<{ id: string; generation: string }>('SELECT id, generation FROM nodes WHERE id = ANY($1::text[])', [[...nodeIds]]);
  return new Map(rows.map((r) => [r.id, Number(r.generation)]));
}

export async function nodeCredentialHash(db: Db, nodeId: string): Promise<string | null | undefined> {
  const rows = await db.query<{ credential_hash: string | null }>('SELECT credential_hash FROM nodes WHERE id = $1', [nodeId]);
  return rows[0]?.credential_hash;
}

/** What registration may change about a node, and the digest of its credential (null: open to enrollment). */
export interface NodeIdentity {
  id: string;
  hostname: string;
  region: string;
  role: string;
  labels: Record<string, string>;
  max_instances: number;
  credential_hash: string | null;
}

const IDENTITY_COLUMNS = 'id, hostname, region, role, labels, max_instances, credential_hash';

/** The node registered under `hostname`, row-locked so two registrations of one node run one after the other. */
export async function lockNodeByHostname(tx: Db, hostname: string): Promise<NodeIdentity | undefined> {
  const rows = await tx.query<NodeIdentity>(`SELECT ${IDENTITY_COLUMNS} FROM nodes WHERE hostname = $1 FOR UPDATE`, [hostname]);
  return rows[0];
}

/** The hostname that holds node id `id`, if any. */
export async function hostnameOfNodeId(db: Db, id: string): Promise<string | undefined> {
  const rows = await db.query<{ hostname: string }>('SELECT hostname FROM nodes WHERE id = $1', [id]);
  return rows[0]?.hostname;
}

/**
 * Enrolls a new node. Returns undefined, changing nothing, when the hostname or the id is
 * taken (a concurrent registration won): the caller decides what that means.
 */
export async function insertNode(tx: Db, request: RegisterRequest, id: string, credentialHash: string): Promise<{ id: string } | undefined> {
  const rows = await tx.query<{ id: string }>(
    `INSERT INTO nodes (id, hostname, region, role, labels, max_instances, agent_version, agent_url, protocol_version, last_heartbeat_at, status, credential_hash)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now(), 'ready', $10)
     ON CONFLICT DO NOTHING
     RETURNING id`,
    [id, request.hostname, ...registrationValues(request), credentialHash],
  );
  return rows[0];
}

/** Re-registration of a node whose identity the caller has checked: what its agent says now, and its credential digest. */
export async function updateNodeRegistration(tx: Db, nodeId: string, request: RegisterRequest, credentialHash: string): Promise<void> {
  await tx.query(
    `UPDATE nodes SET region = $2, role = $3, labels = $4, max_instances = $5, agent_version = $6, agent_url = $7,
            protocol_version = $8, credential_hash = $9, last_heartbeat_at = now(), updated_at = now()
      WHERE id = $1`,
    [nodeId, ...registrationValues(request), credentialHash],
  );
}

/** Admin re-enroll: the node's credential is void, so its next registration with the enrollment token is accepted. */
export async function clearNodeCredential(tx: Db, nodeId: string): Promise<void> {
  await tx.query('UPDATE nodes SET credential_hash = NULL, updated_at = now() WHERE id = $1', [nodeId]);
}
