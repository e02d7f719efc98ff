// The pure halves of apply and delete: which fields an apply changes (and may change), what a
// scale-down or a deleted deployment asks of the fleet, and when a node may be decommissioned.
import { describe, expect, it } from 'vitest';
import { diffDeployment } from '../../src/domain/deployment-apply.js';
import { type FleetOptions, reconcileScope } from '../../src/domain/fleet-reconcile.js';
import { decommissionRefusal } from '../../src/domain/node-decommission.js';
import { ago, deployment, instance, node, NOW } from './fixtures.js';

const OPTIONS: FleetOptions = { heartbeatGraceMs: 10_000, migrationTimeoutMs: 60_000 };
const nodes = [node('n1'), node('n2'), node('n3')];

describe('diffDeployment', () => {
  const stored = { replicas: 3, min_available: 1, workload: { command: 'app', args: ['a'], env: { A: '1', B: '2' } }, node_selector: null };

  it('sees no change in key order, the default driver or an empty selector', () => {
    const same = { min_available: 1, replicas: 3, node_selector: {}, workload: { driver: 'process' as const, env: { B: '2', A: '1' }, args: ['a'], command: 'app' } };
    expect(diffDeployment(stored, same, 3)).toEqual({ changes: {}, fixed: [] });
  });

  it('lists each changed field; workload and selector are fixed only while instances exist', () => {
    const next = { ...stored, replicas: 5, workload: { command: 'app', args: ['b'] } };
    expect(diffDeployment(stored, next, 3)).toEqual({
      changes: { replicas: { from: 3, to: 5 }, workload: { from: stored.workload, to: next.workload } },
      fixed: ['workload'],
    });
    expect(diffDeployment(stored, next, 0).fixed).toEqual([]);
    expect(diffDeployment(stored, { ...stored, node_selector: { region: 'eu-west' } }, 1).fixed).toEqual(['node_selector']);
  });
});

describe('scale-down and delete in reconcileScope', () => {
  it('stops the surplus of a scaled-down deployment, the not-serving and newest first, never a moving one', () => {
    const d = deployment('d', { replicas: 2 });
    const instances = [
      instance('old', 'd', 'n1', { createdAt: ago(60_000) }),
      instance('new', 'd', 'n2'),
      instance('sick', 'd', 'n3', { healthy: false, published: false }),
      instance('moving', 'd', 'n1', { createdAt: ago(120_000) }),
      instance('target', 'd', 'n2', { replaces: 'moving', healthy: false, published: false, status: 'starting' }),
    ];
    const { actions } = reconcileScope({ nodes, deployments: [d], instances, drains: [] }, NOW, OPTIONS);
    expect(actions.stop).toEqual([
      { instanceId: 'sick', restartOnEnable: false },
      { instanceId: 'new', restartOnEnable: false },
    ]);
    expect(actions.create).toEqual([]);
    expect(actions.deleteDeployments).toBeUndefined();
  });

  it('keeps the last serving instance while the deployment keeps a replica', () => {
    const d = deployment('d', { replicas: 1 });
    const instances = [instance('serving', 'd', 'n1'), instance('parked', 'd', 'n2', { desired: 'stopped', status: 'stopped', published: false, restartOnEnable: true })];
    const { actions } = reconcileScope({ nodes, deployments: [d], instances, drains: [] }, NOW, OPTIONS);
    expect(actions.stop).toEqual([]);
  });

  it('a deleted deployment: every instance stopped (a parked one removed), and the deployment goes with its last row', () => {
    const d = deployment('d', { replicas: 3, deleting: true });
    const instances = [
      instance('a', 'd', 'n1'),
      instance('b', 'd', 'n2', { desired: 'stopped', status: 'stopped', published: false }),
      instance('parked', 'd', 'n3', { desired: 'stopped', status: 'stopped', published: false, restartOnEnable: true }),
    ];
    const first = reconcileScope({ nodes, deployments: [d], instances, drains: [] }, NOW, OPTIONS).actions;
    expect(first.stop).toEqual([{ instanceId: 'a', restartOnEnable: false }]);
    expect(first.remove).toEqual(['b', 'parked']);
    expect(first.create).toEqual([]);
    expect(first.deleteDeployments).toBeUndefined();

    const last = reconcileScope({ nodes, deployments: [d], instances: [instance('a', 'd', 'n1', { desired: 'stopped', status: 'stopped', published: false })], drains: [] }, NOW, OPTIONS).actions;
    expect(last.remove).toEqual(['a']);
    expect(last.deleteDeployments).toEqual(['d']);
    expect(last.events).toEqual([{ kind: 'deployment.deleted', data: { deployment_id: 'd', name: 'd' } }]);
  });
});

describe('a deleted deployment on a down node', () => {
  it('stops its instance there, then removes the row without waiting for the agent', () => {
    const d = deployment('d', { replicas: 1, deleting: true });
    const down = [node('n1', { status: 'down', lastHeartbeatAt: ago(3_600_000) })];
    const first = reconcileScope({ nodes: down, deployments: [d], instances: [instance('a', 'd', 'n1')], drains: [] }, NOW, OPTIONS).actions;
    expect(first.stop).toEqual([{ instanceId: 'a', restartOnEnable: false }]);
    const stopping = instance('a', 'd', 'n1', { desired: 'stopped', published: false });
    const second = reconcileScope({ nodes: down, deployments: [d], instances: [stopping], drains: [] }, NOW, OPTIONS).actions;
    expect(second.remove).toEqual(['a']);
    expect(second.deleteDeployments).toEqual(['d']);
    // Not for a deployment that stays: its stopping instance holds its slot until the agent says so.
    const kept = reconcileScope({ nodes: down, deployments: [deployment('d', { replicas: 0 })], instances: [stopping], drains: [] }, NOW, OPTIONS).actions;
    expect(kept.remove).toEqual([]);
  });
});

describe('decommissionRefusal', () => {
  const drained = { hostname: 'w1', cordoned: true, drainState: 'completed' as const, instances: 0, activeRollouts: [] };

  it('lets a cordoned, drained, empty node go, and one that never had a drain', () => {
    expect(decommissionRefusal(drained)).toBeNull();
    expect(decommissionRefusal({ ...drained, drainState: null })).toBeNull();
  });

  it('names why it refuses, a rollout first', () => {
    expect(decommissionRefusal({ ...drained, activeRollouts: ['r1'], cordoned: false })).toEqual({ code: 'NODE_IN_ROLLOUT', rollouts: ['r1'] });
    expect(decommissionRefusal({ ...drained, cordoned: false })).toMatchObject({ code: 'NODE_NOT_DRAINED', reason: 'not_cordoned' });
    expect(decommissionRefusal({ ...drained, drainState: 'running' })).toMatchObject({ code: 'NODE_NOT_DRAINED', reason: 'drain_in_progress' });
    expect(decommissionRefusal({ ...drained, drainState: 'blocked', instances: 1 })).toMatchObject({ reason: 'drain_in_progress' });
    expect(decommissionRefusal({ ...drained, drainState: 'failed', instances: 2 })).toEqual({ code: 'NODE_NOT_DRAINED', reason: 'hosts_instances', instances: 2 });
  });
});
