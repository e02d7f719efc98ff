// Fleet: regions × nodes with status, cordon/drain, versions, instances and last heartbeat.
import { useMemo, useState } from 'preact/hooks';
import { EVENT } from '../../domain/events.js';
import { get } from '../api.js';
import { ago, Badge, Loading, useData, useEvery } from '../kit.js';
import { useLive } from '../live.js';
import { type NodeView, versionsOf } from './fleet-types.js';

function Select({ label, value, options, set }: { label: string; value: string; options: string[]; set: (v: string) => void }) {
  const id = `filter-${label.toLowerCase()}`;
  return (
    <span class="filter">
      <label for={id}>{label}</label>
      <select id={id} value={value} onChange={(e) => set((e.target as HTMLSelectElement).value)}>
        <option value="">all</option>
        {options.map((o) => (
          <option value={o}>{o}</option>
        ))}
      </select>
    </span>
  );
}

/** A rollout's per-node events change a node's phase and versions. */
const ROLLOUT_NODE = new Set<string>([EVENT.rollout.node_started, EVENT.rollout.node_completed, EVENT.rollout.node_failed]);

const distinct = (values: string[]) => [...new Set(values)].sort();

export function FleetPage() {
  const nodes = useData(() => get<NodeView[]>('/api/v1/nodes'), []);
  useLive((e) => e.kind.startsWith('node.') || e.kind.startsWith('instance.') || ROLLOUT_NODE.has(e.kind), nodes.reload);
  // Heartbeats are not events: ages and statuses are read again every 5 s.
  useEvery(5_000, nodes.reload);
  const [region, setRegion] = useState('');
  const [role, setRole] = useState('');
  const [version, setVersion] = useState('');
  const all = nodes.data ?? [];
  const shown = useMemo(
    () => all.filter((n) => (!region || n.region === region) && (!role || n.role === role) && (!version || versionsOf(n).includes(version))),
    [all, region, role, version],
  );
  const byRegion = useMemo(() => {
    const map = new Map<string, NodeView[]>();
    for (const n of shown) map.set(n.region, [...(map.get(n.region) ?? []), n]);
    return [...map.entries()].sort(([a], [b]) => a.localeCompare(b));
  }, [shown]);
  const now = Date.now();
  return (
    <section>
      <h1>Fleet</h1>
      <Loading loaded={nodes}>
        {() => (
          <>
            <p class="summary" data-testid="fleet-summary">
              {all.length} nodes: {all.filter((n) => n.status === 'ready').length} ready, {all.filter((n) => n.status === 'down').length} down,{' '}
              {all.filter((n) => n.cordoned).length} cordoned, {all.filter((n) => n.draining).length} draining; {all.reduce((s, n) => s + n.active_instances, 0)} instances
            </p>
            <div class="filters">
              <Select label="Region" value={region} options={distinct(all.map((n) => n.region))} set={setRegion} />
              <Select label="Role" value={role} options={distinct(all.map((n) => n.role))} set={setRole} />
              <Select label="Version" value={version} options={distinct(all.flatMap(versionsOf))} set={setVersion} />
            </div>
            {byRegion.map(([name, list]) => (
              <div class="region" key={name}>
                <h2>
                  {name} <span class="muted">({list.length})</span>
                </h2>
                <table>
                  <thead>
                    <tr>
                      <th>node</th>
                      <th>role</th>
                      <th>status</th>
                      <th>drain</th>
                      <th>versions</th>
                      <th>instances</th>
                      <th>last heartbeat</th>
                    </tr>
                  </thead>
                  <tbody>
                    {list.map((n) => (
                      <tr key={n.id} data-node={n.hostname}>
                        <td>
                          <a href={`#/nodes/${encodeURIComponent(n.id)}`}>{n.hostname}</a>
                        </td>
                        <td>{n.role}</td>
                        <td>
                          <Badge value={n.status} />
                        </td>
                        <td>{n.drain ? <Badge value={`drain ${n.drain.state}`} /> : n.cordoned ? <Badge value="cordoned" /> : ''}</td>
                        <td class="versions">{versionsOf(n).join(' ')}</td>
                        <td>
                          {n.active_instances}/{n.max_instances}
                        </td>
                        <td>{ago(n.last_heartbeat_at, now)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            ))}
          </>
        )}
      </Loading>
    </section>
  );
}
