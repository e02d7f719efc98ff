// One node: state, components, A/B boot slots (when its agent reports them), installs, instances, recent events,
// and the cordon / drain / enable buttons for operators.
import { get, post, query, type Session, can } from '../api.js';
import { Action, ago, Badge, Loading, useData } from '../kit.js';
import { type DrydockEvent, useLive } from '../live.js';
import type { NodeView } from './fleet-types.js';

interface InstanceView {
  id: string;
  deployment_id?: string;
  deployment?: string;
  status: string;
  healthy?: boolean | null;
  endpoint?: string | null;
}

export function NodePage({ id, session }: { id: string; session: Session }) {
  const node = useData(() => get<NodeView>(`/api/v1/nodes/${encodeURIComponent(id)}`), [id]);
  const instances = useData(() => get<InstanceView[]>(`/api/v1/nodes/${encodeURIComponent(id)}/instances`), [id]);
  const events = useData(() => get<DrydockEvent[]>(`/api/v1/events${query({ node_id: id, order: 'desc', limit: 20 })}`), [id]);
  const reload = () => {
    node.reload();
    instances.reload();
    events.reload();
  };
  useLive((e) => e.node_id === id, reload);
  const act = (verb: string, body?: unknown) => () => post(`/api/v1/nodes/${encodeURIComponent(id)}/${verb}`, body);
  return (
    <section>
      <Loading loaded={node}>
        {() => {
          const n = node.data as NodeView;
          return (
            <>
              <h1>
                {n.hostname} <Badge value={n.status} /> {n.cordoned && <Badge value="cordoned" />} {n.drain && <Badge value={`drain ${n.drain.state}`} />}
              </h1>
              <p>
                region {n.region} · role {n.role} · agent {n.agent_version ?? '—'} · instances {n.active_instances}/{n.max_instances} · last heartbeat{' '}
                {ago(n.last_heartbeat_at)}
              </p>
              {n.drain && n.drain.message && <p class="muted">drain: {n.drain.message}</p>}
              {can(session, 'operator') && (
                <div class="actions" data-testid="node-actions">
                  {!n.cordoned && <Action label="Cordon" run={act('cordon')} done={reload} />}
                  {!n.draining && <Action label="Drain" run={act('drain', {})} done={reload} confirm={`Drain ${n.hostname}? Its instances move to other nodes.`} />}
                  {(n.cordoned || n.draining) && <Action label="Enable" run={act('enable')} done={reload} />}
                </div>
              )}
              <h2>Components</h2>
              <table>
                <tbody>
                  {Object.entries(n.components).map(([c, v]) => (
                    <tr>
                      <th scope="row">{c}</th>
                      <td>{v}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
              {n.slots && <BootSlots slots={n.slots} />}
              <h2>Installs</h2>
              <table>
                <thead>
                  <tr>
                    <th>component</th>
                    <th>version</th>
                    <th>phase</th>
                    <th>reason</th>
                    <th>reported</th>
                  </tr>
                </thead>
                <tbody>
                  {n.installs.map((i) => (
                    <tr>
                      <td>{i.component}</td>
                      <td>{i.version}</td>
                      <td>
                        <Badge value={i.phase} />
                      </td>
                      <td>{i.reason ?? ''}</td>
                      <td>{ago(i.received_at)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </>
          );
        }}
      </Loading>
      <h2>Instances</h2>
      <Loading loaded={instances}>
        {() => (
          <table>
            <thead>
              <tr>
                <th>instance</th>
                <th>deployment</th>
                <th>status</th>
                <th>healthy</th>
              </tr>
            </thead>
            <tbody>
              {(instances.data ?? []).map((i) => (
                <tr>
                  <td>{i.id}</td>
                  <td>{i.deployment ?? i.deployment_id ?? ''}</td>
                  <td>
                    <Badge value={i.status} />
                  </td>
                  <td>{i.healthy === undefined || i.healthy === null ? '—' : i.healthy ? 'yes' : 'no'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Loading>
      <h2>Recent events</h2>
      <Loading loaded={events}>{() => <EventList events={events.data ?? []} />}</Loading>
    </section>
  );
}

export function EventList({ events }: { events: DrydockEvent[] }) {
  return (
    <table class="events">
      <thead>
        <tr>
          <th>#</th>
          <th>when</th>
          <th>kind</th>
          <th>actor</th>
          <th>data</th>
        </tr>
      </thead>
      <tbody>
        {events.map((e) => (
          <tr key={e.id}>
            <td>{e.id}</td>
            <td title={e.at}>{ago(e.at)}</td>
            <td>{e.kind}</td>
            <td>{e.actor}</td>
            <td class="data">{JSON.stringify(e.data)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** The os-image's A/B slots: which one booted, which one the next boot uses, and its tries left. */
function BootSlots({ slots }: { slots: NonNullable<NodeView['slots']> }) {
  const marks = (name: 'a' | 'b') =>
    [slots.active === name ? 'active' : '', slots.next === name && slots.next !== slots.active ? `next boot${slots.tries_left > 0 ? ` (${slots.tries_left} tries left)` : ''}` : '']
      .filter(Boolean)
      .join(', ');
  return (
    <>
      <h2>A/B boot slots</h2>
      <table data-testid="boot-slots">
        <thead>
          <tr>
            <th>slot</th>
            <th>image version</th>
            <th>state</th>
          </tr>
        </thead>
        <tbody>
          {(['a', 'b'] as const).map((name) => (
            <tr data-slot={name}>
              <td>{name}</td>
              <td>{slots[name].version ?? '(original image)'}</td>
              <td>{marks(name)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
