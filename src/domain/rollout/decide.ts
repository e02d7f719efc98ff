import { assessBreaker, type FinishedTask } from './breaker.js';
import { IN_FLIGHT, type NodeFacts, RECONCILED_ROLLOUT_STATUSES, type Rollout, type RolloutDecision, type RolloutTask, TASK_STATES, TERMINAL, type TaskState } from './model.js';
import { advanceTask, afterFailure, startTask, type TaskStep } from './task-machine.js';
import { isWithinWindow, nextWindowOpen } from './window.js';

/**
 * IN_FLIGHT and TERMINAL as comparisons: the pass in decideRollout looks at every task on every
 * tick, and at 10,000 tasks a Set or array lookup per task (~25 ns) was most of a tick; comparing
 * against the literals costs ~4 ns. Checked against model.ts's lists when this module loads.
 */
const isInFlight = (s: TaskState): boolean => s === 'cordoned' || s === 'draining' || s === 'installing' || s === 'verifying';
const isTerminal = (s: TaskState): boolean => s === 'done' || s === 'failed' || s === 'rolled_back' || s === 'skipped';
for (const s of TASK_STATES) {
  if (isInFlight(s) !== IN_FLIGHT.includes(s) || isTerminal(s) !== TERMINAL.includes(s)) throw new Error(`decide.ts: isInFlight/isTerminal disagree with model.ts on ${s}`);
}
/** How often an active rollout is looked at when nothing wakes it (health gates, pauses). */
const POLL_MS = 1_000;
/** Nodes named one by one in a failed rollout's reason (all of them are in failed_nodes). */
const MAX_NODES_IN_REASON = 20;

/**
 * The rollout reconciler's decision: a pure function of the rollout, its tasks, the facts of
 * its nodes and the time. Level-triggered: it never asks what just happened, so running it
 * again on the same snapshot decides the same thing, and a crash between ticks loses nothing.
 */
export function decideRollout(
  rollout: Rollout,
  tasks: readonly RolloutTask[],
  nodes: ReadonlyMap<string, NodeFacts>,
  now: Date,
  /** Versions of the target component no node may be pointed at: archived or never published. */
  unavailableVersions: ReadonlySet<string> = new Set(),
): RolloutDecision {
  const decision: RolloutDecision = { rollout: {}, tasks: [], commands: [], events: [], requeueAfterMs: null };
  // The tasks as this decision has changed them, copied on first write: copying every task up
  // front cost most of a tick at 10,000 nodes (src/sim), where a tick changes a few of them.
  // `all` holds the current object of each task (in the caller's order), and a write replaces
  // the caller's object there by its copy, so every read sees the changes made so far, as before.
  const changed = new Map<string, RolloutTask>();
  const all: RolloutTask[] = tasks.slice();
  let scanning = true;
  let indexOf: Map<string, number> | null = null;
  const apply = (task: RolloutTask, step: TaskStep) => {
    if (Object.keys(step.changes).length > 0) {
      decision.tasks.push({ id: task.id, from: task.state, changes: step.changes });
      let copy = changed.get(task.id);
      if (!copy) {
        copy = { ...task };
        changed.set(task.id, copy);
        // The scan below puts its own copies in place; later writes look their slot up.
        if (!scanning) {
          indexOf ??= new Map(all.map((t, i) => [t.id, i]));
          all[indexOf.get(task.id) as number] = copy;
        }
      }
      Object.assign(copy, step.changes);
    }
    // Most steps of a tick change nothing: skip the empty copies.
    if (step.commands.length > 0) decision.commands.push(...step.commands);
    if (step.events.length > 0) decision.events.push(...step.events.map((e) => ({ ...e, data: { ...e.data } })));
  };
  const status = rollout.status;
  if (!RECONCILED_ROLLOUT_STATUSES.includes(status)) return decision;

  // 1. In-flight tasks always move on, whatever the rollout's status: stopping a node halfway
  //    would leave it cordoned and half-installed. The same pass counts what the rest of the
  //    tick asks about the tasks (as this step left each one): a tick runs every second of a
  //    rollout, and at 10,000 nodes a pass per question was most of its cost.
  let inFlight = 0;
  let targeted = 0;
  let forwardDone = 0;
  let currentBatchOpen = false;
  const currentBatch = rollout.currentBatch;
  const breakerInput: FinishedTask[] = [];
  let lastDone: { nodeId: string; finishedAt: Date } | null = null;
  let lastDoneMs = 0;
  for (let i = 0; i < tasks.length; i++) {
    const task = tasks[i] as RolloutTask;
    let t = task;
    if (isInFlight(task.state)) {
      const step = advanceTask(rollout, task, nodes.get(task.nodeId), now);
      apply(task, step);
      const after = changed.get(task.id) ?? task;
      all[i] = after;
      t = after;
      if (after.state === 'failed') {
        decision.commands.push(...afterFailure(rollout, after, unavailableVersions));
        if (returnsToGoneVersion(rollout, after, unavailableVersions)) {
          // The old version is gone: the desired state stays as it is (never silently emptied).
          decision.events.push({
            kind: 'rollout.version_unavailable',
            nodeId: task.nodeId,
            data: { hostname: task.hostname, version: after.fromVersion, reason: `${rollout.spec.target.component} ${after.fromVersion} is archived or not published; the node's desired state is left as it is` },
          });
        }
        decision.events.push({
          kind: 'rollout.node_failed',
          nodeId: task.nodeId,
          data: { hostname: task.hostname, batch: task.batch, direction: task.direction, reason: after.lastError },
        });
      } else if (after.state === 'done' || after.state === 'rolled_back') {
        decision.events.push({
          kind: 'rollout.node_completed',
          nodeId: task.nodeId,
          data: { hostname: task.hostname, batch: task.batch, direction: task.direction },
        });
      }
    }
    if (isInFlight(t.state)) inFlight++;
    if (t.direction !== 'forward') continue;
    if (t.batch === currentBatch && !isTerminal(t.state)) currentBatchOpen = true;
    if (t.state !== 'skipped') targeted++;
    if (t.state === 'done') forwardDone++;
    if (!t.finishedAt) continue;
    if (t.state === 'failed') breakerInput.push({ nodeId: t.nodeId, outcome: 'failed', finishedAt: t.finishedAt });
    else if (t.state === 'done') {
      const ms = t.finishedAt.getTime();
      if (!lastDone || ms > lastDoneMs) {
        lastDone = { nodeId: t.nodeId, finishedAt: t.finishedAt };
        lastDoneMs = ms;
      }
    }
  }
  scanning = false;
  // assessBreaker orders by time, then node id (localeCompare). Any success of the latest time
  // ends the failure streak at the same place, unless a failure has that very time: only then
  // does the node-id order decide, so only then find the exact last one (the later task winning
  // a tie, as in its stable sort). Nodes of one batch often pass their health gate on one tick.
  if (lastDone && breakerInput.some((f) => f.finishedAt.getTime() === lastDoneMs)) {
    for (const t of all) {
      if (t.direction !== 'forward' || t.state !== 'done' || t.finishedAt?.getTime() !== lastDoneMs) continue;
      if (t.nodeId.localeCompare(lastDone.nodeId) >= 0) lastDone = { nodeId: t.nodeId, finishedAt: t.finishedAt };
    }
  }
  if (inFlight > 0) decision.requeueAfterMs = POLL_MS;

  // 2. The circuit breaker: judged on forward tasks, whatever batch they were in.
  if (status === 'running' || status === 'waiting_for_window') {
    // Every failure, and of the successes only the last (in the breaker's order): a failure
    // streak ends at the last success and the verdict names failures only, so it is the same as
    // on every finished task, without sorting all of them on every tick.
    if (lastDone) breakerInput.push({ ...lastDone, outcome: 'done' });
    const verdict = assessBreaker(breakerInput, targeted, rollout.spec.strategy.circuitBreaker, rollout.breakerResetAt);
    if (verdict.tripped) {
      decision.rollout.status = 'awaiting_decision';
      decision.events.push({ kind: 'rollout.circuit_breaker_tripped', data: { reason: verdict.reason, failed_nodes: verdict.failedNodes } });
      decision.continuation = { reason: verdict.reason, failedNodes: verdict.failedNodes };
      return decision;
    }
  }

  switch (status) {
    case 'running':
    case 'waiting_for_window':
      advanceBatches(rollout, all, !currentBatchOpen, nodes, now, decision, apply);
      break;
    case 'aborting':
      for (const task of all.filter((t) => t.state === 'pending')) apply(task, skip(now, 'the rollout was aborted before this node started'));
      if (anyReverting(rollout, all, nodes, now)) decision.requeueAfterMs = POLL_MS;
      else if (inFlight === 0) {
        decision.rollout.status = 'aborted';
        decision.events.push({ kind: 'rollout.aborted', data: { done: forwardDone } });
      }
      break;
    case 'rolling_back':
      rollBack(rollout, all, nodes, now, decision, apply, unavailableVersions);
      break;
    default:
      // paused / awaiting_decision: nothing new starts until a human acts.
      break;
  }
  return decision;
}

type Apply = (task: RolloutTask, step: TaskStep) => void;

/** A pending task that will not run, and why: a skipped task always says why (DESIGN.md §8.8). */
const skip = (now: Date, reason: string): TaskStep => ({ changes: { state: 'skipped', stateSince: now, lastError: reason }, commands: [], events: [] });

/**
 * A node whose forward task failed goes back to its old version (onNodeFailure rollback-node)
 * and is down until it runs it again, though its task is finished: the next batch, the next
 * rollback batch and the end of an abort wait for it, or a region would have more nodes down
 * than its budget (DESIGN.md §8.2). The wait ends health.timeout after the failure, so a node
 * that never reports back does not hold the rollout forever.
 */
function anyReverting(rollout: Rollout, all: readonly RolloutTask[], nodes: ReadonlyMap<string, NodeFacts>, now: Date): boolean {
  if (rollout.spec.strategy.onNodeFailure !== 'rollback-node') return false;
  return all.some((t) => {
    if (t.state !== 'failed' || t.direction !== 'forward' || !t.finishedAt) return false;
    if (now.getTime() - t.finishedAt.getTime() > rollout.spec.strategy.health.timeout) return false;
    const node = nodes.get(t.nodeId);
    return node !== undefined && (node.version ?? null) !== t.fromVersion;
  });
}

/** `currentBatchDone`: every forward task of the current batch is finished (counted in decideRollout's pass). */
function advanceBatches(rollout: Rollout, all: RolloutTask[], currentBatchDone: boolean, nodes: ReadonlyMap<string, NodeFacts>, now: Date, decision: RolloutDecision, apply: Apply) {
  const inBatch = (i: number) => all.filter((t) => t.direction === 'forward' && t.batch === i);
  const currentBatch = rollout.currentBatch;
  let batchFinishedAt = rollout.batchFinishedAt;
  if (currentBatch >= 0 && !currentBatchDone) return;
  if (anyReverting(rollout, all, nodes, now)) {
    decision.requeueAfterMs = POLL_MS;
    return;
  }
  if (currentBatch >= 0 && batchFinishedAt === null) {
    batchFinishedAt = now;
    decision.rollout.batchFinishedAt = now;
    const tasks = inBatch(currentBatch);
    decision.events.push({
      kind: 'rollout.batch_completed',
      data: { batch: currentBatch, done: tasks.filter((t) => t.state === 'done').length, failed: tasks.filter((t) => t.state === 'failed').length },
    });
  }
  const next = currentBatch + 1;
  if (next >= rollout.batchCount) {
    finish(rollout, all, decision);
    return;
  }
  // Pause between batches; after the canary, its soak time as well.
  if (batchFinishedAt) {
    const wasCanary = currentBatch === 0 && rollout.spec.strategy.canary !== undefined;
    const wait = rollout.spec.strategy.pauseBetweenBatches + (wasCanary ? rollout.spec.strategy.canary?.soak ?? 0 : 0);
    const remaining = batchFinishedAt.getTime() + wait - now.getTime();
    if (remaining > 0) {
      decision.requeueAfterMs = Math.min(decision.requeueAfterMs ?? remaining, remaining);
      return;
    }
  }
  if (!isWithinWindow(rollout.spec.window, now)) {
    if (rollout.status !== 'waiting_for_window') {
      decision.rollout.status = 'waiting_for_window';
      decision.events.push({ kind: 'rollout.waiting_for_window', data: { next_open: nextWindowOpen(rollout.spec.window, now)?.toISOString() ?? null } });
    }
    decision.requeueAfterMs = 60_000;
    return;
  }
  if (rollout.status === 'waiting_for_window') decision.rollout.status = 'running';
  decision.rollout.currentBatch = next;
  decision.rollout.batchStartedAt = now;
  decision.rollout.batchFinishedAt = null;
  const starting = inBatch(next).filter((t) => t.state === 'pending');
  decision.events.push({ kind: 'rollout.batch_started', data: { batch: next, nodes: starting.map((t) => t.hostname) } });
  for (const task of starting) apply(task, startTask(rollout, task, nodes.get(task.nodeId), now));
  decision.requeueAfterMs = POLL_MS;
}

/**
 * Rollback returns every node the rollout completed to its previous version, newest batch
 * first, one original batch at a time, through the same drain and health rules.
 */
function rollBack(
  rollout: Rollout,
  all: RolloutTask[],
  nodes: ReadonlyMap<string, NodeFacts>,
  now: Date,
  decision: RolloutDecision,
  apply: Apply,
  unavailableVersions: ReadonlySet<string>,
) {
  for (const task of all.filter((t) => t.state === 'pending')) apply(task, skip(now, 'the rollout was rolled back before this node started'));
  // Wait while nodes are in flight, and one tick more after the last of them finished: the
  // snapshot still shows such a node cordoned by its forward task (the enable is in this very
  // decision), so starting its rollback now would take that cordon for someone else's and never
  // cordon the node for its reinstall.
  const settling = all.some((t) => IN_FLIGHT.includes(t.state)) || decision.tasks.some((c) => IN_FLIGHT.includes(c.from));
  if (settling || anyReverting(rollout, all, nodes, now)) {
    decision.requeueAfterMs = POLL_MS;
    return;
  }
  const candidates = all.filter((t) => t.direction === 'forward' && t.state === 'done');
  if (candidates.length === 0) {
    const failed = all.filter((t) => t.direction === 'rollback' && t.state === 'failed');
    decision.rollout.status = failed.length > 0 ? 'failed' : 'rolled_back';
    decision.events.push({
      kind: 'rollout.rolled_back',
      data: { rolled_back: all.filter((t) => t.state === 'rolled_back').length, failed: failed.map((t) => t.hostname) },
    });
    decision.requeueAfterMs = null;
    return;
  }
  const newest = Math.max(...candidates.map((t) => t.batch));
  for (const task of candidates.filter((t) => t.batch === newest)) {
    if (task.fromVersion !== null && unavailableVersions.has(task.fromVersion)) {
      // Pointing the node at a version that is gone would empty its desired state or hold the
      // task until the health timeout with a reason that hides the cause: fail it now, untouched.
      const reason = `cannot roll back to ${rollout.spec.target.component} ${task.fromVersion}: it is archived or not published; the node stays on ${rollout.spec.target.version}`;
      apply(task, { changes: { direction: 'rollback', state: 'failed', stateSince: now, finishedAt: now, lastError: reason }, commands: [], events: [] });
      decision.events.push({ kind: 'rollout.node_failed', nodeId: task.nodeId, data: { hostname: task.hostname, batch: task.batch, direction: 'rollback', reason } });
      continue;
    }
    const reversed: RolloutTask = { ...task, direction: 'rollback', state: 'pending' };
    const start = startTask(rollout, reversed, nodes.get(task.nodeId), now);
    apply(task, { ...start, changes: { ...start.changes, direction: 'rollback', finishedAt: null, healthySince: null } });
  }
  decision.requeueAfterMs = POLL_MS;
}

/**
 * The end of the last batch. `completed` only when every selected node reached the target or
 * was skipped on purpose (DESIGN.md §8.8); a node that failed (breaker not tripped, or a human
 * said continue) makes it `failed`, naming the nodes and why.
 */
function finish(rollout: Rollout, all: readonly RolloutTask[], decision: RolloutDecision) {
  const forward = all.filter((t) => t.direction === 'forward');
  const done = forward.filter((t) => t.state === 'done').length;
  const missed = all.filter((t) => t.state !== 'done' && t.state !== 'skipped');
  decision.requeueAfterMs = null;
  if (missed.length === 0) {
    decision.rollout.status = 'completed';
    decision.events.push({ kind: 'rollout.completed', data: { done, failed: 0 } });
    return;
  }
  const target = `${rollout.spec.target.component} ${rollout.spec.target.version}`;
  // The reason is read by people (watch, events): the first nodes with their errors; the full
  // list is failed_nodes.
  const shown = missed.slice(0, MAX_NODES_IN_REASON).map((t) => `${t.hostname} (${t.state}${t.lastError ? `: ${t.lastError}` : ''})`);
  const more = missed.length > MAX_NODES_IN_REASON ? `, and ${missed.length - MAX_NODES_IN_REASON} more` : '';
  const reason = `${missed.length} of ${forward.length} node(s) did not reach ${target}: ${shown.join(', ')}${more}`;
  decision.rollout.status = 'failed';
  decision.events.push({ kind: 'rollout.failed', data: { reason, failed_nodes: missed.map((t) => t.hostname), done, failed: missed.length } });
}

/** A failed forward task would send its node back to a version that is gone (afterFailure then asks for nothing). */
function returnsToGoneVersion(rollout: Rollout, task: RolloutTask, unavailableVersions: ReadonlySet<string>): boolean {
  return task.direction === 'forward' && rollout.spec.strategy.onNodeFailure === 'rollback-node' && task.fromVersion !== null && unavailableVersions.has(task.fromVersion);
}
