// Blue-green for the control plane (DESIGN.md §11): on every node the new operator build starts
// beside the running one (another port) and must become ready; the old replicas keep taking the
// API traffic meanwhile. Once every node's new replica is ready the load balancer moves to them
// (the switch), and after `retireAfter` the old replicas stop. Until then a rollback moves the
// traffic back at once and stops the new replicas: nothing has to start again.
import { ACTIVE_ROLLOUT_STATUSES, type Rollout, type RolloutTask } from './model.js';

/** How long the old replicas keep running after the switch when the spec does not say. */
export const DEFAULT_RETIRE_AFTER_MS = 30_000;

export function isBlueGreen(rollout: Pick<Rollout, 'spec'>): boolean {
  return rollout.spec.strategy.order === 'blue-green';
}

export function retireAfterMs(rollout: Pick<Rollout, 'spec'>): number {
  return rollout.spec.strategy.blueGreen?.retireAfter ?? DEFAULT_RETIRE_AFTER_MS;
}

/** Which replicas take the traffic: those of the versions before the rollout, or those of its target. */
export type ServingSide = 'previous' | 'target';

/**
 * The side serving now while a blue-green rollout is active (null: no preference, every ready
 * replica serves). Before the switch, and once the rollout rolls back or aborts, the previous
 * versions serve; after the switch, the target, also while the retired old replicas stop.
 */
export function servingSide(rollout: Pick<Rollout, 'spec' | 'status' | 'trafficSwitchedAt' | 'previousRetiredAt'>): ServingSide | null {
  if (!isBlueGreen(rollout) || !ACTIVE_ROLLOUT_STATUSES.includes(rollout.status)) return null;
  const back = rollout.status === 'rolling_back' || rollout.status === 'aborting';
  // Retired: the old replicas are on their way out (the target keeps the traffic while they go),
  // and a rollback from there reinstalls them node by node like any rollout.
  if (rollout.previousRetiredAt !== null) return back ? null : 'target';
  if (back) return 'previous';
  return rollout.trafficSwitchedAt === null ? 'previous' : 'target';
}

export interface ReplicaFacts {
  version: string;
  live: boolean;
  ready: boolean;
}

/**
 * Marks the replicas the load balancer sends traffic to: those of the serving side; when none of
 * them is live and ready, every replica (the route is never emptied by a preference).
 */
export function markServing<T extends ReplicaFacts>(replicas: readonly T[], side: ServingSide | null, target: string | null): (T & { serving: boolean })[] {
  const onSide = (r: T) => side === null || target === null || (side === 'target') === (r.version === target);
  const anyReady = replicas.some((r) => r.live && r.ready && onSide(r));
  return replicas.map((r) => ({ ...r, serving: anyReady ? onSide(r) : true }));
}

/** Why a blue-green rollout gives up when nodes failed to bring up the new side. */
export function abandonReason(rollout: Pick<Rollout, 'spec'>, failed: readonly Pick<RolloutTask, 'hostname'>[]): string {
  const names = failed.slice(0, 10).map((t) => t.hostname).join(', ');
  const { component, version } = rollout.spec.target;
  return `${failed.length} node(s) did not bring up ${component} ${version} (${names}); blue-green switches only when every new replica is ready, so the old replicas keep serving and the new ones stop`;
}

/** What a blue-green rollout does once its last batch finished (before the contract and postRollout). */
export type BlueGreenStep =
  | { kind: 'abandon'; reason: string }
  | { kind: 'switch'; previousVersions: string[] }
  | { kind: 'hold'; remainingMs: number }
  | { kind: 'retire'; nodeIds: string[] }
  | { kind: 'wait_for_retired'; still: string[] }
  | { kind: 'finished' };

/**
 * The end of a blue-green rollout, level-triggered: every forward task is finished. A failed
 * node means the new side is incomplete: it is abandoned (rolled back) and the old side, still
 * serving, stays. Otherwise: switch, hold for retireAfter, retire the old replicas, and wait
 * until none of them is live (or health.timeout passed: the contract step then checks again).
 * `liveVersions` are the versions of the live operator replicas (undefined: not known).
 */
export function blueGreenStep(rollout: Rollout, tasks: readonly RolloutTask[], now: Date, liveVersions: readonly string[] | undefined): BlueGreenStep {
  const forward = tasks.filter((t) => t.direction === 'forward');
  const done = forward.filter((t) => t.state === 'done');
  const target = rollout.spec.target.version;
  if (rollout.previousRetiredAt === null) {
    const failed = forward.filter((t) => t.state === 'failed');
    if (failed.length > 0) return { kind: 'abandon', reason: abandonReason(rollout, failed) };
    if (done.length === 0) return { kind: 'finished' };
    if (rollout.trafficSwitchedAt === null) {
      const previous = [...new Set(done.map((t) => t.fromVersion).filter((v): v is string => v !== null))].sort();
      return { kind: 'switch', previousVersions: previous };
    }
    const remainingMs = rollout.trafficSwitchedAt.getTime() + retireAfterMs(rollout) - now.getTime();
    if (remainingMs > 0) return { kind: 'hold', remainingMs };
    return { kind: 'retire', nodeIds: done.map((t) => t.nodeId) };
  }
  const still = [...new Set((liveVersions ?? []).filter((v) => v !== target))].sort();
  const waited = now.getTime() - rollout.previousRetiredAt.getTime();
  if (still.length > 0 && waited < rollout.spec.strategy.health.timeout) return { kind: 'wait_for_retired', still };
  return { kind: 'finished' };
}
