import { IN_FLIGHT, type RolloutTask, TASK_STATES, TERMINAL, type TaskState } from './model.js';

/**
 * IN_FLIGHT and TERMINAL as comparisons: they run for every task an index is built from, and at
 * 10,000 tasks a Set or array lookup per task (~25 ns) was most of a scan; comparing against the
 * literals costs ~4 ns. Checked against model.ts's lists when this module loads.
 */
export const isInFlight = (s: TaskState): boolean => s === 'cordoned' || s === 'draining' || s === 'installing' || s === 'verifying';
export const isTerminal = (s: TaskState): boolean => s === 'done' || s === 'failed' || s === 'rolled_back' || s === 'skipped';
for (const s of TASK_STATES) {
  if (isInFlight(s) !== IN_FLIGHT.includes(s) || isTerminal(s) !== TERMINAL.includes(s)) throw new Error(`task-index.ts: isInFlight/isTerminal disagree with model.ts on ${s}`);
}

const ascending = (a: number, b: number) => a - b;

function bump(counts: Map<number, number>, key: number, by: number): void {
  const next = (counts.get(key) ?? 0) + by;
  if (next === 0) counts.delete(key);
  else counts.set(key, next);
}

/**
 * A rollout's tasks with what decideRollout asks about them on every tick kept up to date: which
 * are in flight, pending or failed, how many of each batch are still open or done, the latest
 * finished ones. decideRollout then works on the tasks a tick concerns (in flight, the batch
 * starting, the failures) instead of every task: at 10,000 nodes a pass over all of them was
 * most of a tick's cost (issue 9, src/sim).
 *
 * Given a plain array, decideRollout builds one (one pass, what it cost before). A caller that
 * holds the tasks across ticks (the simulator) keeps one and changes tasks only through
 * `assign`, so a tick costs what changed. Positions are the order of the array: every answer
 * that lists tasks lists them in that order, so both ways decide exactly the same.
 */
export class RolloutTaskIndex {
  /** Positions of the tasks in each of these states now. */
  private readonly inFlight = new Set<number>();
  private readonly pending = new Set<number>();
  private readonly failedForward = new Set<number>();
  private readonly byBatch = new Map<number, number[]>();
  /** Forward tasks not finished, and forward tasks done, per batch. */
  private readonly openForward = new Map<number, number>();
  private readonly doneForward = new Map<number, number>();
  /** Forward tasks done with a finish time, by that time (ms), and the latest such time. */
  private readonly doneForwardAt = new Map<number, Set<number>>();
  private latestDoneMs: number | null = null;
  private positions: Map<string, number> | null = null;
  /** inFlight in order, kept until a task enters or leaves flight (most ticks move none in or out). */
  private inFlightOrdered: readonly number[] | null = null;
  /** Forward tasks done, and forward tasks not skipped (the breaker's "targeted"). */
  forwardDoneCount = 0;
  targetedCount = 0;

  constructor(readonly tasks: readonly RolloutTask[]) {
    for (let p = 0; p < tasks.length; p++) {
      const batch = (tasks[p] as RolloutTask).batch;
      const list = this.byBatch.get(batch);
      if (list) list.push(p);
      else this.byBatch.set(batch, [p]);
      this.count(p, 1);
    }
  }

  /** Changes the task at `position` in place, keeping the index right. The only way a holder of an index may change a task. */
  assign(position: number, changes: Partial<RolloutTask>): void {
    const task = this.tasks[position] as RolloutTask;
    const wasInFlight = isInFlight(task.state);
    this.count(position, -1);
    Object.assign(task, changes);
    this.count(position, 1);
    if (isInFlight(task.state) !== wasInFlight) this.inFlightOrdered = null;
  }

  /** The position of the task with this id (-1: none). */
  positionOf(id: string): number {
    this.positions ??= new Map(this.tasks.map((t, p) => [t.id, p]));
    return this.positions.get(id) ?? -1;
  }

  inFlightPositions(): readonly number[] {
    this.inFlightOrdered ??= [...this.inFlight].sort(ascending);
    return this.inFlightOrdered;
  }

  pendingPositions(): number[] {
    return [...this.pending].sort(ascending);
  }

  failedForwardPositions(): number[] {
    return [...this.failedForward].sort(ascending);
  }

  /** Every task of a batch, whatever its direction and state. */
  batchPositions(batch: number): readonly number[] {
    return this.byBatch.get(batch) ?? [];
  }

  openForwardIn(batch: number): number {
    return this.openForward.get(batch) ?? 0;
  }

  /** The highest batch with a forward task done (null: none). */
  newestBatchWithDone(): number | null {
    let newest: number | null = null;
    for (const batch of this.doneForward.keys()) if (newest === null || batch > newest) newest = batch;
    return newest;
  }

  /** Forward tasks done at the latest finish time among them, and that time (null: none has one). */
  latestDone(): { ms: number; positions: number[] } | null {
    if (this.latestDoneMs === null) return null;
    return { ms: this.latestDoneMs, positions: [...(this.doneForwardAt.get(this.latestDoneMs) ?? [])].sort(ascending) };
  }

  private count(p: number, sign: 1 | -1): void {
    const t = this.tasks[p] as RolloutTask;
    const toggle = (set: Set<number>) => (sign > 0 ? set.add(p) : set.delete(p));
    if (isInFlight(t.state)) toggle(this.inFlight);
    else if (t.state === 'pending') toggle(this.pending);
    if (t.direction !== 'forward') return;
    if (t.state !== 'skipped') this.targetedCount += sign;
    if (!isTerminal(t.state)) bump(this.openForward, t.batch, sign);
    else if (t.state === 'failed') toggle(this.failedForward);
    else if (t.state === 'done') {
      this.forwardDoneCount += sign;
      bump(this.doneForward, t.batch, sign);
      if (t.finishedAt) this.countDoneAt(p, t.finishedAt.getTime(), sign);
    }
  }

  private countDoneAt(p: number, ms: number, sign: 1 | -1): void {
    let group = this.doneForwardAt.get(ms);
    if (sign > 0) {
      if (!group) this.doneForwardAt.set(ms, (group = new Set()));
      group.add(p);
      if (this.latestDoneMs === null || ms > this.latestDoneMs) this.latestDoneMs = ms;
      return;
    }
    group?.delete(p);
    if (group?.size !== 0) return;
    this.doneForwardAt.delete(ms);
    // Only a rollback takes a task out of done: rare enough to look for the new latest time.
    if (ms === this.latestDoneMs) {
      this.latestDoneMs = null;
      for (const at of this.doneForwardAt.keys()) if (this.latestDoneMs === null || at > this.latestDoneMs) this.latestDoneMs = at;
    }
  }
}
