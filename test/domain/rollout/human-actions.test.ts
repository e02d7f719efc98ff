import { describe, expect, it } from 'vitest';
import { HUMAN_ACTION_FROM, humanTransition } from '../../../src/domain/rollout/human-actions.js';
import { ROLLOUT_STATUSES, TERMINAL_ROLLOUT_STATUSES } from '../../../src/domain/rollout/model.js';

describe('humanTransition', () => {
  it('moves a rollout only from the statuses each action allows, and names them otherwise', () => {
    for (const [action, allowed] of Object.entries(HUMAN_ACTION_FROM) as [keyof typeof HUMAN_ACTION_FROM, readonly string[]][]) {
      for (const status of ROLLOUT_STATUSES) {
        const t = humanTransition(action, status, 'continue');
        expect(t.ok).toBe(allowed.includes(status));
        if (!t.ok) expect(t.allowed).toEqual(allowed);
      }
    }
  });

  it('ends an unapproved rollout at once on abort, and lets a running one finish its nodes first', () => {
    expect(humanTransition('abort', 'awaiting_approval')).toMatchObject({ ok: true, to: 'aborted', event: 'rollout.aborted' });
    expect(humanTransition('abort', 'running')).toMatchObject({ ok: true, to: 'aborting', event: 'rollout.abort_requested' });
  });

  it('maps the breaker decisions, and only continue restarts the failure count', () => {
    expect(humanTransition('decide', 'awaiting_decision', 'continue')).toEqual({ ok: true, to: 'running', event: 'rollout.resumed', resetBreaker: true });
    expect(humanTransition('decide', 'awaiting_decision', 'rollback_completed_batches')).toEqual({ ok: true, to: 'rolling_back', event: 'rollout.rolling_back', resetBreaker: false });
    expect(humanTransition('decide', 'awaiting_decision', 'abort')).toEqual({ ok: true, to: 'aborting', event: 'rollout.abort_requested', resetBreaker: false });
  });

  it('never leaves a terminal status except by rolling back completed or aborted work', () => {
    for (const status of TERMINAL_ROLLOUT_STATUSES) {
      for (const action of Object.keys(HUMAN_ACTION_FROM) as (keyof typeof HUMAN_ACTION_FROM)[]) {
        const t = humanTransition(action, status, 'continue');
        expect(t.ok).toBe(action === 'rollback' && (status === 'completed' || status === 'aborted'));
      }
    }
  });
});
