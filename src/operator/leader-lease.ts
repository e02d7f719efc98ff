import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Db } from '../store/db.js';
import { acquireLease, releaseLease } from '../store/leases.js';

export const RECONCILER_LEASE = 'reconciler';

/**
 * This operator's claim to lead the reconcilers. Renewed every `renewMs`; a term is held only
 * while the lease is live, and every write of a tick checks it (assertTerm), so a deposed
 * leader's in-flight tick fails instead of writing.
 */
export class LeaderLease {
  readonly holder = `${process.pid}-${randomUUID().slice(0, 8)}`;
  term: number | null = null;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly db: Db,
    private readonly log: Logger,
    /** How long a lease lives without renewal (default 10 s). */
    private readonly ttlMs = 10_000,
  ) {}

  /** Called when this operator becomes or stops being the leader. */
  onChange: (leader: boolean) => void = () => {};

  async renew(): Promise<number | null> {
    const before = this.term;
    try {
      this.term = await acquireLease(this.db, RECONCILER_LEASE, this.holder, this.ttlMs);
    } catch (error) {
      this.term = null;
      this.log.warn({ err: error }, 'lease renewal failed');
    }
    if (before !== this.term) {
      this.log.info({ term: this.term, holder: this.holder }, this.term === null ? 'not the leader' : 'leading the reconcilers');
      this.onChange(this.term !== null);
    }
    return this.term;
  }

  start(): void {
    const loop = async () => {
      await this.renew();
      this.timer = setTimeout(loop, Math.max(500, this.ttlMs / 4));
    };
    void loop();
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    if (this.term !== null) await releaseLease(this.db, RECONCILER_LEASE, this.holder).catch(() => {});
    this.term = null;
  }
}
