// DESIGN.md §8 as counters over a simulated rollout: every decision is checked before it is
// applied (guards, forward-only task states, no start while stopped or after an unanswered
// breaker trip, commands for the right versions), every tick is measured (region budgets in
// tasks and in unavailable nodes, batches in order), and the end state is checked (every task
// finished, every node on the version its task says). The property tests assert these are 0.
import { IN_FLIGHT, type Rollout, type RolloutDecision, type RolloutStatus, type RolloutTask, TERMINAL, type TaskState } from '../domain/rollout/model.js';
import type { FleetModel } from './fleet-model.js';

export type Violations = Record<string, { count: number; examples: string[] }>;

const FORWARD_NEXT: Record<TaskState, readonly TaskState[]> = {
  pending: ['staging', 'cordoned', 'pre_node_hooks', 'installing', 'skipped'],
  staging: ['cordoned', 'pre_node_hooks', 'installing', 'failed'],
  cordoned: ['draining', 'pre_node_hooks', 'installing', 'failed'],
  draining: ['pre_node_hooks', 'installing', 'failed'],
  pre_node_hooks: ['installing', 'failed'],
  installing: ['verifying', 'failed'],
  verifying: ['post_node_hooks', 'done', 'failed'],
  post_node_hooks: ['done', 'failed'],
  // A completed node can only leave `done` to be rolled back.
  done: [],
  failed: [],
  rolled_back: [],
  skipped: [],
};
const ROLLBACK_NEXT: Partial<Record<TaskState, readonly TaskState[]>> = {
  done: ['cordoned', 'pre_node_hooks', 'installing'],
  cordoned: ['draining', 'pre_node_hooks', 'installing', 'failed'],
  draining: ['pre_node_hooks', 'installing', 'failed'],
  pre_node_hooks: ['installing', 'failed'],
  installing: ['verifying', 'failed'],
  verifying: ['post_node_hooks', 'rolled_back', 'failed'],
  post_node_hooks: ['rolled_back', 'failed'],
};
const IN_FLIGHT_STATES = new Set<TaskState>(IN_FLIGHT);
const TERMINAL_STATES = new Set<TaskState>(TERMINAL);

export class InvariantChecks {
  readonly violations: Violations = {};
  /** Most tasks in flight at once per region, and most nodes unavailable (cordoned, draining or installing) per region. */
  readonly peakInFlight: Record<string, number> = {};
  readonly peakUnavailable: Record<string, number> = {};
  /** Tasks in flight now, kept up to date as tasks move so a tick costs the changes, not the fleet (10,000 tasks a tick was most of a 10,000-node run). */
  inFlightTotal = 0;
  private readonly inFlight = new Map<string, number>();
  private readonly forwardStarts = new Map<string, number>();
  private readonly byId: Map<string, RolloutTask>;
  private readonly byNode: Map<string, RolloutTask>;

  constructor(
    private readonly rollout: Rollout,
    private readonly tasks: readonly RolloutTask[],
    private readonly regionCaps: Record<string, number>,
    private readonly startMs: number,
  ) {
    this.byId = new Map(tasks.map((t) => [t.id, t]));
    this.byNode = new Map(tasks.map((t) => [t.nodeId, t]));
    for (const task of tasks) if (IN_FLIGHT_STATES.has(task.state)) this.count(task.region, 1);
  }

  violate(kind: string, detail: string): void {
    const entry = (this.violations[kind] ??= { count: 0, examples: [] });
    entry.count++;
    if (entry.examples.length < 5) entry.examples.push(detail);
  }

  get total(): number {
    return Object.values(this.violations).reduce((sum, v) => sum + v.count, 0);
  }

  private count(region: string, delta: number): void {
    this.inFlight.set(region, (this.inFlight.get(region) ?? 0) + delta);
    this.inFlightTotal += delta;
  }

  /** A task changed state (as applied): keeps the in-flight counts. */
  moved(task: RolloutTask, from: TaskState): void {
    if (IN_FLIGHT_STATES.has(from)) this.count(task.region, -1);
    if (IN_FLIGHT_STATES.has(task.state)) this.count(task.region, 1);
  }

  /** Checks a decision against the snapshot it was made from; returns the tasks it starts forward. */
  checkDecision(decision: RolloutDecision, statusBefore: RolloutStatus, tripUndecided: boolean, t: number): RolloutTask[] {
    const started: RolloutTask[] = [];
    for (const change of decision.tasks) {
      const task = this.byId.get(change.id);
      if (!task) {
        this.violate('unknown task', change.id);
        continue;
      }
      // Stricter than the store (which applies changes one after another): every change must be
      // guarded by the state in the snapshot, so a task moves at most once per decision.
      if (change.from !== task.state) this.violate('stale guard', `${task.id}: decided from ${change.from}, is ${task.state}`);
      const to = change.changes.state;
      const direction = change.changes.direction ?? task.direction;
      if (to === undefined || to === task.state) continue;
      const allowed = direction === 'rollback' ? (ROLLBACK_NEXT[task.state] ?? []) : FORWARD_NEXT[task.state];
      if (!allowed.includes(to) || (task.direction === 'rollback' && direction === 'forward')) {
        this.violate('backward transition', `${task.id}: ${task.direction} ${task.state} → ${direction} ${to}`);
      }
      const startsForward = task.state === 'pending' && to !== 'skipped';
      const startsRollback = task.state === 'done' && direction === 'rollback';
      if (to === 'skipped' && statusBefore !== 'aborting' && statusBefore !== 'rolling_back') this.violate('skipped while running', `${task.id} in ${statusBefore}`);
      if (startsForward) {
        this.forwardStarts.set(task.nodeId, (this.forwardStarts.get(task.nodeId) ?? 0) + 1);
        if (this.forwardStarts.get(task.nodeId) === 2) this.violate('node started twice', task.nodeId);
        if ((statusBefore !== 'running' && statusBefore !== 'waiting_for_window') || tripUndecided || decision.continuation) {
          const afterTrip = tripUndecided || decision.continuation ? ' after a breaker trip' : '';
          this.violate('start while stopped', `${task.nodeId} started in ${statusBefore}${afterTrip} at +${t - this.startMs} ms`);
        }
        started.push(task);
      }
      if (startsRollback && statusBefore !== 'rolling_back') this.violate('rollback while not rolling back', `${task.nodeId} in ${statusBefore}`);
    }
    const { spec } = this.rollout;
    for (const command of decision.commands) {
      if (command.kind !== 'set_version') continue;
      const task = this.byNode.get(command.nodeId);
      if (!task) this.violate('command for a node outside the rollout', command.nodeId);
      else if (command.downgrade && !spec.allowDowngrade) this.violate('downgrade the spec does not allow', `${task.nodeId} → ${command.version}`);
      else if (command.rollback && !command.downgrade && command.version !== task.fromVersion) this.violate('rollback to the wrong version', `${task.nodeId} → ${command.version}`);
      else if ((!command.rollback || command.downgrade) && command.version !== spec.target.version) this.violate('forward to the wrong version', `${task.nodeId} → ${command.version}`);
    }
    return started;
  }

  /** A batch starts only when every earlier one is finished (as of the decision that started it). */
  checkBatchOrder(started: readonly RolloutTask[]): void {
    if (started.length === 0) return;
    // The first unfinished forward task of each batch, in task order: one pass per tick that starts nodes.
    const firstUnfinished = new Map<number, { index: number; task: RolloutTask }>();
    this.tasks.forEach((o, index) => {
      if (o.direction === 'forward' && !TERMINAL_STATES.has(o.state) && !firstUnfinished.has(o.batch)) firstUnfinished.set(o.batch, { index, task: o });
    });
    for (const task of started) {
      let earlier: { index: number; task: RolloutTask } | undefined;
      for (const [batch, first] of firstUnfinished) if (batch < task.batch && (!earlier || first.index < earlier.index)) earlier = first;
      if (earlier) this.violate('batch overlap', `${task.nodeId} (batch ${task.batch}) started with ${earlier.task.nodeId} (batch ${earlier.task.batch}) unfinished`);
    }
  }

  /** Region budgets now, in tasks and in the fleet itself. */
  measure(fleet: FleetModel, now: number): void {
    for (const [region, count] of this.inFlight) {
      if (count === 0) continue;
      this.peakInFlight[region] = Math.max(this.peakInFlight[region] ?? 0, count);
      if (count > (this.regionCaps[region] ?? 0)) this.violate('region budget', `${count} in flight in ${region} (cap ${this.regionCaps[region] ?? 0}) at +${now - this.startMs} ms`);
    }
    // The same budget on the fleet itself: nodes cordoned, draining or installing, which includes
    // a failed node still reinstalling its old version after its task ended.
    for (const [region, count] of fleet.unavailableByRegion) {
      if (count === 0) continue;
      this.peakUnavailable[region] = Math.max(this.peakUnavailable[region] ?? 0, count);
      if (count > (this.regionCaps[region] ?? 0)) this.violate('fleet region budget', `${count} nodes unavailable in ${region} (cap ${this.regionCaps[region] ?? 0}) at +${now - this.startMs} ms`);
    }
  }

  /** After the rollout ended and the fleet settled: where every node is, against what its task says. */
  checkEnd(fleet: FleetModel, initialVersion: ReadonlyMap<string, string | undefined>): void {
    const { spec } = this.rollout;
    for (const task of this.tasks) {
      if (!TERMINAL_STATES.has(task.state)) this.violate('task not finished', `${task.nodeId} ${task.state}`);
      const node = fleet.nodes.get(task.nodeId);
      if (!node) continue;
      const version = node.version ?? null;
      if (task.state === 'failed' && task.direction === 'forward' && spec.strategy.onNodeFailure === 'rollback-node' && version !== task.fromVersion) {
        this.violate('failed node not back on its version', `${task.nodeId} runs ${version}, was ${task.fromVersion}`);
      }
      if (task.state === 'rolled_back' && version !== task.fromVersion) this.violate('rolled back node on another version', `${task.nodeId} runs ${version}`);
      if (task.state === 'done' && version !== spec.target.version) this.violate('done node not on the target', `${task.nodeId} runs ${version}`);
      if (task.state === 'skipped' && node.version !== initialVersion.get(task.nodeId)) this.violate('skipped node changed', task.nodeId);
      if (node.cordoned && task.cordonedByUs) this.violate('node left cordoned', task.nodeId);
    }
  }
}
