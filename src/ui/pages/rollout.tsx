// One rollout live: batches as a timeline with each node's phase, progress and ETA, breaker and
// window waits, and the pause / resume / abort / rollback buttons (operator role).
import { HUMAN_ACTION_FROM } from '../../domain/rollout/human-actions.js';
import { can, get, post, query, type Session } from '../api.js';
import { useState } from 'preact/hooks';
import { Action, ago, Badge, duration, Loading, useData, useEvery } from '../kit.js';
import { type DrydockEvent, useLive } from '../live.js';
import { EventList } from './node.js';
import { etaSeconds, type RolloutDetail } from './rollout-types.js';

/** The buttons a status offers: the very transitions the API allows (the domain's table). */
const VERBS = ['pause', 'resume', 'abort', 'rollback'] as const;
const buttonsFor = (status: string) => VERBS.filter((verb) => (HUMAN_ACTION_FROM[verb] as readonly string[]).includes(status));

export function RolloutPage({ id, session }: { id: string; session: Session }) {
  const rollout = useData(() => get<RolloutDetail>(`/api/v1/rollouts/${encodeURIComponent(id)}`), [id]);
  const events = useData(() => get<DrydockEvent[]>(`/api/v1/events${query({ rollout_id: rollout.data?.id ?? id, order: 'desc', limit: 30 })}`), [id, rollout.data?.id]);
  const reload = () => {
    rollout.reload();
    events.reload();
  };
  // Countdowns (ETA, soak and pause ends) tick between events.
  const [, setTick] = useState(0);
  useEvery(1_000, () => setTick((n) => n + 1));
  useLive((e) => e.rollout_id !== null && (e.rollout_id === id || e.rollout_id === rollout.data?.id), reload);
  return (
    <section>
      <Loading loaded={rollout}>
        {() => {
          const r = rollout.data as RolloutDetail;
          const c = r.counters ?? { total: 0, done: 0, failed: 0, in_flight: 0, rolled_back: 0, skipped: 0 };
          const eta = etaSeconds(r, Date.now());
          const pct = c.total ? Math.round((100 * c.done) / c.total) : 0;
          const buttons = can(session, 'operator') ? buttonsFor(r.status) : [];
          return (
            <>
              <h1>
                {r.name} <Badge value={r.status} />
              </h1>
              <p>
                {r.component} → {r.version} · created by {r.created_by} {ago(r.created_at)} · batch {Math.min(r.current_batch + 1, r.batch_count)} of {r.batch_count}
              </p>
              <div class="progress" role="progressbar" aria-valuenow={pct} aria-valuemin={0} aria-valuemax={100} aria-label="nodes done">
                <div style={{ width: `${pct}%` }} />
              </div>
              <p data-testid="rollout-progress">
                {c.done}/{c.total} nodes done, {c.in_flight} in flight, {c.failed} failed, {c.rolled_back} rolled back{eta !== undefined ? ` · ETA ${duration(eta)}` : ''}
              </p>
              <p>
                circuit breaker: {r.status === 'awaiting_decision' ? <Badge value="tripped" /> : 'closed'} (trips after {r.spec.strategy.circuitBreaker.maxConsecutiveFailures} consecutive failures
                {r.spec.strategy.circuitBreaker.maxFailurePercent ? ` or ${r.spec.strategy.circuitBreaker.maxFailurePercent}% failed` : ''})
                {r.spec.strategy.canary ? ` · canary ${r.spec.strategy.canary.nodes} node(s), soak ${duration(Math.round(r.spec.strategy.canary.soak / 1000))}` : ''}
                {r.spec.strategy.pauseBetweenBatches > 0 ? ` · pause between batches ${duration(Math.round(r.spec.strategy.pauseBetweenBatches / 1000))}` : ''}
              </p>
              {r.next_batch_at && (
                <p class="wait" data-testid="next-batch">
                  batch {r.current_batch + 2} waits for the {r.current_batch === 0 && r.spec.strategy.canary ? 'canary soak' : 'pause between batches'}: starts at{' '}
                  {new Date(r.next_batch_at).toLocaleTimeString()} ({ago(r.next_batch_at)})
                </p>
              )}
              {r.next_window_open && <p class="wait">waiting for the maintenance window: opens {new Date(r.next_window_open).toLocaleString()} ({ago(r.next_window_open)})</p>}
              {buttons.length > 0 && (
                <div class="actions" data-testid="rollout-actions">
                  {buttons.map((verb) => (
                    <Action
                      label={verb[0]?.toUpperCase() + verb.slice(1)}
                      danger={verb === 'abort' || verb === 'rollback'}
                      confirm={verb === 'abort' || verb === 'rollback' ? `${verb} ${r.name}?` : undefined}
                      run={() => post(`/api/v1/rollouts/${encodeURIComponent(r.id)}/${verb}`)}
                      done={reload}
                    />
                  ))}
                </div>
              )}
              {r.status === 'awaiting_approval' || r.status === 'awaiting_decision' ? (
                <p>
                  Waiting for a person: see <a href="#/approvals">Approvals</a>.
                </p>
              ) : null}
              <h2>Batches</h2>
              <ol class="timeline">
                {r.batches.map((b) => (
                  <li key={b.index} class={b.index === r.current_batch ? 'current' : ''}>
                    <span class="batch-label">
                      batch {b.index + 1}
                      {b.canary ? ' (canary)' : ''}
                    </span>
                    {b.nodes.map((n) => (
                      <span class={`chip s-${n.state}`} title={n.last_error ?? n.state} data-task={n.hostname} data-state={n.state}>
                        {n.hostname} · {n.state}
                        {n.direction === 'rollback' ? ' ↩' : ''}
                      </span>
                    ))}
                  </li>
                ))}
              </ol>
              {r.spec.approval.required || r.approvals.length > 0 ? (
                <>
                  <h2>Approvals</h2>
                  <ul>
                    {r.approvals.map((a) => (
                      <li>
                        {a.kind} {a.status}
                        {a.decided_by ? ` by ${a.decided_by}` : ''}
                        {a.decision ? ` (${a.decision})` : ''}
                        {a.edits.length ? ` with edits ${a.edits.join(', ')}` : ''}
                        {a.reason ? ` — ${a.reason}` : ''}
                      </li>
                    ))}
                  </ul>
                </>
              ) : null}
            </>
          );
        }}
      </Loading>
      <h2>Events</h2>
      <Loading loaded={events}>{() => <EventList events={events.data ?? []} />}</Loading>
    </section>
  );
}
