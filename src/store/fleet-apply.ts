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
    await publishInstances(tx, actions.publish);
    const stoppedOn = await stopInstances(tx, actions.stop);
    await removeInstances(tx, actions.remove);
    await updateDrains(tx, actions.drains);
    const placed = created.map((c) => ({
      kind: c.replaces ? 'instance.replacement_placed' : 'instance.placed',
      actor,
      nodeId: c.nodeId,
      instanceId: c.id,
      data: { deployment_id: c.deploymentId, replaces: c.replaces },
    }));
    await appendEvents(tx, [...actions.events.map((e) => ({ ...e, actor })), ...placed]);
    const touched = [...created.map((c) => c.nodeId), ...stoppedOn];
    await bumpGenerations(tx, touched);
    return [...new Set(touched)];
  });
}
