import { describe, expect, it } from 'vitest';
import { decideRollout } from '../../../src/domain/rollout/decide.js';
import { HOOK_REPORT_GRACE_MS, type HookRunFact } from '../../../src/domain/rollout/hooks.js';
import type { Rollout, RolloutTask } from '../../../src/domain/rollout/model.js';
import type { HookRuns } from '../../../src/domain/rollout/node-hooks.js';
import { advanceTask, startTask } from '../../../src/domain/rollout/task-machine.js';
import { at, facts, factsMap, rollout, spec, task } from './fixtures.js';

const hooks = {
  preRollout: [{ webhook: 'http://127.0.0.1:9/open', timeout: '10s' }],
  preNode: [{ run: ['/bin/stop-services'], timeout: '1m', env: { SERVICE: 'web' } }, { run: ['/bin/second'], timeout: '1m' }],
  postNode: [{ run: ['/bin/uncordon'], timeout: '30s' }],
  postRollout: [{ webhook: 'http://127.0.0.1:9/close' }],
};
const withHooks = rollout(spec({ drain: { mode: 'migrate' }, health: { minHealthyTime: '10s', timeout: '5m' } }, { hooks }));
const inPlace: Rollout = { ...withHooks, drainMode: 'none' };

function journal(...runs: (Partial<HookRunFact> & { id: string })[]): HookRuns {
  const byId = new Map(runs.map((r) => [r.id, { attempt: 1, status: 'succeeded', requestedAt: at(0), startedAt: at(0), reason: null, ...r } as HookRunFact]));
  return (id) => byId.get(id);
}

const inPre = (over: Partial<RolloutTask> = {}) => task('a', { state: 'pre_node_hooks', stateSince: at(0), cordonedByUs: true, ...over });

describe('node hooks in the task machine', () => {
  it('runs preNode hooks after the drain, before the install: the drained node waits in pre_node_hooks', () => {
    const drained = advanceTask(withHooks, task('a', { state: 'draining', stateSince: at(0) }), facts('a', { drainState: 'completed' }), at(1_000));
    expect(drained.changes).toEqual({ state: 'pre_node_hooks', stateSince: at(1_000) });
    expect(drained.commands).toEqual([]);
    // Without a drain, too: straight from the start.
    expect(startTask(inPlace, task('a'), facts('a'), at(5)).changes).toEqual({ state: 'pre_node_hooks', stateSince: at(5) });
  });

  it('asks for the first preNode hook with a deterministic id and the DRYDOCK_* environment plus its own', () => {
    const s = advanceTask(withHooks, inPre(), facts('a'), at(1_000));
    expect(s.changes).toEqual({});
    expect(s.hooks).toEqual([
      {
        kind: 'start',
        id: 'ro-1/a/preNode/0',
        rolloutId: 'ro-1',
        nodeId: 'a',
        point: 'preNode',
        index: 0,
        attempt: 1,
        hook: { run: ['/bin/stop-services'], timeout: 60_000, continueOnError: false, env: { SERVICE: 'web' } },
        env: {
          SERVICE: 'web',
          DRYDOCK_HOOK_ID: 'ro-1/a/preNode/0',
          DRYDOCK_ROLLOUT_ID: 'ro-1',
          DRYDOCK_NODE: 'host-a',
          DRYDOCK_NODE_ID: 'a',
          DRYDOCK_COMPONENT: 'node-agent',
          DRYDOCK_FROM_VERSION: '1.0.0',
          DRYDOCK_TO_VERSION: '2.0.0',
          DRYDOCK_PHASE: 'preNode',
        },
      },
    ]);
  });

  it('runs the hooks of a point one at a time, in order, then installs', () => {
    const first = journal({ id: 'ro-1/a/preNode/0', status: 'running' });
    expect(advanceTask(withHooks, inPre(), facts('a'), at(2_000), first)).toMatchObject({ changes: {}, commands: [] });
    expect(advanceTask(withHooks, inPre(), facts('a'), at(2_000), first).hooks).toBeUndefined();
    const second = advanceTask(withHooks, inPre(), facts('a'), at(2_000), journal({ id: 'ro-1/a/preNode/0' }));
    expect(second.hooks?.map((h) => h.id)).toEqual(['ro-1/a/preNode/1']);
    const both = journal({ id: 'ro-1/a/preNode/0' }, { id: 'ro-1/a/preNode/1' });
    const install = advanceTask(withHooks, inPre(), facts('a'), at(3_000), both);
    expect(install.changes).toEqual({ state: 'installing', stateSince: at(3_000) });
    expect(install.commands).toEqual([{ kind: 'set_version', nodeId: 'a', component: 'node-agent', version: '2.0.0', rollback: false }]);
  });

  it('fails the task on a failed hook, naming the hook and why; continueOnError goes on', () => {
    const failed = journal({ id: 'ro-1/a/preNode/0', status: 'failed', reason: 'exit code 3' });
    const s = advanceTask(withHooks, inPre(), facts('a'), at(2_000), failed);
    expect(s.changes).toMatchObject({ state: 'failed', finishedAt: at(2_000), lastError: 'preNode hook 0 (/bin/stop-services) failed: exit code 3' });
    const lenient: Rollout = { ...withHooks, spec: spec({}, { hooks: { preNode: [{ run: ['/bin/x'], continueOnError: true }, { run: ['/bin/y'] }] } }) };
    const goesOn = advanceTask(lenient, inPre(), facts('a'), at(2_000), failed);
    expect(goesOn.changes).toEqual({});
    expect(goesOn.hooks?.map((h) => h.id)).toEqual(['ro-1/a/preNode/1']);
  });

  it('gives up on a run that has not finished by its timeout plus the grace: expired, and the task fails', () => {
    const stuck = journal({ id: 'ro-1/a/preNode/0', status: 'running', startedAt: at(0) });
    expect(advanceTask(withHooks, inPre(), facts('a'), at(60_000 + HOOK_REPORT_GRACE_MS), stuck).changes).toEqual({});
    const late = advanceTask(withHooks, inPre(), facts('a'), at(60_001 + HOOK_REPORT_GRACE_MS), stuck);
    expect(late.changes).toMatchObject({ state: 'failed' });
    expect(late.hooks).toEqual([{ kind: 'expire', id: 'ro-1/a/preNode/0', nodeId: 'a', reason: expect.stringMatching(/no result within 60 s/) }]);
  });

  it('runs postNode hooks after the health gate and enables the node only after them', () => {
    const verifying = task('a', { state: 'verifying', stateSince: at(0), healthySince: at(0), cordonedByUs: true });
    const gate = advanceTask(withHooks, verifying, facts('a', { version: '2.0.0' }), at(10_000));
    expect(gate.changes).toEqual({ state: 'post_node_hooks', stateSince: at(10_000) });
    expect(gate.commands).toEqual([]);
    const inPost = task('a', { state: 'post_node_hooks', stateSince: at(10_000), cordonedByUs: true });
    expect(advanceTask(withHooks, inPost, facts('a', { version: '2.0.0' }), at(11_000)).hooks?.map((h) => h.id)).toEqual(['ro-1/a/postNode/0']);
    const done = advanceTask(withHooks, inPost, facts('a', { version: '2.0.0' }), at(12_000), journal({ id: 'ro-1/a/postNode/0' }));
    expect(done.changes).toEqual({ state: 'done', stateSince: at(12_000), finishedAt: at(12_000), lastError: null });
    expect(done.commands).toEqual([{ kind: 'enable', nodeId: 'a' }]);
  });

  it('gives a rollback pass its own run ids and the versions the other way round', () => {
    const back = advanceTask(withHooks, inPre({ direction: 'rollback' }), facts('a'), at(1_000));
    expect(back.hooks?.[0]).toMatchObject({ id: 'ro-1/a/rollback/preNode/0', env: { DRYDOCK_FROM_VERSION: '2.0.0', DRYDOCK_TO_VERSION: '1.0.0' } });
  });

  it('a spec without hooks never enters a hook state', () => {
    const plain = rollout(spec({ health: { minHealthyTime: '0s' } }));
    expect(advanceTask(plain, task('a', { state: 'draining' }), facts('a', { drainState: 'completed' }), at(1)).changes).toMatchObject({ state: 'installing' });
    expect(advanceTask(plain, task('a', { state: 'verifying', healthySince: at(0) }), facts('a', { version: '2.0.0' }), at(1)).changes).toMatchObject({ state: 'done' });
  });
});

describe('rollout hooks in decideRollout', () => {
  const tasks = [task('a', { batch: 0 }), task('b', { batch: 1 })];
  const nodes = factsMap([facts('a'), facts('b')]);
  const twoBatches: Rollout = { ...withHooks, batchCount: 2 };

  it('runs preRollout before the first batch: no node starts until it succeeded', () => {
    const d = decideRollout(twoBatches, tasks, nodes, at(0));
    expect(d.hooks?.map((h) => [h.kind, h.id])).toEqual([['start', 'ro-1/-/preRollout/0']]);
    expect(d.hooks?.[0]).toMatchObject({ nodeId: null, env: { DRYDOCK_NODE: '', DRYDOCK_PHASE: 'preRollout', DRYDOCK_TO_VERSION: '2.0.0' } });
    expect(d.rollout.currentBatch).toBeUndefined();
    expect(d.tasks).toEqual([]);
    const running = decideRollout(twoBatches, tasks, nodes, at(1_000), new Set(), journal({ id: 'ro-1/-/preRollout/0', status: 'running' }));
    expect([running.hooks, running.rollout.currentBatch, running.requeueAfterMs]).toEqual([undefined, undefined, 1_000]);
    const passed = decideRollout(twoBatches, tasks, nodes, at(2_000), new Set(), journal({ id: 'ro-1/-/preRollout/0' }));
    expect(passed.rollout.currentBatch).toBe(0);
    expect(passed.tasks.map((t) => [t.id, t.changes.state])).toEqual([['ro-1/a', 'cordoned']]);
  });

  it('a failed preRollout fails the rollout before any node moved, every task skipped with the reason', () => {
    const d = decideRollout(twoBatches, tasks, nodes, at(2_000), new Set(), journal({ id: 'ro-1/-/preRollout/0', status: 'failed', reason: 'HTTP 500' }));
    expect(d.rollout).toMatchObject({ status: 'failed' });
    expect(d.tasks.map((t) => [t.id, t.changes.state])).toEqual([['ro-1/a', 'skipped'], ['ro-1/b', 'skipped']]);
    expect(d.events).toEqual([{ kind: 'rollout.failed', data: { reason: 'preRollout hook 0 (POST http://127.0.0.1:9/open) failed: HTTP 500', failed_nodes: [], done: 0, failed: 0 } }]);
    expect(d.commands).toEqual([]);
  });

  it('runs postRollout after the last batch, and completes only after it', () => {
    const end: Rollout = { ...twoBatches, currentBatch: 1, batchStartedAt: at(0) };
    const finished = [task('a', { state: 'done', finishedAt: at(1) }), task('b', { batch: 1, state: 'done', finishedAt: at(2) })];
    const pre = journal({ id: 'ro-1/-/preRollout/0' });
    const d = decideRollout(end, finished, nodes, at(3_000), new Set(), pre);
    expect(d.hooks?.map((h) => h.id)).toEqual(['ro-1/-/postRollout/0']);
    expect(d.rollout.status).toBeUndefined();
    const after = decideRollout({ ...end, batchFinishedAt: at(3_000) }, finished, nodes, at(4_000), new Set(), journal({ id: 'ro-1/-/preRollout/0' }, { id: 'ro-1/-/postRollout/0' }));
    expect(after.rollout.status).toBe('completed');
    const failedPost = decideRollout({ ...end, batchFinishedAt: at(3_000) }, finished, nodes, at(4_000), new Set(), journal({ id: 'ro-1/-/postRollout/0', status: 'failed', reason: 'timed out after 60 s' }));
    expect(failedPost.rollout.status).toBe('failed');
    expect(failedPost.events.at(-1)?.data.reason).toMatch(/postRollout hook 0 .* failed: timed out/);
  });

  it('a failed node hook fails its task, which the breaker counts', () => {
    const breaker: Rollout = { ...withHooks, spec: spec({ circuitBreaker: { maxConsecutiveFailures: 2 } }, { hooks: { preNode: [{ run: ['/bin/x'] }] } }), currentBatch: 0, batchCount: 2, batchStartedAt: at(0) };
    const list = [
      task('a', { state: 'failed', finishedAt: at(1), lastError: 'preNode hook 0 (/bin/x) failed: exit code 1' }),
      task('b', { state: 'pre_node_hooks', stateSince: at(0), cordonedByUs: true }),
      task('c', { batch: 1 }),
    ];
    const runs = journal({ id: 'ro-1/b/preNode/0', status: 'failed', reason: 'exit code 1' });
    const d = decideRollout(breaker, list, factsMap([facts('a'), facts('b'), facts('c')]), at(5_000), new Set(), runs);
    expect(d.tasks.find((t) => t.id === 'ro-1/b')?.changes.state).toBe('failed');
    expect(d.rollout.status).toBe('awaiting_decision');
    expect(d.events.map((e) => e.kind)).toContain('rollout.circuit_breaker_tripped');
  });

  it('an orphaned operator run (its leader died) is started again with the next attempt', () => {
    const d = decideRollout(twoBatches, tasks, nodes, at(1_000), new Set(), journal({ id: 'ro-1/-/preRollout/0', status: 'running', orphaned: true }));
    expect(d.hooks).toMatchObject([{ kind: 'start', id: 'ro-1/-/preRollout/0', attempt: 2 }]);
  });
});
