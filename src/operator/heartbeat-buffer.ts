import type { Db } from '../store/db.js';
import { type HeartbeatRecord, recordHeartbeats } from '../store/nodes.js';

/**
 * Collects heartbeats for a few milliseconds and writes them in one batch (two statements
 * per batch instead of two per heartbeat). Each caller's promise settles when its heartbeat
 * is committed, so the reply it sends reflects what was stored.
 */
export class HeartbeatBuffer {
  private pending: { record: HeartbeatRecord; resolve: () => void; reject: (e: unknown) => void }[] = [];
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
    try {
      await recordHeartbeats(
        this.db,
        batch.map((p) => p.record),
      );
      for (const p of batch) p.resolve();
      this.onFlushed(batch.map((p) => p.record.nodeId));
    } catch (error) {
      for (const p of batch) p.reject(error);
    }
  }
}
