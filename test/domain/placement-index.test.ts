import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { pickTargetNode } from '../../src/domain/placement.js';
import { PlacementIndex } from '../../src/domain/placement-index.js';
import { NODE_STATUSES } from '../../src/domain/types.js';
import { deployment, node, REGIONS } from './fixtures.js';

// The index must answer exactly what pickTargetNode's linear scan over the same facts answers:
// one ranking (placement-index.ts compareRank + byHostname), two ways of evaluating it.

const nodeArb = fc.record({
  region: fc.constantFrom(...REGIONS),
  status: fc.constantFrom(...NODE_STATUSES, 'ready', 'ready', 'ready'),
  maxInstances: fc.integer({ min: 0, max: 6 }),
  load: fc.integer({ min: 0, max: 6 }),
  replica: fc.boolean(),
  avoid: fc.boolean(),
  gold: fc.boolean(),
});

// Hostnames out of id order (and capacities that give equal load ratios), so ties reach the hostname.
const buildNodes = (specs: { region: string; status: (typeof NODE_STATUSES)[number]; maxInstances: number; gold: boolean }[]) =>
  specs.map((n, k) => node(`n${k}`, { hostname: `h${(k * 7) % 13}-${k}`, region: n.region, status: n.status, maxInstances: n.maxInstances, labels: n.gold ? { tier: 'gold' } : {} }));

const selectorArb = fc.constantFrom(null, {}, { labels: { tier: 'gold' } }, { region: 'eu-west' }, { hostname: 'h7-1' });

describe('PlacementIndex', () => {
  it('picks what pickTargetNode picks over every node (property)', () => {
    const arb = fc.record({
      nodes: fc.array(nodeArb, { maxLength: 14 }),
      preferRegion: fc.option(fc.constantFrom(...REGIONS, 'nowhere'), { nil: undefined }),
      selector: selectorArb,
      ignoreSelector: fc.boolean(),
      exclude: fc.integer({ min: 0, max: 15 }),
    });
    fc.assert(
      fc.property(arb, ({ nodes: specs, preferRegion, selector, ignoreSelector, exclude }) => {
        const nodes = buildNodes(specs);
        const load = new Map(specs.map((n, k) => [`n${k}`, n.load]));
        const replicaNodes = new Set(specs.flatMap((n, k) => (n.replica ? [`n${k}`] : [])));
        const avoid = new Set(specs.flatMap((n, k) => (n.avoid ? [`n${k}`] : [])));
        const excluded = new Set([`n${exclude}`]);
        const d = deployment('d', { nodeSelector: selector });
        const index = new PlacementIndex(nodes, (k) => load.get(`n${k}`) ?? 0, { has: (k) => avoid.has(`n${k}`) });
        const picked = index.pick({ deployment: d, replicaNodes, preferRegion, exclude: excluded, ignoreSelector });
        const expected = pickTargetNode({ deployment: d, nodes, load, replicaNodes, avoid, preferRegion, exclude: excluded, ignoreSelector });
        expect(picked?.id ?? null).toBe(expected?.id ?? null);
      }),
      { numRuns: 500 },
    );
  });

  it('stays in step through placements, closed nodes and nodes that stop being avoided (property)', () => {
    const step = fc.oneof(
      fc.record({ kind: fc.constant('place' as const), deployment: fc.integer({ min: 0, max: 3 }), preferRegion: fc.option(fc.constantFrom(...REGIONS), { nil: undefined }) }),
      fc.record({ kind: fc.constant('close' as const), node: fc.nat(), open: fc.boolean() }),
      fc.record({ kind: fc.constant('unavoid' as const), node: fc.nat() }),
      fc.record({ kind: fc.constant('free' as const), node: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.array(nodeArb, { minLength: 1, maxLength: 12 }), fc.array(step, { maxLength: 40 }), (specs, steps) => {
        const nodes = buildNodes(specs);
        const load = new Map(specs.map((n, k) => [`n${k}`, n.load]));
        const avoid = new Set(specs.flatMap((n, k) => (n.avoid ? [`n${k}`] : [])));
        const closed = new Set<string>();
        const replicas = [0, 1, 2, 3].map(() => new Set<string>());
        const index = new PlacementIndex(nodes, (k) => load.get(`n${k}`) ?? 0, { has: (k) => avoid.has(`n${k}`) });
        for (const s of steps) {
          if (s.kind === 'place') {
            const d = deployment(`d${s.deployment}`);
            const replicaNodes = replicas[s.deployment] as Set<string>;
            const picked = index.pick({ deployment: d, replicaNodes, preferRegion: s.preferRegion });
            const expected = pickTargetNode({ deployment: d, nodes, load, replicaNodes, avoid, preferRegion: s.preferRegion, exclude: closed });
            expect(picked?.id ?? null).toBe(expected?.id ?? null);
            if (!picked) continue;
            load.set(picked.id, (load.get(picked.id) ?? 0) + 1);
            index.touch(picked.id);
            replicaNodes.add(picked.id);
          } else {
            const k = s.node % nodes.length;
            const id = `n${k}`;
            if (s.kind === 'close') {
              if (s.open) closed.delete(id);
              else closed.add(id);
              index.setOpenAt(k, s.open);
            } else if (s.kind === 'unavoid') {
              avoid.delete(id);
              index.setAvoidedAt(k, false);
            } else {
              load.set(id, Math.max(0, (load.get(id) ?? 0) - 1));
              index.touchAt(k);
            }
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('walks past many replica nodes to the best node without one', () => {
    // 200 empty nodes hold a replica; the only free one is the most loaded: the walk must reach
    // it past its limit (then scans), and prefer it to every node with a replica.
    const nodes = Array.from({ length: 201 }, (_, k) => node(`n${k}`, { maxInstances: 10 }));
    const load = new Map([['n200', 9]]);
    const replicaNodes = new Set(nodes.slice(0, 200).map((n) => n.id));
    const index = new PlacementIndex(nodes, (k) => load.get(`n${k}`) ?? 0);
    expect(index.pick({ deployment: deployment('d'), replicaNodes })?.id).toBe('n200');
    load.set('n200', 10);
    index.touch('n200');
    // Full: among the replica nodes, the least loaded by hostname (host-n0 < host-n1 < host-n10 …).
    expect(index.pick({ deployment: deployment('d'), replicaNodes })?.id).toBe('n0');
  });
});
