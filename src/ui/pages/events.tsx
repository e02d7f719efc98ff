// The event log with filters (kind prefix, rollout, node) and a live tail.
import { useState } from 'preact/hooks';
import { get, query } from '../api.js';
import { Loading, useData } from '../kit.js';
import { type DrydockEvent, useEveryEvent } from '../live.js';
import { EventList } from './node.js';

const SHOWN = 200;

export function EventsPage() {
  const [kind, setKind] = useState('');
  const [rollout, setRollout] = useState('');
  const [node, setNode] = useState('');
  const [tail, setTail] = useState(true);
  const [fresh, setFresh] = useState<DrydockEvent[]>([]);
  const events = useData(async () => {
    setFresh([]);
    return get<DrydockEvent[]>(`/api/v1/events${query({ kind_prefix: kind, rollout_id: rollout, node_id: node, order: 'desc', limit: SHOWN })}`);
  }, [kind, rollout, node]);
  useEveryEvent((e) => {
    if (!tail) return;
    if ((kind && !e.kind.startsWith(kind)) || (rollout && e.rollout_id !== rollout) || (node && e.node_id !== node)) return;
    setFresh((list) => [e, ...list].slice(0, SHOWN));
  });
  const input = (id: string, label: string, value: string, set: (v: string) => void) => (
    <span class="field">
      <label for={id}>{label}</label>
      <input id={id} value={value} onChange={(e) => set((e.target as HTMLInputElement).value.trim())} />
    </span>
  );
  return (
    <section>
      <h1>Events</h1>
      <div class="filters">
        {input('events-kind', 'kind prefix', kind, setKind)}
        {input('events-rollout', 'rollout id', rollout, setRollout)}
        {input('events-node', 'node id', node, setNode)}
        <span class="field">
          <input id="events-tail" type="checkbox" checked={tail} onChange={(e) => setTail((e.target as HTMLInputElement).checked)} />
          <label for="events-tail">live tail</label>
        </span>
      </div>
      <Loading loaded={events}>{() => <EventList events={[...fresh, ...(events.data ?? [])].slice(0, SHOWN)} />}</Loading>
    </section>
  );
}
