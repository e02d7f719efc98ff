import type { RolloutStatus } from './model.js';
import { EVENT, type EventKind } from '../events.js';

/** What people can ask of a rollout (API and CLI), and the decisions the breaker offers. */
export type HumanAction = 'approve' | 'reject' | 'pause' | 'resume' | 'abort' | 'rollback' | 'decide';
export type BreakerDecision = 'continue' | 'rollback' | 'abort' | 'continue_anyway' | 'rollback_completed_batches';

export const HUMAN_ACTION_FROM: Readonly<Record<HumanAction, readonly RolloutStatus[]>> = {
  approve: ['awaiting_approval'],
  reject: ['awaiting_approval'],
  pause: ['running', 'waiting_for_window'],
  resume: ['paused'],
  abort: ['awaiting_approval', 'running', 'paused', 'waiting_for_window', 'awaiting_decision'],
  // A finished rollout can still be rolled back: it returns its completed nodes.
  rollback: ['running', 'paused', 'waiting_for_window', 'awaiting_decision', 'completed', 'aborted'],
  decide: ['awaiting_decision'],
};

export type Transition =
  | { ok: true; to: RolloutStatus; event: EventKind; resetBreaker: boolean }
  | { ok: false; allowed: readonly RolloutStatus[] };

/**
 * The status a human action moves a rollout to, and the event that records it; refused (with
 * the statuses it needs) from any other status. The reconciler does the rest from there.
 */
export function humanTransition(action: HumanAction, from: RolloutStatus, decision?: BreakerDecision): Transition {
  const allowed = HUMAN_ACTION_FROM[action];
  if (!allowed.includes(from)) return { ok: false, allowed };
  const to = (status: RolloutStatus, event: EventKind, resetBreaker = false): Transition => ({ ok: true, to: status, event, resetBreaker });
  switch (action) {
    case 'approve':
      return to('running', EVENT.rollout.approved);
    case 'reject':
      return to('rejected', EVENT.rollout.rejected);
    case 'pause':
      return to('paused', EVENT.rollout.paused);
    case 'resume':
      return to('running', EVENT.rollout.resumed);
    case 'abort':
      // Nothing has started yet: aborting an unapproved rollout ends it at once.
      return from === 'awaiting_approval' ? to('aborted', EVENT.rollout.aborted) : to('aborting', EVENT.rollout.abort_requested);
    case 'rollback':
      return to('rolling_back', EVENT.rollout.rolling_back);
    case 'decide':
      if (decision === 'continue' || decision === 'continue_anyway') return to('running', EVENT.rollout.resumed, true); // the consecutive-failure count restarts
      if (decision === 'rollback' || decision === 'rollback_completed_batches') return to('rolling_back', EVENT.rollout.rolling_back);
      return to('aborting', EVENT.rollout.abort_requested);
  }
}
