import { describe, expect, it } from 'vitest';
import { planBatches } from '../../../src/domain/rollout/batches.js';
import { decideRollout } from '../../../src/domain/rollout/decide.js';
import type { NodeFacts, Rollout, RolloutDecision, RolloutTask } from '../../../src/domain/rollout/model.js';
import type { RolloutSpec } from '../../../src/domain/rollout/spec.js';
import { at, facts, factsMap, fleet, rollout, spec, T0, task, tasksFromPlan } from './fixtures.js';
import { driveRollout } from '../../../src/sim/drive.js';
import { FleetModel, type InstallOutcome } from '../../../src/sim/fleet-model.js';

/** Applies a decision the way the reconciler does (task changes guarded by their state). */
function apply(r: Rollout, tasks: RolloutTask[], decision: RolloutDecision): { rollout: Rollout; tasks: RolloutTask[] } {
  const next = tasks.map((t) => {
    const change = decision.tasks.find((c) => c.id === t.id);
    return change && change.from === t.state ? { ...t, ...change.changes } : t;
  });
  return { rollout: { ...r, ...decision.rollout }, tasks: next };
}

const kinds = (d: RolloutDecision) => d.events.map((e) => e.kind);
const started = (d: RolloutDecision) => d.tasks.filter((c) => c.from === 'pending' && c.changes.state !== 'skipped').map((c) => c.id.split('/')[1]);

/** Two batches of two nodes in one region. */
function twoBatches(s: RolloutSpec = spec({ batch: { size: 2 } }), over: Partial<Rollout> = {}) {
  const r = rollout(s, { batchCount: 2, ...over });
  const tasks = [task('a', { batch: 0 }), task('b', { batch: 0 }), task('c', { batch: 1 }), task('d', { batch: 1 })];
  const nodes = factsMap(['a', 'b', 'c', 'd'].map((id) => facts(id)));
  return { r, tasks, nodes };
}

/** Marks tasks finished at `ms`. */
function finish(tasks: RolloutTask[], outcome: Record<string, 'done' | 'failed'>, ms: number): RolloutTask[] {
  return tasks.map((t) => {
    const state = outcome[t.nodeId];
    return state ? { ...t, state, finishedAt: at(ms), stateSince: at(ms), cordonedByUs: true } : t;
  });
}

describe('decideRollout: batches', () => {
  it('starts the first batch only, cordoning its nodes', () => {
    const { r, tasks, nodes } = twoBatches();
    const d = decideRollout(r, tasks, nodes, T0);
    expect(d.rollout).toEqual({ currentBatch: 0, batchStartedAt: T0, batchFinishedAt: null });
    expect(started(d)).toEqual(['a', 'b']);
    expect(d.commands).toEqual([
      { kind: 'cordon', nodeId: 'a' },
      { kind: 'cordon', nodeId: 'b' },
    ]);
    expect(kinds(d)).toEqual(['rollout.batch_started', 'rollout.node_started', 'rollout.node_started']);
    expect(d.events[0]?.data).toEqual({ batch: 0, nodes: ['host-a', 'host-b'] });
    expect(d.requeueAfterMs).toBe(1_000);
  });

  it('starts the next batch only when every task of the current one is finished', () => {
    const { r, tasks, nodes } = twoBatches(spec({ batch: { size: 2 } }), { currentBatch: 0, batchStartedAt: T0 });
    const oneLeft = finish(tasks, { a: 'done' }, 1000).map((t) => (t.nodeId === 'b' ? { ...t, state: 'installing' as const } : t));
    const waiting = decideRollout(r, oneLeft, nodes, at(2000));
    expect(started(waiting)).toEqual([]);
    expect(waiting.rollout).toEqual({});

    const allDone = finish(tasks, { a: 'done', b: 'failed' }, 1000);
    const next = decideRollout(r, allDone, nodes, at(2000));
    expect(started(next)).toEqual(['c', 'd']);
    expect(next.rollout).toMatchObject({ currentBatch: 1, batchStartedAt: at(2000), batchFinishedAt: null });
    expect(next.events[0]).toEqual({ kind: 'rollout.batch_completed', data: { batch: 0, done: 1, failed: 1 } });
  });

  it('waits pauseBetweenBatches after a batch, asking to be woken when it is over', () => {
    const s = spec({ batch: { size: 2 }, pauseBetweenBatches: '60s' });
    const { r, tasks, nodes } = twoBatches(s, { currentBatch: 0 });
    const done = finish(tasks, { a: 'done', b: 'done' }, 0);
    const first = decideRollout(r, done, nodes, at(10_000));
    expect(first.rollout).toEqual({ batchFinishedAt: at(10_000) });
    expect(first.requeueAfterMs).toBe(60_000);
    const r2 = { ...r, batchFinishedAt: at(10_000) };
    const early = decideRollout(r2, done, nodes, at(69_999));
    expect(started(early)).toEqual([]);
    expect(early.requeueAfterMs).toBe(1);
    expect(started(decideRollout(r2, done, nodes, at(70_000)))).toEqual(['c', 'd']);
  });

  it('soaks after the canary batch, on top of the pause', () => {
    const s = spec({ canary: { nodes: 1, soak: '10m' }, pauseBetweenBatches: '1m' });
    const r = rollout(s, { batchCount: 3, currentBatch: 0, batchFinishedAt: at(0) });
    const tasks = [task('a', { batch: 0, state: 'done', finishedAt: at(0) }), task('b', { batch: 1 }), task('c', { batch: 2 })];
    const nodes = factsMap([facts('a'), facts('b'), facts('c')]);
    expect(decideRollout(r, tasks, nodes, at(659_999)).requeueAfterMs).toBe(1);
    expect(started(decideRollout(r, tasks, nodes, at(660_000)))).toEqual(['b']);
    // After a later batch only the pause applies.
    const later = { ...r, currentBatch: 1 };
    const laterTasks = tasks.map((t) => (t.nodeId === 'b' ? { ...t, state: 'done' as const, finishedAt: at(0) } : t));
    expect(started(decideRollout(later, laterTasks, nodes, at(60_000)))).toEqual(['c']);
  });

  it('completes after the last batch when every node is done, with the counts, and stops asking to be woken', () => {
    const { r, tasks, nodes } = twoBatches(spec({ batch: { size: 2 } }), { currentBatch: 1, batchFinishedAt: at(5) });
    const d = decideRollout(r, finish(tasks, { a: 'done', b: 'done', c: 'done', d: 'done' }, 0), nodes, at(10));
    expect(d.rollout.status).toBe('completed');
    expect(d.events.at(-1)).toEqual({ kind: 'rollout.completed', data: { done: 4, failed: 0 } });
    expect(d.requeueAfterMs).toBeNull();
  });

  it('ends failed, never completed, when a node failed and the breaker did not trip; the reason names the node and why', () => {
    const { r, tasks, nodes } = twoBatches(spec({ batch: { size: 2 }, circuitBreaker: { maxConsecutiveFailures: 3 } }), { currentBatch: 1, batchFinishedAt: at(5) });
    const finished = finish(tasks, { a: 'done', b: 'done', c: 'done', d: 'failed' }, 0).map((t) =>
      t.nodeId === 'd' ? { ...t, lastError: 'install failed: downgrade from 3.0.0 to 2.0.0 refused' } : t,
    );
    const d = decideRollout(r, finished, nodes, at(10));
    expect(d.rollout.status).toBe('failed');
    expect(d.events.map((e) => e.kind)).not.toContain('rollout.completed');
    expect(d.events.at(-1)).toEqual({
      kind: 'rollout.failed',
      data: {
        reason: '1 of 4 node(s) did not reach node-agent 2.0.0: host-d (failed: install failed: downgrade from 3.0.0 to 2.0.0 refused)',
        failed_nodes: ['host-d'],
        done: 3,
        failed: 1,
      },
    });
    expect(d.requeueAfterMs).toBeNull();
    // Every node failed: still failed, however the breaker was set.
    const allFailed = finish(tasks, { a: 'failed', b: 'failed', c: 'failed', d: 'failed' }, 0);
    const lenient = rollout(spec({ batch: { size: 2 }, circuitBreaker: { maxConsecutiveFailures: 10 } }), { batchCount: 2, currentBatch: 1, batchFinishedAt: at(5) });
    expect(decideRollout(lenient, allFailed, nodes, at(10)).rollout.status).toBe('failed');
  });

  it('completes at once when there is nothing to do (every node already upgraded)', () => {
    const r = rollout(spec(), { batchCount: 0 });
    const d = decideRollout(r, [task('a', { state: 'skipped' })], factsMap([facts('a', { version: '2.0.0' })]), T0);
    expect(d.rollout.status).toBe('completed');
  });

  it('starts no batch outside the maintenance window, and says when it opens', () => {
    // T0 is Tuesday 03:00 UTC; the window is Wednesday 02:00-06:00.
    const s = spec({ batch: { size: 2 } }, { window: { days: ['wed'], start: '02:00', end: '06:00' } });
    const { r, tasks, nodes } = twoBatches(s);
    const d = decideRollout(r, tasks, nodes, T0);
    expect(started(d)).toEqual([]);
    expect(d.rollout).toEqual({ status: 'waiting_for_window' });
    expect(d.events).toEqual([{ kind: 'rollout.waiting_for_window', data: { next_open: '2024-05-08T02:00:00.000Z' } }]);
    expect(d.requeueAfterMs).toBe(60_000);
    // Waiting again says nothing new.
    expect(decideRollout({ ...r, status: 'waiting_for_window' }, tasks, nodes, at(60_000)).events).toEqual([]);
    const open = decideRollout({ ...r, status: 'waiting_for_window' }, tasks, nodes, new Date('2024-05-08T02:00:00Z'));
    expect(open.rollout.status).toBe('running');
    expect(started(open)).toEqual(['a', 'b']);
  });

  it('lets in-flight nodes finish when the window closes mid-batch', () => {
    const s = spec({ batch: { size: 2 } }, { window: { days: ['wed'], start: '02:00', end: '06:00' } });
    const { r, nodes } = twoBatches(s, { currentBatch: 0 });
    const tasks = [task('a', { state: 'cordoned', cordonedByUs: true }), task('b', { state: 'done', finishedAt: T0 }), task('c', { batch: 1 }), task('d', { batch: 1 })];
    const d = decideRollout(r, tasks, nodes, T0);
    expect(d.tasks).toEqual([{ id: 'ro-1/a', from: 'cordoned', changes: { state: 'draining', stateSince: T0 } }]);
  });
});

describe('decideRollout: circuit breaker', () => {
  const s = spec({ batch: { size: 3 }, circuitBreaker: { maxConsecutiveFailures: 2 } });
  const setup = () => {
    const r = rollout(s, { batchCount: 2, currentBatch: 0 });
    const tasks = [
      task('a', { batch: 0, state: 'failed', finishedAt: at(1), cordonedByUs: true }),
      task('b', { batch: 0, state: 'verifying', healthySince: null, stateSince: at(0), cordonedByUs: true }),
      task('c', { batch: 0, state: 'installing', stateSince: at(0), cordonedByUs: true }),
      task('d', { batch: 1 }),
    ];
    return { r, tasks };
  };

  it('trips on the second failure in a row: awaiting_decision, a continuation, no new node', () => {
    const { r, tasks } = setup();
    // c's install fails now: a and c are two consecutive failures.
    const nodes = factsMap([facts('a'), facts('b', { version: '2.0.0' }), facts('c', { install: { version: '2.0.0', phase: 'reverted', at: at(5) } }), facts('d')]);
    const d = decideRollout(r, tasks, nodes, at(10));
    expect(d.rollout.status).toBe('awaiting_decision');
    expect(d.continuation).toEqual({ reason: '2 consecutive node failures (maxConsecutiveFailures 2)', failedNodes: ['a', 'c'] });
    expect(kinds(d)).toContain('rollout.circuit_breaker_tripped');
    expect(d.events.find((e) => e.kind === 'rollout.circuit_breaker_tripped')?.data).toEqual({ reason: d.continuation?.reason, failed_nodes: ['a', 'c'] });
    expect(started(d)).toEqual([]);
    // The failed node goes back to its version by itself, and is enabled.
    expect(d.commands).toEqual([
      { kind: 'set_version', nodeId: 'c', component: 'node-agent', version: '1.0.0', rollback: true },
      { kind: 'enable', nodeId: 'c' },
    ]);
    // b still moves on.
    expect(d.tasks.map((t) => t.id)).toEqual(['ro-1/b', 'ro-1/c']);
  });

  it('starts nothing while awaiting a decision or paused, but lets in-flight nodes finish', () => {
    const { r, tasks } = setup();
    const finished = tasks.map((t) => (t.nodeId === 'c' ? { ...t, state: 'failed' as const, finishedAt: at(2) } : t));
    const nodes = factsMap([facts('a'), facts('b', { version: '2.0.0' }), facts('c'), facts('d')]);
    for (const status of ['awaiting_decision', 'paused'] as const) {
      let current: { rollout: Rollout; tasks: RolloutTask[] } = { rollout: { ...r, status }, tasks: finished };
      for (let ms = 10; ms < 120_000; ms += 5_000) {
        const d = decideRollout(current.rollout, current.tasks, nodes, at(ms));
        expect(started(d)).toEqual([]);
        expect(d.rollout.status ?? status).toBe(status);
        current = apply(current.rollout, current.tasks, d);
      }
      expect(current.tasks.find((t) => t.nodeId === 'b')?.state).toBe('done');
      expect(current.tasks.find((t) => t.nodeId === 'd')?.state).toBe('pending');
    }
  });

  it('after "continue anyway" the old failures no longer count and the next batch starts', () => {
    const { r, tasks } = setup();
    const settled = tasks.map((t) => (t.nodeId === 'b' ? { ...t, state: 'done' as const, finishedAt: at(3) } : t.nodeId === 'c' ? { ...t, state: 'failed' as const, finishedAt: at(4) } : t));
    const nodes = factsMap(['a', 'b', 'c', 'd'].map((id) => facts(id)));
    // Without a reset the two failures (a at 1 ms, c at 4 ms; b done at 3 ms) are not consecutive, so check the percent path too.
    const continued = { ...r, status: 'running' as const, breakerResetAt: at(5) };
    const d = decideRollout(continued, settled, nodes, at(6));
    expect(d.continuation).toBeUndefined();
    expect(started(d)).toEqual(['d']);
  });

  it('trips on maxFailurePercent over all targets', () => {
    const r = rollout(spec({ batch: { size: 1 }, circuitBreaker: { maxConsecutiveFailures: 5, maxFailurePercent: 25 } }), { batchCount: 4, currentBatch: 2 });
    const tasks = finish([task('a', { batch: 0 }), task('b', { batch: 1 }), task('c', { batch: 2 }), task('d', { batch: 3 })], { a: 'failed', b: 'done' }, 1);
    const nodes = factsMap(['a', 'b', 'c', 'd'].map((id) => facts(id)));
    const failing = tasks.map((t) => (t.nodeId === 'c' ? { ...t, state: 'failed' as const, finishedAt: at(2) } : t));
    const d = decideRollout(r, failing, nodes, at(3));
    expect(d.continuation?.reason).toMatch(/2 of 4 nodes failed/);
    expect(started(d)).toEqual([]);
  });

  it('does not judge the breaker while aborting or rolling back', () => {
    const { r, tasks } = setup();
    const failed = tasks.map((t) => (t.nodeId === 'c' ? { ...t, state: 'failed' as const, finishedAt: at(2) } : t));
    const nodes = factsMap(['a', 'b', 'c', 'd'].map((id) => facts(id)));
    expect(decideRollout({ ...r, status: 'aborting' }, failed, nodes, at(3)).continuation).toBeUndefined();
    expect(decideRollout({ ...r, status: 'rolling_back' }, failed, nodes, at(3)).continuation).toBeUndefined();
  });
});

describe('decideRollout: abort and rollback', () => {
  it('aborting skips pending tasks, finishes in-flight ones, then ends aborted', () => {
    const r = rollout(spec({ batch: { size: 2 } }), { status: 'aborting', batchCount: 2, currentBatch: 0 });
    const tasks = [task('a', { state: 'done', finishedAt: T0 }), task('b', { state: 'installing', stateSince: T0, cordonedByUs: true }), task('c', { batch: 1 })];
    const nodes = factsMap([facts('a', { version: '2.0.0' }), facts('b'), facts('c')]);
    const first = decideRollout(r, tasks, nodes, at(1));
    expect(first.tasks).toEqual([{ id: 'ro-1/c', from: 'pending', changes: { state: 'skipped', stateSince: at(1), lastError: 'the rollout was aborted before this node started' } }]);
    expect(first.rollout).toEqual({});
    const after = apply(r, tasks, first);
    const b = after.tasks.map((t) => (t.nodeId === 'b' ? { ...t, state: 'done' as const, finishedAt: at(2) } : t));
    const end = decideRollout(after.rollout, b, nodes, at(3));
    expect(end.rollout.status).toBe('aborted');
    expect(end.events).toEqual([{ kind: 'rollout.aborted', data: { done: 2 } }]);
  });

  it('rolling back returns done nodes newest batch first, one batch at a time, and ends rolled_back', () => {
    const r = rollout(spec({ batch: { size: 2 } }), { status: 'rolling_back', batchCount: 3, currentBatch: 2 });
    let tasks: RolloutTask[] = [
      task('a', { batch: 0, state: 'done', finishedAt: at(1), fromVersion: '1.0.0' }),
      task('b', { batch: 0, state: 'failed', finishedAt: at(1) }),
      task('c', { batch: 1, state: 'done', finishedAt: at(2), fromVersion: '1.1.0' }),
      task('d', { batch: 1, state: 'done', finishedAt: at(2), fromVersion: '1.1.0' }),
      task('e', { batch: 2, state: 'installing', stateSince: at(3), cordonedByUs: true }),
      task('f', { batch: 2, state: 'pending' }),
    ];
    const versions: Record<string, string> = { a: '2.0.0', b: '1.0.0', c: '2.0.0', d: '2.0.0', e: '1.0.0', f: '1.0.0' };
    const nodes = () => factsMap(Object.entries(versions).map(([id, version]) => facts(id, { version })));
    let rr: Rollout = r;

    // e is still installing: the pending f is skipped, nothing is rolled back yet.
    let d = decideRollout(rr, tasks, nodes(), at(10));
    expect(d.tasks.map((c) => [c.id, c.changes.state])).toEqual([['ro-1/f', 'skipped']]);
    ({ rollout: rr, tasks } = apply(rr, tasks, d));
    tasks = tasks.map((t) => (t.nodeId === 'e' ? { ...t, state: 'failed', finishedAt: at(11) } : t));

    // Newest batch with done nodes first: c and d (batch 1), back to their own previous version.
    d = decideRollout(rr, tasks, nodes(), at(20));
    expect(d.tasks.map((c) => [c.id, c.from, c.changes.state, c.changes.direction])).toEqual([
      ['ro-1/c', 'done', 'cordoned', 'rollback'],
      ['ro-1/d', 'done', 'cordoned', 'rollback'],
    ]);
    expect(d.events.map((e) => [e.kind, e.nodeId, e.data.version])).toEqual([
      ['rollout.node_started', 'c', '1.1.0'],
      ['rollout.node_started', 'd', '1.1.0'],
    ]);
    ({ rollout: rr, tasks } = apply(rr, tasks, d));
    // While they are in flight, a (batch 0) waits.
    expect(decideRollout(rr, tasks, nodes(), at(21)).tasks.map((c) => c.id)).toEqual(['ro-1/c', 'ro-1/d']);

    tasks = tasks.map((t) => (t.nodeId === 'c' || t.nodeId === 'd' ? { ...t, state: 'rolled_back', finishedAt: at(30) } : t));
    d = decideRollout(rr, tasks, nodes(), at(40));
    expect(d.tasks.map((c) => [c.id, c.changes.state])).toEqual([['ro-1/a', 'cordoned']]);
    ({ rollout: rr, tasks } = apply(rr, tasks, d));
    tasks = tasks.map((t) => (t.nodeId === 'a' ? { ...t, state: 'rolled_back', finishedAt: at(50) } : t));

    d = decideRollout(rr, tasks, nodes(), at(60));
    expect(d.rollout.status).toBe('rolled_back');
    expect(d.events).toEqual([{ kind: 'rollout.rolled_back', data: { rolled_back: 3, failed: [] } }]);
    expect(d.requeueAfterMs).toBeNull();
  });

  it('does not roll a node back in the tick its forward task finishes (the snapshot still shows our cordon)', () => {
    const r = rollout(spec({ health: { minHealthyTime: 0 } }), { status: 'rolling_back', batchCount: 1, currentBatch: 0 });
    const tasks = [task('a', { state: 'verifying', stateSince: T0, cordonedByUs: true })];
    const nodes = factsMap([facts('a', { version: '2.0.0', cordoned: true })]);
    const finishing = decideRollout(r, tasks, nodes, at(1));
    expect(finishing.tasks).toEqual([{ id: 'ro-1/a', from: 'verifying', changes: expect.objectContaining({ state: 'done' }) }]);
    expect(finishing.commands).toEqual([{ kind: 'enable', nodeId: 'a' }]);
    expect(finishing.requeueAfterMs).toBe(1_000);
    // Next tick, with the node enabled, the rollback cordons it again and will enable it after.
    const next = apply(r, tasks, finishing);
    const back = decideRollout(next.rollout, next.tasks, factsMap([facts('a', { version: '2.0.0' })]), at(2));
    expect(back.tasks).toEqual([{ id: 'ro-1/a', from: 'done', changes: expect.objectContaining({ state: 'cordoned', direction: 'rollback', cordonedByUs: true }) }]);
    expect(back.commands).toEqual([{ kind: 'cordon', nodeId: 'a' }]);
  });

  it('ends failed when a node could not be rolled back', () => {
    const r = rollout(spec(), { status: 'rolling_back', batchCount: 1, currentBatch: 0 });
    const tasks = [task('a', { state: 'failed', direction: 'rollback', finishedAt: T0 }), task('b', { state: 'rolled_back', direction: 'rollback' })];
    const d = decideRollout(r, tasks, factsMap([facts('a'), facts('b')]), at(1));
    expect(d.rollout.status).toBe('failed');
    expect(d.events[0]?.data).toEqual({ rolled_back: 1, failed: ['host-a'] });
  });
});

describe('decideRollout: failed nodes', () => {
  it('sends a failed node back to its fromVersion as a rollback, enables it, and says so', () => {
    const r = rollout(spec({ circuitBreaker: { maxConsecutiveFailures: 3 } }), { currentBatch: 0, batchCount: 2 });
    const tasks = [task('a', { state: 'verifying', stateSince: T0, fromVersion: '1.3.0', cordonedByUs: true }), task('b', { batch: 1 })];
    const nodes = factsMap([facts('a', { version: '1.3.0' }), facts('b')]);
    const d = decideRollout(r, tasks, nodes, at(1));
    expect(d.tasks[0]?.changes).toMatchObject({ state: 'failed', lastError: expect.stringMatching(/reverted/) });
    expect(d.commands.slice(0, 2)).toEqual([
      { kind: 'set_version', nodeId: 'a', component: 'node-agent', version: '1.3.0', rollback: true },
      { kind: 'enable', nodeId: 'a' },
    ]);
    expect(d.events[0]).toMatchObject({ kind: 'rollout.node_failed', nodeId: 'a', data: { hostname: 'host-a', batch: 0, direction: 'forward' } });
    // One failure is under the breaker's limit: the next batch starts in the same tick.
    expect(started(d)).toEqual(['b']);
  });

  it('starts the next batch only once a failed node runs its old version again, or health.timeout passed', () => {
    const s = spec({ circuitBreaker: { maxConsecutiveFailures: 3 }, health: { timeout: '5m' } });
    const r = rollout(s, { currentBatch: 0, batchCount: 2, batchFinishedAt: at(0) });
    const tasks = [task('a', { state: 'failed', finishedAt: at(0), fromVersion: '1.0.0' }), task('b', { batch: 1 })];
    // a still runs the broken 2.0.0 while it reinstalls 1.0.0: it is down, and counts against the region.
    const reinstalling = factsMap([facts('a', { version: '2.0.0', install: { version: '1.0.0', phase: 'installing', at: at(0) } }), facts('b')]);
    const waiting = decideRollout(r, tasks, reinstalling, at(60_000));
    expect(started(waiting)).toEqual([]);
    expect(waiting.requeueAfterMs).toBe(1_000);
    expect(started(decideRollout(r, tasks, factsMap([facts('a', { version: '1.0.0' }), facts('b')]), at(60_000)))).toEqual(['b']);
    expect(started(decideRollout(r, tasks, reinstalling, at(300_001)))).toEqual(['b']);
    // With onNodeFailure leave nothing goes back, so nothing is waited for.
    const leave = { ...r, spec: spec({ onNodeFailure: 'leave', circuitBreaker: { maxConsecutiveFailures: 3 } }) };
    expect(started(decideRollout(leave, tasks, reinstalling, at(60_000)))).toEqual(['b']);
  });

  it('reports a finished node as node_completed', () => {
    const r = rollout(spec({ health: { minHealthyTime: 0 } }), { currentBatch: 0 });
    const tasks = [task('a', { state: 'verifying', stateSince: T0, cordonedByUs: true })];
    const d = decideRollout(r, tasks, factsMap([facts('a', { version: '2.0.0', cordoned: true })]), at(1));
    expect(d.events[0]).toEqual({ kind: 'rollout.node_completed', nodeId: 'a', data: { hostname: 'host-a', batch: 0, direction: 'forward' } });
  });
});

describe('decideRollout: purity', () => {
  it('does nothing for rollouts that are not active', () => {
    const { tasks, nodes } = twoBatches();
    for (const status of ['awaiting_approval', 'completed', 'aborted', 'rolled_back', 'rejected', 'failed'] as const) {
      expect(decideRollout(rollout(spec(), { status }), tasks, nodes, T0)).toEqual({ rollout: {}, tasks: [], commands: [], events: [], requeueAfterMs: null });
    }
  });

  it('decides the same on the same snapshot and changes none of its inputs', () => {
    const { r, tasks, nodes } = twoBatches(spec({ batch: { size: 2 } }), { currentBatch: 0 });
    const mixed = [task('a', { state: 'verifying', stateSince: T0 }), task('b', { state: 'draining', stateSince: T0 }), ...tasks.slice(2)];
    const facts2 = new Map<string, NodeFacts>([...nodes, ['a', facts('a', { version: '2.0.0' })], ['b', facts('b', { drainState: 'completed' })]]);
    const before = structuredClone({ r, mixed, facts2 });
    const one = decideRollout(r, mixed, facts2, at(5));
    const two = decideRollout(r, mixed, facts2, at(5));
    expect(one).toEqual(two);
    expect({ r, mixed, facts2 }).toEqual(before);
  });
});

describe('decideRollout driven against a simulated fleet', () => {
  const nodes = fleet(2);
  const plan = planBatches(spec(), nodes, () => '1.0.0');

  function drill(outcome: (nodeId: string) => InstallOutcome, choice: 'continue' | 'rollback' | 'abort') {
    const s = spec({ order: 'region-by-region', batch: { size: 1 }, health: { minHealthyTime: '10s', timeout: '2m' }, circuitBreaker: { maxConsecutiveFailures: 2 } });
    const p = planBatches(s, nodes, () => '1.0.0');
    const model = new FleetModel(
      nodes.map((n) => ({ id: n.id, region: n.region, version: '1.0.0', instances: 3 })),
      { drainBaseMs: 1_000, drainMsPerInstance: 2_000, installMs: () => 20_000, outcome: (id, _v, rollback) => (rollback ? 'ok' : outcome(id)) },
    );
    return driveRollout({
      rollout: rollout(s, { batchCount: p.batches.length }),
      tasks: tasksFromPlan(p),
      fleet: model,
      regionCaps: p.regionCaps,
      start: T0,
      decisionDelayMs: 300_000,
      choose: () => choice,
      maxVirtualMs: 86_400_000,
      determinismEvery: 1,
    });
  }

  it('upgrades every node when nothing fails', () => {
    const result = drill(() => 'ok', 'continue');
    expect(result.violations).toEqual({});
    expect(result.rollout.status).toBe('completed');
    expect(result.tasks.every((t) => t.state === 'done')).toBe(true);
    expect(result.events.filter((e) => e.kind === 'rollout.node_started')).toHaveLength(plan.batches.flatMap((b) => b.nodes).length);
  });

  it('the breaker drill: two failures in a row trip it, failed nodes return by themselves, rollback returns the rest', () => {
    // Region-by-region over ap-south (r2) first: r2-n00 succeeds, r2-n01 and r1-n00 break.
    const broken = new Set(['r2-n01', 'r1-n00']);
    const result = drill((id) => (broken.has(id) ? (id === 'r2-n01' ? 'fails' : 'unhealthy') : 'ok'), 'rollback');
    expect(result.violations).toEqual({});
    expect(result.trips).toHaveLength(1);
    expect(result.trips[0]).toMatchObject({ failedNodes: ['r2-n01', 'r1-n00'], startedBefore: 3, choice: 'rollback' });
    expect(result.rollout.status).toBe('rolled_back');
    const state = Object.fromEntries(result.tasks.map((t) => [t.nodeId, t.state]));
    expect(state).toMatchObject({ 'r2-n00': 'rolled_back', 'r2-n01': 'failed', 'r1-n00': 'failed', 'r1-n01': 'skipped' });
  });

  it('continue anyway resumes the rollout and runs it to the end, which is failed: two nodes never reached the target', () => {
    const result = drill((id) => (id === 'r2-n01' || id === 'r1-n00' ? 'fails' : 'ok'), 'continue');
    expect(result.violations).toEqual({});
    expect(result.rollout.status).toBe('failed');
    expect(result.trips).toHaveLength(1);
    expect(result.tasks.filter((t) => t.state === 'done')).toHaveLength(4);
    expect(result.events.filter((e) => e.kind === 'rollout.failed')).toHaveLength(1);
    expect(result.events.some((e) => e.kind === 'rollout.completed')).toBe(false);
  });

  it('abort ends the rollout with the remaining nodes skipped', () => {
    const result = drill((id) => (id === 'r2-n01' || id === 'r1-n00' ? 'fails' : 'ok'), 'abort');
    expect(result.violations).toEqual({});
    expect(result.rollout.status).toBe('aborted');
    expect(result.tasks.filter((t) => t.state === 'skipped')).toHaveLength(3);
  });
});
