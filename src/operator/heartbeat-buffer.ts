import { type Db, sqlState } from '../store/db.js';
import { type HeartbeatRecord, recordHeartbeats } from '../store/nodes.js';
import { ApiError } from './errors.js';

/**
 * SQLSTATE classes that blame the data of a statement, not the database: 22 data exception
 * (an int out of range, a NUL byte in text or jsonb), 23 integrity constraint violation,
 * 54 program limit exceeded (a value too large or too deep). Only these make a batch look
 * for its bad record; a lost connection or a deadlock fails every caller alike.
 */
const BAD_RECORD_CLASSES = new Set(['22', '23', '54']);

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

type Pending = { record: HeartbeatRecord; resolve: () => void; reject: (e: unknown) => void };

/**
 * Collects heartbeats for a few milliseconds and writes them in one batch (two statements
 * per batch instead of two per heartbeat). Each caller's promise settles when its heartbeat
 * is committed, so the reply it sends reflects what was stored.
 */
export class HeartbeatBuffer {
  private pending: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly db: Db,
    /** How long to gather heartbeats before writing (default 50 ms). */
    private readonly windowMs = 50,
    /** Write at once when this many are waiting (default 1000). */
    private readonly maxBatch = 1000,
    private readonly onFlushed: (nodeIds: string[]) => void = () => {},
  ) {}

  add(record: HeartbeatRecord): Promise<void> {
    return new Promise((resolve, reject) => {
      // The latest report of a node wins within one batch.
      this.pending = this.pending.filter((p) => {
        if (p.record.nodeId !== record.nodeId) return true;
        p.resolve();
        return false;
      });
      this.pending.push({ record, resolve, reject });
      if (this.pending.length >= this.maxBatch) void this.flush();
      else this.timer ??= setTimeout(() => void this.flush(), this.windowMs);
    });
  }

  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    await this.write(batch);
  }

  /**
   * Writes a batch; when the database blames the data, halves it and writes each half, so the
   * bad record(s) are found in O(bad · log n) writes and every other node's heartbeat is still
   * committed. Only the bad record's caller gets an error, a 400 (invariant 7, DESIGN.md §8).
   */
  private async write(batch: Pending[]): Promise<void> {
    try {
      await recordHeartbeats(
        this.db,
        batch.map((p) => p.record),
      );
    } catch (error) {
      if (!blamesTheRecord(error)) {
        for (const p of batch) p.reject(error);
        return;
      }
      if (batch.length === 1) {
        const [only] = batch as [Pending];
        only.reject(heartbeatRejected(only.record.nodeId, error));
        return;
      }
      const half = Math.ceil(batch.length / 2);
      await this.write(batch.slice(0, half));
      await this.write(batch.slice(half));
      return;
    }
    for (const p of batch) p.resolve();
    this.onFlushed(batch.map((p) => p.record.nodeId));
  }
}
