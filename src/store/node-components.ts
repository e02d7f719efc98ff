// What each node should run per component (set by people now, by rollouts next), and the
// install progress its agent reports.
import { installEventFor } from '../domain/component-events.js';
import { EVENT } from '../domain/events.js';
import type { DesiredComponent, InstallPhase, InstallReport } from '../domain/protocol.js';
import type { Db } from './db.js';
import { appendEvents, type NewEvent } from './events.js';

export interface NodeComponentRow {
  node_id: string;
  component: string;
  version: string;
  artifact_id: string;
  previous_version: string | null;
  rollback: boolean;
  force: boolean;
  /** Pre-staging only (DESIGN.md §12). */
  prestage: boolean;
  updated_by: string;
  updated_at: string;
}

const iso = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

export async function findNodeComponent(db: Db, nodeId: string, component: string): Promise<NodeComponentRow | undefined> {
  const [row] = await db.query<NodeComponentRow>(
    `SELECT node_id, component, version, artifact_id, previous_version, rollback, force, prestage, updated_by, ${iso('updated_at')} AS updated_at
       FROM node_components WHERE node_id = $1 AND component = $2`,
    [nodeId, component],
  );
  return row;
}

export async function setNodeComponent(
  tx: Db,
  row: {
    nodeId: string;
    component: string;
    version: string;
    artifactId: string;
    previousVersion: string | null;
    rollback: boolean;
    force: boolean;
    updatedBy: string;
    /** Blue-green: the previous version keeps running beside this one until retired (default false). */
    keepPrevious?: boolean;
    /** Pre-staging only: the agent stages the version and reports `staged`, nothing more (default false). */
    prestage?: boolean;
  },
): Promise<void> {
  await tx.query(
    `INSERT INTO node_components (node_id, component, version, artifact_id, previous_version, rollback, force, updated_by, keep_previous, prestage)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
     ON CONFLICT (node_id, component) DO UPDATE SET version = excluded.version, artifact_id = excluded.artifact_id,
       previous_version = excluded.previous_version, rollback = excluded.rollback, force = excluded.force,
       updated_by = excluded.updated_by, keep_previous = excluded.keep_previous, prestage = excluded.prestage, updated_at = now()`,
    [row.nodeId, row.component, row.version, row.artifactId, row.previousVersion, row.rollback, row.force, row.updatedBy, row.keepPrevious ?? false, row.prestage ?? false],
  );
}

/**
 * Blue-green: the previous version the node kept running beside this one may stop now. The
 * request (its id is the row's update time) stays the same: nothing is installed again.
 * Returns whether the row changed.
 */
export async function retirePreviousComponent(tx: Db, nodeId: string, component: string): Promise<boolean> {
  const rows = await tx.query('UPDATE node_components SET keep_previous = false WHERE node_id = $1 AND component = $2 AND keep_previous RETURNING node_id', [nodeId, component]);
  return rows.length > 0;
}

/** The desired components of a node, with what its agent needs to fetch and verify each. */
export async function desiredComponentsForNode(db: Db, nodeId: string): Promise<Record<string, DesiredComponent>> {
  const rows = await db.query<Omit<DesiredComponent, 'url' | 'ref'> & { component: string; ref: string | null }>(
    `SELECT c.component, c.version, a.id AS artifact_id, a.kind, a.sha256, a.size::float8 AS size, a.signature, a.ref,
            c.rollback, a.disruptive, c.previous_version, c.keep_previous, c.prestage,
            to_char(c.updated_at AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISSUS') AS request_id
       FROM node_components c JOIN artifacts a ON a.id = c.artifact_id
      WHERE c.node_id = $1 ORDER BY c.component`,
    [nodeId],
  );
  // The agent gateway's download route: it serves only what is in this node's desired state,
  // to the holder of this node's credential (DESIGN.md §9). Node ids come from agents, so encode.
  return Object.fromEntries(
    rows.map(({ component, keep_previous: keepPrevious, prestage, ref, ...desired }) => [
      component,
      {
        ...desired,
        url: `/api/v1/agent/artifacts/${encodeURIComponent(desired.artifact_id)}/blob?node_id=${encodeURIComponent(nodeId)}`,
        ...(ref === null ? {} : { ref }),
        ...(keepPrevious ? { keep_previous: true } : {}),
        ...(prestage ? { prestage: true } : {}),
      },
    ]),
  );
}

export interface NodeInstallReports {
  nodeId: string;
  installs: readonly InstallReport[];
}

/**
 * Stores the latest install report per node and component and appends one event per change of
 * an install, in the caller's transaction. A repeated report changes no row and writes no
 * event. Reports for a node that is not registered are dropped. Returns the nodes whose
 * install rows changed.
 */
export async function recordInstallReports(tx: Db, batch: readonly NodeInstallReports[]): Promise<string[]> {
  // One row per node and component (the last report wins): an upsert may touch a row only once.
  const latest = new Map<string, InstallReport & { nodeId: string }>();
  for (const b of batch) for (const r of b.installs) latest.set(`${b.nodeId}\u0000${r.component}`, { ...r, nodeId: b.nodeId });
  const reports = [...latest.values()];
  if (reports.length === 0) return [];
  // All parts of one statement see the same snapshot, so `before` holds the rows as they were.
  const changed = await tx.query<{
    node_id: string;
    component: string;
    version: string;
    previous_version: string | null;
    phase: InstallPhase;
    reason: string | null;
    before_version: string | null;
    before_phase: InstallPhase | null;
    pruned: string[];
    before_pruned: string[] | null;
  }>(
    `WITH r AS (
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::boolean[], $9::jsonb[])
                AS r(node_id, component, version, previous_version, phase, reason, reported_at, retryable, pruned)
     ), before AS (
       SELECT i.node_id, i.component, i.version, i.phase, i.pruned FROM node_installs i JOIN r USING (node_id, component)
     ), written AS (
       INSERT INTO node_installs (node_id, component, version, previous_version, phase, reason, reported_at, retryable, pruned)
       SELECT r.node_id, r.component, r.version, r.previous_version, r.phase, r.reason, r.reported_at, r.retryable, r.pruned
         FROM r JOIN nodes n ON n.id = r.node_id
       ON CONFLICT (node_id, component) DO UPDATE SET version = excluded.version, previous_version = excluded.previous_version,
          phase = excluded.phase, reason = excluded.reason, reported_at = excluded.reported_at, retryable = excluded.retryable,
          pruned = excluded.pruned, updated_at = now()
        WHERE (node_installs.version, node_installs.previous_version, node_installs.phase, node_installs.reason, node_installs.retryable, node_installs.pruned)
              IS DISTINCT FROM (excluded.version, excluded.previous_version, excluded.phase, excluded.reason, excluded.retryable, excluded.pruned)
          -- A report older than the stored one came from a heartbeat that arrived late: it would
          -- move the install back a phase (and append its events again).
          AND excluded.reported_at >= node_installs.reported_at
       RETURNING node_id, component, version, previous_version, phase, reason, pruned
     )
     SELECT w.*, b.version AS before_version, b.phase AS before_phase, b.pruned AS before_pruned
       FROM written w LEFT JOIN before b USING (node_id, component)`,
    [
      reports.map((r) => r.nodeId),
      reports.map((r) => r.component),
      reports.map((r) => r.version),
      reports.map((r) => r.previous_version),
      reports.map((r) => r.phase),
      reports.map((r) => r.reason ?? null),
      reports.map((r) => r.updated_at),
      // NULL for agents older than the flag (task-machine.ts falls back to the reason for them).
      reports.map((r) => r.retryable ?? null),
      // What the agent pruned after this install (agents without pruning: none).
      reports.map((r) => JSON.stringify(r.pruned ?? [])),
    ],
  );
  const events: NewEvent[] = [];
  for (const row of changed) {
    const before = row.before_version !== null && row.before_phase !== null ? { version: row.before_version, phase: row.before_phase } : undefined;
    const pruned = prunedEvent(row, latest.get(`${row.node_id}\u0000${row.component}`)?.kept ?? []);
    if (pruned) events.push(pruned);
    const kind = installEventFor(before, row);
    if (!kind) continue;
    events.push({
      kind,
      actor: 'agent',
      nodeId: row.node_id,
      data: { component: row.component, version: row.version, previous_version: row.previous_version, phase: row.phase, ...(row.reason ? { reason: row.reason } : {}) },
    });
  }
  await appendEvents(tx, events);
  return [...new Set(changed.map((row) => row.node_id))];
}

/** node.components_pruned, once per new list of pruned version dirs (a repeated report writes no row). */
function prunedEvent(
  row: { node_id: string; component: string; version: string; pruned: string[]; before_pruned: string[] | null },
  kept: readonly string[],
): NewEvent | undefined {
  if (row.pruned.length === 0 || JSON.stringify(row.pruned) === JSON.stringify(row.before_pruned ?? [])) return undefined;
  return {
    kind: EVENT.node.components_pruned,
    actor: 'agent',
    nodeId: row.node_id,
    data: { component: row.component, version: row.version, pruned: row.pruned, kept },
  };
}
