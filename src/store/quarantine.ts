import type { Db } from './db.js';

export type QuarantineView = {
  id: number;
  component: string;
  version: string;
  rollout_id: string | null;
  reason: string;
  quarantined_by: string;
  quarantined_at: string;
  cleared_by: string | null;
  cleared_at: string | null;
  clear_reason: string | null;
};

const ISO = `'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'`;
const VIEW = `SELECT id::int AS id, component, version, rollout_id, reason, quarantined_by,
  to_char(quarantined_at AT TIME ZONE 'UTC', ${ISO}) AS quarantined_at, cleared_by,
  to_char(cleared_at AT TIME ZONE 'UTC', ${ISO}) AS cleared_at, clear_reason FROM quarantine`;

/** Quarantines a version unless it is already (the open row stays the first one). Returns the new row, if any. */
export async function quarantineVersion(
  tx: Db,
  q: { component: string; version: string; rolloutId: string; reason: string; by: string },
): Promise<QuarantineView | undefined> {
  const inserted = await tx.query<{ id: number }>(
    `INSERT INTO quarantine (component, version, rollout_id, reason, quarantined_by) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (component, version) WHERE cleared_at IS NULL DO NOTHING RETURNING id::int AS id`,
    [q.component, q.version, q.rolloutId, q.reason, q.by],
  );
  const id = inserted[0]?.id;
  if (id === undefined) return undefined;
  const [row] = await tx.query<QuarantineView>(`${VIEW} WHERE id = $1`, [id]);
  return row;
}

/** The open quarantine of a version, if any. */
export async function openQuarantine(db: Db, component: string, version: string): Promise<QuarantineView | undefined> {
  const [row] = await db.query<QuarantineView>(`${VIEW} WHERE component = $1 AND version = $2 AND cleared_at IS NULL`, [component, version]);
  return row;
}

/** Every quarantine, open ones first, with cleared ones kept for the audit trail. */
export async function listQuarantine(db: Db, filter: { open?: boolean | undefined } = {}): Promise<QuarantineView[]> {
  return db.query<QuarantineView>(`${VIEW} WHERE ($1::boolean IS NULL OR (cleared_at IS NULL) = $1) ORDER BY (cleared_at IS NULL) DESC, quarantined_at DESC, id DESC`, [
    filter.open ?? null,
  ]);
}

/** Clears the open quarantine of a version; the row stays with who cleared it and why. */
export async function clearQuarantine(tx: Db, c: { component: string; version: string; by: string; reason: string }): Promise<QuarantineView | undefined> {
  const rows = await tx.query<{ id: number }>(
    `UPDATE quarantine SET cleared_by = $3, cleared_at = now(), clear_reason = $4
      WHERE component = $1 AND version = $2 AND cleared_at IS NULL RETURNING id::int AS id`,
    [c.component, c.version, c.by, c.reason],
  );
  const id = rows[0]?.id;
  if (id === undefined) return undefined;
  const [row] = await tx.query<QuarantineView>(`${VIEW} WHERE id = $1`, [id]);
  return row;
}
