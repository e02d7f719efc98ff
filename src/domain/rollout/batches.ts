import { matchesSelector } from '../selector.js';
import type { FleetNode } from '../types.js';
import type { RolloutSpec } from './spec.js';

export interface PlannedNode {
  id: string;
  hostname: string;
  region: string;
}

export interface PlannedBatch {
  index: number;
  canary: boolean;
  nodes: PlannedNode[];
}

export interface BatchPlan {
  batches: PlannedBatch[];
  /** Selected nodes that already run the target version: their tasks start as skipped. */
  skipped: PlannedNode[];
  /** Most nodes of one region that may be in flight at once, per region. */
  regionCaps: Record<string, number>;
  /** Regions whose budget allows no node at all (minAvailablePerRegion too high). */
  blockedRegions: string[];
}

/** The nodes a rollout targets: the selector's role, regions, labels and hostnames. */
export function selectTargets(spec: RolloutSpec, nodes: readonly FleetNode[]): FleetNode[] {
  const { role, regions, labels } = spec.selector;
  // A set: a spec may list thousands of hostnames, checked against every node.
  const hostnames = spec.selector.hostnames && new Set(spec.selector.hostnames);
  return nodes.filter(
    (n) =>
      (role === undefined || n.role === role) &&
      (regions === undefined || regions.includes(n.region)) &&
      (hostnames === undefined || hostnames.has(n.hostname)) &&
      matchesSelector(n, labels ? { labels } : null),
  );
}

/**
 * Slow start after the canary: the first batches after it take 3/5, then 3/4, then 15/16 of
 * the spec's batch size (×1.25 a batch, rounded up), and full batches from the fourth on.
 *
 * Why: a drained instance goes to a node with room, preferring nodes already upgraded or not in
 * the rollout (plan.ts), but right after the canary almost no node is upgraded, so the first
 * batch's instances land on nodes of later batches and move a second time when those drain.
 * Upgraded nodes only take their spare room (with 20 % spare, a quarter of a node's load each),
 * so that upgraded room catches up with a full batch only a few batches in. Measured by
 * bench:rollout (10,000 nodes, 20 instances each, 20 % spare, 5 % batches): full batches
 * straight after the canary made 10,035 moves more than one per instance (1.050 migrations per
 * instance); this ramp makes 6,879 (1.034), for one batch more (22 instead of 21). It also keeps the first
 * wide exposure of a new version after the canary smaller (the breaker trips on fewer nodes).
 * Batches of 1 or 2 nodes are unchanged (3/5 of 2 rounds up to 2). Without a canary there is no
 * ramp: the spec asked for full batches from the start.
 */
const RAMP_AFTER_CANARY: readonly [number, number][] = [
  [3, 5],
  [3, 4],
  [15, 16],
];

/** The size of the `k`-th batch after the canary (0-based) for a full size of `size`. */
export function rampedBatchSize(size: number, k: number): number {
  const step = RAMP_AFTER_CANARY[k];
  if (!step) return size;
  // Integer numerator over integer denominator: the quotient is exact when whole, so ceil never rounds a whole up.
  return Math.max(1, Math.min(size, Math.ceil((size * step[0]) / step[1])));
}

function regionOrder(spec: RolloutSpec, targets: readonly FleetNode[]): string[] {
  const present = [...new Set(targets.map((n) => n.region))];
  const listed = spec.selector.regions ?? [];
  return [...listed.filter((r) => present.includes(r)), ...present.filter((r) => !listed.includes(r)).sort()];
}

/**
 * Splits the targets into ordered batches. Every batch respects the per-region budget
 * (maxUnavailablePerRegion, or the region's size minus minAvailablePerRegion), so 3
 * control-plane nodes with minAvailablePerRegion 2 go one at a time per region. The canary
 * batch comes first; then `rolling` interleaves regions, `region-by-region` finishes one region
 * before the next, and `parallel-regions` takes a slice of every region in each batch.
 */
export function planBatches(
  spec: RolloutSpec,
  nodes: readonly FleetNode[],
  currentVersion: (node: FleetNode) => string | undefined,
  /** Several targets: the node runs every one already (default: it runs the first target's version). */
  atTarget: (node: FleetNode) => boolean = (n) => currentVersion(n) === spec.target.version,
): BatchPlan {
  const selected = selectTargets(spec, nodes);
  const asPlanned = (n: FleetNode): PlannedNode => ({ id: n.id, hostname: n.hostname, region: n.region });
  const skipped = selected.filter(atTarget);
  const targets = selected.filter((n) => !atTarget(n));
  const regions = regionOrder(spec, targets);
  const byRegion = new Map(regions.map((r) => [r, [] as FleetNode[]]));
  for (const n of targets) byRegion.get(n.region)?.push(n);
  for (const list of byRegion.values()) list.sort((a, b) => a.hostname.localeCompare(b.hostname));
  const selectedIn = new Map<string, number>();
  for (const n of selected) selectedIn.set(n.region, (selectedIn.get(n.region) ?? 0) + 1);

  const regionCaps: Record<string, number> = {};
  const blockedRegions: string[] = [];
  for (const region of regions) {
    // The budget counts every selected node of the region, including ones already upgraded.
    const size = selectedIn.get(region) ?? 0;
    let cap = spec.strategy.maxUnavailablePerRegion ?? size;
    if (spec.strategy.minAvailablePerRegion !== undefined) cap = Math.min(cap, size - spec.strategy.minAvailablePerRegion);
    regionCaps[region] = Math.max(0, cap);
    if (cap <= 0) blockedRegions.push(region);
  }

  const batch = spec.strategy.batch;
  const batchSize = 'size' in batch ? batch.size : Math.max(1, Math.ceil((batch.percent / 100) * targets.length));
  const batches: PlannedBatch[] = [];
  const queue = new Map([...byRegion].map(([r, list]) => [r, [...list]]));
  const push = (list: FleetNode[], canary = false) => {
    if (list.length > 0) batches.push({ index: batches.length, canary, nodes: list.map(asPlanned) });
  };
  // How big the next batch after the canary may be (RAMP_AFTER_CANARY): full when there is no canary batch.
  const hasCanary = () => batches[0]?.canary === true;
  const ramped = (size: number) => (hasCanary() ? rampedBatchSize(size, batches.length - 1) : size);
  const take = (region: string, count: number): FleetNode[] => {
    const list = queue.get(region) ?? [];
    return list.splice(0, Math.max(0, Math.min(count, regionCaps[region] ?? 0)));
  };
  const remaining = () => [...queue.values()].reduce((sum, list) => sum + list.length, 0);
  const usable = regions.filter((r) => (regionCaps[r] ?? 0) > 0);

  if (spec.strategy.canary) {
    const canary: FleetNode[] = [];
    for (const region of usable) {
      if (canary.length >= spec.strategy.canary.nodes) break;
      for (const n of take(region, spec.strategy.canary.nodes - canary.length)) canary.push(n);
    }
    push(canary, true);
  }

  if (spec.strategy.order === 'region-by-region') {
    for (const region of usable) while ((queue.get(region)?.length ?? 0) > 0) push(take(region, ramped(batchSize)));
  } else if (spec.strategy.order === 'parallel-regions') {
    // Each batch takes a slice of every region: `size` nodes of each, or `percent` of each
    // region's targets (a percent of the whole fleet from every region would make each batch
    // regions × percent of the fleet).
    const slice = (region: string) =>
      ramped('size' in batch ? batch.size : Math.max(1, Math.ceil((batch.percent / 100) * (byRegion.get(region)?.length ?? 0))));
    while (usable.some((r) => (queue.get(r)?.length ?? 0) > 0)) push(usable.flatMap((r) => take(r, slice(r))));
  } else {
    // rolling: round-robin over regions, filling each batch up to its size within the caps. The
    // turn carries over between batches, so batches of one node still alternate regions.
    let turn = 0;
    while (usable.some((r) => (queue.get(r)?.length ?? 0) > 0) && remaining() > 0) {
      const current: FleetNode[] = [];
      const inBatch = new Map<string, number>();
      const size = ramped(batchSize);
      let progressed = true;
      let nextTurn = turn;
      while (current.length < size && progressed) {
        progressed = false;
        for (let k = 0; k < usable.length; k++) {
          if (current.length >= size) break;
          const at = (turn + k) % usable.length;
          const region = usable[at] as string;
          if ((inBatch.get(region) ?? 0) >= (regionCaps[region] ?? 0)) continue;
          const [next] = take(region, 1);
          if (!next) continue;
          current.push(next);
          inBatch.set(region, (inBatch.get(region) ?? 0) + 1);
          progressed = true;
          nextTurn = (at + 1) % usable.length;
        }
      }
      turn = nextTurn;
      push(current);
    }
  }
  return { batches, skipped: skipped.map(asPlanned), regionCaps, blockedRegions };
}
