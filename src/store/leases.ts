import type { Db } from './db.js';

export class StaleTermError extends Error {
  constructor(
    readonly lease: string,
    readonly term: number,
  ) {
    super(`lease ${lease}: term ${term} is no longer the leader's; this write is refused`);
  }
}

/**
 * Takes or renews a lease. The holder renews its own live lease under the same term; anyone
 * takes an expired one with the term increased, so terms only grow. Returns the term held,
 * or null when another holder's lease is still live.
 */
export async function acquireLease(db: Db, name: string, holder: string, ttlMs: number): Promise<number | null> {
  const rows = await db.query<{ term: string }>(
    `INSERT INTO leases AS l (name, holder, term, expires_at)
     VALUES ($1, $2, 1, now() + make_interval(secs => $3::double precision / 1000))
     ON CONFLICT (name) DO UPDATE SET
       holder = excluded.holder,
       term = CASE WHEN l.holder = excluded.holder AND l.expires_at > now() THEN l.term ELSE l.term + 1 END,
       expires_at = excluded.expires_at
     WHERE l.holder = excluded.holder OR l.expires_at <= now()
     RETURNING term`,
    [name, holder, ttlMs],
  );
  return rows[0] ? Number(rows[0].term) : null;
}

/**
 * The fence: call first in every transaction a leader writes in. It locks the lease row, so a
 * new leader cannot take over mid-transaction, and refuses a stale or expired term.
 */
export async function assertTerm(tx: Db, name: string, holder: string, term: number): Promise<void> {
  const rows = await tx.query(
    'SELECT 1 FROM leases WHERE name = $1 AND holder = $2 AND term = $3 AND expires_at > now() FOR UPDATE',
    [name, holder, term],
  );
  if (rows.length === 0) throw new StaleTermError(name, term);
}

/** Gives the lease up at once (a clean shutdown), so another operator need not wait for expiry. */
export async function releaseLease(db: Db, name: string, holder: string): Promise<void> {
  await db.query('UPDATE leases SET expires_at = now() WHERE name = $1 AND holder = $2', [name, holder]);
}

export async function currentLease(db: Db, name: string): Promise<{ holder: string; term: number; expires_at: Date } | undefined> {
  const rows = await db.query<{ holder: string; term: string; expires_at: Date }>('SELECT holder, term, expires_at FROM leases WHERE name = $1', [name]);
  const row = rows[0];
  return row ? { holder: row.holder, term: Number(row.term), expires_at: row.expires_at } : undefined;
}
