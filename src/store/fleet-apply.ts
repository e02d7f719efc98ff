import type { FleetActions } from '../domain/fleet-reconcile.js';
import type { Db } from './db.js';
import { updateDrains } from './drains.js';
import { appendEvents } from './events.js';
import { insertInstances, publishInstances, removeInstances, stopInstances } from './instances.js';
import { bumpGenerations, setNodeStatuses } from './nodes.js';

/**
 * Applies one reconciler decision and its events in one transaction. Returns the nodes whose
 * desired state changed so their agents' long-polls can be woken.
 */
export async function applyFleetActions(
  db: Db,
  actions: FleetActions,
  newId: () => string,
  actor: string,
  /** Runs first in the transaction; throws when this writer lost leadership (the fence). */
  fence: (tx: Db) => Promise<void> = async () => {},
): Promise<string[]> {
  return db.transaction(async (tx) => {
    await fence(tx);
    await setNodeStatuses(tx, actions.nodeStatus);
    const created = actions.create.map((c) => ({ id: newId(), deploymentId: c.deploymentId, nodeId: c.nodeId, replaces: c.replaces }));
    await insertInstances(tx, created);
    const published = await publishInstances(tx, actions.publish);
    const stopped = await stopInstances(tx, actions.stop);
    await removeInstances(tx, actions.remove);
    await updateDrains(tx, actions.drains);
    const placed = created.map((c) => ({
      kind: c.replaces ? 'instance.replacement_placed' : 'instance.placed',
      actor,
      nodeId: c.nodeId,
      instanceId: c.id,
      data: { deployment_id: c.deploymentId, replaces: c.replaces },
    }));
    // Routers follow endpoints through these two events (DESIGN.md §7: make-before-break).
    const endpoints = [
      ...published.map((p) => ({ kind: 'instance.published', actor, nodeId: p.node_id, instanceId: p.id, data: { deployment_id: p.deployment_id } })),
      ...stopped
        .filter((s) => s.was_published)
        .map((s) => ({ kind: 'instance.withdrawn', actor, nodeId: s.node_id, instanceId: s.id, data: { deployment_id: s.deployment_id } })),
    ];
    await appendEvents(tx, [...actions.events.map((e) => ({ ...e, actor })), ...placed, ...endpoints]);
    const touched = [...created.map((c) => c.nodeId), ...stopped.map((s) => s.node_id)];
    await bumpGenerations(tx, touched);
    return [...new Set(touched)];
  });
}
