import type { FleetActions } from '../domain/fleet-reconcile.js';
import type { Drain, FleetNode } from '../domain/types.js';
import { type Db, sqlState } from './db.js';
import { updateDrains } from './drains.js';
import { appendEvents } from './events.js';
import { insertMigrations } from './instance-migrations.js';
import { insertPlacedInstances, publishInstances, removeInstances, stopInstances } from './instances.js';
import { deleteDrainedDeployments } from './deployments.js';
import { bumpGenerations, setNodeStatuses, setNodeStatusesAsSeen } from './nodes.js';

/**
 * A decision made on rows that changed before it was applied (a drain restarted, a target node
 * cordoned, a second replacement for one instance): nothing of it was written; decide again.
 */
export class FleetConflictError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(`the fleet changed under the decision: ${message}`, options);
  }
}

/** The rows a decision was made from; its writes apply only to rows still like that (DESIGN.md §3). */
export interface DecidedFrom {
  nodes: readonly Pick<FleetNode, 'id' | 'status' | 'lastHeartbeatAt'>[];
  drains: readonly Pick<Drain, 'nodeId' | 'startedAt'>[];
}

/**
 * Applies one reconciler decision and its events in one transaction. Returns the nodes whose
 * desired state changed so their agents' long-polls can be woken, and the nodes whose status
 * changed. With `decidedFrom`, a node status applies only to a row whose status and heartbeat
 * are still what the decision saw (its node.down/node.up event is dropped otherwise: the next
 * pass decides again), and a drain update, a placement on a node no longer ready, or a second
 * open replacement of an instance throws FleetConflictError, rolling everything back.
 */
export async function applyFleetDecision(
  db: Db,
  actions: FleetActions,
  newId: () => string,
  actor: string,
  fence: (tx: Db) => Promise<void> = async () => {},
  decidedFrom?: DecidedFrom,
): Promise<{ touched: string[]; statusChanged: string[] }> {
  return db.transaction(async (tx) => {
    await fence(tx);
    let events = actions.events;
    let statusChanged = actions.nodeStatus.map((c) => c.nodeId);
    if (decidedFrom) {
      const seen = new Map(decidedFrom.nodes.map((n) => [n.id, n]));
      const applied = new Set(
        await setNodeStatusesAsSeen(
          tx,
          actions.nodeStatus.map((c) => ({ ...c, seen: seen.get(c.nodeId) ?? { status: null, lastHeartbeatAt: null } })),
        ),
      );
      statusChanged = statusChanged.filter((id) => applied.has(id));
      const stale = new Set(actions.nodeStatus.map((c) => c.nodeId).filter((id) => !applied.has(id)));
      events = events.filter((e) => !(e.nodeId && stale.has(e.nodeId) && (e.kind === 'node.down' || e.kind === 'node.up')));
    } else {
      await setNodeStatuses(tx, actions.nodeStatus);
    }
    const created = actions.create.map((c) => ({ id: newId(), deploymentId: c.deploymentId, nodeId: c.nodeId, replaces: c.replaces, move: c.move }));
    try {
      const inserted = await insertPlacedInstances(tx, created);
      if (inserted < created.length) throw new FleetConflictError(`${created.length - inserted} placement(s) on a node that is no longer ready`);
      // Every move is a migration row too (DESIGN.md §10), written with its target instance.
      await insertMigrations(
        tx,
        created.flatMap((c) =>
          c.replaces && c.move
            ? [{ id: newId(), instanceId: c.replaces, deploymentId: c.deploymentId, sourceNodeId: c.move.fromNodeId, targetNodeId: c.nodeId, targetInstanceId: c.id, ...c.move }]
            : [],
        ),
      );
    } catch (error) {
      if (sqlState(error) === '23505') throw new FleetConflictError('an instance already has an open replacement', { cause: error });
      throw error;
    }
    const published = await publishInstances(tx, actions.publish);
    const stopped = await stopInstances(tx, actions.stop);
    await removeInstances(tx, actions.remove);
    const toDelete = actions.deleteDeployments ?? [];
    if (toDelete.length > 0 && (await deleteDrainedDeployments(tx, toDelete)) < toDelete.length) {
      throw new FleetConflictError('a deleted deployment still has an instance');
    }
    const started = decidedFrom ? new Map(decidedFrom.drains.map((d) => [d.nodeId, d.startedAt])) : undefined;
    const updatedDrains = await updateDrains(tx, actions.drains.map((d) => ({ ...d, ...(started ? { startedAt: started.get(d.nodeId) ?? null } : {}) })));
    if (updatedDrains < actions.drains.length) throw new FleetConflictError('a drain ended or started again');
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
    await appendEvents(tx, [...events.map((e) => ({ ...e, actor })), ...placed, ...endpoints]);
    const touched = [...created.map((c) => c.nodeId), ...stopped.map((s) => s.node_id)];
    await bumpGenerations(tx, touched);
    return { touched: [...new Set(touched)], statusChanged };
  });
}
