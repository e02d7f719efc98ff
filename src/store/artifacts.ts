import type { ArtifactLifecycle } from '../domain/artifact-lifecycle.js';
import type { ArtifactKind } from '../domain/protocol.js';
import type { Db } from './db.js';

export type ArtifactView = {
  id: string;
  component: string;
  version: string;
  kind: ArtifactKind;
  sha256: string;
  size: number;
  signature: string | null;
  key_id: string | null;
  disruptive: boolean;
  /** Installing it reboots the node into an A/B slot (kind os-image only). */
  reboot: boolean;
  /** An os-image published by reference: `oci://HOST[:PORT]/REPO:TAG`, its bytes in that registry (size 0 here); null: uploaded. */
  ref: string | null;
  lifecycle: ArtifactLifecycle;
  /** The breaker rolled this version back and nobody has cleared it yet (store/quarantine.ts). */
  quarantined: boolean;
  created_by: string;
  created_at: string;
  updated_at: string;
};

export interface NewArtifact {
  id: string;
  component: string;
  version: string;
  kind: ArtifactKind;
  sha256: string;
  size: number;
  signature: string | null;
  keyId: string | null;
  disruptive: boolean;
  /** True for kind os-image, false for every other (absent: so). */
  reboot?: boolean;
  /** An os-image published by reference (no blob stored); absent: uploaded. */
  ref?: string | null;
  createdBy: string;
}

const iso = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
const ARTIFACT_VIEW = `
  SELECT id, component, version, kind, sha256, size::float8 AS size, signature, key_id, disruptive, reboot, ref, lifecycle, created_by,
         ${iso('created_at')} AS created_at, ${iso('updated_at')} AS updated_at,
         EXISTS (SELECT 1 FROM quarantine q WHERE q.component = artifacts.component AND q.version = artifacts.version AND q.cleared_at IS NULL) AS quarantined
    FROM artifacts`;

/**
 * Inserts the artifact unless its component+version exists. Returns the row that is stored
 * either way and whether it is the one just inserted, so the caller can tell an idempotent
 * retry (same sha256) from a conflicting publish (different bytes).
 */
export async function insertArtifact(tx: Db, a: NewArtifact): Promise<{ artifact: ArtifactView; created: boolean }> {
  const inserted = await tx.query<{ id: string }>(
    `INSERT INTO artifacts (id, component, version, kind, sha256, size, signature, key_id, disruptive, reboot, created_by, ref)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
     ON CONFLICT (component, version) DO NOTHING RETURNING id`,
    [a.id, a.component, a.version, a.kind, a.sha256, a.size, a.signature, a.keyId, a.disruptive, a.reboot ?? a.kind === 'os-image', a.createdBy, a.ref ?? null],
  );
  const artifact = await findArtifactByVersion(tx, a.component, a.version);
  if (!artifact) throw new Error(`artifact ${a.component} ${a.version} vanished after insert`);
  return { artifact, created: inserted.length > 0 };
}

export async function findArtifact(db: Db, id: string): Promise<ArtifactView | undefined> {
  const [row] = await db.query<ArtifactView>(`${ARTIFACT_VIEW} WHERE id = $1`, [id]);
  return row;
}

export async function findArtifactByVersion(db: Db, component: string, version: string): Promise<ArtifactView | undefined> {
  const [row] = await db.query<ArtifactView>(`${ARTIFACT_VIEW} WHERE component = $1 AND version = $2`, [component, version]);
  return row;
}

export async function listArtifacts(db: Db, filter: { component?: string | undefined } = {}): Promise<ArtifactView[]> {
  return db.query<ArtifactView>(`${ARTIFACT_VIEW} WHERE ($1::text IS NULL OR component = $1) ORDER BY component, created_at, id`, [
    filter.component ?? null,
  ]);
}

/**
 * Moves an artifact to `to` only if it is still in `from` (a concurrent change makes this a
 * no-op the caller sees as false). Promoting demotes the component's other live versions to
 * blessed: "live" names the one version the fleet should run. Returns the ids it demoted.
 */
export async function setLifecycle(
  tx: Db,
  id: string,
  from: ArtifactLifecycle,
  to: ArtifactLifecycle,
): Promise<{ changed: boolean; demoted: string[] }> {
  const changed = await tx.query<{ component: string }>(
    'UPDATE artifacts SET lifecycle = $3, updated_at = now() WHERE id = $1 AND lifecycle = $2 RETURNING component',
    [id, from, to],
  );
  const component = changed[0]?.component;
  if (component === undefined) return { changed: false, demoted: [] };
  if (to !== 'live') return { changed: true, demoted: [] };
  const demoted = await tx.query<{ id: string }>(
    `UPDATE artifacts SET lifecycle = 'blessed', updated_at = now()
      WHERE component = $1 AND lifecycle = 'live' AND id <> $2 RETURNING id`,
    [component, id],
  );
  return { changed: true, demoted: demoted.map((d) => d.id) };
}

export interface ArtifactUser {
  node_id: string;
  hostname: string;
  /** runs: the node reports it; desired: it should run it; rollback: it would return to it. */
  reasons: ('runs' | 'desired' | 'rollback')[];
}

/** Nodes that run, should run, or would roll back to this component version: it must stay. */
export async function nodesUsingVersion(db: Db, component: string, version: string): Promise<ArtifactUser[]> {
  return db.query<ArtifactUser>(
    `SELECT n.id AS node_id, n.hostname,
            array_remove(ARRAY[
              CASE WHEN n.components ->> $1 = $2 OR (i.phase = 'done' AND i.version = $2) THEN 'runs' END,
              CASE WHEN c.version = $2 THEN 'desired' END,
              CASE WHEN c.previous_version = $2 OR i.previous_version = $2 THEN 'rollback' END
            ], NULL) AS reasons
       FROM nodes n
       LEFT JOIN node_components c ON c.node_id = n.id AND c.component = $1
       LEFT JOIN node_installs i ON i.node_id = n.id AND i.component = $1
      WHERE n.components ->> $1 = $2 OR c.version = $2 OR c.previous_version = $2
         OR (i.phase = 'done' AND i.version = $2) OR i.previous_version = $2
      ORDER BY n.hostname`,
    [component, version],
  );
}

/**
 * Locks the artifact row for the rest of the transaction and returns its lifecycle: archive
 * takes it FOR UPDATE, set-version FOR SHARE, so a version cannot be archived while a node is
 * being pointed at it.
 */
export async function lockArtifact(tx: Db, id: string, mode: 'update' | 'share'): Promise<ArtifactLifecycle | undefined> {
  const [row] = await tx.query<{ lifecycle: ArtifactLifecycle }>(
    `SELECT lifecycle FROM artifacts WHERE id = $1 ${mode === 'update' ? 'FOR UPDATE' : 'FOR SHARE'}`,
    [id],
  );
  return row?.lifecycle;
}

export interface RolloutNeedingVersion {
  rollout_id: string;
  name: string;
  status: string;
  /** Hostnames of the nodes that rollout would return to the version. */
  nodes: string[];
}

/**
 * Rollouts in `statuses` with tasks in `taskStates` whose previous version is this one: their
 * rollback (or a failed node's return) would install it, so it must not be archived.
 */
export async function rolloutsNeedingVersion(
  db: Db,
  component: string,
  version: string,
  statuses: readonly string[],
  taskStates: readonly string[],
): Promise<RolloutNeedingVersion[]> {
  return db.query<RolloutNeedingVersion>(
    `SELECT r.id AS rollout_id, r.name, r.status, array_agg(t.hostname ORDER BY t.hostname) AS nodes
       FROM rollouts r JOIN rollout_tasks t ON t.rollout_id = r.id
      WHERE r.component = $1 AND t.from_version = $2 AND r.status = ANY($3::text[]) AND t.state = ANY($4::text[])
      GROUP BY r.id, r.name, r.status, r.created_at
      ORDER BY r.created_at, r.id`,
    [component, version, statuses, taskStates],
  );
}

/**
 * The lifecycle of each of these versions of `component` that is published, each row locked
 * FOR SHARE for the rest of the transaction: a rollback that found them installable cannot
 * have one archived under it (archive takes the row FOR UPDATE).
 */
export async function lockVersionsForShare(tx: Db, component: string, versions: readonly string[]): Promise<Map<string, ArtifactLifecycle>> {
  if (versions.length === 0) return new Map();
  const rows = await tx.query<{ version: string; lifecycle: ArtifactLifecycle }>(
    'SELECT version, lifecycle FROM artifacts WHERE component = $1 AND version = ANY($2::text[]) ORDER BY id FOR SHARE',
    [component, [...versions]],
  );
  return new Map(rows.map((r) => [r.version, r.lifecycle]));
}
