import { randomUUID } from 'node:crypto';
import { type Rollout, type RolloutDecision, type RolloutTask, TERMINAL_ROLLOUT_STATUSES } from '../domain/rollout/model.js';
import { insertApproval } from './approvals.js';
import type { Db } from './db.js';
import { appendEvents } from './events.js';
import { beginDrain, cordonNode, enableNode, restartInstancesInPlace, setComponentVersion, VersionUnavailableError } from './node-actions.js';
import { retirePreviousComponent } from './node-components.js';
import { bumpGenerations, findNode } from './nodes.js';
import { updateRollout, updateTasks } from './rollouts.js';
import { EVENT } from '../domain/events.js';


export const CONTINUATION_OPTIONS = ['continue_anyway', 'rollback_completed_batches', 'abort'];
/** A region gate: approve goes on into the next region, reject stops the rollout there. */
export const GATE_OPTIONS = ['approve', 'reject'];

/**
 * Applies one rollout decision inside the caller's (fenced) transaction: task moves guarded by
 * their previous state, node commands with their events, the rollout's own fields. Returns the
 * ids of nodes whose desired state changed, to wake their agents.
 */
export async function applyRolloutDecision(tx: Db, rollout: Rollout, tasks: readonly RolloutTask[], decision: RolloutDecision): Promise<string[]> {
  const who = { actor: 'reconciler', rolloutId: rollout.id };
  await updateTasks(tx, decision.tasks);
  const status = decision.rollout.status;
  await updateRollout(tx, rollout.id, decision.rollout, { finished: status !== undefined && TERMINAL_ROLLOUT_STATUSES.includes(status) });
  const touched = new Set<string>();
  const taskByNode = new Map(tasks.map((t) => [t.nodeId, t]));
  for (const command of decision.commands) {
    const node = await findNode(tx, command.nodeId);
    if (!node) continue;
    touched.add(node.id);
    switch (command.kind) {
      case 'cordon':
        await cordonNode(tx, node, who);
        break;
      case 'drain':
        await beginDrain(tx, node, { force: command.force, timeoutMs: command.timeoutMs, ...(command.mode ? { mode: command.mode } : {}) }, who);
        break;
      case 'restart_instances':
        await restartInstancesInPlace(tx, node, who);
        break;
      case 'enable':
        await enableNode(tx, node, who);
        break;
      case 'retire_previous':
        // Its agent stops the old replica it kept beside the new one (blue-green).
        if (await retirePreviousComponent(tx, node.id, command.component)) await bumpGenerations(tx, [node.id]);
        break;
      case 'set_version': {
        const task = taskByNode.get(node.id);
        // A forward install (a downgrade the spec allows included) keeps the version it replaces.
        const forward = !command.rollback || command.downgrade === true;
        const change = {
          component: command.component,
          version: command.version,
          rollback: command.rollback,
          previousVersion: forward ? (task?.fromVersion ?? null) : null,
          ...(command.keepPrevious ? { keepPrevious: true } : {}),
          ...(command.prestage ? { prestage: true } : {}),
        };
        try {
          await setComponentVersion(tx, node, change, who);
        } catch (error) {
          if (!(error instanceof VersionUnavailableError)) throw error;
          // The version was archived after this decision was made (decideRollout does not ask
          // for versions it knows are gone): leave the node's desired state exactly as it is —
          // never remove a component from it — and say so.
          await appendEvents(tx, [
            {
              kind: EVENT.rollout.version_unavailable,
              actor: who.actor,
              rolloutId: rollout.id,
              nodeId: node.id,
              data: { hostname: node.hostname, component: command.component, version: command.version, reason: `${error.message}; the node's desired state is left as it is` },
            },
          ]);
        }
        break;
      }
    }
  }
  if (decision.continuation) {
    await insertApproval(tx, {
      id: randomUUID(),
      rolloutId: rollout.id,
      kind: 'continuation',
      options: CONTINUATION_OPTIONS,
      reason: decision.continuation.reason,
      requestedBy: 'reconciler',
    });
    decision.events.push({ kind: EVENT.rollout.approval_requested, data: { kind: 'continuation', options: CONTINUATION_OPTIONS, reason: decision.continuation.reason } });
  }
  if (decision.gate) {
    await insertApproval(tx, {
      id: randomUUID(),
      rolloutId: rollout.id,
      kind: 'gate',
      options: GATE_OPTIONS,
      reason: decision.gate.summary,
      requestedBy: 'reconciler',
    });
    decision.events.push({ kind: EVENT.rollout.approval_requested, data: { kind: 'gate', options: GATE_OPTIONS, reason: decision.gate.summary } });
  }
  await appendEvents(
    tx,
    decision.events.map((e) => ({ kind: e.kind, actor: who.actor, rolloutId: rollout.id, nodeId: e.nodeId ?? null, data: e.data })),
  );
  return [...touched];
}
