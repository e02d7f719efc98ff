import type { FleetNode, NodeSelector } from './types.js';

/** True when the node satisfies every field the selector sets (an empty selector matches all). */
export function matchesSelector(node: FleetNode, selector: NodeSelector | null): boolean {
  if (!selector) return true;
  if (selector.hostname !== undefined && selector.hostname !== node.hostname) return false;
  if (selector.region !== undefined && selector.region !== node.region) return false;
  if (selector.role !== undefined && selector.role !== node.role) return false;
  for (const [key, value] of Object.entries(selector.labels ?? {})) {
    if (node.labels[key] !== value) return false;
  }
  return true;
}

/** Instances of a deployment with a node selector are pinned: they must not migrate. */
export function isPinned(selector: NodeSelector | null): boolean {
  return selector !== null && Object.keys(selector).length > 0;
}
