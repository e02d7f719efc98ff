// Blue-green for the control plane (DESIGN.md §11): the new replicas start beside the old ones,
// the traffic moves once every one is ready, the old ones stop after retireAfter; a rollback
// before that moves the traffic back.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { markServing, servingSide } from '../../../src/domain/rollout/blue-green.js';
import { decideRollout } from '../../../src/domain/rollout/decide.js';
import { type RolloutTask, TASK_STATES } from '../../../src/domain/rollout/model.js';
import { parseRolloutSpec } from '../../../src/domain/rollout/spec.js';
import { at, facts, factsMap, rollout, spec, task, T0 } from './fixtures.js';

const bgSpec = (strategy: Record<string, unknown> = {}) =>
  spec({ order: 'blue-green', batch: { size: 3 }, blueGreen: { retireAfter: '10s' }, health: { minHealthyTime: '0s' }, ...strategy }, { target: { component: 'operator', version: '2.0.0' } });
const done = (t: RolloutTask, ms = 1000): RolloutTask => ({ ...t, state: 'done', finishedAt: at(ms), stateSince: at(ms) });
const three = () => [task('a', { hostname: 'cp-a' }), task('b', { hostname: 'cp-b' }), task('c', { hostname: 'cp-c' })];
const onTarget = () => factsMap(['a', 'b', 'c'].map((id) => facts(id, { version: '2.0.0' })));
/** A rollout whose only batch finished, expand applied. */
const ended = (over: Record<string, unknown> = {}) => rollout(bgSpec(), { batchCount: 1, currentBatch: 0, schemaPreAppliedAt: T0, batchFinishedAt: at(1000), ...over });

describe('the blue-green spec', () => {
  it('is for the operator component only, and its settings need order blue-green', () => {
    const agent = parseRolloutSpec({ name: 'x', target: { component: 'node-agent', version: '2.0.0' }, strategy: { order: 'blue-green' } });
    expect(agent.ok).toBe(false);
    if (!agent.ok) expect(agent.issues[0]).toMatchObject({ path: 'strategy.order', message: expect.stringMatching(/operator component only/) });
    const stray = parseRolloutSpec({ name: 'x', target: { component: 'operator', version: '2.0.0' }, strategy: { blueGreen: { retireAfter: '1m' } } });
    expect(stray.ok).toBe(false);
    if (!stray.ok) expect(stray.issues[0]).toMatchObject({ path: 'strategy.blueGreen', message: expect.stringMatching(/order: blue-green only/) });
    expect(bgSpec().strategy.blueGreen?.retireAfter).toBe(10_000);
  });
});

describe('a blue-green rollout of the operator', () => {
  it('starts the new version beside the running one on every node of a batch, without counting replicas', () => {
    const r = rollout(bgSpec({ minAvailablePerRegion: 2 }), { batchCount: 1, schemaPreAppliedAt: T0, drainMode: 'none' });
    // Only one ready replica per region: a rolling batch would wait; blue-green stops none.
    const compat = { rules: [], running: new Map(), readyReplicas: new Map([['us-east', ['cp-a']]]) };
    const decision = decideRollout(r, three(), factsMap([facts('a'), facts('b'), facts('c')]), T0, new Set(), undefined, compat);
    expect(decision.waitingFor).toBeUndefined();
    expect(decision.commands.filter((c) => c.kind === 'set_version')).toEqual(
      ['a', 'b', 'c'].map((nodeId) => ({ kind: 'set_version', nodeId, component: 'operator', version: '2.0.0', rollback: false, keepPrevious: true })),
    );
  });

  it('switches the traffic once every node is done, holds for retireAfter, then retires the old replicas', () => {
    const tasks = three().map((t) => done(t));
    const switched = decideRollout(ended(), tasks, onTarget(), at(2000));
    expect(switched.rollout.trafficSwitchedAt).toEqual(at(2000));
    expect(switched.events).toEqual([{ kind: 'rollout.traffic_switched', data: { from_versions: ['1.0.0'], to_version: '2.0.0', retire_after_ms: 10_000 } }]);
    expect(switched.commands).toEqual([]);
    expect(switched.schema).toBeUndefined();

    const holding = decideRollout(ended({ trafficSwitchedAt: at(2000) }), tasks, onTarget(), at(5000));
    expect(holding).toMatchObject({ rollout: {}, commands: [], events: [], requeueAfterMs: 7000 });

    const retired = decideRollout(ended({ trafficSwitchedAt: at(2000) }), tasks, onTarget(), at(12_000));
    expect(retired.rollout.previousRetiredAt).toEqual(at(12_000));
    expect(retired.commands).toEqual(['a', 'b', 'c'].map((nodeId) => ({ kind: 'retire_previous', nodeId, component: 'operator' })));
    expect(retired.events).toEqual([{ kind: 'rollout.previous_retired', data: { nodes: ['cp-a', 'cp-b', 'cp-c'], versions: ['1.0.0'] } }]);
  });

  it('contracts only once no old replica is live (or health.timeout passed), then completes', () => {
    const tasks = three().map((t) => done(t));
    const r = ended({ trafficSwitchedAt: at(2000), previousRetiredAt: at(12_000) });
    const live = (versions: string[]) => ({ rules: [], running: new Map(), operatorVersions: versions });
    const waiting = decideRollout(r, tasks, onTarget(), at(13_000), new Set(), undefined, live(['1.0.0', '2.0.0']));
    expect(waiting.schema).toBeUndefined();
    expect(waiting.waitingFor).toBe('old operator replicas still live: 1.0.0');
    const gone = decideRollout(r, tasks, onTarget(), at(14_000), new Set(), undefined, live(['2.0.0']));
    expect(gone.schema).toBe('post');
    const late = decideRollout(r, tasks, onTarget(), at(12_000 + 5 * 60_000), new Set(), undefined, live(['1.0.0', '2.0.0']));
    expect(late.schema).toBe('post');
    const completed = decideRollout({ ...r, schemaPostAppliedAt: at(14_000) }, tasks, onTarget(), at(14_000), new Set(), undefined, live(['2.0.0']));
    expect(completed.rollout.status).toBe('completed');
  });

  it('gives up when a node fails to bring up its new replica: it rolls back, the old replicas keep serving', () => {
    const tasks = [done(task('a')), { ...task('b', { hostname: 'cp-b' }), state: 'failed' as const, finishedAt: at(1000), lastError: 'not ready' }];
    const r = rollout(bgSpec({ circuitBreaker: { maxConsecutiveFailures: 5 } }), { batchCount: 2, currentBatch: 0, schemaPreAppliedAt: T0, batchFinishedAt: at(1000) });
    const decision = decideRollout(r, tasks, factsMap([facts('a', { version: '2.0.0' }), facts('b')]), at(2000));
    expect(decision.rollout.status).toBe('rolling_back');
    expect(decision.rollout.currentBatch).toBeUndefined();
    expect(decision.events[0]).toMatchObject({ kind: 'rollout.blue_green_abandoned', data: { reason: expect.stringMatching(/1 node\(s\) did not bring up operator 2\.0\.0 \(cp-b\)/) } });
  });

  it('an abort before the old replicas are retired rolls the new ones back', () => {
    const r = rollout(bgSpec(), { status: 'aborting', batchCount: 2, currentBatch: 0, schemaPreAppliedAt: T0, batchFinishedAt: at(1000) });
    const tasks = [done(task('a')), task('b', { batch: 1 })];
    const decision = decideRollout(r, tasks, factsMap([facts('a', { version: '2.0.0' }), facts('b')]), at(2000));
    expect(decision.rollout.status).toBe('rolling_back');
    expect(decision.events.map((e) => e.kind)).toEqual(['rollout.blue_green_abandoned']);
  });

  it('rolls back by asking for the old version without keeping the new one', () => {
    const r = rollout(bgSpec(), { status: 'rolling_back', drainMode: 'none', batchCount: 1, currentBatch: 0, schemaPreAppliedAt: T0, trafficSwitchedAt: at(2000) });
    const decision = decideRollout(r, [done(task('a'))], factsMap([facts('a', { version: '2.0.0' })]), at(3000));
    expect(decision.commands).toEqual([{ kind: 'set_version', nodeId: 'a', component: 'operator', version: '1.0.0', rollback: true }]);
  });
});

describe('which replicas serve', () => {
  const base = ended();
  it('the old side before the switch and while rolling back or aborting; the new side after it; no preference otherwise', () => {
    expect(servingSide(base)).toBe('previous');
    expect(servingSide({ ...base, trafficSwitchedAt: T0 })).toBe('target');
    expect(servingSide({ ...base, trafficSwitchedAt: T0, status: 'rolling_back' })).toBe('previous');
    expect(servingSide({ ...base, trafficSwitchedAt: T0, status: 'aborting' })).toBe('previous');
    expect(servingSide({ ...base, trafficSwitchedAt: T0, status: 'paused' })).toBe('target');
    expect(servingSide({ ...base, trafficSwitchedAt: T0, previousRetiredAt: T0 })).toBe('target');
    expect(servingSide({ ...base, trafficSwitchedAt: T0, previousRetiredAt: T0, status: 'rolling_back' })).toBeNull();
    expect(servingSide({ ...base, status: 'completed' })).toBeNull();
    expect(servingSide(rollout(spec()))).toBeNull();
  });

  it('marks the serving side, and every replica when that side has none ready', () => {
    const replicas = [
      { id: 'old', version: '1.0.0', live: true, ready: true },
      { id: 'new', version: '2.0.0', live: true, ready: false },
    ];
    expect(markServing(replicas, 'previous', '2.0.0').map((r) => r.serving)).toEqual([true, false]);
    expect(markServing(replicas, 'target', '2.0.0').map((r) => r.serving)).toEqual([true, true]);
    expect(markServing(replicas, null, '2.0.0').map((r) => r.serving)).toEqual([true, true]);
  });

  it('never leaves the load balancer without a live, ready replica while one exists (property)', () => {
    const replica = fc.record({ version: fc.constantFrom('1.0.0', '2.0.0', '2.1.0'), live: fc.boolean(), ready: fc.boolean() });
    fc.assert(
      fc.property(fc.array(replica, { maxLength: 12 }), fc.constantFrom('previous' as const, 'target' as const, null), (replicas, side) => {
        const marked = markServing(replicas, side, '2.0.0');
        const usable = (r: { live: boolean; ready: boolean }) => r.live && r.ready;
        if (replicas.some(usable)) expect(marked.some((r) => r.serving && usable(r))).toBe(true);
        // With a preference and a ready replica on that side, no replica of the other side serves.
        if (side !== null && marked.some((r) => usable(r) && (side === 'target') === (r.version === '2.0.0'))) {
          expect(marked.every((r) => !r.serving || (side === 'target') === (r.version === '2.0.0'))).toBe(true);
        }
      }),
    );
  });

  it('never switches before every node is done, nor retires before retireAfter (property)', () => {
    const state = fc.constantFrom(...TASK_STATES.filter((s) => s !== 'rolled_back'));
    fc.assert(
      fc.property(
        fc.array(state, { minLength: 1, maxLength: 6 }),
        fc.option(fc.integer({ min: 0, max: 60_000 }), { nil: null }),
        fc.integer({ min: 0, max: 120_000 }),
        fc.constantFrom<'running' | 'waiting_for_window'>('running', 'waiting_for_window'),
        (states, switchedMs, nowMs, status) => {
          const tasks = states.map((s, i) => ({ ...task(`n${i}`), state: s, stateSince: at(0), finishedAt: ['done', 'failed', 'skipped'].includes(s) ? at(0) : null }));
          const nodes = factsMap(tasks.map((t) => facts(t.nodeId)));
          const r = ended({ status, trafficSwitchedAt: switchedMs === null ? null : at(Math.min(switchedMs, nowMs)), spec: bgSpec({ circuitBreaker: { maxConsecutiveFailures: 10 } }) });
          const decision = decideRollout(r, tasks, nodes, at(nowMs));
          const after = tasks.map((t) => ({ ...t, ...decision.tasks.find((c) => c.id === t.id)?.changes }));
          if (decision.rollout.trafficSwitchedAt) {
            expect(after.every((t) => t.state === 'done' || t.state === 'skipped')).toBe(true);
            expect(after.some((t) => t.state === 'done')).toBe(true);
          }
          if (decision.commands.some((c) => c.kind === 'retire_previous')) {
            expect(r.trafficSwitchedAt).not.toBeNull();
            expect(at(nowMs).getTime() - (r.trafficSwitchedAt as Date).getTime()).toBeGreaterThanOrEqual(10_000);
          }
          if (after.some((t) => t.state === 'failed')) expect(decision.rollout.trafficSwitchedAt).toBeUndefined();
        },
      ),
    );
  });
});
