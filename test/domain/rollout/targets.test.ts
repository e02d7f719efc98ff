// Several components in one drain (DESIGN.md §12, spec `targets`): installed in order inside
// one cordon/drain/verify per node, returned in reverse order.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decideRollout } from '../../../src/domain/rollout/decide.js';
import type { NodeFacts, RolloutTask } from '../../../src/domain/rollout/model.js';
import { parseRolloutSpec, rolloutTargets } from '../../../src/domain/rollout/spec.js';
import { advanceTask, afterFailure, startTask, taskInstalls } from '../../../src/domain/rollout/task-machine.js';
import { planBatches } from '../../../src/domain/rollout/batches.js';
import { at, facts, fleet, rollout, spec, task, T0 } from './fixtures.js';

const TARGETS = [
  { component: 'os-image', version: '2024.4.0' },
  { component: 'hypervisor', version: '9.0.0' },
  { component: 'node-agent', version: '2.0.0' },
];
const twoSpec = () => spec({ health: { minHealthyTime: '0s' } }, { target: undefined, targets: TARGETS });
const r0 = () => rollout(twoSpec(), { drainMode: 'none', currentBatch: 0 });
const from = { hypervisor: '8.0.0', 'node-agent': '1.0.0' };
/** The node's versions and the latest install per component (reported at `ms`). */
function node(versions: Record<string, string>, ms = 10, over: Partial<NodeFacts> = {}): NodeFacts {
  const components = Object.fromEntries(
    Object.entries(versions).map(([component, version]) => [component, { version, install: { version, phase: 'done' as const, at: at(ms) } }]),
  );
  return facts('a', { version: versions['os-image'], components, ...over });
}
const OLD = { 'os-image': '2023.1.0', hypervisor: '8.0.0', 'node-agent': '1.0.0' };

describe('targets in the spec', () => {
  it('normalizes one target and several alike, and refuses what cannot work', () => {
    const one = parseRolloutSpec({ name: 'x', target: { component: 'node-agent', version: '2.0.0' } });
    expect(one.ok && [one.spec.target, one.spec.targets]).toEqual([{ component: 'node-agent', version: '2.0.0' }, [{ component: 'node-agent', version: '2.0.0' }]]);
    expect(rolloutTargets(twoSpec())).toEqual(TARGETS);
    expect(twoSpec().target).toEqual(TARGETS[0]);
    const refused = (input: Record<string, unknown>) => {
      const parsed = parseRolloutSpec({ name: 'x', ...input });
      return parsed.ok ? [] : parsed.issues.map((i) => `${i.path}: ${i.message}`);
    };
    expect(refused({ target: TARGETS[0], targets: TARGETS })).toEqual(['target: give target (one component) or targets (several), exactly one of them']);
    expect(refused({})).toEqual(['target: give target (one component) or targets (several), exactly one of them']);
    expect(refused({ targets: [TARGETS[0], TARGETS[0]] })).toEqual(['targets: each component at most once']);
    expect(refused({ targets: [] })[0]).toMatch(/^targets: /);
    expect(refused({ targets: [TARGETS[2], { component: 'operator', version: '2.0.0' }] })).toEqual([
      'targets: the operator component is rolled out alone (its rollouts migrate the schema and move the control plane)',
    ]);
  });

  it('skips only nodes that run every target already', () => {
    const nodes = fleet(2);
    const done = new Set([nodes[0]?.id]);
    const plan = planBatches(twoSpec(), nodes, () => '2024.4.0', (n) => done.has(n.id));
    expect(plan.skipped.map((n) => n.id)).toEqual([nodes[0]?.id]);
  });
});

describe('a task with several targets', () => {
  const t = (): RolloutTask => task('a', { fromVersion: '2023.1.0', fromVersions: from });

  it('installs them in order inside one drain: the next only once the node reports the previous', () => {
    const r = r0();
    const started = startTask(r, t(), node(OLD), T0);
    expect(started.changes).toMatchObject({ state: 'installing', step: 0 });
    expect(started.commands).toEqual([{ kind: 'set_version', nodeId: 'a', component: 'os-image', version: '2024.4.0', rollback: false }]);
    expect(started.events[0]?.data.targets).toEqual(['os-image 2023.1.0 → 2024.4.0', 'hypervisor 8.0.0 → 9.0.0', 'node-agent 1.0.0 → 2.0.0']);

    let task: RolloutTask = { ...t(), ...started.changes } as RolloutTask;
    // Still on the old image: waits.
    expect(advanceTask(r, task, node(OLD), at(5)).commands).toEqual([]);
    const second = advanceTask(r, task, node({ ...OLD, 'os-image': '2024.4.0' }), at(20));
    expect(second.changes).toMatchObject({ state: 'installing', step: 1, stateSince: at(20) });
    expect(second.commands).toEqual([{ kind: 'set_version', nodeId: 'a', component: 'hypervisor', version: '9.0.0', rollback: false }]);
    task = { ...task, ...second.changes } as RolloutTask;
    // Still on the old hypervisor: waits.
    expect(advanceTask(r, task, node({ ...OLD, 'os-image': '2024.4.0' }, 10), at(25)).commands).toEqual([]);
    const third = advanceTask(r, task, node({ ...OLD, 'os-image': '2024.4.0', hypervisor: '9.0.0' }, 30), at(30));
    expect(third.commands).toEqual([{ kind: 'set_version', nodeId: 'a', component: 'node-agent', version: '2.0.0', rollback: false }]);
    task = { ...task, ...third.changes } as RolloutTask;
    const all = { 'os-image': '2024.4.0', hypervisor: '9.0.0', 'node-agent': '2.0.0' };
    const verifying = advanceTask(r, task, node(all, 40), at(40));
    expect(verifying.changes).toMatchObject({ state: 'verifying' });
    task = { ...task, ...verifying.changes } as RolloutTask;
    // A component that went back on its own fails the health gate, naming it.
    const reverted = advanceTask(r, task, node({ ...all, hypervisor: '8.0.0' }, 50), at(50));
    expect(reverted.changes).toMatchObject({ state: 'failed', lastError: 'node reports hypervisor 8.0.0 instead of 9.0.0 (reverted)' });
    expect(advanceTask(r, task, node(all, 50), at(50)).changes).toMatchObject({ state: 'done' });
  });

  it('a failed install sends back every component asked for so far, the last one first', () => {
    const r = r0();
    const task: RolloutTask = { ...t(), state: 'installing', step: 1 };
    const failed = advanceTask(r, task, { ...node({ ...OLD, 'os-image': '2024.4.0' }), components: { ...node({ ...OLD, 'os-image': '2024.4.0' }).components, hypervisor: { version: '8.0.0', install: { version: '9.0.0', phase: 'reverted', reason: 'boom', at: at(10) } } } }, at(10));
    expect(failed.changes).toMatchObject({ state: 'failed', lastError: 'install reverted: boom' });
    expect(afterFailure(r, { ...task, ...failed.changes } as RolloutTask)).toEqual([
      { kind: 'set_version', nodeId: 'a', component: 'hypervisor', version: '8.0.0', rollback: true },
      { kind: 'set_version', nodeId: 'a', component: 'os-image', version: '2023.1.0', rollback: true },
    ]);
  });

  it('goes back in reverse order, to the versions before the rollout', () => {
    const r = r0();
    const back: RolloutTask = { ...t(), direction: 'rollback' };
    expect(taskInstalls(r, back)).toEqual([
      { component: 'node-agent', version: '1.0.0', from: '2.0.0' },
      { component: 'hypervisor', version: '8.0.0', from: '9.0.0' },
      { component: 'os-image', version: '2023.1.0', from: '2024.4.0' },
    ]);
    expect(startTask(r, back, node(OLD), T0).commands).toEqual([{ kind: 'set_version', nodeId: 'a', component: 'node-agent', version: '1.0.0', rollback: true }]);
  });

  it('a rollout with one cordon, installs in order and one enable per node (property: every order of reports)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 3, maxLength: 12 }), (reports) => {
        // The node reports the components in an arbitrary order; the task asks one at a time.
        const r = rollout(twoSpec(), { drainMode: 'migrate', currentBatch: 0 });
        const versions: Record<string, string> = { ...OLD };
        let task: RolloutTask = t();
        const asked: string[] = [];
        let now = 1;
        const apply = (step: ReturnType<typeof advanceTask>) => {
          task = { ...task, ...step.changes } as RolloutTask;
          for (const c of step.commands) if (c.kind === 'set_version') asked.push(c.component);
          return step;
        };
        const facts = () => ({ ...node(versions, now), drainState: 'completed' as const });
        apply(startTask(r, task, facts(), at(now)));
        for (const i of [...reports, 0, 1, 2, 0, 1, 2]) {
          now += 10;
          const target = TARGETS[i] as { component: string; version: string };
          // Only a component the task asked for is installed by the agent.
          if (asked.includes(target.component)) versions[target.component] = target.version;
          apply(advanceTask(r, task, facts(), at(now)));
        }
        expect(asked).toEqual(['os-image', 'hypervisor', 'node-agent']);
      }),
    );
  });
});

describe('decideRollout with several targets', () => {
  it('waits for every asked component to be back before the next batch after a failure', () => {
    const s = spec({ batch: { size: 1 }, circuitBreaker: { maxConsecutiveFailures: 5 } }, { target: undefined, targets: TARGETS });
    const r = rollout(s, { drainMode: 'none', currentBatch: 0, batchCount: 2 });
    const failed: RolloutTask = { ...task('a', { fromVersion: '2023.1.0', fromVersions: from }), state: 'failed', step: 1, finishedAt: at(10), stateSince: at(10) };
    const pending = task('b', { batch: 1, fromVersion: '2023.1.0', fromVersions: from });
    const stillNew = new Map([
      ['a', node({ ...OLD, hypervisor: '9.0.0' })],
      ['b', { ...node(OLD), id: 'b' }],
    ]);
    expect(decideRollout(r, [failed, pending], stillNew, at(20)).rollout.currentBatch).toBeUndefined();
    const back = new Map([
      ['a', node(OLD)],
      ['b', { ...node(OLD), id: 'b' }],
    ]);
    expect(decideRollout(r, [failed, pending], back, at(20)).rollout.currentBatch).toBe(1);
  });
});
