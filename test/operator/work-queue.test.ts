// The keyed work-queue runtime (src/operator/work-queue.ts): dedup by key, one more run for a key
// enqueued while it runs, requeueAfter honoured, backoff on failure without blocking other keys,
// and one key at a time across queues that share a lane. Real timers, bounded waits.
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { SerialLane, WorkQueue } from '../../src/operator/work-queue.js';
import { waitFor } from '../support/operator.js';

const log = pino({ level: 'silent' });

describe('WorkQueue', () => {
  it('runs each queued key once however often it is added', async () => {
    const runs: string[] = [];
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const queue = new WorkQueue('t', async (key) => {
      if (key === 'first') await gate;
      runs.push(key);
    }, log);
    queue.start();
    queue.add('first');
    for (let i = 0; i < 10; i++) queue.addAll(['a', 'b', 'a']);
    expect(queue.depth).toBe(2);
    release();
    await waitFor('every key ran', async () => runs.length === 3);
    expect(runs).toEqual(['first', 'a', 'b']);
    await queue.stop();
  });

  it('runs a key once more when it is added while it runs (the change may have come too late for the pass)', async () => {
    let runs = 0;
    let release: () => void = () => {};
    const queue = new WorkQueue('t', async () => {
      runs++;
      if (runs === 1) await new Promise<void>((r) => (release = r));
    }, log);
    queue.start();
    queue.add('k');
    await waitFor('the first run started', async () => runs === 1);
    queue.add('k');
    queue.add('k');
    release();
    await waitFor('exactly one more run', async () => runs === 2);
    await new Promise((r) => setTimeout(r, 50));
    expect(runs).toBe(2);
    await queue.stop();
  });

  it('honours requeueAfterMs, and an earlier requeue wins over a later one', async () => {
    const at: number[] = [];
    const queue = new WorkQueue('t', async () => {
      at.push(performance.now());
      return at.length < 3 ? { requeueAfterMs: 30 } : {};
    }, log);
    queue.start();
    queue.add('k');
    await waitFor('three runs', async () => at.length === 3);
    expect((at[1] as number) - (at[0] as number)).toBeGreaterThanOrEqual(25);
    await new Promise((r) => setTimeout(r, 100));
    expect(at).toHaveLength(3);
    await queue.stop();
  });

  it('backs a failing key off without holding up other keys, and an add does not cut the backoff short', async () => {
    const runs = new Map<string, number>();
    const queue = new WorkQueue('t', async (key) => {
      runs.set(key, (runs.get(key) ?? 0) + 1);
      if (key === 'bad') throw new Error('boom');
    }, log);
    queue.start();
    queue.add('bad');
    await waitFor('the bad key failed once', async () => queue.failed === 1);
    for (let i = 0; i < 20; i++) {
      queue.add('bad');
      queue.add(`good-${i}`);
    }
    // The adds queued the good keys only: the bad one waits for its backoff timer (100 ms).
    expect(queue.isQueued('bad')).toBe(false);
    expect(queue.isQueued('good-19')).toBe(true);
    await waitFor('every good key ran', async () => [...runs.keys()].filter((k) => k.startsWith('good-')).length === 20);
    await waitFor('the bad key retried after its backoff', async () => (runs.get('bad') ?? 0) >= 2);
    await queue.stop();
  });

  it('runs one key at a time across queues that share a lane', async () => {
    const lane = new SerialLane();
    let inside = 0;
    let most = 0;
    const work = async () => {
      inside++;
      most = Math.max(most, inside);
      await new Promise((r) => setTimeout(r, 5));
      inside--;
    };
    const a = new WorkQueue('a', work, log, lane);
    const b = new WorkQueue('b', work, log, lane);
    a.start();
    b.start();
    for (let i = 0; i < 10; i++) {
      a.add(`a${i}`);
      b.add(`b${i}`);
    }
    await waitFor('both queues drained', async () => a.processed === 10 && b.processed === 10);
    expect(most).toBe(1);
    await Promise.all([a.stop(), b.stop()]);
  });
});
