import { describe, expect, it } from 'vitest';
import { type LocalPhase, planConvergence } from '../../src/domain/agent-converge.js';
import type { DesiredInstance } from '../../src/domain/protocol.js';

const want = (id: string, overrides: Partial<DesiredInstance> = {}): DesiredInstance =>
  ({ id, deployment_id: 'd', deployment: 'web', desired: 'running', workload: { command: 'x' }, ...overrides }) as DesiredInstance;

describe('planConvergence', () => {
  it('starts what is wanted and not hosted, stops what is hosted and not wanted', () => {
    const local = new Map<string, LocalPhase>([
      ['a', 'running'],
      ['b', 'running'],
      ['c', 'stopped'],
    ]);
    expect(planConvergence([want('a'), want('b', { desired: 'stopped' }), want('c'), want('d')], local)).toEqual({
      start: [want('c'), want('d')],
      stop: ['b'],
      resume: [],
    });
  });

  it('resumes a handed-over guest only once it is wanted here and no longer told to move; never starts it again', () => {
    const local = new Map<string, LocalPhase>([['v', 'migrated']]);
    const handedOver = new Map([['v', 'm1']]);
    // Still moving (switching): held paused.
    expect(planConvergence([want('v', { migration: { id: 'm1', role: 'source', address: 'tcp:x:1' } })], local, handedOver)).toEqual({ start: [], stop: [], resume: [] });
    // The move failed (its target died): resume it.
    expect(planConvergence([want('v')], local, handedOver).resume).toEqual(['v']);
    // Withdrawn (the target took over): stop it.
    expect(planConvergence([want('v', { desired: 'stopped' })], local, handedOver)).toEqual({ start: [], stop: ['v'], resume: [] });
    expect(planConvergence([], local, handedOver).stop).toEqual(['v']);
    // A migrated instance without a record of its move (its QEMU quit long ago) is not resumed.
    expect(planConvergence([want('v')], local).resume).toEqual([]);
  });
});
