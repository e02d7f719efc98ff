import { describe, expect, it } from 'vitest';
import { planRollout } from '../../../src/domain/rollout/plan.js';
import { type InstanceFacts, runPreflight } from '../../../src/domain/rollout/preflight.js';
import type { Instance } from '../../../src/domain/types.js';
import { deployment } from '../fixtures.js';
import { fleetNode, instance, spec } from './fixtures.js';

// drain.mode: restart in place, many nodes of a region at once (issue 12, item 5): the
// disruption budget counts what one batch actually stops, against what runs now.
describe('preflight disruption budget in restart mode', () => {
  const nodes = ['a', 'b', 'c', 'd'].map((id) => fleetNode(id, { region: 'us-east' }));
  const build = (opts: { batch: number; minAvailable: number; over?: Record<string, Partial<Instance>> }) => {
    const s = spec({ batch: { size: opts.batch }, maxUnavailablePerRegion: opts.batch, drain: { mode: 'restart' } }, { selector: { regions: ['us-east'] } });
    // One web replica per node.
    const instances: InstanceFacts[] = nodes.map((n) => ({ ...instance(`w-${n.id}`, 'web', n.id, opts.over?.[n.id] ?? {}), volume: null, activity: null }));
    const deployments = [deployment('web', { replicas: 4, minAvailable: opts.minAvailable })];
    const plan = planRollout({ spec: s, nodes, instances, deployments, currentVersion: () => '1.0.0', disruptive: true });
    const report = runPreflight({
      spec: s,
      plan,
      nodes,
      instances,
      deployments,
      artifact: { lifecycle: 'blessed', signed: true },
      rollbackArtifacts: new Map([['1.0.0', 'live']]),
      fromVersions: new Map(nodes.map((n) => [n.id, '1.0.0'])),
      activeRolloutNodes: [],
      compatRules: [],
      running: new Map(),
      overrides: [],
    });
    return { plan, report, budget: report.checks.find((c) => c.id === 'disruption-budget') };
  };

  it('passes three nodes of a region at once when the fourth replica keeps min_available: nothing to override', () => {
    const { plan, report, budget } = build({ batch: 3, minAvailable: 1 });
    expect(plan.drain_mode).toBe('restart');
    expect(plan.batches.map((b) => b.nodes.length)).toEqual([3, 1]);
    expect(plan.moves).toEqual([]);
    expect(budget?.status).toBe('pass');
    expect(report.blocked).toBe(false);
    // Nothing migrates: the migration checks have nothing to say.
    for (const id of ['spare-capacity', 'absorbing-nodes', 'non-migratable']) expect(report.checks.find((c) => c.id === id)?.status).toBe('pass');
  });

  it('fails when a batch stops more replicas than min_available leaves, naming the batch', () => {
    const { report, budget } = build({ batch: 3, minAvailable: 2 });
    expect(budget).toMatchObject({ status: 'fail', message: 'batch 0: web would drop to 1 of min_available 2' });
    expect(report.blocked).toBe(true);
    // Smaller batches hold the same budget.
    expect(build({ batch: 2, minAvailable: 2 }).budget?.status).toBe('pass');
  });

  it('counts a replica that is already down against the budget, wherever it is, and only once', () => {
    // d (batch 1) is down now: batch 0 stops a, b and leaves only c.
    expect(build({ batch: 2, minAvailable: 2, over: { d: { status: 'failed', healthy: false } } }).budget).toMatchObject({
      status: 'fail',
      message: 'batch 0: web would drop to 1 of min_available 2',
    });
    // a (batch 0) is down now: that batch takes down b only, leaving c and d; batch 1 (c, d) leaves b alone.
    expect(build({ batch: 2, minAvailable: 2, over: { a: { status: 'stopped', healthy: false } } }).budget).toMatchObject({
      status: 'fail',
      message: 'batch 1: web would drop to 1 of min_available 2',
    });
    expect(build({ batch: 2, minAvailable: 1, over: { a: { status: 'stopped', healthy: false } } }).budget?.status).toBe('pass');
  });
});
