import type { Db } from './db.js';

export interface UiSessionRow {
  principal: string;
  role: string;
  csrf_token: string;
  expires_at: string;
}

/** Stores a session under the sha256 of its cookie value; expired sessions are swept on the way. */
export async function insertUiSession(
  db: Db,
  s: { idSha256: string; principal: string; role: string; csrfToken: string; ttlMs: number },
): Promise<string> {
  return db.transaction(async (tx) => {
    await tx.query('DELETE FROM ui_sessions WHERE expires_at < now()');
    const [row] = await tx.query<{ expires_at: string }>(
      `INSERT INTO ui_sessions (id_sha256, principal, role, csrf_token, expires_at)
       VALUES ($1, $2, $3, $4, now() + ($5::bigint * interval '1 millisecond'))
       RETURNING to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS expires_at`,
      [s.idSha256, s.principal, s.role, s.csrfToken, s.ttlMs],
    );
    return (row as { expires_at: string }).expires_at;
  });
}

/** The live session with this id digest, or undefined when it is unknown or expired. */
export async function findUiSession(db: Db, idSha256: string): Promise<UiSessionRow | undefined> {
  const [row] = await db.query<UiSessionRow>(
    `SELECT principal, role, csrf_token, to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS expires_at
       FROM ui_sessions WHERE id_sha256 = $1 AND expires_at > now()`,
    [idSha256],
  );
  return row;
}

export async function deleteUiSession(db: Db, idSha256: string): Promise<void> {
  await db.query('DELETE FROM ui_sessions WHERE id_sha256 = $1', [idSha256]);
}
