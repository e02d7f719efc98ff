// `drydock delete node`: only a node that is out of service already may leave the fleet. Pure:
// the route loads these facts under a lock on the node row and writes only when this says yes.
import type { DrainState } from './types.js';

export interface DecommissionFacts {
  hostname: string;
  cordoned: boolean;
  /** The node's drain, if it has one. */
  drainState: DrainState | null;
  /** Instance rows on the node: running, stopping, moving or parked for a restart in place. */
  instances: number;
  /** Rollouts not finished yet that have a task on the node (DESIGN.md §8.1). */
  activeRollouts: string[];
}

export type DecommissionRefusal =
  | { code: 'NODE_IN_ROLLOUT'; rollouts: string[] }
  | { code: 'NODE_NOT_DRAINED'; reason: 'not_cordoned' | 'drain_in_progress' | 'hosts_instances'; instances: number };

/**
 * Why the node may not be decommissioned now, or null. A rollout's node is its rollout's until
 * the rollout ends (its counters and rollback need it). Otherwise the node must be cordoned
 * (nothing new lands on it), its drain finished, and no instance row left on it: decommissioning
 * never stops a workload, it only forgets a machine that runs nothing. A down node qualifies
 * too once it is cordoned and empty: that is how a dead machine leaves the fleet.
 */
export function decommissionRefusal(facts: DecommissionFacts): DecommissionRefusal | null {
  if (facts.activeRollouts.length > 0) return { code: 'NODE_IN_ROLLOUT', rollouts: facts.activeRollouts };
  if (!facts.cordoned) return { code: 'NODE_NOT_DRAINED', reason: 'not_cordoned', instances: facts.instances };
  if (facts.drainState === 'running' || facts.drainState === 'blocked') return { code: 'NODE_NOT_DRAINED', reason: 'drain_in_progress', instances: facts.instances };
  if (facts.instances > 0) return { code: 'NODE_NOT_DRAINED', reason: 'hosts_instances', instances: facts.instances };
  return null;
}
