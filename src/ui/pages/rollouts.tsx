// Rollouts, newest first, refreshed live by rollout events.
import { get } from '../api.js';
import { Badge, duration, Loading, useData } from '../kit.js';
import { useLive } from '../live.js';
import type { RolloutSummary } from './rollout-types.js';

export function RolloutsPage() {
  const rollouts = useData(() => get<RolloutSummary[]>('/api/v1/rollouts'), []);
  useLive((e) => e.kind.startsWith('rollout.'), rollouts.reload);
  return (
    <section>
      <h1>Rollouts</h1>
      <Loading loaded={rollouts}>
        {() => (
          <table>
            <thead>
              <tr>
                <th>rollout</th>
                <th>target</th>
                <th>status</th>
                <th>batch</th>
                <th>by</th>
                <th>duration</th>
              </tr>
            </thead>
            <tbody>
              {(rollouts.data ?? []).map((r) => (
                <tr key={r.id} data-rollout={r.name}>
                  <td>
                    <a href={`#/rollouts/${encodeURIComponent(r.id)}`}>{r.name}</a>
                  </td>
                  <td>
                    {r.component} {r.version}
                  </td>
                  <td>
                    <Badge value={r.status} />
                  </td>
                  <td>
                    {Math.min(r.current_batch + 1, r.batch_count)}/{r.batch_count}
                  </td>
                  <td>{r.created_by}</td>
                  <td>{duration(r.duration_s)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Loading>
    </section>
  );
}
