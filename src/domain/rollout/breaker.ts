export interface FinishedTask {
  nodeId: string;
  outcome: 'done' | 'failed';
  finishedAt: Date;
}

export interface BreakerVerdict {
  tripped: boolean;
  reason: string;
  failedNodes: string[];
}

/**
 * The circuit breaker: trips on `maxConsecutiveFailures` failures in a row (counted from the
 * last human "continue"), or when failed nodes exceed `maxFailurePercent` of all targeted nodes.
 */
export function assessBreaker(
  finished: readonly FinishedTask[],
  totalTargets: number,
  limits: { maxConsecutiveFailures: number; maxFailurePercent?: number | undefined },
  resetAt: Date | null,
): BreakerVerdict {
  const counted = finished
    .filter((t) => resetAt === null || t.finishedAt.getTime() > resetAt.getTime())
    .sort((a, b) => a.finishedAt.getTime() - b.finishedAt.getTime() || a.nodeId.localeCompare(b.nodeId));
  const streak: string[] = [];
  for (const task of counted) {
    if (task.outcome === 'failed') streak.push(task.nodeId);
    else streak.length = 0;
  }
  if (streak.length >= limits.maxConsecutiveFailures) {
    return {
      tripped: true,
      reason: `${streak.length} consecutive node failures (maxConsecutiveFailures ${limits.maxConsecutiveFailures})`,
      failedNodes: [...streak],
    };
  }
  const failed = counted.filter((t) => t.outcome === 'failed').map((t) => t.nodeId);
  if (limits.maxFailurePercent !== undefined && totalTargets > 0 && (failed.length * 100) / totalTargets > limits.maxFailurePercent) {
    return {
      tripped: true,
      reason: `${failed.length} of ${totalTargets} nodes failed (over maxFailurePercent ${limits.maxFailurePercent} %)`,
      failedNodes: failed,
    };
  }
  return { tripped: false, reason: '', failedNodes: [] };
}
