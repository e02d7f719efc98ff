import type { CompatRule } from '../domain/rollout/compat.js';
import type { CompatFacts } from '../domain/rollout/decide.js';
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

/**
 * The matrix and every version running now, as a rollout checks them before a batch: the
 * components nodes report, the live operator replicas' versions (seen within the stale bound),
 * and the schema as `N.0.0`.
 */
export async function loadCompatFacts(db: Db, replicaStaleAfterMs: number, options: { readyReplicas?: boolean } = {}): Promise<CompatFacts> {
  const readyReplicas = options.readyReplicas ? await loadReadyReplicas(db, replicaStaleAfterMs) : undefined;
  const rules = await listCompatRules(db);
  if (rules.length === 0) return { rules, running: new Map(), ...(readyReplicas ? { readyReplicas } : {}) };
  const rows = await db.query<{ component: string; version: string }>(
    `SELECT DISTINCT c.key AS component, c.value AS version FROM nodes, jsonb_each_text(nodes.components) AS c
     UNION SELECT DISTINCT 'operator', version FROM operator_replicas
       WHERE stopped_at IS NULL AND last_seen_at >= now() - $1 * interval '1 millisecond'
     UNION SELECT 'schema', coalesce(max(version), 0)::text || '.0.0' FROM schema_migrations`,
    [replicaStaleAfterMs],
  );
  const running = new Map<string, string[]>();
  for (const { component, version } of rows) running.set(component, [...(running.get(component) ?? []), version]);
  return { rules, running, ...(readyReplicas ? { readyReplicas } : {}) };
}

/** The versions of the live operator replicas (each once). */
export async function liveReplicaVersions(db: Db, staleAfterMs: number): Promise<string[]> {
  const rows = await db.query<{ version: string }>(
    `SELECT DISTINCT version FROM operator_replicas WHERE stopped_at IS NULL AND last_seen_at >= now() - $1 * interval '1 millisecond' ORDER BY 1`,
    [staleAfterMs],
  );
  return rows.map((r) => r.version);
}

/** The hostnames of the live, ready operator replicas of each region. */
async function loadReadyReplicas(db: Db, staleAfterMs: number): Promise<Map<string, string[]>> {
  const rows = await db.query<{ region: string; hostname: string }>(
    `SELECT DISTINCT region, hostname FROM operator_replicas
      WHERE ready AND stopped_at IS NULL AND last_seen_at >= now() - $1 * interval '1 millisecond' ORDER BY 1, 2`,
    [staleAfterMs],
  );
  const byRegion = new Map<string, string[]>();
  for (const { region, hostname } of rows) byRegion.set(region, [...(byRegion.get(region) ?? []), hostname]);
  return byRegion;
}
