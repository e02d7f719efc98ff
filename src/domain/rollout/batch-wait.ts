import type { RolloutSpec } from './spec.js';

type WaitSpec = { strategy: Pick<RolloutSpec['strategy'], 'pauseBetweenBatches' | 'canary'> };

/** How long the next batch waits after batch `finished` ends: the pause, and after the canary its soak too (ms). */
export function batchWaitMs(spec: WaitSpec, finished: number): number {
  const wasCanary = finished === 0 && spec.strategy.canary !== undefined;
  return spec.strategy.pauseBetweenBatches + (wasCanary ? (spec.strategy.canary?.soak ?? 0) : 0);
}

/**
 * When the next batch may start, for a running rollout whose current batch has finished and that
 * waits on a pause or a soak (null when nothing waits on that clock): what the dashboard shows.
 */
export function nextBatchStartsAt(r: { spec: WaitSpec; status: string; currentBatch: number; batchCount: number; batchFinishedAt: Date | null }): Date | null {
  if (r.status !== 'running' || r.batchFinishedAt === null || r.currentBatch < 0 || r.currentBatch + 1 >= r.batchCount) return null;
  const wait = batchWaitMs(r.spec, r.currentBatch);
  return wait > 0 ? new Date(r.batchFinishedAt.getTime() + wait) : null;
}
