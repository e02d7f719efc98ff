// Fleet: regions × nodes with status, cordon/drain, versions, instances and last heartbeat.
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { EVENT } from '../../domain/events.js';
import { ApiFailure, get } from '../api.js';
import { ago, Badge, Loading, useData, useEvery } from '../kit.js';
import { useLive } from '../live.js';
import { type FleetSummary, type NodeView, versionsOf } from './fleet-types.js';

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

/** Nodes shown before the rest of the list has arrived: more than a screenful. */
export const FIRST_PAGE = 100;

interface FleetNodes {
  /** The nodes loaded so far, in the list's order (region, hostname). */
  data: NodeView[] | undefined;
  /** Every node is in `data` (not only the first page). */
  complete: boolean;
  error: string | undefined;
  reload: () => void;
}

/**
 * The node list for the fleet page. The first load asks for the first page (GET /api/v1/nodes?limit=)
 * and the rest (?offset=) together and shows the first page as soon as it arrives, so a fleet of thousands shows its first screen without
 * waiting for the whole list; a reload (every 5 s, on events) reads the whole list in one answer,
 * so the rows never shrink back to a page.
 */
function useFleetNodes(): FleetNodes {
  const [state, setState] = useState<Omit<FleetNodes, 'reload'>>({ data: undefined, complete: false, error: undefined });
  const shown = useRef(false);
  const latest = useRef(0);
  const reload = useCallback(() => {
    const run = ++latest.current;
    const current = () => run === latest.current;
    const failed = (e: unknown) => current() && setState((s) => ({ ...s, error: e instanceof ApiFailure ? `${e.code}: ${e.message}` : String(e) }));
    if (shown.current) {
      get<NodeView[]>('/api/v1/nodes').then((all) => current() && setState({ data: all, complete: true, error: undefined }), failed);
      return;
    }
    // Both asked for at once: the rest does not wait for a round trip of the first page.
    const firstPage = get<NodeView[]>(`/api/v1/nodes?limit=${FIRST_PAGE}`);
    const restPage = get<NodeView[]>(`/api/v1/nodes?offset=${FIRST_PAGE}`);
    restPage.catch(() => undefined);
    void (async () => {
      const first = await firstPage;
      if (!current()) return;
      shown.current = true;
      setState({ data: first, complete: first.length < FIRST_PAGE, error: undefined });
      if (first.length < FIRST_PAGE) return;
      const rest = await restPage;
      if (!current()) return;
      // A node registered in between could shift the pages: one entry per id.
      const seen = new Set(first.map((n) => n.id));
      setState({ data: [...first, ...rest.filter((n) => !seen.has(n.id))], complete: true, error: undefined });
    })().catch(failed);
  }, []);
  useEffect(reload, [reload]);
  return { ...state, reload };
}

export function FleetPage() {
  // The counts and the filters' choices come from the summary (a few hundred bytes), the rows from the list.
  const summary = useData(() => get<FleetSummary>('/api/v1/fleet/summary'), []);
  const nodes = useFleetNodes();
  const reload = () => {
    summary.reload();
    nodes.reload();
  };
  useLive((e) => e.kind.startsWith('node.') || e.kind.startsWith('instance.') || ROLLOUT_NODE.has(e.kind), reload);
  // Heartbeats are not events: ages and statuses are read again every 5 s.
  useEvery(5_000, reload);
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
    for (const n of shown) {
      const list = map.get(n.region);
      if (list) list.push(n);
      else map.set(n.region, [n]);
    }
    return [...map.entries()].sort(([a], [b]) => a.localeCompare(b));
  }, [shown]);
  const regionTotal = new Map((summary.data?.regions ?? []).map((r) => [r.region, r.nodes]));
  const filtered = region !== '' || role !== '' || version !== '';
  const now = Date.now();
  return (
    <section>
      <h1>Fleet</h1>
      <Loading loaded={nodes.error ? nodes : summary}>
        {() => {
          const f = summary.data as FleetSummary;
          return (
          <>
            <p class="summary" data-testid="fleet-summary">
              {f.nodes} nodes: {f.ready} ready, {f.down} down, {f.cordoned} cordoned, {f.draining} draining; {f.instances} instances
            </p>
            <div class="filters">
              <Select label="Region" value={region} options={f.regions.map((r) => r.region)} set={setRegion} />
              <Select label="Role" value={role} options={f.roles} set={setRole} />
              <Select label="Version" value={version} options={f.versions} set={setVersion} />
            </div>
            {nodes.data === undefined && <p class="muted">Loading…</p>}
            {nodes.data !== undefined && !nodes.complete && (
              <p class="muted" role="status">
                showing the first {all.length} of {f.nodes} nodes; loading the rest…
              </p>
            )}
            {byRegion.map(([name, list]) => (
              <div class="region" key={name}>
                <h2>
                  {name} <span class="muted">({nodes.complete || filtered ? list.length : (regionTotal.get(name) ?? list.length)})</span>
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
          );
        }}
      </Loading>
    </section>
  );
}
