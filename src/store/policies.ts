import type { AppliedPolicy, Policy } from '../domain/rollout/policy.js';
import type { Db } from './db.js';

export type PolicyView = {
  name: string;
  policy: Policy;
  created_by: string;
  created_at: string;
  updated_by: string;
  updated_at: string;
};

const ISO = `'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'`;
const VIEW = `SELECT name, document AS policy, created_by, to_char(created_at AT TIME ZONE 'UTC', ${ISO}) AS created_at,
  updated_by, to_char(updated_at AT TIME ZONE 'UTC', ${ISO}) AS updated_at FROM policies`;

/** Creates the policy or replaces the one of that name; returns whether it existed before. */
export async function upsertPolicy(tx: Db, policy: Policy, by: string): Promise<{ created: boolean }> {
  const rows = await tx.query<{ created: boolean }>(
    `INSERT INTO policies (name, document, created_by, updated_by) VALUES ($1, $2, $3, $3)
     ON CONFLICT (name) DO UPDATE SET document = EXCLUDED.document, updated_by = EXCLUDED.updated_by, updated_at = now()
     RETURNING (xmax = 0) AS created`,
    [policy.name, JSON.stringify(policy), by],
  );
  return { created: rows[0]?.created ?? false };
}

export async function listPolicies(db: Db): Promise<PolicyView[]> {
  return db.query<PolicyView>(`${VIEW} ORDER BY name`);
}

export async function findPolicy(db: Db, name: string): Promise<PolicyView | undefined> {
  const [row] = await db.query<PolicyView>(`${VIEW} WHERE name = $1`, [name]);
  return row;
}

export async function deletePolicy(tx: Db, name: string): Promise<boolean> {
  return (await tx.query('DELETE FROM policies WHERE name = $1 RETURNING name', [name])).length > 0;
}

/** Records which policies strengthened a rollout's spec (shown in its detail). */
export async function setRolloutPolicies(tx: Db, rolloutId: string, applied: readonly AppliedPolicy[]): Promise<void> {
  await tx.query('UPDATE rollouts SET policies = $2 WHERE id = $1', [rolloutId, JSON.stringify(applied)]);
}
