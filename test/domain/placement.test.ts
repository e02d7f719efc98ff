import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  loadByNode,
  occupiesSlot,
  pickTargetNode,
  placeReplicas,
  placementState,
  planDrain,
} from '../../src/domain/placement.js';
import { isPinned, matchesSelector } from '../../src/domain/selector.js';
import { type Deployment, type FleetNode, INSTANCE_STATUSES, type Instance, NODE_ROLES, NODE_STATUSES, type NodeSelector } from '../../src/domain/types.js';
import { deployment, instance, node, REGIONS } from './fixtures.js';

/** `count` running instances of a filler deployment on a node, to take up its slots. */
function filler(nodeId: string, count: number, status: Instance['status'] = 'running'): Instance[] {
  return Array.from({ length: count }, (_, k) => instance(`fill-${nodeId}-${k}`, 'filler', nodeId, { status }));
}

const countBy = (ids: readonly string[]) => {
  const counts = new Map<string, number>();
  for (const id of ids) counts.set(id, (counts.get(id) ?? 0) + 1);
  return counts;
};

describe('slots and load', () => {
  it('an instance holds its slot until the agent reports it stopped', () => {
    for (const status of INSTANCE_STATUSES) expect(occupiesSlot({ status })).toBe(status !== 'stopped');
  });

  it('counts slots per node, including instances that are still stopping', () => {
    const load = loadByNode([
      instance('a', 'd', 'n1'),
      instance('b', 'd', 'n1', { desired: 'stopped', status: 'stopping' }),
      instance('c', 'd', 'n1', { desired: 'stopped', status: 'stopped' }),
      instance('e', 'd', 'n2', { status: 'pending' }),
    ]);
    expect(Object.fromEntries(load)).toEqual({ n1: 2, n2: 1 });
  });

  it('spread only counts instances that are wanted running', () => {
    const state = placementState([instance('a', 'd', 'n1'), instance('b', 'd', 'n2', { desired: 'stopped', status: 'stopping' })]);
    expect([...(state.replicaNodes.get('d') ?? [])]).toEqual(['n1']);
    expect(Object.fromEntries(state.load)).toEqual({ n1: 1, n2: 1 });
  });
});

describe('pickTargetNode', () => {
  const request = (nodes: FleetNode[], instances: Instance[] = [], extra: Partial<Parameters<typeof pickTargetNode>[0]> = {}) => {
    const state = placementState(instances);
    return pickTargetNode({
      deployment: deployment('d'),
      nodes,
      load: state.load,
      replicaNodes: state.replicaNodes.get('d') ?? new Set(),
      ...extra,
    });
  };

  it('only picks ready nodes', () => {
    for (const status of NODE_STATUSES) {
      const picked = request([node('n1', { status })]);
      expect(picked?.id ?? null).toBe(status === 'ready' ? 'n1' : null);
    }
  });

  it('returns null when every node is full, and skips a full node for one with room', () => {
    expect(request([node('n1', { maxInstances: 1 })], filler('n1', 1))).toBeNull();
    expect(request([node('n1', { maxInstances: 0 })])).toBeNull();
    expect(request([node('n1', { maxInstances: 1 }), node('n2', { maxInstances: 1 })], filler('n1', 1))?.id).toBe('n2');
  });

  it('prefers a node without a replica of the deployment over a less loaded one', () => {
    const nodes = [node('n1', { maxInstances: 10 }), node('n2', { maxInstances: 10 })];
    const picked = request(nodes, [instance('r1', 'd', 'n1'), ...filler('n2', 5)]);
    expect(picked?.id).toBe('n2');
  });

  it('prefers the requested region, then the least loaded node, then the hostname', () => {
    const nodes = [node('n1', { region: 'eu-west' }), node('n2', { hostname: 'b' }), node('n3', { hostname: 'a' }), node('n4', { hostname: 'c' })];
    expect(request(nodes, filler('n3', 1), { preferRegion: 'us-east' })?.id).toBe('n2');
    expect(request(nodes, filler('n2', 1), { preferRegion: 'us-east' })?.id).toBe('n3');
    expect(request(nodes, [], { preferRegion: 'eu-west' })?.id).toBe('n1');
    expect(request(nodes, [], { exclude: new Set(['n3']) })?.id).toBe('n2');
  });

  it('compares load as a fraction of each node’s capacity', () => {
    const nodes = [node('n1', { maxInstances: 2 }), node('n2', { maxInstances: 10 })];
    expect(request(nodes, [...filler('n1', 1), ...filler('n2', 2)])?.id).toBe('n2');
  });

  it('respects the node selector unless told to ignore it', () => {
    const pinned = deployment('d', { nodeSelector: { labels: { disk: 'ssd' } } });
    const nodes = [node('n1', { labels: { disk: 'hdd' } })];
    expect(request(nodes, [], { deployment: pinned })).toBeNull();
    expect(request(nodes, [], { deployment: pinned, ignoreSelector: true })?.id).toBe('n1');
  });
});

describe('placeReplicas', () => {
  it('spreads replicas one per node before doubling up', () => {
    const nodes = [node('n1'), node('n2'), node('n3')];
    const placed = placeReplicas(deployment('d', { replicas: 5 }), 5, nodes, placementState([]));
    expect(placed.slice(0, 3).sort()).toEqual(['n1', 'n2', 'n3']);
    expect(Math.max(...countBy(placed).values())).toBe(2);
  });

  it('places fewer when the fleet runs out of room, and records what it placed', () => {
    const nodes = [node('n1', { maxInstances: 1 }), node('n2', { maxInstances: 2, status: 'cordoned' }), node('n3', { maxInstances: 2 })];
    const state = placementState(filler('n3', 1));
    const placed = placeReplicas(deployment('d'), 4, nodes, state);
    expect(placed.sort()).toEqual(['n1', 'n3']);
    expect(state.load.get('n1')).toBe(1);
    expect(state.load.get('n3')).toBe(2);
    expect([...(state.replicaNodes.get('d') ?? [])].sort()).toEqual(['n1', 'n3']);
  });
});

describe('planDrain', () => {
  const deployments = new Map([
    ['web', deployment('web', { replicas: 2 })],
    ['db', deployment('db', { nodeSelector: { hostname: 'host-n1' } })],
  ]);

  it('moves each instance to a ready node with room, preferring the drained node’s region', () => {
    const nodes = [node('n1'), node('n2', { region: 'eu-west' }), node('n3'), node('n4', { status: 'cordoned' })];
    const plan = planDrain('n1', nodes, [instance('w1', 'web', 'n1')], deployments);
    expect(plan).toEqual({ moves: [{ instanceId: 'w1', targetNodeId: 'n3' }], pinned: [], unplaceable: [] });
  });

  it('lists pinned instances instead of moving them', () => {
    const nodes = [node('n1'), node('n2')];
    const plan = planDrain('n1', nodes, [instance('p1', 'db', 'n1'), instance('w1', 'web', 'n1')], deployments);
    expect(plan.pinned).toEqual(['p1']);
    expect(plan.moves).toEqual([{ instanceId: 'w1', targetNodeId: 'n2' }]);
  });

  it('reports instances that fit nowhere, counting the moves it already planned', () => {
    const nodes = [node('n1'), node('n2', { maxInstances: 1 })];
    const plan = planDrain('n1', nodes, [instance('w1', 'web', 'n1'), instance('w2', 'web', 'n1')], deployments);
    expect(plan.moves).toEqual([{ instanceId: 'w1', targetNodeId: 'n2' }]);
    expect(plan.unplaceable).toEqual([{ instanceId: 'w2', deploymentId: 'web', reason: 'no ready node with room' }]);
  });

  it('mentions the selector when a selector narrowed the choice', () => {
    const selective = new Map([['gpu', deployment('gpu', { nodeSelector: {} })]]);
    const nodes = [node('n1'), node('n2', { status: 'down' })];
    const plan = planDrain('n1', nodes, [instance('g1', 'gpu', 'n1')], selective);
    expect(plan.unplaceable[0]?.reason).toBe('no ready node with room matching the selector');
  });

  it('skips instances already migrating, replacements, stopped instances and unknown deployments', () => {
    const nodes = [node('n1'), node('n2')];
    const instances = [
      instance('w1', 'web', 'n1'),
      instance('w1-new', 'web', 'n2', { replaces: 'w1', published: false }),
      instance('w2', 'web', 'n1', { desired: 'stopped', status: 'stopping' }),
      instance('x1', 'ghost', 'n1'),
      instance('w3', 'web', 'n2'),
    ];
    expect(planDrain('n1', nodes, instances, deployments)).toEqual({ moves: [], pinned: [], unplaceable: [] });
  });
});

// --- Properties -------------------------------------------------------------------------------

const selectorArb: fc.Arbitrary<NodeSelector | null> = fc.oneof(
  fc.constant(null),
  fc.constant({}),
  fc.constantFrom(...REGIONS).map((region) => ({ region })),
  fc.constantFrom(...NODE_ROLES).map((role) => ({ role })),
  fc.constantFrom('ssd', 'hdd').map((disk) => ({ labels: { disk } })),
  fc.integer({ min: 0, max: 7 }).map((k) => ({ hostname: `host-n${k}` })),
);

const fleetArb = fc
  .array(
    fc.record({
      region: fc.constantFrom(...REGIONS),
      role: fc.constantFrom(...NODE_ROLES),
      disk: fc.constantFrom('ssd', 'hdd'),
      status: fc.constantFrom(...NODE_STATUSES),
      maxInstances: fc.integer({ min: 0, max: 4 }),
      fillers: fc.array(fc.constantFrom(...INSTANCE_STATUSES), { maxLength: 5 }),
    }),
    { minLength: 1, maxLength: 8 },
  )
  .map((raw) => {
    const nodes = raw.map((r, k) =>
      node(`n${k}`, { region: r.region, role: r.role, labels: { disk: r.disk }, status: r.status, maxInstances: r.maxInstances }),
    );
    const instances = raw.flatMap((r, k) => r.fillers.map((status, j) => instance(`fill-n${k}-${j}`, 'filler', `n${k}`, { status })));
    return { nodes, instances };
  });

const eligible = (n: FleetNode, selector: NodeSelector | null) => n.status === 'ready' && matchesSelector(n, selector);

describe('placement properties', () => {
  it('never overfills a node, never uses a node that is not ready, and spreads replicas across nodes', () => {
    fc.assert(
      fc.property(fleetArb, selectorArb, fc.integer({ min: 0, max: 12 }), ({ nodes, instances }, selector, count) => {
        const d = deployment('d', { replicas: count, nodeSelector: selector });
        const initial = loadByNode(instances);
        const placed = placeReplicas(d, count, nodes, placementState(instances));
        const perNode = countBy(placed);
        const room = (n: FleetNode) => n.maxInstances - (initial.get(n.id) ?? 0) - (perNode.get(n.id) ?? 0);

        for (const [nodeId, placedHere] of perNode) {
          const n = nodes.find((x) => x.id === nodeId) as FleetNode;
          expect(n.status).toBe('ready');
          expect(matchesSelector(n, selector)).toBe(true);
          expect((initial.get(nodeId) ?? 0) + placedHere).toBeLessThanOrEqual(n.maxInstances);
        }
        // Spread: a node only hosts a second replica when no eligible node with room hosts none.
        if ([...perNode.values()].some((c) => c >= 2)) {
          for (const n of nodes) {
            if (eligible(n, selector) && room(n) > 0) expect(perNode.get(n.id) ?? 0).toBeGreaterThanOrEqual(1);
          }
        }
        // Fewer than asked only when no eligible room is left.
        const capacity = nodes.filter((n) => eligible(n, selector)).reduce((sum, n) => sum + Math.max(0, n.maxInstances - (initial.get(n.id) ?? 0)), 0);
        expect(placed.length).toBe(Math.min(count, capacity));
      }),
      { numRuns: 200 },
    );
  });

  it('pickTargetNode returns a ready, unexcluded node with room, and null only when there is none', () => {
    fc.assert(
      fc.property(fleetArb, selectorArb, fc.integer({ min: 0, max: 7 }), fc.boolean(), ({ nodes, instances }, selector, excluded, ignoreSelector) => {
        const load = loadByNode(instances);
        const exclude = new Set([`n${excluded}`]);
        const picked = pickTargetNode({
          deployment: deployment('d', { nodeSelector: selector }),
          nodes,
          load,
          replicaNodes: new Set(),
          exclude,
          ignoreSelector,
        });
        const fits = (n: FleetNode) =>
          n.status === 'ready' && !exclude.has(n.id) && (ignoreSelector || matchesSelector(n, selector)) && (load.get(n.id) ?? 0) < n.maxInstances;
        if (picked === null) expect(nodes.some(fits)).toBe(false);
        else expect(fits(picked)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('planDrain accounts for every instance once, never moves pinned ones, and moves only to ready nodes with room', () => {
    const drainArb = fc.record({
      fleet: fleetArb,
      selectors: fc.array(selectorArb, { minLength: 1, maxLength: 3 }),
      onNode: fc.array(
        fc.record({ deployment: fc.nat(), desired: fc.constantFrom<'running' | 'stopped'>('running', 'running', 'stopped') }),
        { maxLength: 8 },
      ),
      drained: fc.nat(),
    });
    fc.assert(
      fc.property(drainArb, ({ fleet, selectors, onNode, drained }) => {
        const { nodes } = fleet;
        const source = nodes[drained % nodes.length] as FleetNode;
        const deployments = new Map(selectors.map((s, k) => [`d${k}`, deployment(`d${k}`, { nodeSelector: s })]));
        const mine = onNode.map((r, k) =>
          instance(`i${k}`, `d${r.deployment % selectors.length}`, source.id, { desired: r.desired, status: r.desired === 'stopped' ? 'stopping' : 'running' }),
        );
        const instances = [...fleet.instances, ...mine];
        const initial = loadByNode(instances);
        const plan = planDrain(source.id, nodes, instances, deployments);

        const considered = mine.filter((i) => i.desired === 'running').map((i) => i.id).sort();
        const accounted = [...plan.moves.map((m) => m.instanceId), ...plan.pinned, ...plan.unplaceable.map((u) => u.instanceId)].sort();
        expect(accounted).toEqual(considered);

        const depOf = (id: string) => deployments.get(mine.find((i) => i.id === id)?.deploymentId ?? '') as Deployment;
        for (const id of plan.pinned) expect(isPinned(depOf(id).nodeSelector)).toBe(true);
        const added = countBy(plan.moves.map((m) => m.targetNodeId));
        for (const move of plan.moves) {
          const target = nodes.find((n) => n.id === move.targetNodeId) as FleetNode;
          expect(isPinned(depOf(move.instanceId).nodeSelector)).toBe(false);
          expect(target.id).not.toBe(source.id);
          expect(target.status).toBe('ready');
          expect((initial.get(target.id) ?? 0) + (added.get(target.id) ?? 0)).toBeLessThanOrEqual(target.maxInstances);
        }
        for (const u of plan.unplaceable) {
          const selector = depOf(u.instanceId).nodeSelector;
          const roomLeft = nodes.some(
            (n) => n.id !== source.id && eligible(n, selector) && (initial.get(n.id) ?? 0) + (added.get(n.id) ?? 0) < n.maxInstances,
          );
          expect(roomLeft).toBe(false);
        }
      }),
      { numRuns: 200 },
    );
  });
});
