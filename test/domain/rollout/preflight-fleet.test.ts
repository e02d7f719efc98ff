import { describe, expect, it } from 'vitest';
import { planRollout } from '../../../src/domain/rollout/plan.js';
import { type InstanceFacts, type PreflightInput, runPreflight } from '../../../src/domain/rollout/preflight.js';
import type { FleetNode } from '../../../src/domain/types.js';
import { deployment } from '../fixtures.js';
import { fleetNode, instance, spec } from './fixtures.js';

// Preflight looks past the target nodes (issue 12, item 4): nodes of the regions that take the
// migrations and take none now, and other rollouts running elsewhere in the fleet.
describe('preflight beyond the target nodes', () => {
  const s = spec({ batch: { size: 1 }, drain: { mode: 'migrate' } }, { selector: { hostnames: ['host-t1'] } });
  const target = fleetNode('t1', { region: 'us-east' });
  const build = (nodes: FleetNode[], over: Partial<PreflightInput> = {}) => {
    const instances: InstanceFacts[] = [{ ...instance('i1', 'web', 't1'), volume: null, activity: null }];
    const deployments = [deployment('web', { replicas: 1 })];
    const plan = planRollout({ spec: s, nodes, instances, deployments, currentVersion: () => '1.0.0', disruptive: true });
    return runPreflight({
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
      ...over,
    });
  };
  const find = (report: ReturnType<typeof runPreflight>, id: string) => report.checks.find((c) => c.id === id);

  it('warns of nodes in the absorbing regions that take no migrations now, and ignores other regions', () => {
    const nodes = [
      target,
      fleetNode('a1', { region: 'us-east' }),
      fleetNode('a2', { region: 'us-east', cordoned: true }),
      fleetNode('a3', { region: 'us-east', status: 'down' }),
      fleetNode('b1', { region: 'eu-west', status: 'down' }),
    ];
    expect(find(build(nodes), 'absorbing-nodes')).toMatchObject({ status: 'warn', objects: ['host-a2', 'host-a3'] });
    expect(find(build([target, fleetNode('a1', { region: 'us-east' }), fleetNode('b1', { region: 'eu-west', status: 'down' })]), 'absorbing-nodes')?.status).toBe('pass');
  });

  it('fails for another rollout on the same nodes, warns for one elsewhere', () => {
    const nodes = [target, fleetNode('a1', { region: 'us-east' })];
    expect(find(build(nodes, { activeRolloutNodes: [{ node_id: 't1', rollout_id: 'r0', name: 'other' }] }), 'active-rollout')).toMatchObject({ status: 'fail' });
    expect(find(build(nodes, { activeRolloutNodes: [{ node_id: 'a1', rollout_id: 'r0', name: 'other' }] }), 'active-rollout')).toMatchObject({ status: 'warn', objects: ['host-a1'] });
    expect(find(build(nodes), 'active-rollout')?.status).toBe('pass');
  });
});
