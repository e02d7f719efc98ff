import { appendEvents } from '../store/events.js';
import type { Db } from '../store/db.js';
import { quarantineVersion } from '../store/quarantine.js';
import { EVENT } from '../domain/events.js';

/**
 * A rollout the circuit breaker stopped is being rolled back by a human's decision: its target
 * version failed on real nodes, so it is quarantined in the same transaction, before any node
 * is touched again. Until an approver clears it, no rollout to it passes preflight (check
 * `quarantine`). A version quarantined already keeps its first row and gets no second event.
 */
export async function quarantineBreakerRollback(
  tx: Db,
  rollout: { id: string; component: string; version: string },
  actor: string,
  breakerReason: string | null,
): Promise<void> {
  const reason = `circuit breaker tripped${breakerReason ? ` (${breakerReason})` : ''}; ${actor} decided to roll back`;
  const row = await quarantineVersion(tx, { component: rollout.component, version: rollout.version, rolloutId: rollout.id, reason, by: actor });
  if (!row) return;
  await appendEvents(tx, [
    { kind: EVENT.artifact.quarantined, actor, rolloutId: rollout.id, data: { component: rollout.component, version: rollout.version, rollout_id: rollout.id, reason } },
  ]);
}
