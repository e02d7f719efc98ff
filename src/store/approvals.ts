import type { Db } from './db.js';

export type ApprovalView = {
  id: string;
  rollout_id: string;
  kind: 'plan' | 'continuation' | 'gate';
  status: 'pending' | 'approved' | 'rejected' | 'decided' | 'cancelled';
  options: string[];
  reason: string | null;
  requested_by: string;
  decision: string | null;
  decided_by: string | null;
  decided_at: string | null;
  edits: string[];
  created_at: string;
};

const ISO = `'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'`;
const VIEW = `SELECT id, rollout_id, kind, status, options, reason, requested_by, decision, decided_by,
  to_char(decided_at AT TIME ZONE 'UTC', ${ISO}) AS decided_at, edits,
  to_char(created_at AT TIME ZONE 'UTC', ${ISO}) AS created_at FROM approvals`;

export async function insertApproval(
  tx: Db,
  a: { id: string; rolloutId: string; kind: ApprovalView['kind']; options: string[]; reason: string | null; requestedBy: string },
): Promise<void> {
  await tx.query('INSERT INTO approvals (id, rollout_id, kind, options, reason, requested_by) VALUES ($1, $2, $3, $4, $5, $6)', [
    a.id,
    a.rolloutId,
    a.kind,
    JSON.stringify(a.options),
    a.reason,
    a.requestedBy,
  ]);
}

export async function listApprovals(db: Db, filter: { rolloutId?: string | undefined; status?: string | undefined } = {}): Promise<ApprovalView[]> {
  return db.query<ApprovalView>(
    `${VIEW} WHERE ($1::text IS NULL OR rollout_id = $1) AND ($2::text IS NULL OR status = $2) ORDER BY created_at, id`,
    [filter.rolloutId ?? null, filter.status ?? null],
  );
}

/** The rollout's open approval of a kind, locked for the decision being made. */
export async function pendingApproval(tx: Db, rolloutId: string, kind: ApprovalView['kind']): Promise<ApprovalView | undefined> {
  const rows = await tx.query<ApprovalView>(`${VIEW} WHERE rollout_id = $1 AND kind = $2 AND status = 'pending' ORDER BY created_at DESC LIMIT 1 FOR UPDATE`, [
    rolloutId,
    kind,
  ]);
  return rows[0];
}

export async function decideApproval(
  tx: Db,
  id: string,
  d: { status: 'approved' | 'rejected' | 'decided' | 'cancelled'; decision: string; by: string; reason?: string | null; edits?: string[] },
): Promise<void> {
  await tx.query(
    `UPDATE approvals SET status = $2, decision = $3, decided_by = $4, decided_at = now(), reason = coalesce($5, reason), edits = $6
      WHERE id = $1 AND status = 'pending'`,
    [id, d.status, d.decision, d.by, d.reason ?? null, JSON.stringify(d.edits ?? [])],
  );
}
