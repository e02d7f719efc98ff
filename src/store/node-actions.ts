// Node operations shared by the HTTP API and the rollout reconciler: each changes the node and
// appends its event in the caller's transaction.
import type { DrainMode, NodeStatus } from '../domain/types.js';
import { findArtifactByVersion } from './artifacts.js';
import type { Db } from './db.js';
import { clearDrain, startDrain } from './drains.js';
import { appendEvents } from './events.js';
import { restartParkedInstances } from './instances.js';
import { setNodeComponent } from './node-components.js';
import { bumpGenerations, setCordoned, setNodeStatuses } from './nodes.js';
import { EVENT } from '../domain/events.js';

export interface NodeRef {
  id: string;
  hostname: string;
  cordoned: boolean;
  status: NodeStatus;
}

export interface Actor {
  actor: string;
  rolloutId?: string | null;
}

export async function cordonNode(tx: Db, node: NodeRef, who: Actor): Promise<void> {
  if (node.cordoned) return;
  await setCordoned(tx, node.id, true);
  if (node.status === 'ready') await setNodeStatuses(tx, [{ nodeId: node.id, status: 'cordoned' }]);
  await appendEvents(tx, [{ kind: EVENT.node.cordoned, actor: who.actor, rolloutId: who.rolloutId, nodeId: node.id, data: { hostname: node.hostname } }]);
}

/** Uncordons, ends any drain and restarts parked pinned instances. Returns those instance ids. */
export async function enableNode(tx: Db, node: NodeRef, who: Actor): Promise<string[]> {
  await setCordoned(tx, node.id, false);
  await clearDrain(tx, node.id);
  const parked = await restartParkedInstances(tx, node.id);
  if (parked.length > 0) await bumpGenerations(tx, [node.id]);
  if (node.status !== 'down') await setNodeStatuses(tx, [{ nodeId: node.id, status: 'ready' }]);
  await appendEvents(tx, [
    { kind: EVENT.node.enabled, actor: who.actor, rolloutId: who.rolloutId, nodeId: node.id, data: { hostname: node.hostname, restarted: parked } },
  ]);
  return parked;
}

/** Cordons and starts (or restarts) a drain; the fleet reconciler moves the instances. */
export async function beginDrain(
  tx: Db,
  node: NodeRef,
  options: { force: boolean; timeoutMs: number; mode?: DrainMode; details?: Record<string, unknown> },
  who: Actor,
): Promise<void> {
  await cordonNode(tx, node, who);
  await startDrain(tx, node.id, { force: options.force, timeoutMs: options.timeoutMs, ...(options.mode ? { mode: options.mode } : {}) });
  await setNodeStatuses(tx, [{ nodeId: node.id, status: 'draining' }]);
  await appendEvents(tx, [
    {
      kind: EVENT.node.drain_started,
      actor: who.actor,
      rolloutId: who.rolloutId,
      nodeId: node.id,
      data: { hostname: node.hostname, force: options.force, timeout_ms: options.timeoutMs, ...(options.mode === 'restart' ? { mode: 'restart' } : {}), ...options.details },
    },
  ]);
}

/**
 * Starts the instances a restart drain stopped on the node again, there (the node stays cordoned
 * until its task enables it). Returns their ids; none is no event.
 */
export async function restartInstancesInPlace(tx: Db, node: NodeRef, who: Actor): Promise<string[]> {
  const restarted = await restartParkedInstances(tx, node.id);
  if (restarted.length === 0) return restarted;
  await bumpGenerations(tx, [node.id]);
  await appendEvents(tx, [
    { kind: EVENT.node.instances_restarted, actor: who.actor, rolloutId: who.rolloutId, nodeId: node.id, data: { hostname: node.hostname, restarted } },
  ]);
  return restarted;
}

export class VersionUnavailableError extends Error {}

/**
 * Points a node's component at a published version (the agent installs it); `rollback` is the
 * only way the agent accepts a lower version. A null version stops managing the component.
 */
export async function setComponentVersion(
  tx: Db,
  node: { id: string; hostname: string; components: Record<string, string> },
  change: { component: string; version: string | null; rollback: boolean; previousVersion: string | null; force?: boolean; keepPrevious?: boolean; prestage?: boolean },
  who: Actor,
): Promise<void> {
  if (change.version === null) {
    await tx.query('DELETE FROM node_components WHERE node_id = $1 AND component = $2', [node.id, change.component]);
  } else {
    const artifact = await findArtifactByVersion(tx, change.component, change.version);
    if (!artifact || artifact.lifecycle === 'archived') {
      throw new VersionUnavailableError(`${change.component} ${change.version} is ${artifact ? 'archived' : 'not published'}`);
    }
    await setNodeComponent(tx, {
      nodeId: node.id,
      component: change.component,
      version: change.version,
      artifactId: artifact.id,
      previousVersion: change.previousVersion,
      rollback: change.rollback,
      force: change.force ?? false,
      updatedBy: who.actor,
      keepPrevious: change.keepPrevious ?? false,
      prestage: change.prestage ?? false,
    });
  }
  await bumpGenerations(tx, [node.id]);
  await appendEvents(tx, [
    {
      kind: EVENT.node.component_version_set,
      actor: who.actor,
      rolloutId: who.rolloutId,
      nodeId: node.id,
      data: {
        hostname: node.hostname,
        component: change.component,
        version: change.version,
        previous_version: change.previousVersion,
        rollback: change.rollback,
        ...(change.keepPrevious ? { keep_previous: true } : {}),
        ...(change.prestage ? { prestage: true } : {}),
      },
    },
  ]);
}
