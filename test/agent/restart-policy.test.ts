import { describe, expect, it } from 'vitest';
import { type AgentExit, decideAfterExit, STABLE_RUN_MS } from '../../src/agent/supervisor/restart-policy.js';
import { EXIT_REBOOT, EXIT_RESTART } from '../../src/agent/supervisor/switch-record.js';

const exit = (over: Partial<AgentExit> = {}): AgentExit => ({
  version: '2.0.0',
  code: 1,
  signal: null,
  ranMs: 100,
  deadlineExpired: false,
  stillPending: false,
  previous: '1.0.0',
  deadlineMs: 60_000,
  ...over,
});

describe('supervisor restart policy', () => {
  it('restarts a crashed agent with doubling backoff, capped at 30 s, fresh after a stable run', () => {
    let counters = { crashes: 0, pendingExits: 0 };
    const delays: number[] = [];
    for (let i = 0; i < 8; i++) {
      const step = decideAfterExit(exit(), counters);
      if (step.kind !== 'restart') throw new Error('expected a restart');
      delays.push(step.delayMs);
      counters = step.counters;
    }
    expect(delays).toEqual([500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
    expect(decideAfterExit(exit({ ranMs: STABLE_RUN_MS }), counters)).toMatchObject({ kind: 'restart', delayMs: 500 });
  });

  it('starts `current` at once when the agent asks for it', () => {
    expect(decideAfterExit(exit({ code: EXIT_RESTART }), { crashes: 4, pendingExits: 2 })).toMatchObject({ kind: 'restart', delayMs: 0, counters: { crashes: 0, pendingExits: 0 } });
  });

  it('reverts a version being assessed after its third exit in a row', () => {
    const first = decideAfterExit(exit({ stillPending: true }), { crashes: 0, pendingExits: 0 });
    const second = decideAfterExit(exit({ stillPending: true }), first.counters);
    expect([first.kind, second.kind]).toEqual(['restart', 'restart']);
    expect(decideAfterExit(exit({ stillPending: true, code: 3 }), second.counters)).toEqual({
      kind: 'revert',
      counters: { crashes: 0, pendingExits: 0 },
      reason: 'agent 2.0.0 exited 3 times in a row before it was proven (last: exit code 3); back on 1.0.0',
    });
  });

  it('reverts an unproven version killed at its deadline, but never a proven one', () => {
    expect(decideAfterExit(exit({ deadlineExpired: true, stillPending: true, code: null, signal: 'SIGKILL' }), { crashes: 0, pendingExits: 0 })).toMatchObject({
      kind: 'revert',
      reason: 'agent 2.0.0 was not proven healthy within 60 s (no heartbeat acknowledged by the operator); back on 1.0.0',
    });
    // It wrote `proven` just before the kill: a crash like any other.
    expect(decideAfterExit(exit({ deadlineExpired: true, stillPending: false, code: null, signal: 'SIGKILL' }), { crashes: 0, pendingExits: 0 }).kind).toBe('restart');
  });

  it('a simulated reboot (EXIT_REBOOT) starts the agent again at once, and is neither a crash nor an exit of a version being assessed', () => {
    const step = decideAfterExit(exit({ code: EXIT_REBOOT, stillPending: true }), { crashes: 4, pendingExits: 2 });
    expect(step).toMatchObject({ kind: 'restart', delayMs: 0, counters: { crashes: 0, pendingExits: 2 } });
  });
});
