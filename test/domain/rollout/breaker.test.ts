import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { assessBreaker, type FinishedTask } from '../../../src/domain/rollout/breaker.js';
import { at } from './fixtures.js';

/** Finished tasks in order, one second apart: 'd' done, 'f' failed. */
function history(pattern: string, startMs = 0): FinishedTask[] {
  return [...pattern].map((c, i) => ({ nodeId: `n${i}`, outcome: c === 'f' ? 'failed' : 'done', finishedAt: at(startMs + i * 1000) }));
}

describe('assessBreaker', () => {
  it('stays closed with no failures or too short a streak', () => {
    expect(assessBreaker([], 10, { maxConsecutiveFailures: 2 }, null)).toEqual({ tripped: false, reason: '', failedNodes: [] });
    expect(assessBreaker(history('dddd'), 10, { maxConsecutiveFailures: 2 }, null).tripped).toBe(false);
    expect(assessBreaker(history('dfdfdf'), 10, { maxConsecutiveFailures: 2 }, null).tripped).toBe(false);
  });

  it('trips on maxConsecutiveFailures failures in a row at the end, naming them', () => {
    const verdict = assessBreaker(history('ddff'), 10, { maxConsecutiveFailures: 2 }, null);
    expect(verdict).toEqual({ tripped: true, reason: '2 consecutive node failures (maxConsecutiveFailures 2)', failedNodes: ['n2', 'n3'] });
    expect(assessBreaker(history('f'), 10, { maxConsecutiveFailures: 1 }, null).failedNodes).toEqual(['n0']);
  });

  it('a success ends the streak', () => {
    expect(assessBreaker(history('ffd'), 10, { maxConsecutiveFailures: 2 }, null).tripped).toBe(false);
    expect(assessBreaker(history('fdf'), 10, { maxConsecutiveFailures: 2 }, null).tripped).toBe(false);
  });

  it('orders by finish time, not by the order given, and breaks ties by node id', () => {
    const tasks = history('ffd').reverse();
    expect(assessBreaker(tasks, 10, { maxConsecutiveFailures: 2 }, null).tripped).toBe(false);
    const sameInstant: FinishedTask[] = [
      { nodeId: 'b', outcome: 'failed', finishedAt: at(0) },
      { nodeId: 'a', outcome: 'done', finishedAt: at(0) },
      { nodeId: 'c', outcome: 'failed', finishedAt: at(0) },
    ];
    expect(assessBreaker(sameInstant, 10, { maxConsecutiveFailures: 2 }, null).failedNodes).toEqual(['b', 'c']);
  });

  it('counts only failures after the last reset (a human said continue)', () => {
    const tasks = history('ff');
    expect(assessBreaker(tasks, 10, { maxConsecutiveFailures: 2 }, at(1000)).tripped).toBe(false);
    expect(assessBreaker([...tasks, ...history('f', 5000).map((t) => ({ ...t, nodeId: 'late' }))], 10, { maxConsecutiveFailures: 2 }, at(1000)).tripped).toBe(false);
    const more = [...tasks, { nodeId: 'x', outcome: 'failed' as const, finishedAt: at(5000) }, { nodeId: 'y', outcome: 'failed' as const, finishedAt: at(6000) }];
    expect(assessBreaker(more, 10, { maxConsecutiveFailures: 2 }, at(1000)).failedNodes).toEqual(['x', 'y']);
    // A task that finished exactly at the reset was seen by the human: it does not count.
    expect(assessBreaker(history('ff'), 10, { maxConsecutiveFailures: 1 }, at(1000)).tripped).toBe(false);
  });

  it('trips when failures exceed maxFailurePercent of all targets, not at it', () => {
    const limits = { maxConsecutiveFailures: 5, maxFailurePercent: 10 };
    expect(assessBreaker(history('fdddddddd'), 10, limits, null).tripped).toBe(false); // 1 of 10 = 10 %
    const verdict = assessBreaker(history('fddfdddd'), 10, limits, null); // 2 of 10 = 20 %
    expect(verdict).toEqual({ tripped: true, reason: '2 of 10 nodes failed (over maxFailurePercent 10 %)', failedNodes: ['n0', 'n3'] });
    expect(assessBreaker(history('fddfdddd'), 0, limits, null).tripped).toBe(false);
  });

  it('the percent counts from the reset too', () => {
    expect(assessBreaker(history('fdfd'), 10, { maxConsecutiveFailures: 5, maxFailurePercent: 10 }, at(2500)).tripped).toBe(false);
  });

  it('trips exactly when the trailing streak reaches the limit (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.boolean(), { maxLength: 30 }), fc.integer({ min: 1, max: 5 }), (outcomes, limit) => {
        const tasks = outcomes.map((failed, i) => ({ nodeId: `n${String(i).padStart(2, '0')}`, outcome: failed ? ('failed' as const) : ('done' as const), finishedAt: at(i) }));
        let streak = 0;
        for (const failed of outcomes) streak = failed ? streak + 1 : 0;
        const verdict = assessBreaker(tasks, 1000, { maxConsecutiveFailures: limit }, null);
        expect(verdict.tripped).toBe(streak >= limit);
        if (verdict.tripped) expect(verdict.failedNodes).toHaveLength(streak);
      }),
      { numRuns: 200 },
    );
  });
});
