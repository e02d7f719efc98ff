// Control-plane rollouts apply their target build's migrations at both ends (DESIGN.md §11).
import { describe, expect, it } from 'vitest';
import { decideRollout } from '../../../src/domain/rollout/decide.js';
import type { RolloutTask } from '../../../src/domain/rollout/model.js';
import { rollbackRefusal, rolloutMigrations } from '../../../src/domain/rollout/schema-steps.js';
import { parseRolloutSpec } from '../../../src/domain/rollout/spec.js';
import { at, facts, factsMap, rollout, spec, task, T0 } from './fixtures.js';

const operatorSpec = (over: Record<string, unknown> = {}) => spec({ batch: { size: 1 } }, { target: { component: 'operator', version: '2.0.0' }, ...over });
const done = (t: RolloutTask): RolloutTask => ({ ...t, state: 'done', finishedAt: at(1000), stateSince: at(1000) });

describe('schema steps of a control-plane rollout', () => {
  it('migrates automatically for the operator component only, unless the spec says manual', () => {
    expect(rolloutMigrations(operatorSpec())).toBe('auto');
    expect(rolloutMigrations(operatorSpec({ migrations: 'manual' }))).toBe('manual');
    expect(rolloutMigrations(spec())).toBe('manual');
    const refused = parseRolloutSpec({ name: 'x', target: { component: 'node-agent', version: '2.0.0' }, migrations: 'auto' });
    expect(refused.ok).toBe(false);
    if (!refused.ok) expect(refused.issues[0]).toMatchObject({ path: 'migrations', message: expect.stringMatching(/operator component only/) });
  });

  it('applies the expand before the first node starts, and starts no node until it is recorded', () => {
    const r = rollout(operatorSpec(), { batchCount: 2 });
    const tasks = [task('a', { batch: 0 }), task('b', { batch: 1 })];
    const first = decideRollout(r, tasks, factsMap([facts('a'), facts('b')]), T0);
    expect(first.schema).toBe('pre');
    expect(first.tasks).toEqual([]);
    expect(first.rollout.currentBatch).toBeUndefined();
    const after = decideRollout({ ...r, schemaPreAppliedAt: T0 }, tasks, factsMap([facts('a'), facts('b')]), T0);
    expect(after.schema).toBeUndefined();
    expect(after.rollout.currentBatch).toBe(0);
  });

  it('contracts only after the last node is done, then completes', () => {
    const r = rollout(operatorSpec(), { batchCount: 2, currentBatch: 1, schemaPreAppliedAt: T0, batchFinishedAt: at(1000) });
    const tasks = [done(task('a', { batch: 0 })), done(task('b', { batch: 1 }))];
    const nodes = factsMap([facts('a', { version: '2.0.0' }), facts('b', { version: '2.0.0' })]);
    const last = decideRollout(r, tasks, nodes, at(2000));
    expect(last.schema).toBe('post');
    expect(last.rollout.status).toBeUndefined();
    const contracted = decideRollout({ ...r, schemaPostAppliedAt: at(2000) }, tasks, nodes, at(2000));
    expect(contracted.schema).toBeUndefined();
    expect(contracted.rollout.status).toBe('completed');
  });

  it('never contracts when a node did not reach the target: the rollout ends failed', () => {
    const r = rollout(operatorSpec(), { batchCount: 2, currentBatch: 1, schemaPreAppliedAt: T0, batchFinishedAt: at(1000) });
    const tasks = [done(task('a', { batch: 0 })), { ...task('b', { batch: 1 }), state: 'failed' as const, finishedAt: at(1000), lastError: 'x' }];
    const decision = decideRollout({ ...r, spec: operatorSpec({ strategy: { circuitBreaker: { maxConsecutiveFailures: 5 } } }) }, tasks, factsMap([facts('a'), facts('b')]), at(2000));
    expect(decision.schema).toBeUndefined();
    expect(decision.rollout.status).toBe('failed');
  });

  it('a component without migrations never waits for a schema step', () => {
    const r = rollout(spec({ batch: { size: 1 } }), { batchCount: 1 });
    expect(decideRollout(r, [task('a')], factsMap([facts('a')]), T0).schema).toBeUndefined();
  });

  it('refuses a rollback once the contract is applied, with the reason', () => {
    const r = rollout(operatorSpec());
    expect(rollbackRefusal({ ...r, schemaPostAppliedAt: null })).toBeUndefined();
    expect(rollbackRefusal({ ...r, schemaPostAppliedAt: T0 })).toMatch(/contract \(post\) migrations of operator 2\.0\.0 .* cannot be rolled back/);
  });
});

describe('a control-plane batch waits for ready replicas (minAvailablePerRegion)', () => {
  const cpSpec = () => spec({ batch: { size: 2 }, minAvailablePerRegion: 2 }, { target: { component: 'operator', version: '2.0.0' }, selector: { role: 'control-plane' } });
  const tasks = () => [task('a1', { batch: 0, region: 'eu', hostname: 'eu-1' }), task('b1', { batch: 0, region: 'us', hostname: 'us-1' })];
  const nodes = () => factsMap([facts('a1'), facts('b1')]);
  const ready = (eu: string[], us: string[]) => ({ rules: [], running: new Map(), readyReplicas: new Map([['eu', eu], ['us', us]]) });

  it('starts the batch while every region keeps enough ready replicas beside the ones it stops', () => {
    const r = rollout(cpSpec(), { batchCount: 1, schemaPreAppliedAt: T0 });
    const decision = decideRollout(r, tasks(), nodes(), T0, new Set(), undefined, ready(['eu-1', 'eu-2', 'eu-3'], ['us-1', 'us-2', 'us-3']));
    expect(decision.waitingFor).toBeUndefined();
    expect(decision.rollout.currentBatch).toBe(0);
  });

  it('holds the batch when a replica of the region is already down, and says which region', () => {
    const r = rollout(cpSpec(), { batchCount: 1, schemaPreAppliedAt: T0 });
    const decision = decideRollout(r, tasks(), nodes(), T0, new Set(), undefined, ready(['eu-1', 'eu-2', 'eu-3'], ['us-1', 'us-2']));
    expect(decision.rollout.currentBatch).toBeUndefined();
    expect(decision.tasks).toEqual([]);
    expect(decision.waitingFor).toBe('too few ready operator replicas to start batch 0: us has 2 ready, 1 would stop, 2 must stay ready');
  });
});
