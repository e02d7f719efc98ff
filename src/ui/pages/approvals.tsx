// The approvals inbox: each pending plan with its batches and preflight, approve (optionally with
// edits the operator re-plans before the approval counts), reject with a reason, and the
// continuation decision after a circuit breaker trip. The distinct-approver rule is shown and the
// approve button is withheld from the rollout's creator; the server refuses it anyway.
import { useState } from 'preact/hooks';
import { can, get, post, type Session } from '../api.js';
import { Action, ago, Badge, duration, Loading, useData } from '../kit.js';
import { useLive } from '../live.js';
import type { RolloutDetail } from './rollout-types.js';

interface Approval {
  id: string;
  rollout_id: string;
  kind: 'plan' | 'continuation' | 'gate';
  status: string;
  options: string[];
  reason: string | null;
  requested_by: string;
  created_at: string;
}

export function ApprovalsPage({ session }: { session: Session }) {
  const pending = useData(async () => {
    const approvals = await get<Approval[]>('/api/v1/approvals?status=pending');
    const rollouts = await Promise.all(approvals.map((a) => get<RolloutDetail>(`/api/v1/rollouts/${encodeURIComponent(a.rollout_id)}`)));
    return approvals.map((approval, i) => ({ approval, rollout: rollouts[i] as RolloutDetail }));
  }, []);
  useLive((e) => e.kind.startsWith('rollout.'), pending.reload);
  return (
    <section>
      <h1>Approvals</h1>
      <Loading loaded={pending}>
        {() =>
          pending.data?.length ? (
            <>{pending.data.map(({ approval, rollout }) => <ApprovalCard key={approval.id} approval={approval} rollout={rollout} session={session} done={pending.reload} />)}</>
          ) : (
            <p class="muted" data-testid="inbox-empty">
              Nothing waits for a decision.
            </p>
          )
        }
      </Loading>
    </section>
  );
}

function ApprovalCard({ approval, rollout, session, done }: { approval: Approval; rollout: RolloutDetail; session: Session; done: () => void }) {
  const path = (verb: string) => `/api/v1/rollouts/${encodeURIComponent(rollout.id)}/${verb}`;
  const mayApprove = can(session, 'approver');
  const sameAsCreator = rollout.spec.approval.distinctApprover && rollout.created_by === session.name;
  return (
    <article class="card" data-approval={rollout.name} aria-labelledby={`approval-${approval.id}`}>
      <h2 id={`approval-${approval.id}`}>
        <a href={`#/rollouts/${encodeURIComponent(rollout.id)}`}>{rollout.name}</a> <Badge value={approval.kind} /> {rollout.component} → {rollout.version}
      </h2>
      <p>
        requested by {approval.requested_by} {ago(approval.created_at)}
        {approval.reason ? ` — ${approval.reason}` : ''}
      </p>
      {rollout.spec.approval.distinctApprover && (
        <p class="rule" data-testid="distinct-approver">
          Needs an approver other than its creator ({rollout.created_by}).
        </p>
      )}
      {approval.kind === 'plan' && <PlanSummary rollout={rollout} />}
      {mayApprove && approval.kind === 'continuation' && (
        <div class="actions">
          <Action label="Continue anyway" run={() => post(path('decide'), { decision: 'continue_anyway' })} done={done} />
          <Action label="Roll back completed batches" danger run={() => post(path('decide'), { decision: 'rollback_completed_batches' })} done={done} />
          <Action label="Abort" danger run={() => post(path('decide'), { decision: 'abort' })} done={done} />
        </div>
      )}
      {mayApprove && approval.kind !== 'continuation' && (sameAsCreator ? <p class="muted">You created this rollout: another approver must approve it.</p> : <ApproveForm rollout={rollout} path={path} gate={approval.kind === 'gate'} done={done} />)}
    </article>
  );
}

function PlanSummary({ rollout }: { rollout: RolloutDetail }) {
  const checks = rollout.preflight?.checks ?? [];
  const s = rollout.spec.strategy;
  return (
    <>
      <p>
        {rollout.batches.length} batches ({s.batch.size !== undefined ? `${s.batch.size} node(s)` : `${s.batch.percent}%`} each{s.canary ? `, canary ${s.canary.nodes}` : ''}), breaker after{' '}
        {s.circuitBreaker.maxConsecutiveFailures} consecutive failures; drain mode {rollout.plan.drain_mode}; about {duration(rollout.plan.estimated_duration_s)}
      </p>
      <ol class="timeline compact">
        {rollout.batches.map((b) => (
          <li>
            <span class="batch-label">batch {b.index + 1}{b.canary ? ' (canary)' : ''}</span>
            {b.nodes.map((n) => (
              <span class="chip">{n.hostname}</span>
            ))}
          </li>
        ))}
      </ol>
      {rollout.plan.moves.length > 0 && (
        <details>
          <summary>{rollout.plan.moves.length} instance move(s)</summary>
          <ul>
            {rollout.plan.moves.map((m) => (
              <li>
                batch {m.batch + 1}: {m.deployment} {m.instance_id.slice(0, 8)} {m.from_hostname} → {m.to_hostname ?? 'nowhere (no room)'}
              </li>
            ))}
          </ul>
        </details>
      )}
      {checks.length > 0 && (
        <details>
          <summary>
            preflight: {checks.filter((c) => c.status === 'pass').length}/{checks.length} checks pass
            {checks.some((c) => c.status === 'fail') ? ', some FAIL' : ''}
          </summary>
          <ul>
            {checks.map((c) => (
              <li>
                <Badge value={c.status} /> {c.id}: {c.message}
              </li>
            ))}
          </ul>
        </details>
      )}
    </>
  );
}

/** Approve as planned, or with edits (`path=value`, the same as `drydock rollout approve --set`). */
function ApproveForm({ rollout, path, gate, done }: { rollout: RolloutDetail; path: (verb: string) => string; gate: boolean; done: () => void }) {
  const [batchSize, setBatchSize] = useState('');
  const [batchPercent, setBatchPercent] = useState('');
  const [maxFailures, setMaxFailures] = useState('');
  const [canary, setCanary] = useState('');
  const [reason, setReason] = useState('');
  const edits = [
    batchSize && `strategy.batch.size=${batchSize}`,
    batchPercent && `strategy.batch.percent=${batchPercent}`,
    maxFailures && `strategy.circuitBreaker.maxConsecutiveFailures=${maxFailures}`,
    canary && `strategy.canary.nodes=${canary}`,
  ].filter((e): e is string => Boolean(e));
  const field = (id: string, label: string, value: string, set: (v: string) => void) => (
    <span class="field">
      <label for={`${rollout.id}-${id}`}>{label}</label>
      <input id={`${rollout.id}-${id}`} name={id} type="number" min="1" inputMode="numeric" value={value} onInput={(e) => set((e.target as HTMLInputElement).value)} />
    </span>
  );
  return (
    <div class="approve">
      {!gate && (
        <fieldset>
          <legend>Edits (re-planned before the approval counts; leave empty to approve as planned)</legend>
          {field('batch-size', 'batch size', batchSize, setBatchSize)}
          {field('batch-percent', 'batch %', batchPercent, setBatchPercent)}
          {field('max-failures', 'max consecutive failures', maxFailures, setMaxFailures)}
          {field('canary', 'canary nodes', canary, setCanary)}
        </fieldset>
      )}
      <div class="actions">
        <Action label={edits.length ? `Approve with ${edits.length} edit(s)` : 'Approve'} run={() => post(path('approve'), edits.length ? { set: edits } : {})} done={done} />
        <span class="field">
          <label for={`${rollout.id}-reason`}>reason</label>
          <input id={`${rollout.id}-reason`} name="reason" value={reason} onInput={(e) => setReason((e.target as HTMLInputElement).value)} />
        </span>
        <Action label="Reject" danger run={() => post(path('reject'), { reason: reason || 'rejected in the dashboard' })} done={done} />
      </div>
    </div>
  );
}
