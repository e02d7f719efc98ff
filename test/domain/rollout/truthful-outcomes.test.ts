// DESIGN.md §8.8 and §9 in the pure core: a downgrade is caught by preflight unless the spec
// allows it (and then the agent is told it is explicit), and a version that is gone is never
// asked for — the rollback fails the node at once, saying why, and leaves its desired state.
import { describe, expect, it } from 'vitest';
import { decideRollout } from '../../../src/domain/rollout/decide.js';
import { isOlderVersion } from '../../../src/domain/rollout/downgrade.js';
import { planRollout } from '../../../src/domain/rollout/plan.js';
import { runPreflight } from '../../../src/domain/rollout/preflight.js';
import { rollbackNeeds, unavailableRollbackVersions } from '../../../src/domain/rollout/rollback-needs.js';
import type { RolloutSpec } from '../../../src/domain/rollout/spec.js';
import { advanceTask, afterFailure, startTask } from '../../../src/domain/rollout/task-machine.js';
import { at, facts, factsMap, fleetNode, rollout, spec, T0, task } from './fixtures.js';

const downgradeSpec = (allowDowngrade?: boolean) => spec({ drain: { mode: 'none' } }, allowDowngrade === undefined ? {} : { allowDowngrade });

function preflightFor(s: RolloutSpec, versions: Record<string, string | undefined>) {
  const nodes = Object.keys(versions).map((id) => fleetNode(id));
  const currentVersion = (n: { id: string }) => versions[n.id];
  const plan = planRollout({ spec: s, nodes, instances: [], deployments: [], currentVersion, disruptive: false });
  const targets = plan.batches.flatMap((b) => b.nodes);
  const report = runPreflight({
    spec: s,
    plan,
    nodes,
    instances: [],
    deployments: [],
    artifact: { lifecycle: 'blessed', signed: true },
    rollbackArtifacts: new Map(Object.values(versions).filter((v): v is string => v !== undefined).map((v) => [v, 'blessed'])),
    fromVersions: new Map(targets.map((n) => [n.id, versions[n.id]])),
    activeRolloutNodes: [],
    compatRules: [],
    running: new Map(),
    overrides: [],
  });
  return { report, check: report.checks.find((c) => c.id === 'downgrade') };
}

describe('allowDowngrade', () => {
  it('defaults to false in the spec', () => {
    expect(spec().allowDowngrade).toBe(false);
    expect(spec({}, { allowDowngrade: true }).allowDowngrade).toBe(true);
  });

  it('orders versions like the agent: semver only, anything else is never older', () => {
    expect(isOlderVersion('2.0.0', '3.0.0')).toBe(true);
    expect(isOlderVersion('2.0.0-rc.1', '2.0.0')).toBe(true);
    expect(isOlderVersion('3.0.0', '2.0.0')).toBe(false);
    expect(isOlderVersion('2.0.0', '2.0.0')).toBe(false);
    expect(isOlderVersion('2.0.0', 'test')).toBe(false);
  });

  it('preflight fails `downgrade` listing each node and its versions when the target is older and the spec does not allow it', () => {
    const { report, check } = preflightFor(downgradeSpec(), { a: '3.0.0', b: '1.0.0', c: '2.5.1', d: undefined });
    expect(check).toMatchObject({ status: 'fail', objects: ['host-a 3.0.0 → 2.0.0', 'host-c 2.5.1 → 2.0.0'] });
    expect(check?.message).toContain('allowDowngrade: true');
    expect(report.blocked).toBe(true);
  });

  it('preflight warns (and does not block) when the spec allows the downgrade, and passes an upgrade', () => {
    const allowed = preflightFor(downgradeSpec(true), { a: '3.0.0', b: '1.0.0' });
    expect(allowed.check).toMatchObject({ status: 'warn', objects: ['host-a 3.0.0 → 2.0.0'] });
    expect(allowed.report.checks.filter((c) => c.status === 'fail')).toEqual([]);
    expect(preflightFor(downgradeSpec(), { a: '1.0.0', b: '1.5.0' }).check?.status).toBe('pass');
  });

  it('a forward task to a lower version is installed as an explicit downgrade only when the spec allows it, and says so in its event', () => {
    for (const [allow, expected] of [
      [true, { rollback: true, downgrade: true }],
      [false, { rollback: false }],
    ] as const) {
      const r = rollout(downgradeSpec(allow), { drainMode: 'none' });
      const step = startTask(r, task('a', { fromVersion: '3.0.0' }), facts('a', { version: '3.0.0' }), T0);
      expect(step.commands).toEqual([{ kind: 'set_version', nodeId: 'a', component: 'node-agent', version: '2.0.0', ...expected }]);
      expect(step.events[0]?.data).toEqual({
        hostname: 'host-a',
        batch: 0,
        direction: 'forward',
        version: '2.0.0',
        ...(allow ? { downgrade: true, from_version: '3.0.0' } : {}),
      });
    }
    // An upgrade is never marked, allowed or not.
    const up = startTask(rollout(downgradeSpec(true), { drainMode: 'none' }), task('a', { fromVersion: '1.0.0' }), facts('a'), T0);
    expect(up.commands).toEqual([{ kind: 'set_version', nodeId: 'a', component: 'node-agent', version: '2.0.0', rollback: false }]);
  });

  it('the rollout’s rollback of a downgrade returns the node to its previous, higher version', () => {
    const r = rollout(downgradeSpec(true), { status: 'rolling_back', drainMode: 'none' });
    const d = decideRollout(r, [task('a', { state: 'done', finishedAt: at(1), fromVersion: '3.0.0' })], factsMap([facts('a', { version: '2.0.0' })]), at(10));
    expect(d.commands).toEqual([{ kind: 'set_version', nodeId: 'a', component: 'node-agent', version: '3.0.0', rollback: true }]);
    // …and a failed downgrade goes back there by itself.
    const failed = task('a', { state: 'failed', fromVersion: '3.0.0' });
    expect(afterFailure(r, failed)).toEqual([{ kind: 'set_version', nodeId: 'a', component: 'node-agent', version: '3.0.0', rollback: true }]);
  });

  it('a refused downgrade fails the task with the agent’s reason', () => {
    const r = rollout(downgradeSpec(), { drainMode: 'none' });
    const installing = task('a', { state: 'installing', stateSince: at(0), fromVersion: '3.0.0' });
    const refused = facts('a', { version: '3.0.0', install: { version: '2.0.0', phase: 'failed', reason: 'downgrade from 3.0.0 to 2.0.0 refused', at: at(1) } });
    expect(advanceTask(r, installing, refused, at(2)).changes).toMatchObject({ state: 'failed', lastError: 'install failed: downgrade from 3.0.0 to 2.0.0 refused' });
  });
});

describe('versions that are gone', () => {
  it('rollbackNeeds lists the previous version of every node done or in flight, not pending, skipped or failed ones', () => {
    const tasks = [
      task('a', { state: 'done', fromVersion: '1.0.0' }),
      task('b', { state: 'installing', fromVersion: '1.1.0' }),
      task('c', { state: 'done', fromVersion: '1.0.0', hostname: 'host-0c' }),
      task('d', { state: 'pending', fromVersion: '0.9.0' }),
      task('e', { state: 'failed', fromVersion: '0.8.0' }),
      task('f', { state: 'skipped', fromVersion: null }),
      task('g', { state: 'done', fromVersion: null }),
    ];
    expect(rollbackNeeds(tasks)).toEqual([
      { version: '1.0.0', nodes: ['host-0c', 'host-a'] },
      { version: '1.1.0', nodes: ['host-b'] },
    ]);
    const lifecycle: Record<string, string> = { '1.0.0': 'archived' };
    expect(unavailableRollbackVersions(rollbackNeeds(tasks), (v) => lifecycle[v])).toEqual([
      { version: '1.0.0', nodes: ['host-0c', 'host-a'], status: 'archived' },
      { version: '1.1.0', nodes: ['host-b'], status: 'not published' },
    ]);
  });

  it('a rollback to an archived version fails that node at once, with the reason, asking nothing of it; the rollout ends failed', () => {
    const r = rollout(spec({ batch: { size: 2 } }), { status: 'rolling_back', batchCount: 1, currentBatch: 0 });
    const tasks = [task('a', { state: 'done', finishedAt: at(1), fromVersion: '1.0.0' }), task('b', { state: 'done', finishedAt: at(1), fromVersion: '1.5.0' })];
    const nodes = factsMap([facts('a', { version: '2.0.0' }), facts('b', { version: '2.0.0' })]);
    const d = decideRollout(r, tasks, nodes, at(10), new Set(['1.0.0']));
    const reason = 'cannot roll back to node-agent 1.0.0: it is archived or not published; the node stays on 2.0.0';
    expect(d.tasks.find((c) => c.id === 'ro-1/a')).toEqual({
      id: 'ro-1/a',
      from: 'done',
      changes: { direction: 'rollback', state: 'failed', stateSince: at(10), finishedAt: at(10), lastError: reason },
    });
    // Only b is asked to change; a gets no command at all.
    expect(d.commands.filter((c) => c.nodeId === 'a')).toEqual([]);
    expect(d.commands.some((c) => c.nodeId === 'b' && c.kind === 'cordon')).toBe(true);
    expect(d.events).toContainEqual({ kind: 'rollout.node_failed', nodeId: 'a', data: { hostname: 'host-a', batch: 0, direction: 'rollback', reason } });
    // Once b is back, the rollout ends failed: a never returned.
    const end = decideRollout(
      r,
      [{ ...tasks[0]!, direction: 'rollback', state: 'failed', finishedAt: at(10), lastError: reason }, { ...tasks[1]!, direction: 'rollback', state: 'rolled_back', finishedAt: at(20) }],
      nodes,
      at(30),
      new Set(['1.0.0']),
    );
    expect(end.rollout.status).toBe('failed');
  });

  it('a failed node whose previous version is archived is not pointed at it: no set_version, an event that says why', () => {
    const r = rollout(spec({ circuitBreaker: { maxConsecutiveFailures: 5 } }), { batchCount: 1, currentBatch: 0, drainMode: 'none' });
    const installing = task('a', { state: 'installing', stateSince: at(0), fromVersion: '1.0.0', cordonedByUs: false });
    const failing = factsMap([facts('a', { install: { version: '2.0.0', phase: 'reverted', reason: 'health failed', at: at(1) } })]);
    const d = decideRollout(r, [installing], failing, at(2), new Set(['1.0.0']));
    expect(d.tasks[0]?.changes.state).toBe('failed');
    expect(d.commands).toEqual([]);
    expect(d.events.find((e) => e.kind === 'rollout.version_unavailable')).toEqual({
      kind: 'rollout.version_unavailable',
      nodeId: 'a',
      data: { hostname: 'host-a', version: '1.0.0', reason: "node-agent 1.0.0 is archived or not published; the node's desired state is left as it is" },
    });
    // With the version available the same failure sends the node back.
    expect(decideRollout(r, [installing], failing, at(2)).commands).toEqual([{ kind: 'set_version', nodeId: 'a', component: 'node-agent', version: '1.0.0', rollback: true }]);
  });
});
