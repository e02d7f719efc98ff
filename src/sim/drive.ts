// The driver loop: runs decideRollout against a simulated fleet the way the operator's
// reconciler does (load → decide → apply), in virtual time, sleeping until the next requeue,
// fleet report or human action, and checking DESIGN.md §8 on every tick (invariants.ts). The
// property tests and bench/rollout-sim.ts share it, so the simulator counts exactly the
// violations the tests forbid.
import { decideRollout } from '../domain/rollout/decide.js';
import { ACTIVE_ROLLOUT_STATUSES, IN_FLIGHT, type Rollout, type RolloutDecision, type RolloutStatus, type RolloutTask } from '../domain/rollout/model.js';
import { RolloutTaskIndex } from '../domain/rollout/task-index.js';
import { deepEqual } from './deep-equal.js';
import type { FleetModel } from './fleet-model.js';
import { type HumanChoice, HumanPolicy, type OperatorAction } from './human.js';
import { InvariantChecks, type Violations } from './invariants.js';

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
  /** Of that, the time it sat awaiting a person's decision with no node in flight: nothing a faster rollout could have used. */
  idleAwaitingDecisionMs: number;
  ticks: number;
  violations: Violations;
  violationCount: number;
  trips: BreakerTrip[];
  events: { atMs: number; kind: string; nodeId?: string }[];
  /** Most tasks in flight at once per region, and most nodes unavailable (cordoned, draining or installing) per region. */
  peakInFlightPerRegion: Record<string, number>;
  peakUnavailablePerRegion: Record<string, number>;
}

const FINAL: readonly RolloutStatus[] = ['completed', 'aborted', 'rolled_back', 'failed', 'rejected'];

export function driveRollout(options: DriveOptions): DriveResult {
  const { fleet } = options;
  const rollout: Rollout = { ...options.rollout };
  const tasks = options.tasks.map((t) => ({ ...t }));
  // Kept across ticks, like the operator's rows: decideRollout then looks at the tasks a tick
  // concerns instead of all of them (at 10,000 nodes that pass was most of a run's time).
  const index = new RolloutTaskIndex(tasks);
  const startMs = options.start.getTime();
  const checks = new InvariantChecks(rollout, tasks, options.regionCaps, startMs);
  const human = new HumanPolicy({ startMs, decisionDelayMs: options.decisionDelayMs, choose: options.choose, actions: options.actions ?? [] });
  const events: DriveResult['events'] = [];
  const trips: BreakerTrip[] = [];
  const initialVersion = new Map([...fleet.nodes.values()].map((n) => [n.id, n.version]));
  let now = startMs;
  let ticks = 0;
  let makespanMs: number | null = null;
  let idleAwaitingDecisionMs = 0;

  const applyDecision = (decision: RolloutDecision, t: number) => {
    for (const change of decision.tasks) {
      const position = index.positionOf(change.id);
      const task = tasks[position];
      if (!task || change.from !== task.state) continue;
      const from = task.state;
      index.assign(position, change.changes);
      if (task.state !== from) checks.moved(task, from);
    }
    Object.assign(rollout, decision.rollout);
    for (const command of decision.commands) fleet.apply(command, t);
    for (const event of decision.events) events.push({ atMs: t - startMs, kind: event.kind, ...(event.nodeId ? { nodeId: event.nodeId } : {}) });
    if (decision.continuation) {
      human.tripped(t);
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

  while (now - startMs <= options.maxVirtualMs) {
    fleet.advance(now);
    const choice = human.act(rollout, now);
    const lastTrip = trips.at(-1);
    if (choice !== null && lastTrip) lastTrip.choice = choice;
    if (!ACTIVE_ROLLOUT_STATUSES.includes(rollout.status) || rollout.status === 'awaiting_approval') break;
    const statusBefore = rollout.status;
    const at = new Date(now);
    const decision = decideRollout(rollout, index, fleet.facts, at);
    ticks++;
    // The same snapshot, cloned into plain data, decides the same: this also checks the index
    // kept across ticks against one built afresh from the tasks.
    if (options.determinismEvery && ticks % options.determinismEvery === 0) {
      const again = decideRollout(structuredClone(rollout), structuredClone(tasks), structuredClone(fleet.facts), at);
      if (!deepEqual(decision, again)) checks.violate('nondeterministic', `tick ${ticks} at +${now - startMs} ms`);
    }
    const started = checks.checkDecision(decision, statusBefore, human.tripUndecided, now);
    applyDecision(decision, now);
    checks.checkBatchOrder(started);
    checks.measure(fleet, now);
    if (FINAL.includes(rollout.status)) {
      makespanMs = now - startMs;
      break;
    }
    // Sleep until the requeue, a fleet report, a person, or an extra wake-up, whichever is first.
    const wakes = [fleet.nextEventAt(), human.decisionAt, human.nextScheduledAt()];
    if (decision.requeueAfterMs !== null) wakes.push(now + Math.max(1, decision.requeueAfterMs));
    if (options.extraWakeMs && checks.inFlightTotal > 0) wakes.push(now + options.extraWakeMs);
    // A person due now (a decision delay of 0) acts before the next tick, at the same instant.
    const next = human.decisionAt !== null && human.decisionAt <= now ? now : Math.min(...wakes.filter((w): w is number => w !== null && w > now));
    if (!Number.isFinite(next)) {
      checks.violate('stuck', `${rollout.status} with nothing left to wake it at +${now - startMs} ms`);
      break;
    }
    if (rollout.status === 'awaiting_decision' && checks.inFlightTotal === 0) idleAwaitingDecisionMs += next - now;
    now = next;
  }
  if (makespanMs === null && !checks.violations.stuck) checks.violate('did not finish', `${rollout.status} after ${options.maxVirtualMs} ms`);

  // The rollout is over: let reverts under way land, then look at where every node ended.
  fleet.settle(now);
  checks.checkEnd(fleet, initialVersion);
  return {
    rollout,
    tasks,
    makespanMs,
    idleAwaitingDecisionMs,
    ticks,
    violations: checks.violations,
    violationCount: checks.total,
    trips,
    events,
    peakInFlightPerRegion: checks.peakInFlight,
    peakUnavailablePerRegion: checks.peakUnavailable,
  };
}
