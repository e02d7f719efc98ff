import { isBlueGreen } from './blue-green.js';
import { isOlderVersion } from './downgrade.js';
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

/** The version a task drives its node to: the target going forward, the old version going back. */
export function taskTargetVersion(rollout: Rollout, task: RolloutTask): string | null {
  return task.direction === 'forward' ? rollout.spec.target.version : task.fromVersion;
}

/**
 * A forward task that installs a version older than the node's, which the spec allows: the
 * agent installs a lower version only when the desired state marks it (the rollback flag).
 */
export function isDowngrade(rollout: Rollout, task: RolloutTask): boolean {
  return task.direction === 'forward' && rollout.spec.allowDowngrade && task.fromVersion !== null && isOlderVersion(rollout.spec.target.version, task.fromVersion);
}

function setVersion(rollout: Rollout, task: RolloutTask): NodeCommand {
  const downgrade = isDowngrade(rollout, task);
  // Blue-green: going forward, the new version starts beside the running one; going back, the
  // old one (still running) takes over again and the new one stops.
  const beside = isBlueGreen(rollout) && task.direction === 'forward';
  return {
    kind: 'set_version',
    nodeId: task.nodeId,
    component: rollout.spec.target.component,
    version: taskTargetVersion(rollout, task),
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
  return { changes: move('installing', now), commands: [setVersion(rollout, task)] };
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
  const event: RolloutEvent = {
    kind: 'rollout.node_started',
    nodeId: task.nodeId,
    data: {
      hostname: task.hostname,
      batch: task.batch,
      direction: task.direction,
      version: taskTargetVersion(rollout, task),
      ...(isDowngrade(rollout, task) ? { downgrade: true, from_version: task.fromVersion } : {}),
    },
  };
  if (rollout.drainMode === 'none') return { ...toInstall(rollout, task, now), events: [event] };
  const cordonedByUs = !(node?.cordoned ?? false);
  return {
    changes: move('cordoned', now, { cordonedByUs }),
    commands: cordonedByUs ? [{ kind: 'cordon', nodeId: task.nodeId }] : [],
    events: [event],
  };
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
  const target = taskTargetVersion(rollout, task);
  if (!node) return fail(task, now, 'node no longer exists');
  // A node without the component reports no version (undefined); rolling back a first install
  // targets null. Both mean "not installed".
  const running = node.version ?? null;

  switch (task.state) {
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
      // Only a report made since this task asked for the version counts: an older failure of
      // the same version (an earlier rollout) must not fail this attempt.
      const install = node.install?.version === target && node.install.at.getTime() >= task.stateSince.getTime() ? node.install : undefined;
      // A failed download switched nothing and the agent retries it by itself (an operator
      // restart mid-download causes one): wait for the retry within health.timeout instead of
      // failing the node, which would count toward the breaker and roll a healthy node back.
      const retrying = install?.phase === 'failed' && isRetriedByAgent(install);
      if (install && !retrying && (install.phase === 'failed' || install.phase === 'reverted')) {
        return fail(task, now, `install ${install.phase}${install.reason ? `: ${install.reason}` : ''}`);
      }
      if (retrying && age > spec.strategy.health.timeout) return fail(task, now, `install failed: ${install?.reason ?? ''} (no successful retry within ${spec.strategy.health.timeout / 1000} s)`);
      if (running === target && (install === undefined || install.phase === 'done')) {
        // Restart mode: the instances stopped for the install start again on this node now, so
        // the health gate (the `instances` check) proves them healthy on the new version.
        return { changes: move('verifying', now, { healthySince: null }), commands: restartInPlace(rollout, task), events: [] };
      }
      if (age > spec.strategy.health.timeout) return fail(task, now, `install of ${target} did not finish within ${spec.strategy.health.timeout / 1000} s`);
      return none();
    }

    case 'verifying': {
      if (running !== target) return fail(task, now, `node reports ${running ?? 'no version'} instead of ${target ?? 'no version'} (reverted)`);
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
          if (pre) return { changes: move('installing', now), commands: [setVersion(rollout, task)], events: [] };
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
  const gone = task.fromVersion !== null && unavailableVersions.has(task.fromVersion);
  if (task.direction === 'forward' && rollout.spec.strategy.onNodeFailure === 'rollback-node' && !gone) {
    commands.push({ kind: 'set_version', nodeId: task.nodeId, component: rollout.spec.target.component, version: task.fromVersion, rollback: true });
  }
  // `enable` also restarts what a restart drain stopped; a node someone else cordoned stays
  // cordoned, yet its instances must not stay stopped because this task failed.
  if (task.cordonedByUs) commands.push({ kind: 'enable', nodeId: task.nodeId });
  else commands.push(...restartInPlace(rollout, task));
  return commands;
}
