// A virtual-time fleet that obeys the rollout's node commands, and a driver that runs
// decideRollout against it the way the operator's reconciler does (load → decide → apply),
// checking DESIGN.md §8 after every tick. The property tests and bench/rollout-sim.ts share it,
// so the simulator counts exactly the violations the tests forbid.
import { isDeepStrictEqual } from 'node:util';
import { decideRollout } from '../../../src/domain/rollout/decide.js';
import {
  ACTIVE_ROLLOUT_STATUSES,
  IN_FLIGHT,
  type NodeCommand,
  type NodeFacts,
  type Rollout,
  type RolloutDecision,
  type RolloutStatus,
  type RolloutTask,
  TERMINAL,
  type TaskState,
} from '../../../src/domain/rollout/model.js';
import type { InstallPhase } from '../../../src/domain/protocol.js';
import type { DrainState } from '../../../src/domain/types.js';

/** What an install does: lands, fails (the agent keeps or restores the old version), or lands broken (the node stops heartbeating). */
export type InstallOutcome = 'ok' | 'fails' | 'unhealthy';

export interface FleetModelOptions {
  /** Drain time: a fixed part plus a part per instance moved. */
  drainBaseMs: number;
  drainMsPerInstance: number;
  installMs: (nodeId: string) => number;
  outcome: (nodeId: string, version: string | null, rollback: boolean) => InstallOutcome;
  /** Nodes whose drain fails (no room for their instances). */
  drainFails?: (nodeId: string) => boolean;
}

export interface SimNodeInit {
  id: string;
  region: string;
  version: string | undefined;
  instances: number;
}

interface SimNode extends SimNodeInit {
  cordoned: boolean;
  drain: { state: DrainState; until: number; fails: boolean } | null;
  install: { version: string | null; phase: InstallPhase; until: number; outcome: InstallOutcome; reason?: string; reportedAt: number } | null;
  /** Runs a broken version: no heartbeat, unhealthy instances. */
  sick: boolean;
}

/** The fleet as the operator sees it through heartbeats, reduced to what a rollout reads. */
export class FleetModel {
  readonly nodes = new Map<string, SimNode>();
  readonly facts = new Map<string, NodeFacts>();
  /** set_version commands per node, in order: what the operator asked each node to run. */
  readonly versionRequests = new Map<string, { version: string | null; rollback: boolean }[]>();

  constructor(
    init: readonly SimNodeInit[],
    private readonly options: FleetModelOptions,
  ) {
    for (const n of init) {
      const node: SimNode = { ...n, cordoned: false, drain: null, install: null, sick: false };
      this.nodes.set(n.id, node);
      this.facts.set(n.id, this.factsOf(node));
    }
  }

  private factsOf(node: SimNode): NodeFacts {
    const draining = node.drain?.state === 'running' || node.drain?.state === 'blocked';
    return {
      id: node.id,
      status: node.sick ? 'down' : draining ? 'draining' : node.cordoned ? 'cordoned' : 'ready',
      cordoned: node.cordoned,
      drainState: node.drain?.state ?? null,
      drainMessage: node.drain?.state === 'failed' ? 'no room for 3 instances' : '',
      version: node.version,
      install: node.install
        ? { version: node.install.version ?? '', phase: node.install.phase, reason: node.install.reason, at: new Date(node.install.reportedAt) }
        : undefined,
      instancesHealthy: !node.sick || node.instances === 0,
    };
  }

  /** Nodes cordoned, down, draining or installing: the only ones with timers or counted unavailable (a 1,000-node fleet is mostly idle). */
  readonly busy = new Set<SimNode>();

  private refresh(node: SimNode): void {
    this.facts.set(node.id, this.factsOf(node));
    if (node.cordoned || node.sick || node.drain?.state === 'running' || node.install?.phase === 'installing') this.busy.add(node);
    else this.busy.delete(node);
  }

  apply(command: NodeCommand, now: number): void {
    const node = this.nodes.get(command.nodeId);
    if (!node) return;
    switch (command.kind) {
      case 'cordon':
        node.cordoned = true;
        break;
      case 'enable':
        node.cordoned = false;
        break;
      case 'drain':
        node.drain = {
          state: 'running',
          until: now + this.options.drainBaseMs + node.instances * this.options.drainMsPerInstance,
          fails: this.options.drainFails?.(node.id) ?? false,
        };
        break;
      case 'set_version': {
        const list = this.versionRequests.get(node.id) ?? [];
        list.push({ version: command.version, rollback: command.rollback });
        this.versionRequests.set(node.id, list);
        if ((node.version ?? null) === command.version && !node.sick) {
          node.install = { version: command.version, phase: 'done', until: now, outcome: 'ok', reportedAt: now };
        } else {
          // Going back from a broken version restores the backup the agent kept (DESIGN.md §8.4:
          // the node returns by itself); only a rollback of a healthy node may fail.
          const outcome = command.rollback && node.sick ? 'ok' : this.options.outcome(node.id, command.version, command.rollback);
          node.install = { version: command.version, phase: 'installing', until: now + this.options.installMs(node.id), outcome, reportedAt: now };
        }
        break;
      }
    }
    this.refresh(node);
  }

  /** Finishes every drain and install due by `now`. */
  advance(now: number): void {
    for (const node of [...this.busy]) {
      let changed = false;
      if (node.drain?.state === 'running' && node.drain.until <= now) {
        node.drain.state = node.drain.fails ? 'failed' : 'completed';
        if (!node.drain.fails) node.instances = 0;
        changed = true;
      }
      const install = node.install;
      if (install?.phase === 'installing' && install.until <= now) {
        install.reportedAt = install.until;
        if (install.outcome === 'fails') {
          install.phase = 'reverted';
          install.reason = 'boot assessment failed, previous version restored';
          node.sick = false;
        } else {
          install.phase = 'done';
          node.version = install.version ?? undefined;
          node.sick = install.outcome === 'unhealthy';
        }
        changed = true;
      }
      if (changed) this.refresh(node);
    }
  }

  /** The next instant a drain or install finishes, if any is under way. */
  nextEventAt(): number | null {
    let next: number | null = null;
    for (const node of this.busy) {
      if (node.drain?.state === 'running' && (next === null || node.drain.until < next)) next = node.drain.until;
      if (node.install?.phase === 'installing' && (next === null || node.install.until < next)) next = node.install.until;
    }
    return next;
  }

  /** Lets every install and drain under way finish (after the rollout ended). */
  settle(now: number): number {
    let t = now;
    for (let next = this.nextEventAt(); next !== null; next = this.nextEventAt()) {
      t = Math.max(t, next);
      this.advance(t);
    }
    return t;
  }
}

export type HumanChoice = 'continue' | 'rollback' | 'abort';

export interface OperatorAction {
  /** Milliseconds after the start. */
  atMs: number;
  kind: 'pause' | 'resume' | 'abort' | 'rollback';
}

export interface DriveOptions {
  rollout: Rollout;
  tasks: RolloutTask[];
  fleet: FleetModel;
  /** Most in-flight tasks per region (from the plan). */
  regionCaps: Record<string, number>;
  start: Date;
  /** After the breaker trips, a person decides this long later. */
  decisionDelayMs: number;
  choose: (tripIndex: number) => HumanChoice;
  actions?: readonly OperatorAction[];
  /** Give up (and count a violation) after this much virtual time. */
  maxVirtualMs: number;
  /** Call decide twice on the same snapshot every n-th tick (0: never). */
  determinismEvery?: number;
  /** Extra reconciler wake-ups every n ms while nodes are in flight, on top of requeues and fleet reports (0: none). */
  extraWakeMs?: number;
}

export interface BreakerTrip {
  atMs: number;
  reason: string;
  failedNodes: string[];
  /** Forward tasks started (left pending) before the trip, and still in flight at the trip. */
  startedBefore: number;
  inFlightAtTrip: number;
  choice: HumanChoice | null;
}

export interface DriveResult {
  rollout: Rollout;
  tasks: RolloutTask[];
  /** Virtual milliseconds from start until the rollout reached a final status (null: it never did). */
  makespanMs: number | null;
  ticks: number;
  violations: Record<string, { count: number; examples: string[] }>;
  violationCount: number;
  trips: BreakerTrip[];
  events: { atMs: number; kind: string; nodeId?: string }[];
  /** Most tasks in flight at once per region, and most nodes unavailable (cordoned, draining or installing) per region. */
  peakInFlightPerRegion: Record<string, number>;
  peakUnavailablePerRegion: Record<string, number>;
}

const FORWARD_NEXT: Record<TaskState, readonly TaskState[]> = {
  pending: ['cordoned', 'installing', 'skipped'],
  cordoned: ['draining', 'installing', 'failed'],
  draining: ['installing', 'failed'],
  installing: ['verifying', 'failed'],
  verifying: ['done', 'failed'],
  // A completed node can only leave `done` to be rolled back.
  done: [],
  failed: [],
  rolled_back: [],
  skipped: [],
};
const ROLLBACK_NEXT: Partial<Record<TaskState, readonly TaskState[]>> = {
  done: ['cordoned', 'installing'],
  cordoned: ['draining', 'installing', 'failed'],
  draining: ['installing', 'failed'],
  installing: ['verifying', 'failed'],
  verifying: ['rolled_back', 'failed'],
};

const IN_FLIGHT_STATES = new Set<TaskState>(IN_FLIGHT);
const FINAL: readonly RolloutStatus[] = ['completed', 'aborted', 'rolled_back', 'failed', 'rejected'];

export function driveRollout(options: DriveOptions): DriveResult {
  const { fleet, regionCaps } = options;
  const rollout: Rollout = { ...options.rollout };
  const tasks = options.tasks.map((t) => ({ ...t }));
  const byId = new Map(tasks.map((t) => [t.id, t]));
  const byNode = new Map(tasks.map((t) => [t.nodeId, t]));
  const startMs = options.start.getTime();
  const violations: DriveResult['violations'] = {};
  const violate = (kind: string, detail: string) => {
    const entry = (violations[kind] ??= { count: 0, examples: [] });
    entry.count++;
    if (entry.examples.length < 5) entry.examples.push(detail);
  };
  const events: DriveResult['events'] = [];
  const trips: BreakerTrip[] = [];
  const peakInFlight: Record<string, number> = {};
  const peakUnavailable: Record<string, number> = {};
  const initialVersion = new Map([...fleet.nodes.values()].map((n) => [n.id, n.version]));
  const forwardStarts = new Map<string, number>();
  let tripUndecided = false;
  let decisionAt: number | null = null;
  const actions = [...(options.actions ?? [])].sort((a, b) => a.atMs - b.atMs);
  let now = startMs;
  let ticks = 0;
  let makespanMs: number | null = null;

  const humanActs = (t: number) => {
    if (decisionAt !== null && t >= decisionAt) {
      if (rollout.status === 'awaiting_decision') {
        const choice = options.choose(trips.length - 1);
        const trip = trips.at(-1);
        if (trip) trip.choice = choice;
        if (choice === 'continue') {
          rollout.status = 'running';
          rollout.breakerResetAt = new Date(t);
        } else rollout.status = choice === 'rollback' ? 'rolling_back' : 'aborting';
        tripUndecided = false;
      }
      decisionAt = null;
    }
    while (actions.length > 0 && startMs + (actions[0] as OperatorAction).atMs <= t) {
      const action = actions.shift() as OperatorAction;
      const s = rollout.status;
      if (action.kind === 'pause' && (s === 'running' || s === 'waiting_for_window')) rollout.status = 'paused';
      else if (action.kind === 'resume' && s === 'paused') rollout.status = 'running';
      else if (action.kind === 'abort' && ['running', 'paused', 'waiting_for_window', 'awaiting_decision'].includes(s)) rollout.status = 'aborting';
      else if (action.kind === 'rollback' && ['running', 'paused', 'waiting_for_window', 'awaiting_decision', 'aborting'].includes(s)) rollout.status = 'rolling_back';
      else continue;
      // A person acting on a tripped breaker is the decision it waits for.
      if (rollout.status !== 'paused' && rollout.status !== 'running') tripUndecided = false;
      if (rollout.status === 'aborting' || rollout.status === 'rolling_back') decisionAt = null;
    }
  };

  const startedNow: RolloutTask[] = [];
  const checkDecision = (decision: RolloutDecision, statusBefore: RolloutStatus, t: number) => {
    startedNow.length = 0;
    for (const change of decision.tasks) {
      const task = byId.get(change.id);
      if (!task) {
        violate('unknown task', change.id);
        continue;
      }
      // Stricter than the store (which applies changes one after another): every change must be
      // guarded by the state in the snapshot, so a task moves at most once per decision.
      if (change.from !== task.state) violate('stale guard', `${task.id}: decided from ${change.from}, is ${task.state}`);
      const to = change.changes.state;
      const direction = change.changes.direction ?? task.direction;
      if (to === undefined || to === task.state) continue;
      const allowed = direction === 'rollback' ? (ROLLBACK_NEXT[task.state] ?? []) : FORWARD_NEXT[task.state];
      if (!allowed.includes(to) || (task.direction === 'rollback' && direction === 'forward')) {
        violate('backward transition', `${task.id}: ${task.direction} ${task.state} → ${direction} ${to}`);
      }
      const startsForward = task.state === 'pending' && to !== 'skipped';
      const startsRollback = task.state === 'done' && direction === 'rollback';
      if (to === 'skipped' && statusBefore !== 'aborting' && statusBefore !== 'rolling_back') violate('skipped while running', `${task.id} in ${statusBefore}`);
      if (startsForward) {
        forwardStarts.set(task.nodeId, (forwardStarts.get(task.nodeId) ?? 0) + 1);
        if (forwardStarts.get(task.nodeId) === 2) violate('node started twice', task.nodeId);
        if ((statusBefore !== 'running' && statusBefore !== 'waiting_for_window') || tripUndecided || decision.continuation) {
          violate('start while stopped', `${task.nodeId} started in ${statusBefore}${tripUndecided || decision.continuation ? ' after a breaker trip' : ''} at +${t - startMs} ms`);
        }
        startedNow.push(task);
      }
      if (startsRollback && statusBefore !== 'rolling_back') violate('rollback while not rolling back', `${task.nodeId} in ${statusBefore}`);
    }
    for (const command of decision.commands) {
      if (command.kind !== 'set_version') continue;
      const task = byNode.get(command.nodeId);
      if (!task) violate('command for a node outside the rollout', command.nodeId);
      else if (command.downgrade && !rollout.spec.allowDowngrade) violate('downgrade the spec does not allow', `${task.nodeId} → ${command.version}`);
      else if (command.rollback && !command.downgrade && command.version !== task.fromVersion) violate('rollback to the wrong version', `${task.nodeId} → ${command.version}`);
      else if ((!command.rollback || command.downgrade) && command.version !== rollout.spec.target.version) violate('forward to the wrong version', `${task.nodeId} → ${command.version}`);
    }
  };

  const applyDecision = (decision: RolloutDecision, t: number) => {
    for (const change of decision.tasks) {
      const task = byId.get(change.id);
      if (task && change.from === task.state) Object.assign(task, change.changes);
    }
    Object.assign(rollout, decision.rollout);
    for (const command of decision.commands) fleet.apply(command, t);
    for (const event of decision.events) events.push({ atMs: t - startMs, kind: event.kind, ...(event.nodeId ? { nodeId: event.nodeId } : {}) });
    if (decision.continuation) {
      tripUndecided = true;
      decisionAt = t + options.decisionDelayMs;
      trips.push({
        atMs: t - startMs,
        reason: decision.continuation.reason,
        failedNodes: decision.continuation.failedNodes,
        startedBefore: tasks.filter((x) => x.state !== 'pending' && x.state !== 'skipped').length,
        inFlightAtTrip: tasks.filter((x) => IN_FLIGHT.includes(x.state)).length,
        choice: null,
      });
    }
  };

  const measure = () => {
    const inFlight: Record<string, number> = {};
    for (const task of tasks) if (IN_FLIGHT_STATES.has(task.state)) inFlight[task.region] = (inFlight[task.region] ?? 0) + 1;
    for (const [region, count] of Object.entries(inFlight)) {
      peakInFlight[region] = Math.max(peakInFlight[region] ?? 0, count);
      if (count > (regionCaps[region] ?? 0)) violate('region budget', `${count} in flight in ${region} (cap ${regionCaps[region] ?? 0}) at +${now - startMs} ms`);
    }
    // The same budget on the fleet itself: nodes cordoned, draining or installing, which includes
    // a failed node still reinstalling its old version after its task ended.
    const unavailable: Record<string, number> = {};
    for (const node of fleet.busy) {
      if (node.cordoned || node.drain?.state === 'running' || node.install?.phase === 'installing') unavailable[node.region] = (unavailable[node.region] ?? 0) + 1;
    }
    for (const [region, count] of Object.entries(unavailable)) {
      peakUnavailable[region] = Math.max(peakUnavailable[region] ?? 0, count);
      if (count > (regionCaps[region] ?? 0)) violate('fleet region budget', `${count} nodes unavailable in ${region} (cap ${regionCaps[region] ?? 0}) at +${now - startMs} ms`);
    }
  };

  while (now - startMs <= options.maxVirtualMs) {
    fleet.advance(now);
    humanActs(now);
    if (!ACTIVE_ROLLOUT_STATUSES.includes(rollout.status) || rollout.status === 'awaiting_approval') break;
    const statusBefore = rollout.status;
    const at = new Date(now);
    const decision = decideRollout(rollout, tasks, fleet.facts, at);
    ticks++;
    if (options.determinismEvery && ticks % options.determinismEvery === 0) {
      const again = decideRollout(structuredClone(rollout), structuredClone(tasks), structuredClone(fleet.facts), at);
      if (!isDeepStrictEqual(decision, again)) violate('nondeterministic', `tick ${ticks} at +${now - startMs} ms`);
    }
    checkDecision(decision, statusBefore, now);
    applyDecision(decision, now);
    // A batch starts only when every earlier one is finished (as of this very decision).
    for (const task of startedNow) {
      const earlier = tasks.find((o) => o.direction === 'forward' && o.batch < task.batch && !TERMINAL.includes(o.state));
      if (earlier) violate('batch overlap', `${task.nodeId} (batch ${task.batch}) started with ${earlier.nodeId} (batch ${earlier.batch}) unfinished`);
    }
    measure();
    if (FINAL.includes(rollout.status)) {
      makespanMs = now - startMs;
      break;
    }
    // Sleep until the requeue, a fleet report, a person, or an extra wake-up, whichever is first.
    const wakes = [fleet.nextEventAt(), decisionAt, actions[0] ? startMs + actions[0].atMs : null];
    if (decision.requeueAfterMs !== null) wakes.push(now + Math.max(1, decision.requeueAfterMs));
    if (options.extraWakeMs && tasks.some((t) => IN_FLIGHT.includes(t.state))) wakes.push(now + options.extraWakeMs);
    // A person due now (a decision delay of 0) acts before the next tick, at the same instant.
    const next = decisionAt !== null && decisionAt <= now ? now : Math.min(...wakes.filter((w): w is number => w !== null && w > now));
    if (!Number.isFinite(next)) {
      violate('stuck', `${rollout.status} with nothing left to wake it at +${now - startMs} ms`);
      break;
    }
    now = next;
  }
  if (makespanMs === null && !violations.stuck) violate('did not finish', `${rollout.status} after ${options.maxVirtualMs} ms`);

  // The rollout is over: let reverts under way land, then look at where every node ended.
  fleet.settle(now);
  for (const task of tasks) {
    if (!TERMINAL.includes(task.state)) violate('task not finished', `${task.nodeId} ${task.state}`);
    const node = fleet.nodes.get(task.nodeId);
    if (!node) continue;
    const version = node.version ?? null;
    if (task.state === 'failed' && task.direction === 'forward' && rollout.spec.strategy.onNodeFailure === 'rollback-node' && version !== task.fromVersion) {
      violate('failed node not back on its version', `${task.nodeId} runs ${version}, was ${task.fromVersion}`);
    }
    if (task.state === 'rolled_back' && version !== task.fromVersion) violate('rolled back node on another version', `${task.nodeId} runs ${version}`);
    if (task.state === 'done' && version !== rollout.spec.target.version) violate('done node not on the target', `${task.nodeId} runs ${version}`);
    if (task.state === 'skipped' && node.version !== initialVersion.get(task.nodeId)) violate('skipped node changed', task.nodeId);
    if (node.cordoned && task.cordonedByUs) violate('node left cordoned', task.nodeId);
  }
  const violationCount = Object.values(violations).reduce((sum, v) => sum + v.count, 0);
  return {
    rollout,
    tasks,
    makespanMs,
    ticks,
    violations,
    violationCount,
    trips,
    events,
    peakInFlightPerRegion: peakInFlight,
    peakUnavailablePerRegion: peakUnavailable,
  };
}
