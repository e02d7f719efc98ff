import { isBlueGreen } from './blue-green.js';
import { isOlderVersion } from './downgrade.js';
import { rolloutTargets } from './spec.js';
import type { HookAction } from './hooks.js';
import type { NodeCommand, NodeFacts, Rollout, RolloutEvent, RolloutTask, TaskState } from './model.js';
import { type HookRuns, hooksAt, NO_HOOK_RUNS, nodeHookProgress } from './node-hooks.js';

export interface TaskStep {
  changes: Partial<Omit<RolloutTask, 'id' | 'nodeId'>>;
  commands: NodeCommand[];
  events: RolloutEvent[];
  /** Node hook runs to ask for or give up on (absent: none). */
  hooks?: HookAction[];
}

/**
 * The step that changes nothing, shared and frozen: most in-flight tasks wait on every tick (a
 * tick looks at each of hundreds of nodes in flight, every second), and allocating an empty step
 * for each was a good part of a 10,000-node simulation's garbage. Callers only read a step.
 */
const NOTHING: TaskStep = Object.freeze({ changes: Object.freeze({}), commands: Object.freeze([]) as unknown as NodeCommand[], events: Object.freeze([]) as unknown as RolloutEvent[] });
const none = (): TaskStep => NOTHING;

/** The version a task drives its node to, of the (first) target component: the target going forward, the old version going back. */
export function taskTargetVersion(rollout: Rollout, task: RolloutTask): string | null {
  return task.direction === 'forward' ? rollout.spec.target.version : task.fromVersion;
}

/** One install of a task: a component, the version it goes to and the one it comes from (null: none). */
export interface TaskInstall {
  component: string;
  version: string | null;
  from: string | null;
}

/**
 * The installs of a task, in its order: the spec's targets going forward (one drain for all of
 * them), in reverse going back. A rollout of one component has one install.
 */
export function taskInstalls(rollout: Rollout, task: RolloutTask): TaskInstall[] {
  const targets = rolloutTargets(rollout.spec);
  const first = rollout.spec.target.component;
  const forward = targets.map((t) => ({ component: t.component, version: t.version as string | null, from: t.component === first ? task.fromVersion : (task.fromVersions?.[t.component] ?? null) }));
  if (task.direction === 'forward') return forward;
  return forward.reverse().map((i) => ({ component: i.component, version: i.from, from: i.version }));
}

/** The install a task is at (its `step`), and whether another one follows. */
function currentInstall(rollout: Rollout, task: RolloutTask): { install: TaskInstall; last: boolean; step: number } {
  const installs = taskInstalls(rollout, task);
  const step = Math.min(task.step ?? 0, installs.length - 1);
  return { install: installs[step] as TaskInstall, last: step === installs.length - 1, step };
}

/** What the node reports of one component: the first target's facts are the top-level ones. */
function factsFor(rollout: Rollout, node: NodeFacts, component: string): { version: string | undefined; install: NodeFacts['install'] } {
  return node.components?.[component] ?? (component === rollout.spec.target.component ? { version: node.version, install: node.install } : { version: undefined, install: undefined });
}

/** Whether the node runs every version the task drives it to (a missing component is "none"). */
function runsAll(rollout: Rollout, task: RolloutTask, node: NodeFacts): TaskInstall | undefined {
  return taskInstalls(rollout, task).find((i) => (factsFor(rollout, node, i.component).version ?? null) !== i.version);
}

/**
 * A failed forward task's node runs its old versions again: every component the task asked for
 * (the first target's old version when it asked for nothing else).
 */
export function backOnOldVersions(rollout: Rollout, task: RolloutTask, node: NodeFacts): boolean {
  return taskInstalls(rollout, task)
    .slice(0, (task.step ?? 0) + 1)
    .every((i) => (factsFor(rollout, node, i.component).version ?? null) === i.from);
}

/**
 * An install that goes to a version older than the node's, which the spec allows: the agent
 * installs a lower version only when the desired state marks it (the rollback flag).
 */
function isDowngrade(rollout: Rollout, task: RolloutTask, install: TaskInstall): boolean {
  return task.direction === 'forward' && rollout.spec.allowDowngrade && install.from !== null && install.version !== null && isOlderVersion(install.version, install.from);
}

function setVersion(rollout: Rollout, task: RolloutTask, install: TaskInstall = currentInstall(rollout, task).install): NodeCommand {
  const downgrade = isDowngrade(rollout, task, install);
  // Blue-green: going forward, the new version starts beside the running one; going back, the
  // old one (still running) takes over again and the new one stops.
  const beside = isBlueGreen(rollout) && task.direction === 'forward';
  return {
    kind: 'set_version',
    nodeId: task.nodeId,
    component: install.component,
    version: install.version,
    rollback: task.direction === 'rollback' || downgrade,
    ...(downgrade ? { downgrade: true as const } : {}),
    ...(beside ? { keepPrevious: true as const } : {}),
  };
}

/** In restart mode, the command that starts the node's stopped instances again there (none otherwise). */
function restartInPlace(rollout: Rollout, task: RolloutTask): NodeCommand[] {
  return rollout.drainMode === 'restart' ? [{ kind: 'restart_instances', nodeId: task.nodeId }] : [];
}

function move(state: TaskState, now: Date, extra: Partial<RolloutTask> = {}): Partial<RolloutTask> {
  return { state, stateSince: now, ...extra };
}

/** The node is cordoned and drained (or needs neither): its preNode hooks first, when it has some, else the install. */
function toInstall(rollout: Rollout, task: RolloutTask, now: Date): Pick<TaskStep, 'changes' | 'commands'> {
  if (hooksAt(rollout, 'preNode').length > 0) return { changes: move('pre_node_hooks', now), commands: [] };
  return firstInstall(rollout, task, now);
}

/** The first of the task's installs (several targets: the next ones follow in `installing`). */
function firstInstall(rollout: Rollout, task: RolloutTask, now: Date): Pick<TaskStep, 'changes' | 'commands'> {
  const multi = rolloutTargets(rollout.spec).length > 1;
  const first = taskInstalls(rollout, task)[0] as TaskInstall;
  return { changes: move('installing', now, multi ? { step: 0 } : {}), commands: [setVersion(rollout, task, first)] };
}

/** The node passed its health gate: its postNode hooks first, when it has some, else done (and enabled). */
function toFinish(rollout: Rollout, task: RolloutTask, now: Date): TaskStep {
  if (hooksAt(rollout, 'postNode').length > 0) return { changes: move('post_node_hooks', now), commands: [], events: [] };
  return {
    changes: move(task.direction === 'forward' ? 'done' : 'rolled_back', now, { finishedAt: now, lastError: null }),
    commands: task.cordonedByUs ? [{ kind: 'enable', nodeId: task.nodeId }] : [],
    events: [],
  };
}

/** Install failures the agent retries on its own (it records a retry time): its report says so. */
function isRetriedByAgent(install: { reason?: string | undefined; retryable?: boolean | undefined }): boolean {
  // Compatibility with agents older than the flag: their wording in ComponentReconciler.install.
  return install.retryable ?? install.reason?.startsWith('download failed') ?? false;
}

/** Starts a pending task: cordon first when the node will be drained, else install at once. */
export function startTask(rollout: Rollout, task: RolloutTask, node: NodeFacts | undefined, now: Date): TaskStep {
  // A node decommissioned since the plan: nothing to start (its desired state is gone with it).
  if (!node) {
    const reason = 'node no longer exists';
    return { ...fail(task, now, reason), events: [{ kind: 'rollout.node_failed', nodeId: task.nodeId, data: { hostname: task.hostname, batch: task.batch, direction: task.direction, reason } }] };
  }
  const event: RolloutEvent = {
    kind: 'rollout.node_started',
    nodeId: task.nodeId,
    data: {
      hostname: task.hostname,
      batch: task.batch,
      direction: task.direction,
      version: taskTargetVersion(rollout, task),
      ...(rolloutTargets(rollout.spec).length > 1 ? { targets: taskInstalls(rollout, task).map((i) => `${i.component} ${i.from ?? 'none'} → ${i.version ?? 'none'}`) } : {}),
      ...(isDowngrade(rollout, task, currentInstall(rollout, task).install) ? { downgrade: true, from_version: task.fromVersion } : {}),
    },
  };
  // A reboot-class image is staged first, while the node still serves: its drain is then as short as the reboot.
  const staging = toStage(rollout, task, node);
  if (staging.length > 0) return { changes: move('staging', now), commands: staging.map((i) => ({ ...setVersion(rollout, task, i), prestage: true as const })), events: [event] };
  return { ...drainOrInstall(rollout, task, node, now), events: [event] };
}

/** The installs of a forward task whose artifact reboots the node and which the node does not run yet. */
function toStage(rollout: Rollout, task: RolloutTask, node: NodeFacts): TaskInstall[] {
  if (task.direction !== 'forward' || !rollout.prestage || rollout.prestage.length === 0) return [];
  const staged = new Set(rollout.prestage);
  return taskInstalls(rollout, task).filter((i) => staged.has(i.component) && i.version !== null && (factsFor(rollout, node, i.component).version ?? null) !== i.version);
}

/** A task begins its node's work: cordon first when the node will be drained, else install at once. */
function drainOrInstall(rollout: Rollout, task: RolloutTask, node: NodeFacts, now: Date): Pick<TaskStep, 'changes' | 'commands'> {
  if (rollout.drainMode === 'none') return toInstall(rollout, task, now);
  const cordonedByUs = !node.cordoned;
  return { changes: move('cordoned', now, { cordonedByUs }), commands: cordonedByUs ? [{ kind: 'cordon', nodeId: task.nodeId }] : [] };
}

function fail(task: RolloutTask, now: Date, reason: string): TaskStep {
  return { changes: move('failed', now, { finishedAt: now, lastError: reason, healthySince: null }), commands: [], events: [] };
}

/**
 * One step of an in-flight task, from the node's current facts. Each state has a deadline so a
 * node that never answers fails its task instead of holding the rollout forever.
 */
export function advanceTask(rollout: Rollout, task: RolloutTask, node: NodeFacts | undefined, now: Date, hookRuns: HookRuns = NO_HOOK_RUNS): TaskStep {
  const spec = rollout.spec;
  const age = now.getTime() - task.stateSince.getTime();
  if (!node) return fail(task, now, 'node no longer exists');

  switch (task.state) {
    case 'staging': {
      // Each image the task staged: reported `staged` (or already running) since it was asked for.
      let waiting = false;
      for (const i of toStage(rollout, task, node)) {
        const install = factsFor(rollout, node, i.component).install;
        const fresh = install?.version === i.version && install.at.getTime() >= task.stateSince.getTime() ? install : undefined;
        if (fresh?.phase === 'failed' && !isRetriedByAgent(fresh)) return fail(task, now, `pre-staging ${i.component} ${i.version} failed${fresh.reason ? `: ${fresh.reason}` : ''}`);
        if (fresh?.phase !== 'staged' && fresh?.phase !== 'done') waiting = true;
      }
      if (!waiting) return { ...drainOrInstall(rollout, task, node, now), events: [] };
      if (age > spec.strategy.health.timeout) return fail(task, now, `pre-staging did not finish within ${spec.strategy.health.timeout / 1000} s`);
      return none();
    }

    case 'cordoned':
      if (rollout.drainMode === 'migrate') {
        return {
          changes: move('draining', now),
          commands: [{ kind: 'drain', nodeId: task.nodeId, timeoutMs: spec.strategy.drain.timeout, force: spec.strategy.drain.nonMigratable === 'stop' }],
          events: [],
        };
      }
      if (rollout.drainMode === 'restart') {
        // In place: the node's instances are withdrawn and stopped there (nothing moves, so
        // nonMigratable does not apply), and started there again after the install.
        return {
          changes: move('draining', now),
          commands: [{ kind: 'drain', nodeId: task.nodeId, timeoutMs: spec.strategy.drain.timeout, force: false, mode: 'restart' }],
          events: [],
        };
      }
      return { ...toInstall(rollout, task, now), events: [] };

    case 'draining':
      if (node.drainState === 'completed') return { ...toInstall(rollout, task, now), events: [] };
      if (node.drainState === 'failed') return fail(task, now, `drain failed: ${node.drainMessage}`);
      if (node.drainState === 'blocked') return fail(task, now, `drain blocked: ${node.drainMessage} (drain.nonMigratable is block)`);
      // The fleet drain has its own deadline; this one only catches a drain that vanished.
      if (age > spec.strategy.drain.timeout + 30_000) return fail(task, now, 'drain did not finish in time');
      return none();

    case 'installing': {
      const { install: step, last, step: index } = currentInstall(rollout, task);
      const target = step.version;
      const facts = factsFor(rollout, node, step.component);
      // A node without the component reports no version (undefined); rolling back a first
      // install targets null. Both mean "not installed".
      const running = facts.version ?? null;
      // Only a report made since this task asked for the version counts: an older failure of
      // the same version (an earlier rollout) must not fail this attempt.
      const install = facts.install?.version === target && facts.install.at.getTime() >= task.stateSince.getTime() ? facts.install : undefined;
      // A failed download switched nothing and the agent retries it by itself (an operator
      // restart mid-download causes one): wait for the retry within health.timeout instead of
      // failing the node, which would count toward the breaker and roll a healthy node back.
      const retrying = install?.phase === 'failed' && isRetriedByAgent(install);
      if (install && !retrying && (install.phase === 'failed' || install.phase === 'reverted')) {
        return fail(task, now, `install ${install.phase}${install.reason ? `: ${install.reason}` : ''}`);
      }
      if (retrying && age > spec.strategy.health.timeout) return fail(task, now, `install failed: ${install?.reason ?? ''} (no successful retry within ${spec.strategy.health.timeout / 1000} s)`);
      if (running === target && (install === undefined || install.phase === 'done')) {
        // Several targets: the next component, inside the same drain.
        if (!last) {
          const next = taskInstalls(rollout, task)[index + 1] as TaskInstall;
          return { changes: move('installing', now, { step: index + 1 }), commands: [setVersion(rollout, task, next)], events: [] };
        }
        // Restart mode: the instances stopped for the install start again on this node now, so
        // the health gate (the `instances` check) proves them healthy on the new version.
        return { changes: move('verifying', now, { healthySince: null }), commands: restartInPlace(rollout, task), events: [] };
      }
      const what = rolloutTargets(spec).length > 1 ? `${step.component} ${target ?? 'none'}` : target;
      if (age > spec.strategy.health.timeout) return fail(task, now, `install of ${what} did not finish within ${spec.strategy.health.timeout / 1000} s`);
      return none();
    }

    case 'verifying': {
      const off = runsAll(rollout, task, node);
      if (off) {
        const running = factsFor(rollout, node, off.component).version ?? null;
        const what = rolloutTargets(spec).length > 1 ? `${off.component} ` : '';
        return fail(task, now, `node reports ${what}${running ?? 'no version'} instead of ${off.version ?? 'no version'} (reverted)`);
      }
      const checks = spec.strategy.health.checks;
      const healthy =
        (!checks.includes('heartbeat') || node.status !== 'down') && (!checks.includes('instances') || node.instancesHealthy);
      if (!healthy) {
        if (age > spec.strategy.health.timeout) return fail(task, now, `not healthy within ${spec.strategy.health.timeout / 1000} s`);
        return task.healthySince ? { changes: { healthySince: null }, commands: [], events: [] } : none();
      }
      const since = task.healthySince ?? now;
      if (now.getTime() - since.getTime() >= spec.strategy.health.minHealthyTime) return toFinish(rollout, task, now);
      return task.healthySince ? none() : { changes: { healthySince: now }, commands: [], events: [] };
    }

    case 'pre_node_hooks':
    case 'post_node_hooks': {
      const pre = task.state === 'pre_node_hooks';
      const progress = nodeHookProgress(rollout, task, pre ? 'preNode' : 'postNode', hookRuns, now);
      switch (progress.kind) {
        case 'act':
          return { changes: {}, commands: [], events: [], hooks: progress.actions };
        case 'wait':
          return none();
        case 'failed':
          return { ...fail(task, now, progress.reason), hooks: progress.actions };
        case 'passed':
          if (pre) return { ...firstInstall(rollout, task, now), events: [] };
          return {
            changes: move(task.direction === 'forward' ? 'done' : 'rolled_back', now, { finishedAt: now, lastError: null }),
            commands: task.cordonedByUs ? [{ kind: 'enable', nodeId: task.nodeId }] : [],
            events: [],
          };
      }
      return none();
    }

    default:
      return none();
  }
}

/**
 * What happens to a node whose task just failed: back to its old version, and enabled again.
 * An old version that is archived or gone is not asked for: the desired state stays as it is.
 */
export function afterFailure(rollout: Rollout, task: RolloutTask, unavailableVersions: ReadonlySet<string> = new Set()): NodeCommand[] {
  const commands: NodeCommand[] = [];
  if (task.direction === 'forward' && rollout.spec.strategy.onNodeFailure === 'rollback-node') {
    // Every component the task asked for so far goes back, the last asked first (several
    // targets); a first target whose old version is archived is not asked for.
    const asked = taskInstalls(rollout, task).slice(0, (task.step ?? 0) + 1).reverse();
    for (const install of asked) {
      const gone = install.component === rollout.spec.target.component && install.from !== null && unavailableVersions.has(install.from);
      if (!gone) commands.push({ kind: 'set_version', nodeId: task.nodeId, component: install.component, version: install.from, rollback: true });
    }
  }
  // `enable` also restarts what a restart drain stopped; a node someone else cordoned stays
  // cordoned, yet its instances must not stay stopped because this task failed.
  if (task.cordonedByUs) commands.push({ kind: 'enable', nodeId: task.nodeId });
  else commands.push(...restartInPlace(rollout, task));
  return commands;
}
