import { type Db, sqlState } from '../store/db.js';
import { type HeartbeatOutcome, type HeartbeatRecord, writeHeartbeats } from '../store/nodes.js';
import { ApiError } from './errors.js';

/**
 * SQLSTATE classes that blame the data of a statement, not the database: 22 data exception
 * (an int out of range, a NUL byte in text or jsonb), 23 integrity constraint violation,
 * 54 program limit exceeded (a value too large or too deep). Only these make a batch look
 * for its bad record; a lost connection or a deadlock fails every caller alike.
 */
const BAD_RECORD_CLASSES = new Set(['22', '23', '54']);

/** 40P01 deadlock detected, 40001 serialization failure: the transaction lost a race, not the data. */
const RETRYABLE = new Set(['40P01', '40001']);
/** How long the time of a heartbeat's reply is kept (10 min). */
const REPLY_MEMORY_MS = 10 * 60_000;
/** Tries of one batch before its callers get the error (default 3). */
const MAX_WRITE_ATTEMPTS = 3;

function blamesTheRecord(error: unknown): boolean {
  const code = sqlState(error);
  return code !== undefined && code.length === 5 && BAD_RECORD_CLASSES.has(code.slice(0, 2));
}

export const heartbeatRejected = (nodeId: string, error: unknown) =>
  new ApiError(
    400,
    'HEARTBEAT_REJECTED',
    `the database refused this heartbeat of node ${nodeId} (${(error as Error).message}); nothing of it was stored, fix the agent's report`,
    { node_id: nodeId, sqlstate: sqlState(error) ?? null },
  );

type Waiter = { resolve: (generation: number | undefined) => void; reject: (e: unknown) => void };
type Pending = { record: HeartbeatRecord; waiters: Waiter[] };

/**
 * Collects heartbeats for a few milliseconds and writes them in one batch (one transaction per
 * batch instead of one per heartbeat). Each caller's promise settles when its heartbeat is
 * committed, with the node's generation as that write saw it (undefined: not written — the node
 * is not registered, or the credential digest did not match), so the reply needs no read.
 */
export class HeartbeatBuffer {
  /** By node: the latest report of a node wins within one batch (insertion order is arrival order). */
  private pending = new Map<string, Pending>();
  /** Batches being written: received, not committed yet (the liveness guard reads them). */
  private readonly inFlight = new Map<Pending[], Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  /** Written heartbeats whose reply is being prepared, by node (how many). */
  private readonly replying = new Map<string, number>();
  /** When each node's last written heartbeat was answered (performance.now() ms). */
  private readonly replied = new Map<string, number>();
  private prunedAt = performance.now();
  /**
   * Nodes with a heartbeat in a batch being written. A newer heartbeat of such a node stays in
   * `pending` for a later batch: a node is never in two batches at once, so its writes keep their
   * order and two batches never wait on each other's rows.
   */
  private readonly writing = new Set<string>();
  /** Batches being written now (windowMs 0: at most `writers`). */
  private busy = 0;
  /** windowMs 0: a pump is due on the next turn of the event loop (it gathers what arrives until then). */
  private scheduled = false;

  constructor(
    private readonly db: Db,
    /**
     * How long to gather heartbeats before writing (default 50 ms). 0: write as soon as the
     * previous write is done, with whatever arrived meanwhile (batches grow with the load and
     * a quiet operator adds no wait; the operator uses this).
     */
    private readonly windowMs = 50,
    /** The most heartbeats in one batch; with a window, write at once when this many are waiting (default 1000). */
    private readonly maxBatch = 1000,
    /** Told after each commit which nodes' reported state changed (never with an empty list). */
    private readonly onChanged: (nodeIds: string[], fleetNodeIds: string[]) => void = () => {},
    /**
     * windowMs 0: how many batches may be written at once (default 1). A server engine gives
     * each its own session, so a batch need not wait for the commit of the one ahead of it.
     */
    private readonly writers = 1,
  ) {}

  add(record: HeartbeatRecord): Promise<number | undefined> {
    return new Promise((resolve, reject) => {
      const waiters: Waiter[] = [{ resolve, reject }];
      // The latest report of a node wins within one batch; an earlier caller with the same
      // credential digest gets the outcome of the report that replaced its own. One with another
      // digest learns nothing from it: it is told "not written" and its route checks its credential.
      const earlier = this.pending.get(record.nodeId);
      if (earlier) {
        this.pending.delete(record.nodeId);
        if (earlier.record.credentialHash === record.credentialHash) waiters.push(...earlier.waiters);
        else for (const w of earlier.waiters) w.resolve(undefined);
      }
      this.pending.set(record.nodeId, { record, waiters });
      if (this.windowMs > 0) {
        if (this.pending.size >= this.maxBatch) void this.flush();
        else this.timer ??= setTimeout(() => void this.flush(), this.windowMs);
      } else if (!this.scheduled && this.busy < this.writers) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          this.pump();
        });
      }
    });
  }

  /**
   * Writes up to `maxBatch` of what is pending, oldest first, but for nodes already in a batch
   * being written (they go in a later one).
   */
  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch: Pending[] = [];
    const held = new Map<string, Pending>();
    for (const [nodeId, p] of this.pending) {
      if (this.writing.has(nodeId) || batch.length >= this.maxBatch) held.set(nodeId, p);
      else batch.push(p);
    }
    this.pending = held;
    if (batch.length === 0) return;
    for (const p of batch) this.writing.add(p.record.nodeId);
    const written = this.write(batch);
    this.inFlight.set(batch, written);
    try {
      await written;
    } finally {
      this.inFlight.delete(batch);
      for (const p of batch) this.writing.delete(p.record.nodeId);
      if (this.windowMs > 0 && this.pending.size > 0) this.timer ??= setTimeout(() => void this.flush(), this.windowMs);
    }
  }

  /**
   * At shutdown, when nothing arrives any more: writes everything pending, each node's newer
   * heartbeat after the batch that holds its older one.
   */
  async drain(): Promise<void> {
    while (this.pending.size > 0 || this.inFlight.size > 0) {
      await this.flush().catch(() => {});
      await Promise.allSettled(this.inFlight.values());
    }
  }

  /**
   * windowMs 0: starts batches while fewer than `writers` are being written and something pending
   * can go; each, when written, starts the next. Errors reach the callers, not here.
   */
  private pump(): void {
    while (this.busy < this.writers && this.writable()) {
      this.busy++;
      void this.flush()
        .catch(() => {})
        .finally(() => {
          this.busy--;
          this.pump();
        });
    }
  }

  private writable(): boolean {
    for (const nodeId of this.pending.keys()) if (!this.writing.has(nodeId)) return true;
    return false;
  }

  /**
   * Runs `reply` for a heartbeat of `nodeId` that was written. Until it settles the node waits on
   * the operator (an agent sends its next heartbeat after the reply), so the liveness guard does
   * not count that wait as the node's silence (`unanswered` below).
   */
  async answering<T>(nodeId: string, reply: () => Promise<T>): Promise<T> {
    this.replying.set(nodeId, (this.replying.get(nodeId) ?? 0) + 1);
    try {
      return await reply();
    } finally {
      this.replied.set(nodeId, performance.now());
      const left = (this.replying.get(nodeId) ?? 1) - 1;
      if (left > 0) this.replying.set(nodeId, left);
      else this.replying.delete(nodeId);
    }
  }

  /**
   * Heartbeats received and not committed yet: the newest arrival per node and the oldest of
   * all (performance.now() ms; undefined: none). A node is never marked down for time its
   * heartbeat spent here (liveness-guard.ts). `unanswered`: nodes whose written heartbeat has
   * no reply yet (see `answering`); `answeredAt`: when each node's last one was answered.
   */
  uncommitted(): { oldest: number | undefined; byNode: Map<string, number>; unanswered: Set<string>; answeredAt: ReadonlyMap<string, number> } {
    this.forgetOldReplies();
    const byNode = new Map<string, number>();
    let oldest: number | undefined;
    for (const batch of [this.pending.values(), ...this.inFlight.keys()]) {
      for (const { record } of batch) {
        const at = record.arrivedAt;
        if (at === undefined) continue;
        if (oldest === undefined || at < oldest) oldest = at;
        if (at > (byNode.get(record.nodeId) ?? Number.NEGATIVE_INFINITY)) byNode.set(record.nodeId, at);
      }
    }
    return { oldest, byNode, unanswered: new Set(this.replying.keys()), answeredAt: this.replied };
  }

  /** A reply older than this says nothing a node's stored heartbeat does not (it heartbeats again an interval later). */
  private forgetOldReplies(): void {
    const now = performance.now();
    if (now - this.prunedAt < REPLY_MEMORY_MS) return;
    this.prunedAt = now;
    for (const [id, at] of this.replied) if (now - at > REPLY_MEMORY_MS) this.replied.delete(id);
  }

  /**
   * Writes a batch; when the database blames the data, halves it and writes each half, so the
   * bad record(s) are found in O(bad · log n) writes and every other node's heartbeat is still
   * committed. Only the bad record's caller gets an error, a 400 (invariant 7, DESIGN.md §8).
   */
  private async write(batch: Pending[], attempt = 1): Promise<void> {
    let outcome: HeartbeatOutcome;
    try {
      outcome = await writeHeartbeats(
        this.db,
        batch.map((p) => p.record),
      );
    } catch (error) {
      // A batch locks many node rows, as does a reconciler pass marking nodes down: Postgres
      // may pick the heartbeat batch as a deadlock's victim. Nothing of it was written and it
      // is idempotent, so it is written again rather than failing every heartbeat in it.
      if (RETRYABLE.has(sqlState(error) ?? '') && attempt < MAX_WRITE_ATTEMPTS) return this.write(batch, attempt + 1);
      if (!blamesTheRecord(error)) {
        for (const p of batch) for (const w of p.waiters) w.reject(error);
        return;
      }
      if (batch.length === 1) {
        const [only] = batch as [Pending];
        for (const w of only.waiters) w.reject(heartbeatRejected(only.record.nodeId, error));
        return;
      }
      const half = Math.ceil(batch.length / 2);
      await this.write(batch.slice(0, half));
      await this.write(batch.slice(half));
      return;
    }
    for (const p of batch) for (const w of p.waiters) w.resolve(outcome.written.get(p.record.nodeId));
    if (outcome.changed.size > 0) this.onChanged([...outcome.changed], [...outcome.fleetChanged]);
  }
}
