import { batchWaitMs } from './batch-wait.js';
import { assessBreaker, type FinishedTask } from './breaker.js';
import { type NodeFacts, RECONCILED_ROLLOUT_STATUSES, type Rollout, type RolloutDecision, type RolloutTask } from './model.js';
import { isInFlight, isTerminal, RolloutTaskIndex } from './task-index.js';
import { type HookRuns, NO_HOOK_RUNS, rolloutHookProgress } from './node-hooks.js';
import { advanceTask, afterFailure, backOnOldVersions, startTask, type TaskStep } from './task-machine.js';
import { type CompatRule, compatViolations } from './compat.js';
import { schemaStepDue } from './schema-steps.js';
import { abandonReason, type BlueGreenStep, blueGreenStep, isBlueGreen, retireAfterMs } from './blue-green.js';
import { isWithinWindow, nextWindowOpen } from './window.js';

/** What is checked before each batch starts: the matrix and what runs now, and the control plane's readiness. */
export interface CompatFacts {
  rules: readonly CompatRule[];
  /** Every version of every component running now: node components, `operator` replicas, `schema` N.0.0. */
  running: ReadonlyMap<string, readonly string[]>;
  /**
   * Rollouts of `operator` only: the hostnames of the live, ready replicas of each region, so a
   * batch starts only while minAvailablePerRegion replicas stay ready beside the ones it stops.
   */
  readyReplicas?: ReadonlyMap<string, readonly string[]>;
  /** Blue-green rollouts at their end: the versions of the live operator replicas (are the old ones gone?). */
  operatorVersions?: readonly string[];
}

/** How often an active rollout is looked at when nothing wakes it (health gates, pauses). */
const POLL_MS = 1_000;
/** Nodes named one by one in a failed rollout's reason (all of them are in failed_nodes). */
const MAX_NODES_IN_REASON = 20;

/**
 * The tasks as this decision sees them: the caller's, with the changes made so far in place
 * (copied on first write, so the caller's objects are never touched), looked up through the
 * index by position. A tick reads the tasks it concerns, not all of them (task-index.ts).
 */
interface TaskView {
  index: RolloutTaskIndex;
  at: (position: number) => RolloutTask;
  /** Every task as changed so far, in the caller's order: for the rare whole-rollout answers (its end). */
  all: () => RolloutTask[];
  /** Forward tasks failed before this decision or in its first step, in the caller's order. */
  failedForward: readonly number[];
}

/**
 * The rollout reconciler's decision: a pure function of the rollout, its tasks, the facts of
 * its nodes and the time. Level-triggered: it never asks what just happened, so running it
 * again on the same snapshot decides the same thing, and a crash between ticks loses nothing.
 * `tasks` is the rollout's tasks, or a RolloutTaskIndex over them that the caller keeps across
 * ticks (then a tick costs the tasks it concerns; the decision is the same).
 */
export function decideRollout(
  rollout: Rollout,
  tasks: readonly RolloutTask[] | RolloutTaskIndex,
  nodes: ReadonlyMap<string, NodeFacts>,
  now: Date,
  /** Versions of the target component no node may be pointed at: archived or never published. */
  unavailableVersions: ReadonlySet<string> = new Set(),
  /** The journal of this rollout's hook runs (hooks.ts), by run id. */
  hookRuns: HookRuns = NO_HOOK_RUNS,
  /**
   * The compatibility matrix and every version running now (nodes, operator replicas, schema),
   * given at a batch boundary: the matrix is checked again before each batch (DESIGN.md §11).
   */
  compat?: CompatFacts,
): RolloutDecision {
  const decision: RolloutDecision = { rollout: {}, tasks: [], commands: [], events: [], requeueAfterMs: null };
  const status = rollout.status;
  if (!RECONCILED_ROLLOUT_STATUSES.includes(status)) return decision;
  const index = tasks instanceof RolloutTaskIndex ? tasks : new RolloutTaskIndex(tasks);
  const list = index.tasks;
  // The tasks this decision changed, by id, as copies: a tick changes a few of 10,000.
  const changed = new Map<string, RolloutTask>();
  const at = (p: number): RolloutTask => {
    const t = list[p] as RolloutTask;
    return changed.size === 0 ? t : changed.get(t.id) ?? t;
  };
  /** Records a step of `task` (as this decision last saw it); returns the task as changed. */
  const apply = (task: RolloutTask, step: TaskStep): RolloutTask => {
    let copy = changed.size === 0 ? undefined : changed.get(task.id);
    if (hasAny(step.changes)) {
      decision.tasks.push({ id: task.id, from: task.state, changes: step.changes });
      if (!copy) {
        copy = { ...task };
        changed.set(task.id, copy);
      }
      Object.assign(copy, step.changes);
    }
    // Most steps of a tick change nothing: skip the empty copies.
    if (step.commands.length > 0) decision.commands.push(...step.commands);
    if (step.events.length > 0) decision.events.push(...step.events.map((e) => ({ ...e, data: { ...e.data } })));
    if (step.hooks && step.hooks.length > 0) (decision.hooks ??= []).push(...step.hooks);
    return copy ?? task;
  };

  // 1. In-flight tasks always move on, whatever the rollout's status: stopping a node halfway
  //    would leave it cordoned and half-installed. Only they change in this step, so what the
  //    rest of the tick asks about the tasks is the index's answer corrected by what they became.
  let inFlight = 0;
  let forwardDone = index.forwardDoneCount;
  const targeted = index.targetedCount;
  const currentBatch = rollout.currentBatch;
  let openInCurrentBatch = index.openForwardIn(currentBatch);
  const failedBefore = index.failedForwardPositions();
  const newlyFailed: number[] = [];
  const newlyDone: number[] = [];
  for (const p of index.inFlightPositions()) {
    const task = list[p] as RolloutTask;
    const after = apply(task, advanceTask(rollout, task, nodes.get(task.nodeId), now, hookRuns));
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
    if (isInFlight(after.state)) inFlight++;
    if (after.direction !== 'forward' || !isTerminal(after.state)) continue;
    if (after.batch === currentBatch) openInCurrentBatch--;
    if (after.state === 'done') {
      forwardDone++;
      if (after.finishedAt) newlyDone.push(p);
    } else if (after.state === 'failed') newlyFailed.push(p);
  }
  // In the caller's order (the index's list is shared: never changed here).
  const failedForward = newlyFailed.length === 0 ? failedBefore : [...failedBefore, ...newlyFailed].sort((a, b) => a - b);
  const view: TaskView = { index, at, all: () => list.map((t) => changed.get(t.id) ?? t), failedForward };
  if (inFlight > 0) decision.requeueAfterMs = POLL_MS;

  // 2. The circuit breaker: judged on forward tasks, whatever batch they were in.
  if (status === 'running' || status === 'waiting_for_window') {
    // Every failure, and of the successes only the last (in the breaker's order): a failure
    // streak ends at the last success and the verdict names failures only, so it is the same as
    // on every finished task, without sorting all of them on every tick.
    const breakerInput: FinishedTask[] = [];
    for (const p of failedForward) {
      const t = at(p);
      if (t.finishedAt) breakerInput.push({ nodeId: t.nodeId, outcome: 'failed', finishedAt: t.finishedAt });
    }
    const lastDone = latestDone(view, newlyDone, breakerInput);
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
      advanceBatches(rollout, view, openInCurrentBatch === 0, nodes, now, decision, apply, hookRuns, compat);
      break;
    case 'aborting':
      for (const p of index.pendingPositions()) apply(at(p), skip(now, 'the rollout was aborted before this node started'));
      if (anyReverting(rollout, view, nodes, now)) decision.requeueAfterMs = POLL_MS;
      else if (inFlight === 0 && isBlueGreen(rollout) && rollout.previousRetiredAt === null && forwardDone > 0) {
        // Blue-green aborted before the old replicas stopped: the new ones stop, the old keep serving.
        abandon(decision, 'the rollout was aborted before the old replicas were retired; the old replicas keep serving and the new ones stop');
      } else if (inFlight === 0) {
        decision.rollout.status = 'aborted';
        decision.events.push({ kind: 'rollout.aborted', data: { done: forwardDone } });
      }
      break;
    case 'rolling_back':
      rollBack(rollout, view, inFlight, nodes, now, decision, apply, unavailableVersions);
      break;
    default:
      // paused / awaiting_decision: nothing new starts until a human acts.
      break;
  }
  return decision;
}

/**
 * The forward task done last in the breaker's order (time, then node id), among those done
 * before this decision (the index's latest) and in its first step (`newlyDone`): the first in
 * the caller's order at the latest time; when a failure has that very time, the node-id order
 * decides (the later task winning a tie, as in the breaker's stable sort). Nodes of one batch
 * often pass their health gate on one tick.
 */
function latestDone(view: TaskView, newlyDone: readonly number[], failures: readonly FinishedTask[]): { nodeId: string; finishedAt: Date } | null {
  const before = view.index.latestDone();
  let ms = before?.ms ?? null;
  for (const p of newlyDone) {
    const t = (view.at(p).finishedAt as Date).getTime();
    if (ms === null || t > ms) ms = t;
  }
  if (ms === null) return null;
  const positions = before?.ms === ms ? [...before.positions] : [];
  for (const p of newlyDone) if ((view.at(p).finishedAt as Date).getTime() === ms) positions.push(p);
  positions.sort((a, b) => a - b);
  let last = view.at(positions[0] as number);
  if (failures.some((f) => f.finishedAt.getTime() === ms)) {
    for (const p of positions) {
      const t = view.at(p);
      if (t.nodeId.localeCompare(last.nodeId) >= 0) last = t;
    }
  }
  return { nodeId: last.nodeId, finishedAt: last.finishedAt as Date };
}

type Apply = (task: RolloutTask, step: TaskStep) => RolloutTask;

/** Whether a step changes anything, without the array Object.keys builds (once per task in flight per tick). */
function hasAny(changes: object): boolean {
  for (const _ in changes) return true;
  return false;
}

/** A pending task that will not run, and why: a skipped task always says why (DESIGN.md §8.8). */
const skip = (now: Date, reason: string): TaskStep => ({ changes: { state: 'skipped', stateSince: now, lastError: reason }, commands: [], events: [] });

/**
 * A node whose forward task failed goes back to its old version (onNodeFailure rollback-node)
 * and is down until it runs it again, though its task is finished: the next batch, the next
 * rollback batch and the end of an abort wait for it, or a region would have more nodes down
 * than its budget (DESIGN.md §8.2). The wait ends health.timeout after the failure, so a node
 * that never reports back does not hold the rollout forever.
 */
function anyReverting(rollout: Rollout, view: TaskView, nodes: ReadonlyMap<string, NodeFacts>, now: Date): boolean {
  if (rollout.spec.strategy.onNodeFailure !== 'rollback-node') return false;
  return view.failedForward.some((p) => {
    const t = view.at(p);
    if (t.state !== 'failed' || t.direction !== 'forward' || !t.finishedAt) return false;
    if (now.getTime() - t.finishedAt.getTime() > rollout.spec.strategy.health.timeout) return false;
    const node = nodes.get(t.nodeId);
    return node !== undefined && !backOnOldVersions(rollout, t, node);
  });
}

/** `currentBatchDone`: every forward task of the current batch is finished (counted in decideRollout's first step). */
function advanceBatches(
  rollout: Rollout,
  view: TaskView,
  currentBatchDone: boolean,
  nodes: ReadonlyMap<string, NodeFacts>,
  now: Date,
  decision: RolloutDecision,
  apply: Apply,
  hookRuns: HookRuns,
  compat: CompatFacts | undefined,
) {
  const inBatch = (i: number) => view.index.batchPositions(i).map(view.at).filter((t) => t.direction === 'forward');
  const currentBatch = rollout.currentBatch;
  let batchFinishedAt = rollout.batchFinishedAt;
  if (currentBatch >= 0 && !currentBatchDone) return;
  if (anyReverting(rollout, view, nodes, now)) {
    decision.requeueAfterMs = POLL_MS;
    return;
  }
  // Blue-green switches only when every new replica is ready: one failed node ends the attempt.
  if (isBlueGreen(rollout) && rollout.previousRetiredAt === null && view.failedForward.length > 0) {
    abandon(decision, abandonReason(rollout, view.failedForward.map(view.at)));
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
    const all = view.all();
    if (isBlueGreen(rollout)) {
      const step = blueGreenStep(rollout, all, now, compat?.operatorVersions);
      if (step.kind !== 'finished') {
        applyBlueGreenStep(rollout, step, all, now, decision);
        return;
      }
    }
    // The contract waits for the last node, and only a rollout whose every node reached the
    // target contracts (a failed one ends failed, its old replicas still needing the schema).
    if (schemaStepDue(rollout, 'post') && all.every((t) => t.state === 'done' || t.state === 'skipped') && all.some((t) => t.state === 'done')) {
      decision.schema = 'post';
      decision.requeueAfterMs = POLL_MS;
      return;
    }
    // postRollout runs once the last batch finished (and after the contract), whatever its outcome (a ticket is closed either way).
    const post = rolloutHooksGate(rollout, 'postRollout', hookRuns, now, decision);
    if (post === 'waiting') return;
    finish(rollout, all, decision, post === 'passed' ? null : post.reason);
    return;
  }
  // Pause between batches; after the canary, its soak time as well.
  if (batchFinishedAt) {
    const wait = batchWaitMs(rollout.spec, currentBatch);
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
  const gate = regionGate(rollout, view, next);
  if (gate) {
    decision.rollout.status = 'awaiting_approval';
    decision.gate = gate;
    decision.events.push({ kind: 'rollout.gate_reached', data: { batch: next, completed_regions: gate.completed, next_regions: gate.next, summary: gate.summary } });
    return;
  }
  if (next === 0) {
    // preRollout runs before the first node starts; a failure ends the rollout before any node moved.
    const pre = rolloutHooksGate(rollout, 'preRollout', hookRuns, now, decision);
    if (pre === 'waiting') return;
    if (pre !== 'passed') {
      for (const p of view.index.pendingPositions()) apply(view.at(p), skip(now, `not started: ${pre.reason}`));
      decision.rollout.status = 'failed';
      decision.requeueAfterMs = null;
      decision.events.push({ kind: 'rollout.failed', data: { reason: pre.reason, failed_nodes: [], done: 0, failed: 0 } });
      return;
    }
    // The expand comes after preRollout and before the first node: the new builds need it, the old ones tolerate it.
    if (schemaStepDue(rollout, 'pre')) {
      decision.schema = 'pre';
      decision.requeueAfterMs = POLL_MS;
      return;
    }
  }
  // What runs may have changed since the plan (another rollout, a person, a replica): a batch
  // that would break the matrix does not start; the rollout pauses until a person resumes it.
  if (compat) {
    const violations = compatViolations(compat.rules, rollout.spec.target.component, rollout.spec.target.version, compat.running);
    if (violations.length > 0) {
      const list = violations.map((v) => `${v.rule.component} ${v.rule.range} requires ${v.rule.requires_component} ${v.rule.requires_range} (running: ${v.offending.join(', ')})`);
      decision.rollout.status = 'paused';
      decision.events.push({ kind: 'rollout.compat_blocked', data: { batch: next, violations: list } });
      return;
    }
  }
  // Blue-green stops no replica before the switch: nothing to count.
  const short = compat?.readyReplicas && !isBlueGreen(rollout) ? replicasShort(rollout, inBatch(next), compat.readyReplicas) : [];
  if (short.length > 0) {
    decision.waitingFor = `too few ready operator replicas to start batch ${next}: ${short.join('; ')}`;
    decision.requeueAfterMs = POLL_MS;
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

/** Blue-green gives up this attempt: it rolls back (the old replicas still run and serve). */
function abandon(decision: RolloutDecision, reason: string) {
  decision.rollout.status = 'rolling_back';
  decision.events.push({ kind: 'rollout.blue_green_abandoned', data: { reason } });
  decision.requeueAfterMs = POLL_MS;
}

/** One step of a blue-green rollout's end (blue-green.ts), as rollout changes, commands and events. */
function applyBlueGreenStep(rollout: Rollout, step: BlueGreenStep, all: readonly RolloutTask[], now: Date, decision: RolloutDecision) {
  const target = rollout.spec.target;
  switch (step.kind) {
    case 'abandon':
      abandon(decision, step.reason);
      return;
    case 'switch':
      decision.rollout.trafficSwitchedAt = now;
      decision.events.push({ kind: 'rollout.traffic_switched', data: { from_versions: step.previousVersions, to_version: target.version, retire_after_ms: retireAfterMs(rollout) } });
      decision.requeueAfterMs = Math.min(retireAfterMs(rollout), POLL_MS * 60);
      return;
    case 'hold':
      decision.requeueAfterMs = Math.min(step.remainingMs, POLL_MS * 60);
      return;
    case 'retire': {
      decision.rollout.previousRetiredAt = now;
      const retiring = new Set(step.nodeIds);
      for (const nodeId of step.nodeIds) decision.commands.push({ kind: 'retire_previous', nodeId, component: target.component });
      const tasks = all.filter((t) => retiring.has(t.nodeId));
      const versions = [...new Set(tasks.map((t) => t.fromVersion).filter((v): v is string => v !== null))].sort();
      decision.events.push({ kind: 'rollout.previous_retired', data: { nodes: tasks.map((t) => t.hostname), versions } });
      decision.requeueAfterMs = POLL_MS;
      return;
    }
    case 'wait_for_retired':
      decision.waitingFor = `old operator replicas still live: ${step.still.join(', ')}`;
      decision.requeueAfterMs = POLL_MS;
      return;
    case 'finished':
      return;
  }
}

/**
 * With gateBetweenRegions, the batch about to start that brings a region no earlier batch had
 * waits for a person (once: an approved gate is remembered as gatePassedBatch). The summary says
 * how the regions done so far went, for the person deciding.
 */
function regionGate(rollout: Rollout, view: TaskView, next: number): RolloutDecision['gate'] | undefined {
  if (!rollout.spec.strategy.gateBetweenRegions || next === 0 || rollout.gatePassedBatch >= next) return undefined;
  const regionsOf = (batch: number) => new Set(view.index.batchPositions(batch).map((p) => view.at(p).region));
  const before = new Set<string>();
  for (let b = 0; b < next; b++) for (const r of regionsOf(b)) before.add(r);
  const upcoming = [...regionsOf(next)].filter((r) => !before.has(r)).sort();
  if (upcoming.length === 0) return undefined;
  const done: Record<string, { done: number; failed: number }> = {};
  for (let b = 0; b < next; b++) {
    for (const p of view.index.batchPositions(b)) {
      const t = view.at(p);
      if (t.direction !== 'forward') continue;
      const counts = (done[t.region] ??= { done: 0, failed: 0 });
      if (t.state === 'done') counts.done++;
      else if (t.state === 'failed') counts.failed++;
    }
  }
  const completed = Object.keys(done).sort();
  const summary = completed.map((r) => `${r}: ${done[r]?.done ?? 0} done, ${done[r]?.failed ?? 0} failed`).join('; ');
  return { batch: next, completed, next: upcoming, summary: `${summary}; next: ${upcoming.join(', ')}` };
}

/**
 * Rollback returns every node the rollout completed to its previous version, newest batch
 * first, one original batch at a time, through the same drain and health rules.
 */
function rollBack(
  rollout: Rollout,
  view: TaskView,
  inFlight: number,
  nodes: ReadonlyMap<string, NodeFacts>,
  now: Date,
  decision: RolloutDecision,
  apply: Apply,
  unavailableVersions: ReadonlySet<string>,
) {
  for (const p of view.index.pendingPositions()) apply(view.at(p), skip(now, 'the rollout was rolled back before this node started'));
  // Wait while nodes are in flight, and one tick more after the last of them finished: the
  // snapshot still shows such a node cordoned by its forward task (the enable is in this very
  // decision), so starting its rollback now would take that cordon for someone else's and never
  // cordon the node for its reinstall.
  const settling = inFlight > 0 || decision.tasks.some((c) => isInFlight(c.from));
  if (settling || anyReverting(rollout, view, nodes, now)) {
    decision.requeueAfterMs = POLL_MS;
    return;
  }
  // Not settling: no task was in flight, so this decision changed none but pending ones, and
  // the index's forward tasks done are the tasks' as they are now.
  // A regional rollback ("roll back one region") returns only those regions' nodes.
  const regions = rollout.rollbackRegions;
  const returns = (t: RolloutTask) => t.direction === 'forward' && t.state === 'done' && (regions === null || regions.includes(t.region));
  const newest = regions === null ? view.index.newestBatchWithDone() : newestBatchWhere(view, returns);
  if (newest === null) {
    const all = view.all();
    const failed = all.filter((t) => t.direction === 'rollback' && t.state === 'failed');
    decision.rollout.status = failed.length > 0 ? 'failed' : 'rolled_back';
    decision.events.push({
      kind: 'rollout.rolled_back',
      data: { rolled_back: all.filter((t) => t.state === 'rolled_back').length, failed: failed.map((t) => t.hostname), ...(regions === null ? {} : { regions }) },
    });
    decision.requeueAfterMs = null;
    return;
  }
  const candidates = view.index.batchPositions(newest).map(view.at).filter(returns);
  for (const task of candidates) {
    if (!nodes.has(task.nodeId)) {
      // Decommissioned since: nothing to return.
      const reason = 'node no longer exists';
      apply(task, { changes: { direction: 'rollback', state: 'failed', stateSince: now, finishedAt: now, lastError: reason }, commands: [], events: [] });
      decision.events.push({ kind: 'rollout.node_failed', nodeId: task.nodeId, data: { hostname: task.hostname, batch: task.batch, direction: 'rollback', reason } });
      continue;
    }
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
 * The regions where starting these tasks would leave fewer ready replicas than
 * minAvailablePerRegion (a replica already down counts against it), described for people.
 */
function replicasShort(rollout: Rollout, batch: readonly RolloutTask[], ready: ReadonlyMap<string, readonly string[]>): string[] {
  const min = rollout.spec.strategy.minAvailablePerRegion;
  if (min === undefined) return [];
  const stopping = new Map<string, Set<string>>();
  for (const t of batch) if (t.state === 'pending') (stopping.get(t.region) ?? stopping.set(t.region, new Set()).get(t.region)!).add(t.hostname);
  const short: string[] = [];
  for (const [region, hosts] of [...stopping].sort(([a], [b]) => a.localeCompare(b))) {
    const readyHere = ready.get(region) ?? [];
    const staying = readyHere.filter((h) => !hosts.has(h)).length;
    if (staying < min) short.push(`${region} has ${readyHere.length} ready, ${hosts.size} would stop, ${min} must stay ready`);
  }
  return short;
}

/** The newest batch holding a task `returns` accepts (a regional rollback's next batch), or null. */
function newestBatchWhere(view: TaskView, returns: (t: RolloutTask) => boolean): number | null {
  for (let batch = view.index.newestBatchWithDone() ?? -1; batch >= 0; batch--) {
    if (view.index.batchPositions(batch).some((p) => returns(view.at(p)))) return batch;
  }
  return null;
}

/**
 * The end of the last batch. `completed` only when every selected node reached the target or
 * was skipped on purpose (DESIGN.md §8.8); a node that failed (breaker not tripped, or a human
 * said continue) makes it `failed`, naming the nodes and why.
 */
function finish(rollout: Rollout, all: readonly RolloutTask[], decision: RolloutDecision, hookFailure: string | null = null) {
  const forward = all.filter((t) => t.direction === 'forward');
  const done = forward.filter((t) => t.state === 'done').length;
  const missed = all.filter((t) => t.state !== 'done' && t.state !== 'skipped');
  decision.requeueAfterMs = null;
  if (missed.length === 0 && hookFailure !== null) {
    decision.rollout.status = 'failed';
    decision.events.push({ kind: 'rollout.failed', data: { reason: hookFailure, failed_nodes: [], done, failed: 0 } });
    return;
  }
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
  const reason = `${missed.length} of ${forward.length} node(s) did not reach ${target}: ${shown.join(', ')}${more}${hookFailure ? `; ${hookFailure}` : ''}`;
  decision.rollout.status = 'failed';
  decision.events.push({ kind: 'rollout.failed', data: { reason, failed_nodes: missed.map((t) => t.hostname), done, failed: missed.length } });
}

/** A failed forward task would send its node back to a version that is gone (afterFailure then asks for nothing). */
function returnsToGoneVersion(rollout: Rollout, task: RolloutTask, unavailableVersions: ReadonlySet<string>): boolean {
  return task.direction === 'forward' && rollout.spec.strategy.onNodeFailure === 'rollback-node' && task.fromVersion !== null && unavailableVersions.has(task.fromVersion);
}

/**
 * A rollout-level hook point (preRollout, postRollout) as a gate: 'waiting' while its hooks run
 * (the runs to start or expire are added to the decision), then passed or failed.
 */
function rolloutHooksGate(rollout: Rollout, point: 'preRollout' | 'postRollout', hookRuns: HookRuns, now: Date, decision: RolloutDecision): 'waiting' | 'passed' | { reason: string } {
  const progress = rolloutHookProgress(rollout, point, hookRuns, now);
  if (progress.kind === 'passed') return 'passed';
  if (progress.kind === 'wait') {
    decision.requeueAfterMs = Math.min(decision.requeueAfterMs ?? POLL_MS, POLL_MS);
    return 'waiting';
  }
  if (progress.actions.length > 0) (decision.hooks ??= []).push(...progress.actions);
  if (progress.kind === 'act') {
    decision.requeueAfterMs = POLL_MS;
    return 'waiting';
  }
  return { reason: progress.reason };
}
