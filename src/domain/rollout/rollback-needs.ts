// What a rollout's rollback would install: the version each node had before (its task's
// from_version). Those versions must stay installable while the rollout can still be rolled
// back, so archive refuses them and `rollout rollback` refuses at once when one is gone.
import { HUMAN_ACTION_FROM } from './human-actions.js';
import { ACTIVE_ROLLOUT_STATUSES, IN_FLIGHT, type RolloutStatus, type RolloutTask, type TaskState } from './model.js';

/**
 * Rollouts that may still send nodes back to their from_version: active ones (a failed node
 * returns to it by itself, a rollback may start) and finished ones a person can still roll back.
 */
export const ROLLBACK_CAPABLE_STATUSES: readonly RolloutStatus[] = [...new Set([...ACTIVE_ROLLOUT_STATUSES, ...HUMAN_ACTION_FROM.rollback])];

/**
 * Tasks whose from_version may still be installed: not started yet (it may fail and return),
 * in flight, or done (a rollback returns it). Skipped, failed and rolled-back tasks are past it.
 */
export const TASK_STATES_NEEDING_FROM_VERSION: readonly TaskState[] = ['pending', ...IN_FLIGHT, 'done'];

export interface RollbackNeed {
  version: string;
  /** Hostnames of the nodes that would return to it, sorted. */
  nodes: string[];
}

/**
 * The versions a rollback of this rollout would install, with the nodes for each: tasks done
 * or in flight (pending ones are skipped by a rollback). A node with no previous version has
 * nothing to install and needs no artifact.
 */
export function rollbackNeeds(tasks: readonly RolloutTask[]): RollbackNeed[] {
  const byVersion = new Map<string, string[]>();
  for (const t of tasks) {
    if (t.fromVersion === null || t.direction !== 'forward') continue;
    if (t.state !== 'done' && !IN_FLIGHT.includes(t.state)) continue;
    byVersion.set(t.fromVersion, [...(byVersion.get(t.fromVersion) ?? []), t.hostname]);
  }
  return [...byVersion].map(([version, nodes]) => ({ version, nodes: nodes.sort() })).sort((a, b) => a.version.localeCompare(b.version));
}

export interface UnavailableRollbackVersion extends RollbackNeed {
  /** archived, or never published (the artifact row does not exist). */
  status: 'archived' | 'not published';
}

/** Of the needs, those whose artifact is archived or missing (`lifecycleOf` answers undefined for missing). */
export function unavailableRollbackVersions(needs: readonly RollbackNeed[], lifecycleOf: (version: string) => string | undefined): UnavailableRollbackVersion[] {
  const out: UnavailableRollbackVersion[] = [];
  for (const need of needs) {
    const lifecycle = lifecycleOf(need.version);
    if (lifecycle === undefined) out.push({ ...need, status: 'not published' });
    else if (lifecycle === 'archived') out.push({ ...need, status: 'archived' });
  }
  return out;
}
