import type { Db } from './db.js';

/**
 * Average seconds one node took (node_started → node_completed, forward) in past rollouts of
 * a component, over the most recent 200 nodes; undefined without history. Plans use it for
 * their duration estimate.
 */
export async function averageNodeSeconds(db: Db, component: string): Promise<number | undefined> {
  const rows = await db.query<{ avg: number | null }>(
    `SELECT avg(extract(epoch FROM done_at - started_at))::float8 AS avg
       FROM (
         SELECT max(s.at) AS started_at, max(c.at) AS done_at
           FROM events s
           JOIN rollouts r ON r.id = s.rollout_id AND r.component = $1
           JOIN events c ON c.rollout_id = s.rollout_id AND c.node_id = s.node_id
                        AND c.kind = 'rollout.node_completed' AND c.data ->> 'direction' = 'forward'
          WHERE s.kind = 'rollout.node_started' AND s.data ->> 'direction' = 'forward'
          GROUP BY s.rollout_id, s.node_id
          ORDER BY max(c.at) DESC
          LIMIT 200
       ) AS pairs
      WHERE done_at > started_at`,
    [component],
  );
  const avg = rows[0]?.avg;
  return avg === null || avg === undefined ? undefined : Number(avg);
}
