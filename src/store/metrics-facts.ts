// Reads behind the operator's scrape-time gauges and event-log counters (src/operator/metrics.ts).
// Each is one small aggregate; a scrape runs them all, so none scans more than its table's
// active rows (events are read by primary-key range from a cursor).
import type { Db } from './db.js';

export async function nodeCounts(db: Db): Promise<{ status: string; region: string; count: number }[]> {
  return db.query('SELECT status, region, count(*)::int AS count FROM nodes GROUP BY status, region');
}

export async function nodeRegions(db: Db): Promise<string[]> {
  return (await db.query<{ region: string }>('SELECT DISTINCT region FROM nodes')).map((r) => r.region);
}

export async function instanceCounts(db: Db): Promise<{ status: string; count: number }[]> {
  return db.query('SELECT status, count(*)::int AS count FROM instances GROUP BY status');
}

export async function rolloutCounts(db: Db): Promise<{ status: string; count: number }[]> {
  return db.query('SELECT status, count(*)::int AS count FROM rollouts GROUP BY status');
}

/** Tasks of rollouts that have not ended, by state. */
export async function activeTaskCounts(db: Db, terminal: readonly string[]): Promise<{ state: string; count: number }[]> {
  return db.query(
    `SELECT t.state, count(*)::int AS count FROM rollout_tasks t JOIN rollouts r ON r.id = t.rollout_id
      WHERE NOT (r.status = ANY($1::text[])) GROUP BY t.state`,
    [[...terminal]],
  );
}

/**
 * In-flight tasks older than the deadline of their state (task-machine.ts: a drain gets
 * drain.timeout + 30 s, an install or a health check health.timeout). The reconciler fails such
 * a task on its next pass, so one that stays past its deadline means the rollout is stuck.
 */
export async function tasksPastDeadline(db: Db): Promise<number> {
  const rows = await db.query<{ count: number }>(
    `SELECT count(*)::int AS count FROM rollout_tasks t JOIN rollouts r ON r.id = t.rollout_id
      WHERE t.state IN ('draining', 'installing', 'verifying')
        AND now() - t.state_since > make_interval(secs => (CASE t.state
              WHEN 'draining' THEN (r.spec #>> '{strategy,drain,timeout}')::float8 + 30000
              ELSE (r.spec #>> '{strategy,health,timeout}')::float8 END) / 1000)`,
  );
  return rows[0]?.count ?? 0;
}

export async function pendingApprovalCounts(db: Db): Promise<{ kind: string; count: number }[]> {
  return db.query(`SELECT kind, count(*)::int AS count FROM approvals WHERE status = 'pending' GROUP BY kind`);
}

/** Drains not finished: how many, and how long the oldest has run (seconds). */
export async function openDrains(db: Db): Promise<{ open: number; oldestSeconds: number }> {
  const rows = await db.query<{ open: number; oldest: number | null }>(
    `SELECT count(*)::int AS open, extract(epoch FROM now() - min(started_at))::float8 AS oldest
       FROM drains WHERE state IN ('running', 'blocked')`,
  );
  return { open: rows[0]?.open ?? 0, oldestSeconds: rows[0]?.oldest ?? 0 };
}

export async function lastEventId(db: Db): Promise<number> {
  const rows = await db.query<{ id: string | null }>('SELECT max(id) AS id FROM events');
  return Number(rows[0]?.id ?? 0);
}

/** An event the metrics count, with what its labels need. */
export interface CountedEvent {
  id: number;
  kind: string;
  /** The component: from the event's data, else its rollout's. */
  component: string | null;
  direction: string | null;
  /** Seconds from its drain's start to this event (drain ends only). */
  drain_seconds: number | null;
}

/** Events of `kinds` with ids in (after, upTo], oldest first. */
export async function countedEventsBetween(db: Db, after: number, upTo: number, kinds: readonly string[]): Promise<CountedEvent[]> {
  const rows = await db.query<CountedEvent & { id: string }>(
    `SELECT e.id, e.kind, coalesce(e.data->>'component', r.component) AS component, e.data->>'direction' AS direction,
            CASE WHEN d.started_at <= e.at THEN extract(epoch FROM e.at - d.started_at)::float8 END AS drain_seconds
       FROM events e
       LEFT JOIN rollouts r ON r.id = e.rollout_id
       LEFT JOIN drains d ON d.node_id = e.node_id AND e.kind IN ('node.drained', 'node.drain_failed')
      WHERE e.id > $1 AND e.id <= $2 AND e.kind = ANY($3::text[])
      ORDER BY e.id`,
    [after, upTo, [...kinds]],
  );
  return rows.map((r) => ({ ...r, id: Number(r.id) }));
}
