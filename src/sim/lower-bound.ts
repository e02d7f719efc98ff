// The shortest a simulated rollout could take, to judge its makespan against (the bench reports
// makespan / lower bound; goal ≤ 1.05, issue 9).
import type { BatchPlan } from '../domain/rollout/batches.js';
import type { RolloutSpec } from '../domain/rollout/spec.js';

export interface NodeTimes {
  /** How long draining the node takes (0 when the drain mode moves nothing). */
  drainMs: (nodeId: string) => number;
  installMs: (nodeId: string) => number;
}

/** Batches one after another, each as long as its slowest node, plus pauses and the canary soak; no reconciler latency, no failures. */
export function lowerBoundMs(spec: RolloutSpec, plan: BatchPlan, times: NodeTimes): number {
  let total = 0;
  for (const batch of plan.batches) {
    let slowest = 0;
    for (const node of batch.nodes) slowest = Math.max(slowest, times.drainMs(node.id) + times.installMs(node.id));
    total += slowest + spec.strategy.health.minHealthyTime;
  }
  total += Math.max(0, plan.batches.length - 1) * spec.strategy.pauseBetweenBatches;
  if (spec.strategy.canary && plan.batches.length > 1) total += spec.strategy.canary.soak;
  return total;
}

/** What the per-region budget alone allows, ignoring batches, pauses and the canary: every region through its cap of nodes at a time, each as fast as the fastest node. */
export function budgetLowerBoundMs(spec: RolloutSpec, plan: BatchPlan, times: NodeTimes): number {
  const perRegion = new Map<string, string[]>();
  for (const batch of plan.batches) {
    for (const node of batch.nodes) {
      const list = perRegion.get(node.region) ?? [];
      list.push(node.id);
      perRegion.set(node.region, list);
    }
  }
  let bound = 0;
  for (const [region, ids] of perRegion) {
    let fastest = Number.POSITIVE_INFINITY;
    for (const id of ids) fastest = Math.min(fastest, times.drainMs(id) + times.installMs(id));
    const rounds = Math.ceil(ids.length / Math.max(1, plan.regionCaps[region] ?? 1));
    bound = Math.max(bound, rounds * (fastest + spec.strategy.health.minHealthyTime));
  }
  return bound;
}
