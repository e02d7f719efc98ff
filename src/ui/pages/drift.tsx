// Drift: nodes not on the version the last completed rollout of each component set.
import { EVENT } from '../../domain/events.js';
import { get } from '../api.js';
import { Loading, Table, useData } from '../kit.js';
import { useLive } from '../live.js';

interface DriftReport {
  drift: boolean;
  expected: Record<string, string>;
  nodes: { node_id: string; hostname: string; component: string; expected: string; actual: string | null; rollout_id: string }[];
}

/** What can change the drift report: a rollout's end, and a node's installs. */
const DRIFT_CHANGES = new Set<string>([EVENT.rollout.completed, EVENT.node.install_completed, EVENT.node.install_failed, EVENT.node.reverted]);

export function DriftPage() {
  const drift = useData(() => get<DriftReport>('/api/v1/drift'), []);
  useLive((e) => DRIFT_CHANGES.has(e.kind), drift.reload);
  return (
    <section>
      <h1>Drift</h1>
      <Loading loaded={drift}>
        {() => {
          const d = drift.data as DriftReport;
          return (
            <>
              <p data-testid="drift-summary">
                {d.drift ? `${d.nodes.length} node(s) drifted` : 'No drift'}; expected {Object.entries(d.expected).map(([c, v]) => `${c} ${v}`).join(', ') || 'nothing yet (no completed rollout)'}
              </p>
              <Table
                rows={d.nodes}
                empty="Every node runs what its last rollout set."
                columns={[
                  ['node', (n) => <a href={`#/nodes/${encodeURIComponent(n.node_id)}`}>{n.hostname}</a>],
                  ['component', (n) => n.component],
                  ['expected', (n) => n.expected],
                  ['actual', (n) => n.actual ?? '—'],
                  ['rollout', (n) => <a href={`#/rollouts/${encodeURIComponent(n.rollout_id)}`}>{n.rollout_id}</a>],
                ]}
              />
            </>
          );
        }}
      </Loading>
    </section>
  );
}
