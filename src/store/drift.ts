import type { Db } from './db.js';

export interface DriftEntry {
  node_id: string;
  hostname: string;
  component: string;
  expected: string;
  actual: string | null;
  rollout_id: string;
}

/**
 * Nodes that do not run the version the last completed rollout of each component set. The
 * expectation covers the nodes that rollout targeted (its tasks, including skipped ones).
 */
export async function driftReport(db: Db, component?: string): Promise<{ drift: boolean; expected: Record<string, string>; nodes: DriftEntry[] }> {
  const latest = await db.query<{ id: string; component: string; version: string }>(
    `SELECT DISTINCT ON (component) id, component, version FROM rollouts
      WHERE status = 'completed' AND ($1::text IS NULL OR component = $1)
      ORDER BY component, finished_at DESC`,
    [component ?? null],
  );
  const nodes = await db.query<DriftEntry>(
    `SELECT n.id AS node_id, n.hostname, r.component, r.version AS expected, n.components ->> r.component AS actual, r.id AS rollout_id
       FROM unnest($1::text[], $2::text[], $3::text[]) AS r(id, component, version)
       JOIN rollout_tasks t ON t.rollout_id = r.id
       JOIN nodes n ON n.id = t.node_id
      WHERE (n.components ->> r.component) IS DISTINCT FROM r.version
      ORDER BY r.component, n.hostname`,
    [latest.map((l) => l.id), latest.map((l) => l.component), latest.map((l) => l.version)],
  );
  return { drift: nodes.length > 0, expected: Object.fromEntries(latest.map((l) => [l.component, l.version])), nodes };
}
