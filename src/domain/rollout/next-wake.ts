import type { Rollout, RolloutTask } from './model.js';

/**
 * How long until a verifying task has been healthy for `health.minHealthyTime` (undefined: none
 * is waiting on that clock). decideRollout knows its other waits (a batch pause, a soak, a
 * window) and says them in `requeueAfterMs`; this one ends inside a task, so the reconciler asks
 * here and comes back when it ends instead of on its next periodic pass (issue 9 goal 6).
 */
export function untilHealthyLongEnough(rollout: Pick<Rollout, 'spec'>, tasks: readonly RolloutTask[], now: Date): number | undefined {
  let soonest: number | undefined;
  for (const task of tasks) {
    if (task.state !== 'verifying' || task.healthySince === null) continue;
    const remaining = Math.max(0, task.healthySince.getTime() + rollout.spec.strategy.health.minHealthyTime - now.getTime());
    soonest = soonest === undefined ? remaining : Math.min(soonest, remaining);
  }
  return soonest;
}
