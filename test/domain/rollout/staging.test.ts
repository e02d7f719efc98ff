// Reboot-class components (DESIGN.md §12): the new OS image is staged on the node while it still
// serves, before the cordon; the drain then lasts only as long as the install and its reboot.
import { describe, expect, it } from 'vitest';
import type { NodeFacts, RolloutTask } from '../../../src/domain/rollout/model.js';
import { advanceTask, startTask } from '../../../src/domain/rollout/task-machine.js';
import { at, facts, rollout, spec, task, T0 } from './fixtures.js';

const TARGETS = [
  { component: 'os', version: '2.0.0' },
  { component: 'web', version: '2.0.0' },
];
const r0 = (prestage: string[] = ['os']) => rollout(spec({ health: { minHealthyTime: '0s', timeout: '1m' } }, { target: undefined, targets: TARGETS }), { drainMode: 'migrate', currentBatch: 0, prestage });
const t0 = (): RolloutTask => task('a', { fromVersion: '1.0.0', fromVersions: { web: '1.0.0' } });
function node(os: string, install?: NonNullable<NodeFacts['install']>, over: Partial<NodeFacts> = {}): NodeFacts {
  return facts('a', {
    version: os,
    install,
    components: { os: { version: os, install }, web: { version: '1.0.0', install: undefined } },
    ...over,
  });
}

describe('staging a reboot-class image before the drain', () => {
  it('asks for the image to be staged first, and cordons only once the node reports it staged', () => {
    const r = r0();
    const started = startTask(r, t0(), node('1.0.0'), T0);
    expect(started.changes).toMatchObject({ state: 'staging' });
    expect(started.commands).toEqual([{ kind: 'set_version', nodeId: 'a', component: 'os', version: '2.0.0', rollback: false, prestage: true }]);
    expect(started.events.map((e) => e.kind)).toEqual(['rollout.node_started']);
    const staging = { ...t0(), ...started.changes } as RolloutTask;

    // Downloading: wait. An older `staged` report (before this task asked) does not count.
    expect(advanceTask(r, staging, node('1.0.0', { version: '2.0.0', phase: 'downloading', at: at(1) }), at(2)).commands).toEqual([]);
    expect(advanceTask(r, { ...staging, stateSince: at(5) }, node('1.0.0', { version: '2.0.0', phase: 'staged', at: at(1) }), at(6)).commands).toEqual([]);

    const staged = advanceTask(r, staging, node('1.0.0', { version: '2.0.0', phase: 'staged', at: at(3) }), at(4));
    expect(staged.changes).toMatchObject({ state: 'cordoned', cordonedByUs: true });
    expect(staged.commands).toEqual([{ kind: 'cordon', nodeId: 'a' }]);

    // After the drain the install is asked for again, without prestage: the agent reboots into it.
    const draining = { ...staging, state: 'draining' as const, stateSince: at(10) };
    const install = advanceTask(r, draining, node('1.0.0', { version: '2.0.0', phase: 'staged', at: at(3) }, { drainState: 'completed' }), at(11));
    expect(install.changes).toMatchObject({ state: 'installing', step: 0 });
    expect(install.commands).toEqual([{ kind: 'set_version', nodeId: 'a', component: 'os', version: '2.0.0', rollback: false }]);
  });

  it('fails the task when staging fails or never finishes, before anything was drained', () => {
    const r = r0();
    const staging = { ...t0(), state: 'staging' as const, stateSince: T0 };
    const failed = advanceTask(r, staging, node('1.0.0', { version: '2.0.0', phase: 'failed', reason: 'bad signature', retryable: false, at: at(1) }), at(2));
    expect(failed.changes).toMatchObject({ state: 'failed', lastError: 'pre-staging os 2.0.0 failed: bad signature' });
    const late = advanceTask(r, staging, node('1.0.0'), at(61_000));
    expect(late.changes).toMatchObject({ state: 'failed', lastError: 'pre-staging did not finish within 60 s' });
  });

  it('stages nothing when no target reboots, when the node runs the image already, or going back', () => {
    expect(startTask(r0([]), t0(), node('1.0.0'), T0).changes).toMatchObject({ state: 'cordoned' });
    expect(startTask(r0(), t0(), node('2.0.0'), T0).changes).toMatchObject({ state: 'cordoned' });
    expect(startTask(r0(), { ...t0(), direction: 'rollback' }, node('2.0.0'), T0).changes).toMatchObject({ state: 'cordoned' });
  });
});
