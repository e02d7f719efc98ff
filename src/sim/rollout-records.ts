// A rollout and its tasks as the operator creates them from a plan (pending per batch, skipped
// for nodes already on the target), for the simulator and the tests that drive it.
import type { BatchPlan } from '../domain/rollout/batches.js';
import type { Rollout, RolloutTask } from '../domain/rollout/model.js';
import type { RolloutSpec } from '../domain/rollout/spec.js';

/** A running rollout at its start (no batch begun), drain mode migrate, one batch unless told. */
export function newRollout(spec: RolloutSpec, over: Partial<Rollout> = {}): Rollout {
  return {
    id: 'ro-1',
    spec,
    status: 'running',
    drainMode: 'migrate',
    currentBatch: -1,
    batchCount: 1,
    batchStartedAt: null,
    batchFinishedAt: null,
    breakerResetAt: null,
    gatePassedBatch: -1,
    schemaPreAppliedAt: null,
    schemaPostAppliedAt: null,
    rollbackRegions: null,
    trafficSwitchedAt: null,
    previousRetiredAt: null,
    ...over,
  };
}

/** A pending forward task of rollout `rolloutId` for one node, in us-east batch 0 unless told. */
export function newTask(rolloutId: string, nodeId: string, since: Date, over: Partial<RolloutTask> = {}): RolloutTask {
  return {
    id: `${rolloutId}/${nodeId}`,
    nodeId,
    hostname: `host-${nodeId}`,
    region: 'us-east',
    batch: 0,
    state: 'pending',
    direction: 'forward',
    fromVersion: '1.0.0',
    stateSince: since,
    healthySince: null,
    finishedAt: null,
    lastError: null,
    cordonedByUs: false,
    ...over,
  };
}

/** Tasks as the operator creates them from a plan: pending per batch, skipped (with the reason) for nodes already on the target. */
export function tasksFromPlan(plan: BatchPlan, rolloutId: string, fromVersion: (nodeId: string) => string | null, since: Date): RolloutTask[] {
  const pending = plan.batches.flatMap((b) =>
    b.nodes.map((n) => newTask(rolloutId, n.id, since, { hostname: n.hostname, region: n.region, batch: b.index, fromVersion: fromVersion(n.id) })),
  );
  const skipped = plan.skipped.map((n) =>
    newTask(rolloutId, n.id, since, { hostname: n.hostname, region: n.region, batch: 0, state: 'skipped', fromVersion: fromVersion(n.id), lastError: 'already runs the target' }),
  );
  return [...pending, ...skipped];
}
