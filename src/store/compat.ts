import type { CompatRule } from '../domain/rollout/compat.js';
import type { Db } from './db.js';

export async function listCompatRules(db: Db): Promise<CompatRule[]> {
  return db.query<CompatRule>(
    'SELECT component, version_range AS range, requires_component, requires_range FROM compat_rules ORDER BY id',
  );
}

/** Replaces the whole matrix (`drydock compat set -f FILE` is declarative). */
export async function replaceCompatRules(tx: Db, rules: readonly CompatRule[]): Promise<void> {
  await tx.query('DELETE FROM compat_rules');
  if (rules.length === 0) return;
  await tx.query(
    `INSERT INTO compat_rules (component, version_range, requires_component, requires_range)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])`,
    [rules.map((r) => r.component), rules.map((r) => r.range), rules.map((r) => r.requires_component), rules.map((r) => r.requires_range)],
  );
}
