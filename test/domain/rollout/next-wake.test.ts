import { describe, expect, it } from 'vitest';
import { untilHealthyLongEnough } from '../../../src/domain/rollout/next-wake.js';
import { at, rollout, spec, task } from './fixtures.js';

describe('untilHealthyLongEnough', () => {
  const r = rollout(spec({ health: { minHealthyTime: '30s' } }));

  it('is the time left until the earliest verifying task has been healthy for minHealthyTime', () => {
    const tasks = [
      task('n1', { state: 'verifying', healthySince: at(0) }),
      task('n2', { state: 'verifying', healthySince: at(10_000) }),
      task('n3', { state: 'installing' }),
    ];
    expect(untilHealthyLongEnough(r, tasks, at(20_000))).toBe(10_000);
    // Overdue: at once (never negative).
    expect(untilHealthyLongEnough(r, tasks, at(45_000))).toBe(0);
  });

  it('is undefined while no task waits on that clock (not verifying, or not healthy yet)', () => {
    expect(untilHealthyLongEnough(r, [task('n1', { state: 'verifying', healthySince: null }), task('n2', { state: 'done' })], at(0))).toBeUndefined();
  });
});
