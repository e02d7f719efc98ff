import { describe, expect, it } from 'vitest';
import type { NodeFacts, Rollout, RolloutTask } from '../../../src/domain/rollout/model.js';
import { advanceTask, afterFailure, startTask, taskTargetVersion } from '../../../src/domain/rollout/task-machine.js';
import { at, facts, rollout, spec, T0, task } from './fixtures.js';

const migrate = rollout(spec({ drain: { timeout: '10m', nonMigratable: 'block' }, health: { timeout: '5m', minHealthyTime: '30s' } }));
const restart = { ...migrate, drainMode: 'restart' } as Rollout;
const inPlace = { ...migrate, drainMode: 'none' } as Rollout;

function step(r: Rollout, t: RolloutTask, node: NodeFacts | undefined, ms: number) {
  return advanceTask(r, t, node, at(ms));
}

describe('taskTargetVersion', () => {
  it('is the spec target going forward and the previous version going back', () => {
    expect(taskTargetVersion(migrate, task('a'))).toBe('2.0.0');
    expect(taskTargetVersion(migrate, task('a', { direction: 'rollback', fromVersion: '1.0.0' }))).toBe('1.0.0');
    expect(taskTargetVersion(migrate, task('a', { direction: 'rollback', fromVersion: null }))).toBeNull();
  });
});

describe('startTask', () => {
  it('cordons a node it will drain, and remembers that it did', () => {
    const s = startTask(migrate, task('a', { batch: 2 }), facts('a'), at(5));
    expect(s.changes).toEqual({ state: 'cordoned', stateSince: at(5), cordonedByUs: true });
    expect(s.commands).toEqual([{ kind: 'cordon', nodeId: 'a' }]);
    expect(s.events).toEqual([{ kind: 'rollout.node_started', nodeId: 'a', data: { hostname: 'host-a', batch: 2, direction: 'forward', version: '2.0.0' } }]);
  });

  it('leaves a node a person already cordoned to them: no cordon now, no enable later', () => {
    const s = startTask(migrate, task('a'), facts('a', { cordoned: true }), at(5));
    expect(s.changes).toMatchObject({ state: 'cordoned', cordonedByUs: false });
    expect(s.commands).toEqual([]);
  });

  it('installs at once when the drain mode is none', () => {
    const s = startTask(inPlace, task('a'), facts('a'), at(5));
    expect(s.changes).toEqual({ state: 'installing', stateSince: at(5) });
    expect(s.commands).toEqual([{ kind: 'set_version', nodeId: 'a', component: 'node-agent', version: '2.0.0', rollback: false }]);
  });

  it('asks for the old version, as a rollback, going back', () => {
    const s = startTask(inPlace, task('a', { direction: 'rollback', fromVersion: '1.4.2' }), facts('a'), at(5));
    expect(s.commands).toEqual([{ kind: 'set_version', nodeId: 'a', component: 'node-agent', version: '1.4.2', rollback: true }]);
    expect(s.events[0]?.data).toMatchObject({ direction: 'rollback', version: '1.4.2' });
  });
});

describe('advanceTask', () => {
  it('fails a task whose node no longer exists, whatever its state', () => {
    for (const state of ['cordoned', 'draining', 'installing', 'verifying'] as const) {
      expect(step(migrate, task('a', { state }), undefined, 1).changes).toMatchObject({ state: 'failed', lastError: 'node no longer exists', finishedAt: at(1) });
    }
  });

  describe('cordoned', () => {
    it('starts the drain in migrate mode, forced only when non-migratable instances may be stopped', () => {
      const s = step(migrate, task('a', { state: 'cordoned' }), facts('a', { cordoned: true }), 1);
      expect(s.changes).toEqual({ state: 'draining', stateSince: at(1) });
      expect(s.commands).toEqual([{ kind: 'drain', nodeId: 'a', timeoutMs: 600_000, force: false }]);
      const stop = rollout(spec({ drain: { nonMigratable: 'stop' } }));
      expect(step(stop, task('a', { state: 'cordoned' }), facts('a'), 1).commands).toMatchObject([{ kind: 'drain', force: true }]);
    });

    it('stops the instances in place in restart mode: a restart drain, never forced, nothing installed yet', () => {
      const s = step(restart, task('a', { state: 'cordoned' }), facts('a', { cordoned: true }), 1);
      expect(s.changes).toEqual({ state: 'draining', stateSince: at(1) });
      expect(s.commands).toEqual([{ kind: 'drain', nodeId: 'a', timeoutMs: 600_000, force: false, mode: 'restart' }]);
      const stopPinned = { ...rollout(spec({ drain: { nonMigratable: 'stop' } })), drainMode: 'restart' } as Rollout;
      expect(step(stopPinned, task('a', { state: 'cordoned' }), facts('a'), 1).commands).toMatchObject([{ kind: 'drain', force: false, mode: 'restart' }]);
    });

    it('installs straight away when the drain mode is none', () => {
      const s = step(inPlace, task('a', { state: 'cordoned' }), facts('a', { cordoned: true }), 1);
      expect(s.changes).toEqual({ state: 'installing', stateSince: at(1) });
      expect(s.commands).toEqual([{ kind: 'set_version', nodeId: 'a', component: 'node-agent', version: '2.0.0', rollback: false }]);
    });
  });

  describe('draining', () => {
    const draining = task('a', { state: 'draining', stateSince: T0 });

    it('waits while the drain runs, installs when it completes', () => {
      expect(step(migrate, draining, facts('a', { drainState: 'running' }), 60_000)).toEqual({ changes: {}, commands: [], events: [] });
      const done = step(migrate, draining, facts('a', { drainState: 'completed' }), 60_000);
      expect(done.changes).toEqual({ state: 'installing', stateSince: at(60_000) });
      expect(done.commands).toEqual([{ kind: 'set_version', nodeId: 'a', component: 'node-agent', version: '2.0.0', rollback: false }]);
    });

    it('fails on a failed or blocked drain, with the drain message', () => {
      expect(step(migrate, draining, facts('a', { drainState: 'failed', drainMessage: 'no room' }), 1).changes).toMatchObject({
        state: 'failed',
        lastError: 'drain failed: no room',
      });
      expect(step(migrate, draining, facts('a', { drainState: 'blocked', drainMessage: 'db-0 is pinned' }), 1).changes).toMatchObject({
        state: 'failed',
        lastError: expect.stringMatching(/drain blocked: db-0 is pinned.*nonMigratable/),
      });
    });

    it('fails a drain that vanished, 30 s after the drain timeout', () => {
      expect(step(migrate, draining, facts('a', { drainState: null }), 630_000).changes).toEqual({});
      expect(step(migrate, draining, facts('a', { drainState: null }), 630_001).changes).toMatchObject({
        state: 'failed',
        lastError: 'drain did not finish in time',
        finishedAt: at(630_001),
      });
    });
  });

  describe('installing', () => {
    const installing = task('a', { state: 'installing', stateSince: T0 });

    it('moves to verifying once the node reports the target and the install is done (or not reported)', () => {
      expect(step(migrate, installing, facts('a', { version: '2.0.0' }), 1).changes).toEqual({ state: 'verifying', stateSince: at(1), healthySince: null });
      expect(step(migrate, installing, facts('a', { version: '2.0.0', install: { version: '2.0.0', phase: 'done', at: at(1) } }), 1).changes.state).toBe('verifying');
    });

    it('starts the stopped instances again on the node, with the move to verifying, in restart mode only', () => {
      const s = step(restart, installing, facts('a', { version: '2.0.0', install: { version: '2.0.0', phase: 'done', at: at(1) } }), 1);
      expect(s.changes).toEqual({ state: 'verifying', stateSince: at(1), healthySince: null });
      expect(s.commands).toEqual([{ kind: 'restart_instances', nodeId: 'a' }]);
      expect(step(migrate, installing, facts('a', { version: '2.0.0' }), 1).commands).toEqual([]);
      expect(step(inPlace, installing, facts('a', { version: '2.0.0' }), 1).commands).toEqual([]);
      // Not before the install is done: the instances would start on the old version.
      expect(step(restart, installing, facts('a', { version: '2.0.0', install: { version: '2.0.0', phase: 'installing', at: at(1) } }), 1).commands).toEqual([]);
    });

    it('waits while the install is in progress, even if the version already shows', () => {
      for (const phase of ['downloading', 'verifying', 'installing', 'assessing'] as const) {
        expect(step(migrate, installing, facts('a', { version: '2.0.0', install: { version: '2.0.0', phase, at: at(1) } }), 1).changes).toEqual({});
      }
    });

    it('fails on a failed or reverted install, with the reason', () => {
      expect(step(migrate, installing, facts('a', { install: { version: '2.0.0', phase: 'failed', reason: 'bad signature', at: at(1) } }), 1).changes).toMatchObject({
        state: 'failed',
        lastError: 'install failed: bad signature',
      });
      expect(step(migrate, installing, facts('a', { install: { version: '2.0.0', phase: 'reverted', at: at(1) } }), 1).changes).toMatchObject({
        state: 'failed',
        lastError: 'install reverted',
      });
    });

    it('ignores a report older than the task: an earlier failure of the same version', () => {
      const stale = facts('a', { version: '1.0.0', install: { version: '2.0.0', phase: 'failed', reason: 'last week', at: at(-1) } });
      expect(step(migrate, installing, stale, 1).changes).toEqual({});
      const fresh = facts('a', { version: '1.0.0', install: { version: '2.0.0', phase: 'failed', reason: 'now', at: T0 } });
      expect(step(migrate, installing, fresh, 1).changes).toMatchObject({ state: 'failed', lastError: 'install failed: now' });
    });

    it('ignores an install report about another version (an older one)', () => {
      expect(step(migrate, installing, facts('a', { install: { version: '1.9.0', phase: 'failed', at: at(1) } }), 1).changes).toEqual({});
    });

    it('fails after health.timeout without the target version', () => {
      expect(step(migrate, installing, facts('a'), 300_000).changes).toEqual({});
      expect(step(migrate, installing, facts('a'), 300_001).changes).toMatchObject({ state: 'failed', lastError: expect.stringMatching(/within 300 s/) });
    });

    it('rolling back a first install waits for the component to be gone (no version)', () => {
      const back = task('a', { state: 'installing', direction: 'rollback', fromVersion: null, stateSince: T0 });
      expect(step(migrate, back, facts('a', { version: '2.0.0' }), 1).changes).toEqual({});
      expect(step(migrate, back, facts('a', { version: undefined }), 1).changes.state).toBe('verifying');
    });
  });

  describe('verifying', () => {
    const verifying = task('a', { state: 'verifying', stateSince: T0, cordonedByUs: true });
    const healthy = facts('a', { version: '2.0.0', cordoned: true });

    it('starts the healthy clock, then finishes after minHealthyTime and enables the node it cordoned', () => {
      expect(step(migrate, verifying, healthy, 1_000)).toEqual({ changes: { healthySince: at(1_000) }, commands: [], events: [] });
      const started = { ...verifying, healthySince: at(1_000) };
      expect(step(migrate, started, healthy, 30_999).changes).toEqual({});
      const done = step(migrate, started, healthy, 31_000);
      expect(done.changes).toEqual({ state: 'done', stateSince: at(31_000), finishedAt: at(31_000), lastError: null });
      expect(done.commands).toEqual([{ kind: 'enable', nodeId: 'a' }]);
    });

    it('does not enable a node someone else cordoned', () => {
      const started = { ...verifying, healthySince: T0, cordonedByUs: false };
      expect(step(migrate, started, healthy, 30_000).commands).toEqual([]);
    });

    it('ends a rollback task as rolled_back', () => {
      const back = task('a', { state: 'verifying', direction: 'rollback', healthySince: T0, stateSince: T0 });
      expect(step(migrate, back, facts('a', { version: '1.0.0' }), 30_000).changes.state).toBe('rolled_back');
    });

    it('finishes at once with minHealthyTime 0', () => {
      const quick = rollout(spec({ health: { minHealthyTime: 0 } }));
      expect(step(quick, verifying, healthy, 1).changes.state).toBe('done');
    });

    it('restarts the healthy clock when instances turn unhealthy, and fails after health.timeout', () => {
      const started = { ...verifying, healthySince: at(1_000) };
      const sick = { ...healthy, instancesHealthy: false };
      expect(step(migrate, started, sick, 20_000)).toEqual({ changes: { healthySince: null }, commands: [], events: [] });
      expect(step(migrate, verifying, sick, 300_000).changes).toEqual({});
      expect(step(migrate, verifying, sick, 300_001).changes).toMatchObject({ state: 'failed', lastError: 'not healthy within 300 s', healthySince: null });
    });

    it('counts a down node as unhealthy when the heartbeat check is on', () => {
      const down = { ...healthy, status: 'down' as const };
      expect(step(migrate, verifying, down, 300_001).changes.state).toBe('failed');
      const noHeartbeat = rollout(spec({ health: { checks: ['version'] } }));
      expect(step(noHeartbeat, { ...verifying, healthySince: T0 }, down, 30_000).changes.state).toBe('done');
    });

    it('ignores unhealthy instances without the instances check', () => {
      const versionOnly = rollout(spec({ health: { checks: ['version', 'heartbeat'] } }));
      expect(step(versionOnly, { ...verifying, healthySince: T0 }, { ...healthy, instancesHealthy: false }, 30_000).changes.state).toBe('done');
    });

    it('fails at once when the node went back to another version (it reverted itself)', () => {
      expect(step(migrate, verifying, facts('a', { version: '1.0.0' }), 1).changes).toMatchObject({
        state: 'failed',
        lastError: 'node reports 1.0.0 instead of 2.0.0 (reverted)',
      });
    });
  });

  it('leaves pending and finished tasks alone', () => {
    for (const state of ['pending', 'done', 'failed', 'rolled_back', 'skipped'] as const) {
      expect(step(migrate, task('a', { state }), facts('a', { version: '2.0.0' }), 10_000_000)).toEqual({ changes: {}, commands: [], events: [] });
    }
  });

  it('has a deadline in every in-flight state, so a silent node never holds the rollout (table)', () => {
    // A node that says nothing at all: no drain state, old version, no install report, unhealthy.
    const silent = facts('a', { drainState: null, instancesHealthy: false, status: 'down' });
    const deadlines = { draining: 630_000, installing: 300_000, verifying: 300_000 };
    for (const [state, deadline] of Object.entries(deadlines)) {
      const t = task('a', { state: state as RolloutTask['state'], stateSince: T0 });
      const silentFor = state === 'verifying' ? { ...silent, version: '2.0.0' } : silent;
      expect(step(migrate, t, silentFor, deadline).changes.state, state).toBeUndefined();
      expect(step(migrate, t, silentFor, deadline + 1).changes.state, state).toBe('failed');
    }
    // cordoned needs nothing from the node: it moves on at once.
    expect(step(migrate, task('a', { state: 'cordoned' }), silent, 0).changes.state).toBe('draining');
  });
});

describe('afterFailure', () => {
  it('in restart mode, starts the stopped instances again: through enable, or by themselves on a node a person cordoned', () => {
    expect(afterFailure(restart, task('a', { state: 'failed', fromVersion: '1.0.0', cordonedByUs: true }))).toEqual([
      { kind: 'set_version', nodeId: 'a', component: 'node-agent', version: '1.0.0', rollback: true },
      { kind: 'enable', nodeId: 'a' },
    ]);
    expect(afterFailure(restart, task('a', { state: 'failed', fromVersion: '1.0.0', cordonedByUs: false }))).toEqual([
      { kind: 'set_version', nodeId: 'a', component: 'node-agent', version: '1.0.0', rollback: true },
      { kind: 'restart_instances', nodeId: 'a' },
    ]);
  });

  it('sends a failed node back to its previous version as a rollback, and enables it', () => {
    expect(afterFailure(migrate, task('a', { state: 'failed', fromVersion: '1.0.0', cordonedByUs: true }))).toEqual([
      { kind: 'set_version', nodeId: 'a', component: 'node-agent', version: '1.0.0', rollback: true },
      { kind: 'enable', nodeId: 'a' },
    ]);
  });

  it('removes a first install again (version null)', () => {
    expect(afterFailure(inPlace, task('a', { state: 'failed', fromVersion: null }))).toEqual([
      { kind: 'set_version', nodeId: 'a', component: 'node-agent', version: null, rollback: true },
    ]);
  });

  it('leaves the version with onNodeFailure leave, and does not enable a node it did not cordon', () => {
    const leave = rollout(spec({ onNodeFailure: 'leave' }));
    expect(afterFailure(leave, task('a', { state: 'failed', cordonedByUs: true }))).toEqual([{ kind: 'enable', nodeId: 'a' }]);
    expect(afterFailure(leave, task('a', { state: 'failed', cordonedByUs: false }))).toEqual([]);
  });

  it('does not roll back a failed rollback task again', () => {
    expect(afterFailure(migrate, task('a', { state: 'failed', direction: 'rollback', cordonedByUs: true }))).toEqual([{ kind: 'enable', nodeId: 'a' }]);
  });
});
