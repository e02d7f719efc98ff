import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type BatchPlan, planBatches, rampedBatchSize, selectTargets } from '../../../src/domain/rollout/batches.js';
import type { FleetNode } from '../../../src/domain/types.js';
import { REGIONS } from '../fixtures.js';
import { fleet, fleetNode, spec } from './fixtures.js';

const onVersion = (version: string | undefined) => () => version;
const ids = (plan: BatchPlan) => plan.batches.map((b) => b.nodes.map((n) => n.id));
const regionsOf = (plan: BatchPlan) => plan.batches.map((b) => b.nodes.map((n) => n.region));

describe('selectTargets', () => {
  it('filters by role, regions, labels and hostnames together', () => {
    const nodes = [
      fleetNode('a', { role: 'worker', region: 'us-east', labels: { tier: 'gold' } }),
      fleetNode('b', { role: 'worker', region: 'eu-west', labels: { tier: 'gold' } }),
      fleetNode('c', { role: 'control-plane', region: 'us-east', labels: { tier: 'gold' } }),
      fleetNode('d', { role: 'worker', region: 'us-east', labels: { tier: 'silver' } }),
    ];
    const pick = (selector: object) => selectTargets(spec({}, { selector }), nodes).map((n) => n.id);
    expect(pick({})).toEqual(['a', 'b', 'c', 'd']);
    expect(pick({ role: 'worker' })).toEqual(['a', 'b', 'd']);
    expect(pick({ role: 'worker', regions: ['us-east'] })).toEqual(['a', 'd']);
    expect(pick({ role: 'worker', regions: ['us-east'], labels: { tier: 'gold' } })).toEqual(['a']);
    expect(pick({ hostnames: ['host-b', 'host-c'] })).toEqual(['b', 'c']);
  });
});

describe('planBatches', () => {
  it('region-by-region finishes one region before the next, in the selector order', () => {
    const s = spec({ order: 'region-by-region', batch: { size: 2 } }, { selector: { regions: ['eu-west', 'us-east', 'ap-south'] } });
    const plan = planBatches(s, fleet(3), onVersion('1.0.0'));
    expect(regionsOf(plan)).toEqual([
      ['eu-west', 'eu-west'],
      ['eu-west'],
      ['us-east', 'us-east'],
      ['us-east'],
      ['ap-south', 'ap-south'],
      ['ap-south'],
    ]);
    expect(plan.batches.map((b) => b.index)).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('orders regions the selector does not list alphabetically, after the listed ones', () => {
    const plan = planBatches(spec({ order: 'region-by-region', batch: { size: 5 } }), fleet(1), onVersion('1.0.0'));
    expect(regionsOf(plan)).toEqual([['ap-south'], ['eu-west'], ['us-east']]);
  });

  it('rolling alternates regions even with one node per batch', () => {
    const plan = planBatches(spec({ order: 'rolling' }), fleet(2), onVersion('1.0.0'));
    expect(regionsOf(plan).map((r) => r.join())).toEqual(['ap-south', 'eu-west', 'us-east', 'ap-south', 'eu-west', 'us-east']);
  });

  it('rolling fills a batch across regions and carries the turn over', () => {
    const plan = planBatches(spec({ order: 'rolling', batch: { size: 2 } }), fleet(2), onVersion('1.0.0'));
    expect(regionsOf(plan)).toEqual([
      ['ap-south', 'eu-west'],
      ['us-east', 'ap-south'],
      ['eu-west', 'us-east'],
    ]);
  });

  it('parallel-regions takes a slice of every region in each batch', () => {
    const plan = planBatches(spec({ order: 'parallel-regions', batch: { size: 2 } }), fleet(3), onVersion('1.0.0'));
    expect(regionsOf(plan)).toEqual([
      ['ap-south', 'ap-south', 'eu-west', 'eu-west', 'us-east', 'us-east'],
      ['ap-south', 'eu-west', 'us-east'],
    ]);
  });

  it('parallel-regions with a percent takes that percent of each region, so 20 % makes five batches', () => {
    const plan = planBatches(spec({ order: 'parallel-regions', batch: { percent: 20 } }), fleet(10), onVersion('1.0.0'));
    expect(plan.batches.map((b) => b.nodes.length)).toEqual([6, 6, 6, 6, 6]);
    for (const regions of regionsOf(plan)) expect([...regions].sort()).toEqual(['ap-south', 'ap-south', 'eu-west', 'eu-west', 'us-east', 'us-east']);
  });

  it('sizes percent batches from the targets, rounding up, at least one node', () => {
    const nodes = fleet(10, {}, ['us-east']);
    expect(planBatches(spec({ batch: { percent: 20 } }), nodes, onVersion('1.0.0')).batches.map((b) => b.nodes.length)).toEqual([2, 2, 2, 2, 2]);
    expect(planBatches(spec({ batch: { percent: 25 } }), nodes, onVersion('1.0.0')).batches.map((b) => b.nodes.length)).toEqual([3, 3, 3, 1]);
    expect(planBatches(spec({ batch: { percent: 1 } }), nodes, onVersion('1.0.0')).batches).toHaveLength(10);
  });

  it('puts the canary first, alone, then the rest', () => {
    const s = spec({ order: 'region-by-region', canary: { nodes: 1, soak: '10m' }, batch: { size: 2 } });
    const plan = planBatches(s, fleet(3), onVersion('1.0.0'));
    expect(plan.batches[0]).toEqual({ index: 0, canary: true, nodes: [{ id: 'r2-n00', hostname: 'host-r2-n00', region: 'ap-south' }] });
    expect(plan.batches.slice(1).every((b) => !b.canary)).toBe(true);
    expect(ids(plan).flat()).toHaveLength(9);
    expect(new Set(ids(plan).flat()).size).toBe(9);
    // The canary's region continues with its remaining nodes.
    expect(ids(plan)[1]).toEqual(['r2-n01', 'r2-n02']);
  });

  it('starts small after the canary and grows to the full batch: 3/5, 3/4, 15/16, then full', () => {
    const nodes = fleet(40, {}, ['us-east']);
    const sizes = (order: 'rolling' | 'region-by-region' | 'parallel-regions', canary: boolean) =>
      planBatches(spec({ order, batch: { size: 10 }, ...(canary ? { canary: { nodes: 1 } } : {}) }), nodes, onVersion('1.0.0')).batches.map((b) => b.nodes.length);
    for (const order of ['rolling', 'region-by-region', 'parallel-regions'] as const) {
      expect(sizes(order, true)).toEqual([1, 6, 8, 10, 10, 5]);
      // Without a canary the spec asked for full batches from the start.
      expect(sizes(order, false)).toEqual([10, 10, 10, 10]);
    }
    // Batches of one or two nodes are unchanged.
    expect(rampedBatchSize(1, 0)).toBe(1);
    expect(rampedBatchSize(2, 0)).toBe(2);
    expect([0, 1, 2, 3, 4].map((k) => rampedBatchSize(500, k))).toEqual([300, 375, 469, 500, 500]);
  });

  it('ramps each region slice of parallel-regions after the canary, a percent of each region', () => {
    const plan = planBatches(spec({ order: 'parallel-regions', canary: { nodes: 1 }, batch: { percent: 25 } }), fleet(20), onVersion('1.0.0'));
    // 5 nodes a region per full batch; after the canary 3, then 4, then 5.
    expect(plan.batches.map((b) => b.nodes.length)).toEqual([1, 9, 12, 15, 15, 8]);
  });

  it('spreads a canary bigger than one region budget over the next regions', () => {
    const s = spec({ canary: { nodes: 3 }, maxUnavailablePerRegion: 2, batch: { size: 1 } });
    const plan = planBatches(s, fleet(3), onVersion('1.0.0'));
    expect(regionsOf(plan)[0]).toEqual(['ap-south', 'ap-south', 'eu-west']);
  });

  it('3 control-plane nodes per region with minAvailablePerRegion 2 go one at a time per region', () => {
    const nodes = fleet(3, { role: 'control-plane' });
    for (const order of ['rolling', 'region-by-region', 'parallel-regions'] as const) {
      const plan = planBatches(spec({ order, batch: { size: 3 }, minAvailablePerRegion: 2 }, { selector: { role: 'control-plane' } }), nodes, onVersion('1.0.0'));
      expect(plan.regionCaps).toEqual({ 'us-east': 1, 'eu-west': 1, 'ap-south': 1 });
      for (const regions of regionsOf(plan)) expect(new Set(regions).size).toBe(regions.length);
      expect(ids(plan).flat().sort()).toEqual(nodes.map((n) => n.id).sort());
    }
  });

  it('caps every batch at maxUnavailablePerRegion per region', () => {
    const plan = planBatches(spec({ order: 'region-by-region', batch: { size: 5 }, maxUnavailablePerRegion: 2 }), fleet(5), onVersion('1.0.0'));
    expect(plan.batches.map((b) => b.nodes.length)).toEqual([2, 2, 1, 2, 2, 1, 2, 2, 1]);
  });

  it('skips nodes already on the target version, and still counts them in the budget', () => {
    const nodes = fleet(3, { role: 'control-plane' });
    const upgraded = new Set(['r0-n00', 'r1-n01']);
    const plan = planBatches(spec({ minAvailablePerRegion: 2, batch: { size: 3 } }), nodes, (n) => (upgraded.has(n.id) ? '2.0.0' : '1.0.0'));
    expect(plan.skipped.map((n) => n.id).sort()).toEqual([...upgraded].sort());
    expect(ids(plan).flat()).not.toContain('r0-n00');
    expect(ids(plan).flat()).toHaveLength(7);
    // 3 nodes, 2 must stay available: one at a time, whether or not one is already upgraded.
    expect(plan.regionCaps).toEqual({ 'us-east': 1, 'eu-west': 1, 'ap-south': 1 });
  });

  it('plans nothing when every node already runs the target', () => {
    const plan = planBatches(spec({}), fleet(2), onVersion('2.0.0'));
    expect(plan.batches).toEqual([]);
    expect(plan.skipped).toHaveLength(6);
  });

  it('reports regions whose budget allows no node at all, and plans none of their nodes', () => {
    const nodes = [...fleet(3, {}, ['us-east']), ...fleet(2, {}, ['eu-west']).map((n) => ({ ...n, id: `eu-${n.id}` }))];
    const plan = planBatches(spec({ minAvailablePerRegion: 2, batch: { size: 2 } }), nodes, onVersion('1.0.0'));
    expect(plan.blockedRegions).toEqual(['eu-west']);
    expect(plan.regionCaps['eu-west']).toBe(0);
    expect(regionsOf(plan).flat()).toEqual(['us-east', 'us-east', 'us-east']);
  });

  it('blocks a region when minAvailablePerRegion is at least its size', () => {
    const plan = planBatches(spec({ minAvailablePerRegion: 3, canary: { nodes: 1 } }), fleet(3), onVersion('1.0.0'));
    expect(plan.blockedRegions.sort()).toEqual([...REGIONS].sort());
    expect(plan.batches).toEqual([]);
  });

  const planArb = fc.record({
    sizes: fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 1, maxLength: 4 }),
    upgraded: fc.array(fc.boolean(), { minLength: 40, maxLength: 40 }),
    order: fc.constantFrom('rolling' as const, 'region-by-region' as const, 'parallel-regions' as const),
    batch: fc.oneof(fc.record({ size: fc.integer({ min: 1, max: 6 }) }), fc.record({ percent: fc.integer({ min: 1, max: 100 }) })),
    canary: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }),
    budget: fc.oneof(
      fc.record({ maxUnavailablePerRegion: fc.integer({ min: 1, max: 4 }) }),
      fc.record({ minAvailablePerRegion: fc.integer({ min: 0, max: 5 }) }),
      fc.constant({}),
    ),
  });

  it('plans every target exactly once, within every region budget, canary first (property)', () => {
    fc.assert(
      fc.property(planArb, ({ sizes, upgraded, order, batch, canary, budget }) => {
        const nodes: FleetNode[] = sizes.flatMap((size, r) =>
          Array.from({ length: size }, (_, k) => fleetNode(`g${r}-${k}`, { region: `region-${r}` })),
        );
        const isUpgraded = (n: FleetNode) => upgraded[nodes.indexOf(n)] ?? false;
        const s = spec({ order, batch, ...(canary ? { canary: { nodes: canary } } : {}), ...budget });
        const plan = planBatches(s, nodes, (n) => (isUpgraded(n) ? '2.0.0' : '1.0.0'));

        const planned = ids(plan).flat();
        expect(new Set(planned).size).toBe(planned.length);
        const expected = nodes.filter((n) => !isUpgraded(n) && !plan.blockedRegions.includes(n.region)).map((n) => n.id);
        expect([...planned].sort()).toEqual(expected.sort());
        expect(plan.skipped.map((n) => n.id).sort()).toEqual(nodes.filter(isUpgraded).map((n) => n.id).sort());

        for (const [i, b] of plan.batches.entries()) {
          expect(b.index).toBe(i);
          expect(b.nodes.length).toBeGreaterThan(0);
          const perRegion = new Map<string, number>();
          for (const n of b.nodes) perRegion.set(n.region, (perRegion.get(n.region) ?? 0) + 1);
          for (const [region, count] of perRegion) expect(count).toBeLessThanOrEqual(plan.regionCaps[region] ?? 0);
          if (b.canary) {
            expect(i).toBe(0);
            expect(b.nodes.length).toBeLessThanOrEqual(canary ?? 0);
          }
          if (order !== 'parallel-regions' && !b.canary && 'size' in batch) expect(b.nodes.length).toBeLessThanOrEqual(batch.size);
        }
        if (canary && planned.length > 0) expect(plan.batches[0]?.canary).toBe(true);
        if (order === 'region-by-region') {
          // Once a region is left, it never comes back.
          const sequence = plan.batches.filter((b) => !b.canary).flatMap((b) => b.nodes.map((n) => n.region));
          const seen: string[] = [];
          for (const region of sequence) if (seen.at(-1) !== region) seen.push(region);
          expect(new Set(seen).size).toBe(seen.length);
        }
        // Same input, same plan.
        expect(planBatches(s, nodes, (n) => (isUpgraded(n) ? '2.0.0' : '1.0.0'))).toEqual(plan);
      }),
      { numRuns: 150 },
    );
  });
});
