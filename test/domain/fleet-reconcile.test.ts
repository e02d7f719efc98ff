import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type FleetActions, type FleetOptions, type FleetSnapshot, reconcileFleet, reconcileScope, waitingFor } from '../../src/domain/fleet-reconcile.js';
import { matchesSelector } from '../../src/domain/selector.js';
import {
  type Drain,
  DRAIN_STATES,
  type FleetNode,
  INSTANCE_STATUSES,
  type Instance,
  NODE_ROLES,
  NODE_STATUSES,
  type NodeSelector,
  type NodeStatus,
} from '../../src/domain/types.js';
import { ago, deployment, instance as baseInstance, node as baseNode, NOW, REGIONS } from './fixtures.js';

const GRACE_MS = 10_000;
const MIGRATION_TIMEOUT_MS = 120_000;
const OPTIONS: FleetOptions = { heartbeatGraceMs: GRACE_MS, migrationTimeoutMs: MIGRATION_TIMEOUT_MS };

/** Nodes here last heartbeated a second ago, and instances were created a minute ago. */
const node = (id: string, over: Partial<FleetNode> = {}): FleetNode => baseNode(id, { lastHeartbeatAt: ago(1_000), ...over });
const instance = (id: string, deploymentId: string, nodeId: string, over: Partial<Instance> = {}): Instance =>
  baseInstance(id, deploymentId, nodeId, { createdAt: ago(60_000), ...over });

/** The new incarnation of `old` on another node, as the drain or the migrate route creates it. */
function replacement(id: string, old: Instance, nodeId: string, over: Partial<Instance> = {}): Instance {
  return instance(id, old.deploymentId, nodeId, { replaces: old.id, published: false, healthy: false, status: 'starting', createdAt: ago(5_000), ...over });
}

function drain(nodeId: string, over: Partial<Drain> = {}): Drain {
  return {
    nodeId,
    state: 'running',
    force: false,
    startedAt: ago(30_000),
    deadline: new Date(NOW.getTime() + 600_000),
    message: '',
    blockedBy: [],
    ...over,
  };
}

function fleet(over: Partial<FleetSnapshot>): FleetSnapshot {
  return { nodes: [], deployments: [], instances: [], drains: [], ...over };
}

const reconcile = (snapshot: FleetSnapshot) => reconcileFleet(snapshot, NOW, OPTIONS);
const kinds = (actions: FleetActions) => actions.events.map((e) => e.kind);

describe('reconcileFleet: node liveness', () => {
  it('marks a node down once its heartbeat is older than the grace period, and says so once', () => {
    const snapshot = fleet({ nodes: [node('n1', { lastHeartbeatAt: ago(GRACE_MS + 1) }), node('n2', { lastHeartbeatAt: ago(GRACE_MS) })] });
    const actions = reconcile(snapshot);
    expect(actions.nodeStatus).toEqual([{ nodeId: 'n1', status: 'down' }]);
    expect(actions.events).toEqual([{ kind: 'node.down', nodeId: 'n1', data: { hostname: 'host-n1', from: 'ready', to: 'down' } }]);

    const again = reconcile(fleet({ nodes: [node('n1', { status: 'down', lastHeartbeatAt: ago(GRACE_MS + 1) })] }));
    expect(again.nodeStatus).toEqual([]);
    expect(again.events).toEqual([]);
  });

  it('marks a node that never heartbeated as down', () => {
    expect(reconcile(fleet({ nodes: [node('n1', { lastHeartbeatAt: null })] })).nodeStatus).toEqual([{ nodeId: 'n1', status: 'down' }]);
  });

  it('brings a node back up with node.up when it heartbeats again', () => {
    const actions = reconcile(fleet({ nodes: [node('n1', { status: 'down', cordoned: true })] }));
    expect(actions.nodeStatus).toEqual([{ nodeId: 'n1', status: 'cordoned' }]);
    expect(actions.events).toEqual([{ kind: 'node.up', nodeId: 'n1', data: { hostname: 'host-n1', from: 'down', to: 'cordoned' } }]);
  });

  it('records status changes that are not about liveness without an up/down event', () => {
    const actions = reconcile(fleet({ nodes: [node('n1', { cordoned: true })] }));
    expect(actions.nodeStatus).toEqual([{ nodeId: 'n1', status: 'cordoned' }]);
    expect(actions.events).toEqual([]);
  });

  it('asks for nothing when the fleet is as it should be', () => {
    const snapshot = fleet({ nodes: [node('n1')], deployments: [deployment('web')], instances: [instance('w1', 'web', 'n1')] });
    expect(reconcile(snapshot)).toEqual({ nodeStatus: [], create: [], publish: [], stop: [], remove: [], drains: [], events: [] });
  });
});

describe('reconcileFleet: instances and replicas', () => {
  it('publishes healthy instances and leaves unhealthy ones unpublished', () => {
    const snapshot = fleet({
      nodes: [node('n1')],
      deployments: [deployment('web', { replicas: 2 })],
      instances: [instance('w1', 'web', 'n1', { published: false }), instance('w2', 'web', 'n1', { published: false, healthy: false, status: 'starting' })],
    });
    expect(reconcile(snapshot).publish).toEqual(['w1']);
  });

  it('does not publish an instance whose node is down: its last health report cannot be trusted', () => {
    const snapshot = fleet({
      nodes: [node('n1', { lastHeartbeatAt: ago(GRACE_MS * 5) })],
      deployments: [deployment('web')],
      instances: [instance('w1', 'web', 'n1', { published: false })],
    });
    expect(reconcile(snapshot).publish).toEqual([]);
  });

  it('places missing replicas on ready nodes, one per node, matching the selector', () => {
    const snapshot = fleet({
      nodes: [
        node('n1', { labels: { disk: 'ssd' } }),
        node('n2', { labels: { disk: 'ssd' }, cordoned: true, status: 'cordoned' }),
        node('n3', { labels: { disk: 'hdd' } }),
        node('n4', { labels: { disk: 'ssd' } }),
        node('n5', { labels: { disk: 'ssd' }, lastHeartbeatAt: ago(GRACE_MS + 1) }),
      ],
      deployments: [deployment('web', { replicas: 3, nodeSelector: { labels: { disk: 'ssd' } } })],
      instances: [instance('w1', 'web', 'n1')],
    });
    const actions = reconcile(snapshot);
    expect(actions.create).toEqual([
      { deploymentId: 'web', nodeId: 'n4', replaces: null },
      { deploymentId: 'web', nodeId: 'n1', replaces: null },
    ]);
  });

  it('places nothing on a node whose slots are held by instances that are still stopping', () => {
    const snapshot = fleet({
      nodes: [node('n1', { maxInstances: 1 })],
      deployments: [deployment('web')],
      instances: [instance('old', 'web', 'n1', { desired: 'stopped', status: 'stopping', published: false })],
    });
    expect(reconcile(snapshot).create).toEqual([]);
    const stoppedNow = fleet({ ...snapshot, instances: [{ ...(snapshot.instances[0] as Instance), status: 'stopped' }] });
    expect(reconcile(stoppedNow).create).toEqual([{ deploymentId: 'web', nodeId: 'n1', replaces: null }]);
  });

  it('removes rows of stopped instances, but keeps parked pinned ones for enable', () => {
    const snapshot = fleet({
      nodes: [node('n1')],
      deployments: [deployment('web', { replicas: 0 })],
      instances: [
        instance('gone', 'web', 'n1', { desired: 'stopped', status: 'stopped', published: false }),
        instance('stopping', 'web', 'n1', { desired: 'stopped', status: 'stopping', published: false }),
        instance('parked', 'web', 'n1', { desired: 'stopped', status: 'stopped', published: false, restartOnEnable: true }),
      ],
    });
    expect(reconcile(snapshot).remove).toEqual(['gone']);
  });
});

describe('reconcileFleet: migrations', () => {
  const nodes = [node('n1'), node('n2')];
  const deployments = [deployment('web')];
  const old = instance('w1', 'web', 'n1');

  it('publishes a healthy replacement and stops the old instance in the same pass', () => {
    const next = replacement('w1-new', old, 'n2', { healthy: true, status: 'running' });
    const actions = reconcile(fleet({ nodes, deployments, instances: [old, next] }));
    expect(actions.publish).toEqual(['w1-new']);
    expect(actions.stop).toEqual([{ instanceId: 'w1', restartOnEnable: false }]);
    expect(actions.events).toEqual([
      { kind: 'instance.migration_completed', instanceId: 'w1-new', nodeId: 'n2', data: { from_instance: 'w1', from_node: 'n1', to_node: 'n2' } },
    ]);
    expect(actions.create).toEqual([]);
  });

  it('keeps the old instance serving while the replacement is starting', () => {
    const next = replacement('w1-new', old, 'n2');
    const actions = reconcile(fleet({ nodes, deployments, instances: [old, next] }));
    expect(actions.stop).toEqual([]);
    expect(actions.publish).toEqual([]);
    expect(actions.create).toEqual([]);
    expect(actions.events).toEqual([]);
  });

  it('does not trust a replacement that reported healthy from a node that is now down', () => {
    const deadTarget = [node('n1'), node('n2', { lastHeartbeatAt: ago(GRACE_MS + 1) })];
    const next = replacement('w1-new', old, 'n2', { healthy: true, status: 'running' });
    const actions = reconcile(fleet({ nodes: deadTarget, deployments, instances: [old, next] }));
    expect(actions.stop).toEqual([]);
    expect(actions.publish).toEqual([]);
    expect(kinds(actions)).toEqual(['node.down']);
  });

  it('abandons a replacement that is not healthy after the migration timeout', () => {
    const late = replacement('w1-new', old, 'n2', { createdAt: ago(MIGRATION_TIMEOUT_MS + 1_000) });
    const actions = reconcile(fleet({ nodes, deployments, instances: [old, late] }));
    expect(actions.stop).toEqual([{ instanceId: 'w1-new', restartOnEnable: false }]);
    expect(actions.publish).toEqual([]);
    expect(actions.events).toEqual([
      {
        kind: 'instance.migration_failed',
        instanceId: 'w1',
        nodeId: 'n1',
        data: { replacement: 'w1-new', target_node: 'n2', reason: 'replacement not healthy after 121 s' },
      },
    ]);
    // The old instance keeps serving and still counts as the replica: nothing new is placed.
    expect(actions.create).toEqual([]);
  });

  it('abandons a replacement that failed to start, before the timeout', () => {
    const failed = replacement('w1-new', old, 'n2', { status: 'failed' });
    const actions = reconcile(fleet({ nodes, deployments, instances: [old, failed] }));
    expect(actions.stop).toEqual([{ instanceId: 'w1-new', restartOnEnable: false }]);
    expect(actions.events[0]).toMatchObject({ kind: 'instance.migration_failed', data: { reason: 'replacement failed to start' } });
  });

  it('adopts a replacement whose original is already gone', () => {
    const orphan = replacement('w1-new', old, 'n2', { healthy: true, status: 'running' });
    const actions = reconcile(fleet({ nodes, deployments, instances: [orphan] }));
    expect(actions.publish).toEqual(['w1-new']);
    expect(actions.stop).toEqual([]);
    expect(actions.create).toEqual([]);
  });
});

describe('reconcileFleet: drains', () => {
  const web = deployment('web', { replicas: 2 });
  const db = deployment('db', { nodeSelector: { hostname: 'host-n1' } });

  it('starts make-before-break moves within the region and stops nothing yet', () => {
    const snapshot = fleet({
      nodes: [node('n1', { status: 'draining', cordoned: true }), node('n2', { region: 'eu-west' }), node('n3')],
      deployments: [web],
      instances: [instance('w1', 'web', 'n1'), instance('w2', 'web', 'n1')],
      drains: [drain('n1')],
    });
    const actions = reconcile(snapshot);
    // A process workload moves by restart, with the default limits (a VM's would be `live`).
    const move = { fromNodeId: 'n1', mode: 'restart', trigger: 'drain', downtimeLimitMs: 300, deadlineMs: 600_000 };
    expect(actions.create).toEqual([
      { deploymentId: 'web', nodeId: 'n3', replaces: 'w1', move },
      { deploymentId: 'web', nodeId: 'n2', replaces: 'w2', move },
    ]);
    expect(actions.stop).toEqual([]);
    expect(actions.drains).toEqual([{ nodeId: 'n1', state: 'running', message: 'moving 2 instance(s)', blockedBy: [] }]);
    expect(actions.events).toEqual([
      { kind: 'instance.migration_started', instanceId: 'w1', nodeId: 'n1', data: { from_node: 'n1', to_node: 'n3', reason: 'drain' } },
      { kind: 'instance.migration_started', instanceId: 'w2', nodeId: 'n1', data: { from_node: 'n1', to_node: 'n2', reason: 'drain' } },
    ]);
  });

  it('marks the node draining', () => {
    const actions = reconcile(fleet({ nodes: [node('n1', { cordoned: true, status: 'cordoned' })], drains: [drain('n1')] }));
    expect(actions.nodeStatus).toEqual([{ nodeId: 'n1', status: 'draining' }]);
  });

  it('is blocked by pinned instances and stops nothing without force', () => {
    const snapshot = fleet({
      nodes: [node('n1', { status: 'draining', cordoned: true }), node('n2')],
      deployments: [db],
      instances: [instance('p1', 'db', 'n1')],
      drains: [drain('n1')],
    });
    const actions = reconcile(snapshot);
    expect(actions.drains).toEqual([
      {
        nodeId: 'n1',
        state: 'blocked',
        message: '1 pinned instance(s) cannot migrate; drain with force to stop them until the node is enabled',
        blockedBy: ['p1'],
      },
    ]);
    expect(actions.stop).toEqual([]);
    expect(actions.create).toEqual([]);
    // Level-triggered: the same blocked drain asks for no change on the next pass.
    const [update] = actions.drains;
    const settled = reconcile({ ...snapshot, drains: [drain('n1', { state: 'blocked', message: update?.message ?? '', blockedBy: ['p1'] })] });
    expect(settled.drains).toEqual([]);
  });

  it('moves the movable instances and names the pinned ones while both remain', () => {
    const snapshot = fleet({
      nodes: [node('n1', { status: 'draining', cordoned: true }), node('n2')],
      deployments: [deployment('web'), db],
      instances: [instance('p1', 'db', 'n1'), instance('w1', 'web', 'n1')],
      drains: [drain('n1')],
    });
    const actions = reconcile(snapshot);
    expect(actions.create).toEqual([{ deploymentId: 'web', nodeId: 'n2', replaces: 'w1', move: expect.objectContaining({ fromNodeId: 'n1', mode: 'restart' }) }]);
    expect(actions.drains).toEqual([{ nodeId: 'n1', state: 'running', message: 'moving 2 instance(s)', blockedBy: ['p1'] }]);
  });

  it('with force, parks pinned instances to restart on enable, without replacing them anywhere', () => {
    const snapshot = fleet({
      nodes: [node('n1', { status: 'draining', cordoned: true }), node('n2')],
      deployments: [db],
      instances: [instance('p1', 'db', 'n1')],
      drains: [drain('n1', { force: true, state: 'blocked', blockedBy: ['p1'] })],
    });
    const actions = reconcile(snapshot);
    expect(actions.stop).toEqual([{ instanceId: 'p1', restartOnEnable: true }]);
    expect(actions.create).toEqual([]);
    expect(actions.drains).toEqual([{ nodeId: 'n1', state: 'running', message: 'moving 1 instance(s)', blockedBy: [] }]);
    expect(kinds(actions)).not.toContain('node.drained');
  });

  it('waits for the agent to stop a parked instance before calling the node drained', () => {
    const parked = instance('p1', 'db', 'n1', { desired: 'stopped', status: 'stopping', published: false, restartOnEnable: true });
    const snapshot = fleet({
      nodes: [node('n1', { status: 'draining', cordoned: true }), node('n2')],
      deployments: [db],
      instances: [parked],
      drains: [drain('n1', { force: true })],
    });
    const stopping = reconcile(snapshot);
    expect(kinds(stopping)).not.toContain('node.drained');
    expect(stopping.create).toEqual([]);
    const done = reconcile({ ...snapshot, instances: [{ ...parked, status: 'stopped' }] });
    expect(done.drains).toEqual([{ nodeId: 'n1', state: 'completed', message: 'all instances moved off the node', blockedBy: [] }]);
    expect(kinds(done)).toContain('node.drained');
    // The parked instance keeps its replica slot: nothing is placed elsewhere for it.
    expect(done.create).toEqual([]);
  });

  it('in restart mode, withdraws and stops every instance in place (pinned too), moves none, and keeps their slots', () => {
    const snapshot = fleet({
      nodes: [node('n1', { status: 'draining', cordoned: true }), node('n2')],
      deployments: [web, db],
      instances: [instance('w1', 'web', 'n1'), instance('p1', 'db', 'n1'), instance('w2', 'web', 'n2')],
      drains: [drain('n1', { mode: 'restart' })],
    });
    const actions = reconcile(snapshot);
    expect(actions.stop).toEqual([
      { instanceId: 'w1', restartOnEnable: true },
      { instanceId: 'p1', restartOnEnable: true },
    ]);
    expect(actions.create).toEqual([]);
    expect(kinds(actions)).not.toContain('instance.migration_started');
    expect(actions.drains).toEqual([{ nodeId: 'n1', state: 'running', message: 'stopping 2 instance(s) in place', blockedBy: [] }]);

    // Stopping: not drained yet, still nothing placed elsewhere.
    const parked = (i: Instance, status: Instance['status']) => ({ ...i, desired: 'stopped' as const, published: false, restartOnEnable: true, status });
    const [w1, p1, w2] = snapshot.instances as [Instance, Instance, Instance];
    const stopping = reconcile({ ...snapshot, instances: [parked(w1, 'stopping'), parked(p1, 'stopped'), w2] });
    expect(stopping.stop).toEqual([]);
    expect(stopping.create).toEqual([]);
    expect(kinds(stopping)).not.toContain('node.drained');
    // Both stopped: drained, rows kept for the restart on the same node.
    const done = reconcile({ ...snapshot, instances: [parked(w1, 'stopped'), parked(p1, 'stopped'), w2] });
    expect(done.drains).toEqual([{ nodeId: 'n1', state: 'completed', message: 'all instances stopped in place', blockedBy: [] }]);
    expect(kinds(done)).toContain('node.drained');
    expect(done.remove).toEqual([]);
    expect(done.create).toEqual([]);
  });

  it('in restart mode, stops a serving instance only while its deployment keeps min_available, at least one at a time', () => {
    const budgeted = deployment('web', { replicas: 3, minAvailable: 2 });
    const nodes = [node('n1', { status: 'draining', cordoned: true }), node('n2', { status: 'draining', cordoned: true }), node('n3')];
    const snapshot = fleet({
      nodes,
      deployments: [budgeted],
      instances: [instance('w1', 'web', 'n1'), instance('w2', 'web', 'n2'), instance('w3', 'web', 'n3')],
      drains: [drain('n1', { mode: 'restart' }), drain('n2', { mode: 'restart' })],
    });
    const first = reconcile(snapshot);
    // Two restart drains at once, but only one replica of three may go below min_available 2.
    expect(first.stop).toEqual([{ instanceId: 'w1', restartOnEnable: true }]);
    expect(first.drains).toContainEqual({ nodeId: 'n2', state: 'running', message: "stopping 1 instance(s) in place; 1 wait for their deployment's disruption budget", blockedBy: [] });
    // w1 is down for its restart: w2 still waits; once w1 serves again, w2 goes.
    const [w1, w2, w3] = snapshot.instances as [Instance, Instance, Instance];
    const parkedW1 = { ...w1, desired: 'stopped' as const, status: 'stopped' as const, published: false, healthy: false, restartOnEnable: true };
    expect(reconcile({ ...snapshot, instances: [parkedW1, w2, w3] }).stop).toEqual([]);
    expect(reconcile({ ...snapshot, drains: [drain('n2', { mode: 'restart' })] }).stop).toEqual([{ instanceId: 'w2', restartOnEnable: true }]);
    // An instance that does not serve (unhealthy) stops at once: it costs the budget nothing.
    expect(reconcile({ ...snapshot, instances: [parkedW1, { ...w2, healthy: false, published: false }, w3] }).stop).toEqual([{ instanceId: 'w2', restartOnEnable: true }]);
    // With min_available 3 (an override accepted it) one still goes at a time, so the drain ends.
    expect(reconcile({ ...snapshot, deployments: [{ ...budgeted, minAvailable: 3 }] }).stop).toEqual([{ instanceId: 'w1', restartOnEnable: true }]);
  });

  it('in restart mode, lets an instance already moving away finish its move instead of parking it', () => {
    const w1 = instance('w1', 'web', 'n1');
    const snapshot = fleet({
      nodes: [node('n1', { status: 'draining', cordoned: true }), node('n2')],
      deployments: [web],
      instances: [w1, replacement('w1-new', w1, 'n2')],
      drains: [drain('n1', { mode: 'restart' })],
    });
    expect(reconcile(snapshot).stop).toEqual([]);
  });

  it('waits for room when an instance fits nowhere', () => {
    const snapshot = fleet({
      nodes: [node('n1', { status: 'draining', cordoned: true }), node('n2', { maxInstances: 1 }), node('n3', { status: 'cordoned', cordoned: true })],
      deployments: [web, deployment('other')],
      instances: [instance('w1', 'web', 'n1'), instance('o1', 'other', 'n2')],
      drains: [drain('n1')],
    });
    const actions = reconcile(snapshot);
    expect(actions.create).toEqual([]);
    expect(actions.stop).toEqual([]);
    expect(actions.drains).toEqual([{ nodeId: 'n1', state: 'running', message: 'waiting for room for 1 instance(s)', blockedBy: ['w1'] }]);
  });

  it('completes when every instance has stopped, emitting node.drained once', () => {
    const snapshot = fleet({
      nodes: [node('n1', { status: 'draining', cordoned: true }), node('n2')],
      deployments: [web],
      instances: [
        instance('w1', 'web', 'n1', { desired: 'stopped', status: 'stopped', published: false }),
        instance('w1-new', 'web', 'n2'),
        instance('w2', 'web', 'n2'),
      ],
      drains: [drain('n1')],
    });
    const actions = reconcile(snapshot);
    expect(actions.drains).toEqual([{ nodeId: 'n1', state: 'completed', message: 'all instances moved off the node', blockedBy: [] }]);
    expect(actions.events).toEqual([{ kind: 'node.drained', nodeId: 'n1', data: { hostname: 'host-n1' } }]);

    // The next pass sees the finished drain: the node is merely cordoned, and nothing is announced again.
    const after = reconcile({ ...snapshot, drains: [drain('n1', { state: 'completed' })] });
    expect(after.nodeStatus).toEqual([{ nodeId: 'n1', status: 'cordoned' }]);
    expect(after.drains).toEqual([]);
    expect(after.events).toEqual([]);
  });

  it('does not complete while an old instance is still stopping after its migration', () => {
    const snapshot = fleet({
      nodes: [node('n1', { status: 'draining', cordoned: true }), node('n2')],
      deployments: [deployment('web')],
      instances: [instance('w1', 'web', 'n1', { desired: 'stopped', status: 'stopping', published: false }), instance('w1-new', 'web', 'n2')],
      drains: [drain('n1')],
    });
    const actions = reconcile(snapshot);
    expect(kinds(actions)).not.toContain('node.drained');
    expect(actions.create).toEqual([]);
  });

  it('fails when the deadline passes with instances left, and lists them', () => {
    const snapshot = fleet({
      nodes: [node('n1', { status: 'draining', cordoned: true }), node('n2')],
      deployments: [db],
      instances: [instance('p1', 'db', 'n1')],
      drains: [drain('n1', { state: 'blocked', deadline: ago(1) })],
    });
    const actions = reconcile(snapshot);
    expect(actions.drains).toEqual([{ nodeId: 'n1', state: 'failed', message: 'drain timed out with 1 instance(s) still on the node', blockedBy: ['p1'] }]);
    expect(actions.events).toEqual([{ kind: 'node.drain_failed', nodeId: 'n1', data: { reason: 'timeout', remaining: ['p1'] } }]);
    expect(actions.stop).toEqual([]);
  });

  it('leaves finished drains alone', () => {
    for (const state of ['completed', 'failed'] as const) {
      const snapshot = fleet({
        nodes: [node('n1', { status: 'cordoned', cordoned: true }), node('n2')],
        deployments: [web],
        instances: [instance('w1', 'web', 'n1'), instance('w2', 'web', 'n2')],
        drains: [drain('n1', { state, deadline: ago(1) })],
      });
      expect(reconcile(snapshot)).toEqual({ nodeStatus: [], create: [], publish: [], stop: [], remove: [], drains: [], events: [] });
    }
  });
});

// --- Properties over random fleets --------------------------------------------------------------

const selectorArb: fc.Arbitrary<NodeSelector | null> = fc.oneof(
  { weight: 3, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: fc.constant({}) },
  { weight: 1, arbitrary: fc.constantFrom(...REGIONS).map((region) => ({ region })) },
  { weight: 1, arbitrary: fc.constantFrom(...NODE_ROLES).map((role) => ({ role })) },
  { weight: 1, arbitrary: fc.constantFrom('ssd', 'hdd').map((disk) => ({ labels: { disk } })) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 7 }).map((k) => ({ hostname: `host-n${k}` })) },
);

const rawFleetArb = fc.record({
  nodes: fc.array(
    fc.record({
      region: fc.constantFrom(...REGIONS),
      role: fc.constantFrom(...NODE_ROLES),
      disk: fc.constantFrom('ssd', 'hdd'),
      status: fc.constantFrom(...NODE_STATUSES),
      cordoned: fc.boolean(),
      maxInstances: fc.integer({ min: 0, max: 4 }),
      heartbeatAgeMs: fc.option(fc.oneof(fc.integer({ min: 0, max: 3 * GRACE_MS }), fc.constantFrom(GRACE_MS, GRACE_MS + 1)), {
        nil: null,
        freq: 8,
      }),
      drain: fc.option(
        fc.record({
          state: fc.constantFrom(...DRAIN_STATES),
          force: fc.boolean(),
          deadlineInMs: fc.integer({ min: -60_000, max: 600_000 }),
        }),
        { nil: null, freq: 2 },
      ),
    }),
    { minLength: 1, maxLength: 8 },
  ),
  deployments: fc.array(
    fc.record({ replicas: fc.integer({ min: 0, max: 5 }), budget: fc.integer({ min: 0, max: 5 }), selector: selectorArb }),
    { minLength: 1, maxLength: 4 },
  ),
  instances: fc.array(
    fc.record({
      deployment: fc.nat(),
      node: fc.nat(),
      desired: fc.constantFrom<'running' | 'stopped'>('running', 'running', 'stopped'),
      status: fc.constantFrom(...INSTANCE_STATUSES),
      healthy: fc.boolean(),
      published: fc.boolean(),
      restartOnEnable: fc.boolean(),
      ageMs: fc.integer({ min: 0, max: 2 * MIGRATION_TIMEOUT_MS }),
      replaces: fc.option(fc.nat(), { nil: null, freq: 3 }),
    }),
    { maxLength: 16 },
  ),
});

type RawFleet = typeof rawFleetArb extends fc.Arbitrary<infer T> ? T : never;

/**
 * Turns raw draws into a snapshot the store could hold: a replacement is a running, unpublished
 * instance of its original's deployment on another node; an original has at most one replacement;
 * published implies desired running; only stopped rows can be parked for enable.
 */
function buildSnapshot(raw: RawFleet): FleetSnapshot {
  const nodes = raw.nodes.map((r, k) =>
    node(`n${k}`, {
      region: r.region,
      role: r.role,
      labels: { disk: r.disk },
      status: r.status,
      cordoned: r.cordoned,
      maxInstances: r.maxInstances,
      lastHeartbeatAt: r.heartbeatAgeMs === null ? null : ago(r.heartbeatAgeMs),
    }),
  );
  const deployments = raw.deployments.map((r, k) =>
    deployment(`d${k}`, { replicas: r.replicas, minAvailable: Math.min(r.budget, r.replicas), nodeSelector: r.selector }),
  );
  const instances = raw.instances.map((r, k) => {
    const desired = r.desired;
    return instance(`i${k}`, `d${r.deployment % deployments.length}`, `n${r.node % nodes.length}`, {
      desired,
      status: r.status,
      healthy: r.healthy,
      published: desired === 'running' && r.published,
      restartOnEnable: desired === 'stopped' && r.restartOnEnable,
      createdAt: ago(r.ageMs),
    });
  });
  const originals = new Set<number>();
  raw.instances.forEach((r, k) => {
    if (r.replaces === null) return;
    const j = r.replaces % instances.length;
    const self = instances[k] as Instance;
    const old = instances[j] as Instance;
    const elsewhere = nodes.find((n) => n.id !== old.nodeId);
    if (j === k || old.replaces !== null || originals.has(j) || originals.has(k) || !elsewhere) return;
    originals.add(j);
    instances[k] = {
      ...self,
      deploymentId: old.deploymentId,
      nodeId: self.nodeId === old.nodeId ? elsewhere.id : self.nodeId,
      desired: 'running',
      published: false,
      restartOnEnable: false,
      replaces: old.id,
    };
  });
  const drains = raw.nodes.flatMap((r, k) =>
    r.drain === null ? [] : [drain(`n${k}`, { state: r.drain.state, force: r.drain.force, deadline: new Date(NOW.getTime() + r.drain.deadlineInMs) })],
  );
  return { nodes, deployments, instances, drains };
}

const snapshotArb = rawFleetArb.map(buildSnapshot);

/** The spec of a node's status (DESIGN.md §4, §7), written out independently of the code. */
function expectedStatus(n: FleetNode, d: Drain | undefined): NodeStatus {
  if (n.lastHeartbeatAt === null || NOW.getTime() - n.lastHeartbeatAt.getTime() > GRACE_MS) return 'down';
  if (d && (d.state === 'running' || d.state === 'blocked')) return 'draining';
  return n.cordoned ? 'cordoned' : 'ready';
}

function facts(snapshot: FleetSnapshot) {
  const drains = new Map(snapshot.drains.map((d) => [d.nodeId, d]));
  const status = new Map(snapshot.nodes.map((n) => [n.id, expectedStatus(n, drains.get(n.id))]));
  const nodes = new Map(snapshot.nodes.map((n) => [n.id, n]));
  const deployments = new Map(snapshot.deployments.map((d) => [d.id, d]));
  const instances = new Map(snapshot.instances.map((i) => [i.id, i]));
  /** Healthy as reported, from a node that is still alive (what the API and the edge count). */
  const healthyNow = (i: Instance) => i.healthy && status.get(i.nodeId) !== 'down';
  const pinned = (deploymentId: string) => {
    const selector = deployments.get(deploymentId)?.nodeSelector ?? null;
    return selector !== null && Object.keys(selector).length > 0;
  };
  return { drains, status, nodes, deployments, instances, healthyNow, pinned };
}

const RUNS = { numRuns: 200 };

describe('reconcileFleet properties', () => {
  it('derives each node status from heartbeat, drain and cordon, and reports exactly the changes', () => {
    fc.assert(
      fc.property(snapshotArb, (snapshot) => {
        const { status } = facts(snapshot);
        const actions = reconcile(snapshot);
        const expected = snapshot.nodes.filter((n) => status.get(n.id) !== n.status).map((n) => ({ nodeId: n.id, status: status.get(n.id) }));
        expect(actions.nodeStatus).toEqual(expected);
        const wentDown = snapshot.nodes.filter((n) => n.status !== 'down' && status.get(n.id) === 'down').map((n) => n.id);
        expect(actions.events.filter((e) => e.kind === 'node.down').map((e) => e.nodeId)).toEqual(wentDown);
      }),
      RUNS,
    );
  });

  it('creates instances only on ready nodes, within capacity and matching the selector', () => {
    fc.assert(
      fc.property(snapshotArb, (snapshot) => {
        const { status, nodes, deployments } = facts(snapshot);
        const actions = reconcile(snapshot);
        const created = new Map<string, number>();
        for (const c of actions.create) {
          expect(status.get(c.nodeId)).toBe('ready');
          const target = nodes.get(c.nodeId) as FleetNode;
          expect(matchesSelector(target, deployments.get(c.deploymentId)?.nodeSelector ?? null)).toBe(true);
          created.set(c.nodeId, (created.get(c.nodeId) ?? 0) + 1);
        }
        for (const [nodeId, count] of created) {
          // A slot is held until the agent reports the instance stopped (the API's active_instances).
          const held = snapshot.instances.filter((i) => i.nodeId === nodeId && i.status !== 'stopped').length;
          expect(held + count).toBeLessThanOrEqual((nodes.get(nodeId) as FleetNode).maxInstances);
        }
      }),
      RUNS,
    );
  });

  it('stops an old instance only in the pass that publishes its healthy replacement (make-before-break)', () => {
    fc.assert(
      fc.property(snapshotArb, (snapshot) => {
        const { instances, drains, healthyNow, pinned } = facts(snapshot);
        const actions = reconcile(snapshot);
        const published = new Set(actions.publish);
        expect(new Set(actions.stop.map((s) => s.instanceId)).size).toBe(actions.stop.length);
        for (const s of actions.stop) {
          const stopped = instances.get(s.instanceId) as Instance;
          expect(stopped.desired).toBe('running');
          if (s.restartOnEnable) {
            // Parking: only a pinned instance, only by a forced drain of its node.
            const d = drains.get(stopped.nodeId);
            expect(pinned(stopped.deploymentId)).toBe(true);
            expect(d?.force && (d.state === 'running' || d.state === 'blocked')).toBe(true);
          } else if (stopped.replaces !== null) {
            // Abandoning a replacement: it failed or ran out of time, and never became healthy.
            expect(healthyNow(stopped)).toBe(false);
            expect(stopped.status === 'failed' || NOW.getTime() - stopped.createdAt.getTime() > MIGRATION_TIMEOUT_MS).toBe(true);
          } else if (!snapshot.instances.some((i) => i.replaces === stopped.id && i.desired === 'running')) {
            // A scale-down (or a deleted deployment): only an instance nothing is replacing, and
            // only while its deployment holds more than its replicas.
            const deployment = snapshot.deployments.find((d) => d.id === stopped.deploymentId);
            // Its slots: plain instances wanted or parked, and replacements taking over in this pass.
            const holding = snapshot.instances.filter(
              (i) => i.deploymentId === stopped.deploymentId && (i.replaces === null ? i.desired === 'running' || i.restartOnEnable : published.has(i.id)),
            );
            expect(holding.length).toBeGreaterThan(deployment?.replicas ?? 0);
          } else {
            const next = snapshot.instances.find((i) => i.replaces === stopped.id);
            expect(next).toBeDefined();
            expect(healthyNow(next as Instance)).toBe(true);
            expect(published.has((next as Instance).id)).toBe(true);
          }
        }
      }),
      RUNS,
    );
  });

  it('never withdraws the last healthy published replica of a deployment without publishing another', () => {
    fc.assert(
      fc.property(snapshotArb, (snapshot) => {
        const { instances, healthyNow } = facts(snapshot);
        const actions = reconcile(snapshot);
        // Parking by a forced drain is the operator's explicit choice to take a pinned replica down.
        const stopped = new Set(actions.stop.filter((s) => !s.restartOnEnable).map((s) => s.instanceId));
        for (const d of snapshot.deployments) {
          // Scaled to zero: withdrawing every replica is what was asked.
          if (d.replicas === 0) continue;
          const serving = snapshot.instances.filter((i) => i.deploymentId === d.id && i.desired === 'running' && i.published && healthyNow(i));
          if (serving.length === 0 || serving.some((i) => !stopped.has(i.id))) continue;
          const takeover = actions.publish.map((id) => instances.get(id) as Instance).filter((i) => i.deploymentId === d.id && healthyNow(i));
          expect(takeover.length).toBeGreaterThan(0);
        }
      }),
      RUNS,
    );
  });

  it('never creates a replacement for a pinned instance', () => {
    fc.assert(
      fc.property(snapshotArb, (snapshot) => {
        const { instances, pinned } = facts(snapshot);
        const actions = reconcile(snapshot);
        for (const c of actions.create) {
          if (c.replaces === null) continue;
          const original = instances.get(c.replaces) as Instance;
          expect(original).toBeDefined();
          expect(pinned(original.deploymentId)).toBe(false);
          expect(c.deploymentId).toBe(original.deploymentId);
          expect(c.nodeId).not.toBe(original.nodeId);
          // One replacement per original, and none while one is already in flight.
          expect(actions.create.filter((x) => x.replaces === c.replaces)).toHaveLength(1);
        }
      }),
      RUNS,
    );
  });

  it('is deterministic and leaves its input untouched', () => {
    fc.assert(
      fc.property(snapshotArb, (snapshot) => {
        const before = structuredClone(snapshot);
        const first = reconcileFleet(snapshot, NOW, OPTIONS);
        expect(snapshot).toEqual(before);
        const second = reconcileFleet(structuredClone(snapshot), new Date(NOW.getTime()), { ...OPTIONS });
        expect(second).toEqual(first);
      }),
      RUNS,
    );
  });
});

// --- A drain over many passes, with a simulated store and agents ---------------------------------

/** Applies one decision the way the store does (src/store/fleet-apply.ts), minting ids in order. */
function applyActions(snapshot: FleetSnapshot, actions: FleetActions, at: Date, nextId: () => string): FleetSnapshot {
  const statusOf = new Map(actions.nodeStatus.map((s) => [s.nodeId, s.status]));
  const published = new Set(actions.publish);
  const stops = new Map(actions.stop.map((s) => [s.instanceId, s.restartOnEnable]));
  const removed = new Set(actions.remove);
  const drainUpdates = new Map(actions.drains.map((d) => [d.nodeId, d]));
  const instances = snapshot.instances
    .filter((i) => !(removed.has(i.id) && i.desired === 'stopped'))
    .map((i) => (published.has(i.id) ? { ...i, published: true, replaces: null } : i))
    .map((i) => {
      const restartOnEnable = stops.get(i.id);
      return restartOnEnable === undefined ? i : { ...i, desired: 'stopped' as const, published: false, replaces: null, restartOnEnable };
    });
  for (const c of actions.create) {
    instances.push(
      instance(nextId(), c.deploymentId, c.nodeId, { status: 'pending', healthy: false, published: false, replaces: c.replaces, createdAt: at }),
    );
  }
  return {
    nodes: snapshot.nodes.map((n) => ({ ...n, status: statusOf.get(n.id) ?? n.status })),
    deployments: snapshot.deployments,
    instances,
    drains: snapshot.drains.map((d) => {
      const u = drainUpdates.get(d.nodeId);
      return u ? { ...d, state: u.state, message: u.message, blockedBy: u.blockedBy } : d;
    }),
  };
}

/** Agents heartbeat and converge: starting and stopping each take as many passes as the coin decides. */
function agentsReport(snapshot: FleetSnapshot, at: Date, coin: () => boolean): FleetSnapshot {
  return {
    ...snapshot,
    nodes: snapshot.nodes.map((n) => ({ ...n, lastHeartbeatAt: at })),
    instances: snapshot.instances.map((i) => {
      if (i.desired === 'stopped') return i.status === 'stopped' || !coin() ? i : { ...i, status: 'stopped' as const, healthy: false };
      if (i.status !== 'running' && coin()) return { ...i, status: 'running' as const, healthy: true };
      return i;
    }),
  };
}

describe('reconcileFleet over many passes', () => {
  const simulationArb = fc.record({
    capacities: fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 2, maxLength: 6 }),
    regions: fc.array(fc.constantFrom(...REGIONS), { minLength: 6, maxLength: 6 }),
    replicas: fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 3 }),
    pinnedOnDrained: fc.boolean(),
    force: fc.boolean(),
    coins: fc.array(fc.boolean(), { minLength: 64, maxLength: 64 }),
  });

  it('drains a node make-before-break: capacity holds, serving replicas never drop, and it finishes when there is room', () => {
    fc.assert(
      fc.property(simulationArb, ({ capacities, regions, replicas, pinnedOnDrained, force, coins }) => {
        let flip = 0;
        const coin = () => coins[flip++ % coins.length] as boolean;
        let minted = 0;
        const nextId = () => `c${String(minted++).padStart(4, '0')}`;
        let at = NOW;
        const pass = (s: FleetSnapshot) => {
          const actions = reconcileFleet(s, at, OPTIONS);
          const applied = applyActions(s, actions, at, nextId);
          for (const n of applied.nodes) {
            expect(applied.instances.filter((i) => i.nodeId === n.id && i.status !== 'stopped').length).toBeLessThanOrEqual(n.maxInstances);
          }
          at = new Date(at.getTime() + 1_000);
          return { actions, next: agentsReport(applied, at, coin) };
        };

        const nodes = capacities.map((maxInstances, k) => node(`n${k}`, { maxInstances, region: regions[k] as string, lastHeartbeatAt: NOW }));
        const deployments = replicas.map((r, k) => deployment(`d${k}`, { replicas: r }));
        if (pinnedOnDrained) deployments.push(deployment('pinned', { nodeSelector: { hostname: 'host-n0' } }));
        let s = fleet({ nodes, deployments });

        // Converge: place and start every replica that fits.
        for (let k = 0; k < 60; k++) {
          const { actions, next } = pass(s);
          s = next;
          if (actions.create.length + actions.publish.length === 0 && s.instances.every((i) => i.healthy)) break;
        }
        const serving = (snap: FleetSnapshot, deploymentId: string) =>
          snap.instances.filter((i) => i.deploymentId === deploymentId && i.desired === 'running' && i.published && i.healthy).length;
        const before = new Map(deployments.map((d) => [d.id, serving(s, d.id)]));
        const onDrained = s.instances.filter((i) => i.nodeId === 'n0' && i.deploymentId !== 'pinned').length;
        const roomElsewhere = nodes
          .slice(1)
          .reduce((sum, n) => sum + n.maxInstances - s.instances.filter((i) => i.nodeId === n.id && i.status !== 'stopped').length, 0);
        const pinnedThere = s.instances.some((i) => i.deploymentId === 'pinned' && i.nodeId === 'n0');

        // Cordon and drain n0.
        s = {
          ...s,
          nodes: s.nodes.map((n) => (n.id === 'n0' ? { ...n, cordoned: true } : n)),
          drains: [drain('n0', { force, startedAt: at, deadline: new Date(at.getTime() + 600_000) })],
        };
        for (let k = 0; k < 60; k++) {
          const { actions, next } = pass(s);
          if (actions.drains.some((d) => d.state === 'completed')) {
            // Drained means the agent confirmed every instance there stopped, parked ones included.
            expect(s.instances.filter((i) => i.nodeId === 'n0' && i.status !== 'stopped')).toEqual([]);
          }
          s = next;
          for (const d of deployments) {
            if (d.id === 'pinned') continue;
            expect(serving(s, d.id)).toBeGreaterThanOrEqual(before.get(d.id) as number);
          }
          const state = s.drains[0]?.state;
          if (state === 'completed' || state === 'failed') break;
        }
        const final = s.drains[0] as Drain;
        if (onDrained <= roomElsewhere && (!pinnedThere || force)) {
          expect(final.state).toBe('completed');
          expect(s.instances.filter((i) => i.nodeId === 'n0' && i.status !== 'stopped')).toEqual([]);
        } else if (pinnedThere && !force && onDrained <= roomElsewhere) {
          expect(final.state).toBe('blocked');
        } else {
          expect(final.state).not.toBe('completed');
        }
        // Parked pinned instances keep their row for enable; nothing replaced them elsewhere.
        expect(s.instances.filter((i) => i.deploymentId === 'pinned' && i.nodeId !== 'n0')).toEqual([]);
      }),
      { numRuns: 100 },
    );
  });
});

describe('waitingFor: when a scoped pass looks again unasked', () => {
  const waits = (snapshot: FleetSnapshot) => waitingFor(snapshot, reconcileScope(snapshot, NOW, OPTIONS));
  const web = deployment('web', { replicas: 1 });

  it('is null once the scope is settled', () => {
    expect(waits(fleet({ nodes: [node('n1')], deployments: [web], instances: [instance('i1', 'web', 'n1', { healthy: true, published: true, status: 'running' })] }))).toBeNull();
  });

  it('is work while a replacement is in flight or an instance is still stopping, and while a drain runs', () => {
    const old = instance('i1', 'web', 'n1', { healthy: true, published: true, status: 'running' });
    expect(waits(fleet({ nodes: [node('n1'), node('n2')], deployments: [web], instances: [old, replacement('i2', old, 'n2')] }))).toBe('work');
    expect(waits(fleet({ nodes: [node('n1')], deployments: [web], instances: [{ ...old, desired: 'stopped', status: 'stopping' }] }))).toBe('work');
    expect(waits(fleet({ nodes: [node('n1', { cordoned: true, status: 'draining' }), node('n2')], deployments: [web], instances: [old], drains: [drain('n1')] }))).toBe('work');
  });

  it('is room when replicas are missing and no node has a free slot, and null once the drain it decided ends', () => {
    expect(waits(fleet({ nodes: [node('n1', { maxInstances: 0 })], deployments: [web] }))).toBe('room');
    // An empty node's drain completes in this very decision: nothing left to wait for.
    expect(waits(fleet({ nodes: [node('n1', { cordoned: true, status: 'draining' })], deployments: [], drains: [drain('n1')] }))).toBeNull();
  });
});

describe('reconcileFleet: draining VMs (live moves)', () => {
  const vm = deployment('vms', {
    replicas: 3,
    minAvailable: 2,
    workload: { driver: 'vm', image: 'g@1.0.0', image_artifact_id: 'a', memory_mb: 128, vcpus: 1, guest_port: 8080 },
  });
  const serving = { published: true, healthy: true, status: 'running' as const };
  const nodes = [node('n1', { status: 'draining', cordoned: true }), node('n2', { maxInstances: 5 }), node('n3', { maxInstances: 5 })];

  it('moves only as many live at once as the disruption budget allows, at least one', () => {
    const instances = ['v1', 'v2', 'v3'].map((id) => instance(id, 'vms', 'n1', serving));
    const actions = reconcile(fleet({ nodes, deployments: [vm], instances, drains: [drain('n1')] }));
    expect(actions.create).toEqual([expect.objectContaining({ replaces: 'v1', move: expect.objectContaining({ mode: 'live', trigger: 'drain' }) })]);
    expect(actions.drains[0]?.message).toMatch(/2 wait for their deployment's disruption budget/);

    // With one in flight the budget (3 serving - 2 min available = 1) is spent: nothing new starts.
    const v1 = instances[0] as Instance;
    const moving = [...instances, replacement('t1', v1, 'n2')];
    expect(reconcile(fleet({ nodes, deployments: [vm], instances: moving, drains: [drain('n1')] })).create).toEqual([]);
  });

  it('a node is not drained while a guest is between nodes: the source quit, its target has not taken over', () => {
    const v1 = instance('v1', 'vms', 'n1', { status: 'stopped', healthy: false, published: true });
    const others = [instance('v2', 'vms', 'n2', serving), instance('v3', 'vms', 'n3', serving)];
    const pending = reconcile(fleet({ nodes, deployments: [vm], instances: [v1, ...others, replacement('t1', v1, 'n2')], drains: [drain('n1')] }));
    expect(pending.drains).toEqual([expect.objectContaining({ nodeId: 'n1', state: 'running' })]);
    // The target serves: it takes over, the source is withdrawn, and the drain completes.
    const arrived = reconcile(fleet({ nodes, deployments: [vm], instances: [v1, ...others, replacement('t1', v1, 'n2', serving)], drains: [drain('n1')] }));
    expect(arrived.publish).toContain('t1');
    expect(arrived.stop).toContainEqual({ instanceId: 'v1', restartOnEnable: false });
    expect(arrived.drains).toEqual([expect.objectContaining({ nodeId: 'n1', state: 'completed' })]);
  });

  it('never times out a live target (its migration has the deadline) and never promotes one before it serves', () => {
    const v1 = instance('v1', 'vms', 'n1', serving);
    const stale = replacement('t1', v1, 'n2', { createdAt: ago(MIGRATION_TIMEOUT_MS * 10) });
    const actions = reconcile(fleet({ nodes, deployments: [vm], instances: [v1, stale, instance('v2', 'vms', 'n3', serving)], drains: [] }));
    expect(actions.stop).toEqual([]);
    expect(actions.publish).not.toContain('t1');
  });
});
