import { IN_FLIGHT, type RolloutTask, TASK_STATES, TERMINAL, type TaskState } from './model.js';

/**
 * IN_FLIGHT and TERMINAL as comparisons: they run for every task an index is built from, and at
 * 10,000 tasks a Set or array lookup per task (~25 ns) was most of a scan; comparing against the
 * literals costs ~4 ns. Checked against model.ts's lists when this module loads.
 */
export const isInFlight = (s: TaskState): boolean =>
  s === 'cordoned' || s === 'draining' || s === 'installing' || s === 'verifying' || s === 'pre_node_hooks' || s === 'post_node_hooks' || s === 'staging';
export const isTerminal = (s: TaskState): boolean => s === 'done' || s === 'failed' || s === 'rolled_back' || s === 'skipped';
for (const s of TASK_STATES) {
  if (isInFlight(s) !== IN_FLIGHT.includes(s) || isTerminal(s) !== TERMINAL.includes(s)) throw new Error(`task-index.ts: isInFlight/isTerminal disagree with model.ts on ${s}`);
}

const ascending = (a: number, b: number) => a - b;

/** What a position is, as bits of one byte per task: finding every task in flight is then a pass over 10,000 bytes, not 10,000 objects. */
const IN_FLIGHT_BIT = 1;
const PENDING_BIT = 2;
const FAILED_FORWARD_BIT = 4;

/**
 * A rollout's tasks with what decideRollout asks about them on every tick kept up to date: which
 * are in flight, pending or failed, how many of each batch are still open or done, the latest
 * finished ones. decideRollout then works on the tasks a tick concerns (in flight, the batch
 * starting, the failures) instead of every task: at 10,000 nodes a pass over all of them was
 * most of a tick's cost (issue 9, src/sim).
 *
 * Given a plain array (the operator's reconciler), decideRollout builds one: one pass over the
 * tasks into counters and a byte per task, about what the single pass it replaced cost. A caller
 * that holds the tasks across ticks (the simulator) keeps one and changes tasks only through
 * `assign`, so a tick costs what changed. Positions are the order of the array: every answer
 * that lists tasks lists them in that order, so both ways decide exactly the same. Batches are
 * plan indexes (0, 1, …).
 */
export class RolloutTaskIndex {
  private readonly bits: Uint8Array;
  /** Positions with each bit, in order, kept until a task gains or loses it (most ticks move no task in or out of flight). */
  private readonly ordered = new Map<number, readonly number[]>();
  /** Every task of each batch (listed when first asked: a task never changes batch), and per batch the forward tasks not finished, and done. */
  private byBatch: number[][] | null = null;
  private readonly openForward: number[] = [];
  private readonly doneForward: number[] = [];
  /** The latest finish time of a forward task done, and the tasks done then; looked for again only after a rollback took the last of them out of done. */
  private latestDoneMs: number | null = null;
  /** The first task done at latestDoneMs, and any others (most times a new latest has one task: no array for it). */
  private latestDoneFirst = -1;
  private latestDoneMore: number[] | null = null;
  private latestDoneStale = false;
  private positions: Map<string, number> | null = null;
  /** Forward tasks done, and forward tasks not skipped (the breaker's "targeted"). */
  forwardDoneCount = 0;
  targetedCount = 0;

  constructor(readonly tasks: readonly RolloutTask[]) {
    this.bits = new Uint8Array(tasks.length);
    for (let p = 0; p < tasks.length; p++) this.count(p, 1);
  }

  /** Changes the task at `position` in place, keeping the index right. The only way a holder of an index may change a task. */
  assign(position: number, changes: Partial<RolloutTask>): void {
    const before = this.bits[position] as number;
    this.count(position, -1);
    Object.assign(this.tasks[position] as RolloutTask, changes);
    this.count(position, 1);
    const moved = before ^ (this.bits[position] as number);
    if (moved !== 0) for (const bit of [IN_FLIGHT_BIT, PENDING_BIT, FAILED_FORWARD_BIT]) if (moved & bit) this.ordered.delete(bit);
  }

  /** The position of the task with this id (-1: none). */
  positionOf(id: string): number {
    this.positions ??= new Map(this.tasks.map((t, p) => [t.id, p]));
    return this.positions.get(id) ?? -1;
  }

  inFlightPositions(): readonly number[] {
    return this.withBit(IN_FLIGHT_BIT);
  }

  pendingPositions(): readonly number[] {
    return this.withBit(PENDING_BIT);
  }

  failedForwardPositions(): readonly number[] {
    return this.withBit(FAILED_FORWARD_BIT);
  }

  /** Every task of a batch, whatever its direction and state. */
  batchPositions(batch: number): readonly number[] {
    if (!this.byBatch) {
      const byBatch: number[][] = [];
      this.tasks.forEach((t, p) => {
        const list = byBatch[t.batch];
        if (list) list.push(p);
        else byBatch[t.batch] = [p];
      });
      this.byBatch = byBatch;
    }
    return this.byBatch[batch] ?? [];
  }

  openForwardIn(batch: number): number {
    return this.openForward[batch] ?? 0;
  }

  /** The highest batch with a forward task done (null: none). */
  newestBatchWithDone(): number | null {
    for (let batch = this.doneForward.length - 1; batch >= 0; batch--) if ((this.doneForward[batch] ?? 0) > 0) return batch;
    return null;
  }

  /** Forward tasks done at the latest finish time among them, in order, and that time (null: none has one). */
  latestDone(): { ms: number; positions: number[] } | null {
    if (this.latestDoneStale) this.findLatestDone();
    if (this.latestDoneMs === null) return null;
    return { ms: this.latestDoneMs, positions: [this.latestDoneFirst, ...(this.latestDoneMore ?? [])].sort(ascending) };
  }

  private withBit(bit: number): readonly number[] {
    let list = this.ordered.get(bit);
    if (!list) {
      const found: number[] = [];
      for (let p = 0; p < this.bits.length; p++) if ((this.bits[p] as number) & bit) found.push(p);
      this.ordered.set(bit, (list = found));
    }
    return list;
  }

  private count(p: number, sign: 1 | -1): void {
    const t = this.tasks[p] as RolloutTask;
    let bits = isInFlight(t.state) ? IN_FLIGHT_BIT : t.state === 'pending' ? PENDING_BIT : 0;
    if (t.direction === 'forward') {
      if (t.state !== 'skipped') this.targetedCount += sign;
      if (!isTerminal(t.state)) this.openForward[t.batch] = (this.openForward[t.batch] ?? 0) + sign;
      else if (t.state === 'failed') bits |= FAILED_FORWARD_BIT;
      else if (t.state === 'done') {
        this.forwardDoneCount += sign;
        this.doneForward[t.batch] = (this.doneForward[t.batch] ?? 0) + sign;
        if (t.finishedAt && !this.latestDoneStale) this.countDoneAt(p, t.finishedAt.getTime(), sign);
      }
    }
    this.bits[p] = sign > 0 ? bits : 0;
  }

  private countDoneAt(p: number, ms: number, sign: 1 | -1): void {
    if (sign > 0) {
      if (this.latestDoneMs === null || ms > this.latestDoneMs) {
        this.latestDoneMs = ms;
        this.latestDoneFirst = p;
        this.latestDoneMore = null;
      } else if (ms === this.latestDoneMs) (this.latestDoneMore ??= []).push(p);
      return;
    }
    if (ms !== this.latestDoneMs) return;
    const rest = [this.latestDoneFirst, ...(this.latestDoneMore ?? [])].filter((q) => q !== p);
    this.latestDoneFirst = rest[0] ?? -1;
    this.latestDoneMore = rest.length > 1 ? rest.slice(1) : null;
    // Only a rollback takes a task out of done: rare enough to look for the new latest when asked.
    if (rest.length === 0) this.latestDoneStale = true;
  }

  private findLatestDone(): void {
    this.latestDoneStale = false;
    this.latestDoneMs = null;
    this.latestDoneFirst = -1;
    this.latestDoneMore = null;
    this.tasks.forEach((t, p) => {
      if (t.direction === 'forward' && t.state === 'done' && t.finishedAt) this.countDoneAt(p, t.finishedAt.getTime(), 1);
    });
  }
}
