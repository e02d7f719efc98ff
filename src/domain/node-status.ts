import type { Drain, FleetNode, NodeStatus } from './types.js';

/** A node that has not heartbeated for this long is `down` (DESIGN.md §7). */
export const DEFAULT_HEARTBEAT_GRACE_MS = 10_000;

/**
 * The node's status follows from facts, never from history: heartbeat age, the cordon flag
 * and whether a drain is in progress. Down wins because nothing else can be trusted then.
 */
export function deriveNodeStatus(
  node: Pick<FleetNode, 'cordoned' | 'lastHeartbeatAt'>,
  drain: Pick<Drain, 'state'> | undefined,
  now: Date,
  graceMs: number,
): NodeStatus {
  if (!node.lastHeartbeatAt || now.getTime() - node.lastHeartbeatAt.getTime() > graceMs) return 'down';
  if (drain && (drain.state === 'running' || drain.state === 'blocked')) return 'draining';
  if (node.cordoned) return 'cordoned';
  return 'ready';
}

/** Only ready nodes take new instances. */
export function isSchedulable(node: Pick<FleetNode, 'status'>): boolean {
  return node.status === 'ready';
}
