// A rollout's hooks as steps, from the journal of runs: which run a task asks its node's agent
// for next (preNode, postNode: the task machine holds the task in pre_node_hooks /
// post_node_hooks until the point passed or failed), and which the leader runs before the first
// batch and after the last (preRollout, postRollout: decide.ts).
import { type HookPoint, type HookProgress, type HookRunFact, type HookSpec, hookProgress, nodeHookId, rolloutHookId } from './hooks.js';
import type { Rollout, RolloutTask } from './model.js';

/** Looks up a run by its id (none: never asked for). */
export type HookRuns = (id: string) => HookRunFact | undefined;
export const NO_HOOK_RUNS: HookRuns = () => undefined;

/** The spec's hooks at a point (a spec stored before hooks existed has none). */
export function hooksAt(rollout: Rollout, point: HookPoint): readonly HookSpec[] {
  return rollout.spec.hooks?.[point] ?? [];
}

export function nodeHookProgress(rollout: Rollout, task: RolloutTask, point: 'preNode' | 'postNode', runs: HookRuns, now: Date): HookProgress {
  const forward = task.direction === 'forward';
  return hookProgress(
    hooksAt(rollout, point),
    point,
    (index) => nodeHookId(task.id, task.direction, point, index),
    runs,
    {
      rolloutId: rollout.id,
      node: task.hostname,
      nodeId: task.nodeId,
      component: rollout.spec.target.component,
      fromVersion: forward ? task.fromVersion : rollout.spec.target.version,
      toVersion: forward ? rollout.spec.target.version : task.fromVersion,
    },
    now,
  );
}

/** preRollout / postRollout: run on the operator leader, told the rollout and its target. */
export function rolloutHookProgress(rollout: Rollout, point: 'preRollout' | 'postRollout', runs: HookRuns, now: Date): HookProgress {
  return hookProgress(
    hooksAt(rollout, point),
    point,
    (index) => rolloutHookId(rollout.id, point, index),
    runs,
    { rolloutId: rollout.id, node: '', nodeId: null, component: rollout.spec.target.component, fromVersion: null, toVersion: rollout.spec.target.version },
    now,
  );
}
