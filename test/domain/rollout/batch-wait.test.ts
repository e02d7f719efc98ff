import { describe, expect, it } from 'vitest';
import { batchWaitMs, nextBatchStartsAt } from '../../../src/domain/rollout/batch-wait.js';

const spec = (pause: number, soak?: number) => ({ strategy: { pauseBetweenBatches: pause, ...(soak === undefined ? {} : { canary: { nodes: 1, soak } }) } });
const at = new Date('2026-12-02T10:00:00.000Z');

describe('the wait before the next batch', () => {
  it('is the pause, plus the soak after the canary batch only', () => {
    expect(batchWaitMs(spec(5_000), 0)).toBe(5_000);
    expect(batchWaitMs(spec(5_000, 60_000), 0)).toBe(65_000);
    expect(batchWaitMs(spec(5_000, 60_000), 1)).toBe(5_000);
    expect(batchWaitMs(spec(0), 3)).toBe(0);
  });

  it('ends at the batch finish plus that wait, only while a running rollout has a next batch', () => {
    const base = { spec: spec(5_000, 60_000), status: 'running', currentBatch: 0, batchCount: 3, batchFinishedAt: at };
    expect(nextBatchStartsAt(base)?.toISOString()).toBe('2026-12-02T10:01:05.000Z');
    expect(nextBatchStartsAt({ ...base, currentBatch: 1 })?.toISOString()).toBe('2026-12-02T10:00:05.000Z');
    expect(nextBatchStartsAt({ ...base, currentBatch: 2 })).toBeNull();
    expect(nextBatchStartsAt({ ...base, status: 'paused' })).toBeNull();
    expect(nextBatchStartsAt({ ...base, batchFinishedAt: null })).toBeNull();
    expect(nextBatchStartsAt({ ...base, spec: spec(0) })).toBeNull();
  });
});
