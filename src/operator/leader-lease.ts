import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { SchemaMigrationRef } from '../domain/schema-compat.js';
import { type Db, isConnectionLost } from '../store/db.js';
import { acquireLease, releaseLease } from '../store/leases.js';
import { schemaAssessment } from '../store/migrator.js';
import { MIGRATIONS, type Migration } from '../store/migrations/index.js';

export const RECONCILER_LEASE = 'reconciler';

/** Can this replica serve and lead: database reachable and schema compatible (DESIGN.md §8.10)? */
export interface ReplicaReadiness {
  ready: boolean;
  reason: string;
  /** False when the database could not be asked at all. */
  databaseReachable: boolean;
  /** Known `pre` migrations not applied yet. */
  behind: SchemaMigrationRef[];
  /** Applied `post` migrations this binary does not know. */
  ahead: SchemaMigrationRef[];
  checkedAt: Date;
}

/** Asks the database now; two small reads of `schema_migrations`. Never throws. */
export async function checkReadiness(db: Db, known: readonly Migration[] = MIGRATIONS): Promise<ReplicaReadiness> {
  try {
    const assessment = await schemaAssessment(db, known);
    return { ...assessment, databaseReachable: true, checkedAt: new Date() };
  } catch (error) {
    const reason = isConnectionLost(error) ? 'the database connection was lost' : 'the database could not be read';
    return { ready: false, reason: `${reason}: ${(error as Error).message}`, databaseReachable: false, behind: [], ahead: [], checkedAt: new Date() };
  }
}

/**
 * This operator's claim to lead the reconcilers. Renewed every `ttlMs / 4` (at least 500 ms);
 * a term is held only while the lease is live, and every write of a tick checks it
 * (assertTerm), so a deposed leader's in-flight tick fails instead of writing.
 *
 * Only a ready replica leads: each renewal first checks readiness, and a replica that is not
 * ready (schema ahead or behind, database unreachable) does not take the lease and gives up
 * one it holds at once, so a ready replica takes over without waiting for the lease to expire.
 * The last result is kept for `/health`, which must not query the database per request.
 */
export class LeaderLease {
  readonly holder = `${process.pid}-${randomUUID().slice(0, 8)}`;
  term: number | null = null;
  /** The readiness seen by the latest renewal (not ready until the first one ran). */
  readiness: ReplicaReadiness = {
    ready: false,
    reason: 'readiness not checked yet',
    databaseReachable: false,
    behind: [],
    ahead: [],
    checkedAt: new Date(0),
  };
  /** Renewals done so far (tests wait on it to see the loop has moved on). */
  renewals = 0;
  private timer: NodeJS.Timeout | undefined;
  private renewing: Promise<unknown> | undefined;
  private stopped = false;

  constructor(
    private readonly db: Db,
    private readonly log: Logger,
    /** How long a lease lives without renewal (default 10 s). */
    private readonly ttlMs = 10_000,
    /** How readiness is checked (default: this binary's migrations against the database). */
    private readonly check: () => Promise<ReplicaReadiness> = () => checkReadiness(db),
  ) {}

  /** Called when this operator becomes or stops being the leader. */
  onChange: (leader: boolean) => void = () => {};

  /** Readiness asked of the database now, without touching the lease or the cached result. */
  checkNow(): Promise<ReplicaReadiness> {
    return this.check();
  }

  get leader(): boolean {
    return this.term !== null;
  }

  async renew(): Promise<number | null> {
    const before = this.term;
    const wasReady = this.readiness.ready;
    const readiness = await this.check();
    if (readiness.ready !== wasReady || this.renewals === 0) {
      const fields = { ready: readiness.ready, reason: readiness.reason };
      if (readiness.ready) this.log.info(fields, 'replica ready');
      else this.log.warn(fields, 'replica not ready: it does not lead');
    }
    if (readiness.ready) {
      try {
        this.term = await acquireLease(this.db, RECONCILER_LEASE, this.holder, this.ttlMs);
      } catch (error) {
        this.term = null;
        this.log.warn({ err: error }, 'lease renewal failed');
      }
    } else if (this.term !== null) {
      // Step down now: the lease row expires at once, so in-flight ticks fail their fence and
      // a ready replica need not wait out the TTL. If the database is unreachable the release
      // fails too, and the lease simply expires.
      this.term = null;
      await releaseLease(this.db, RECONCILER_LEASE, this.holder).catch((error: unknown) => this.log.warn({ err: error }, 'lease release failed'));
    }
    // Told (readiness, /health) only once the lease is taken or given up: a replica that says it
    // is not ready holds no live lease row.
    this.readiness = readiness;
    this.renewals++;
    if (before !== this.term) {
      this.log.info({ term: this.term, holder: this.holder }, this.term === null ? 'not the leader' : 'leading the reconcilers');
      try {
        this.onChange(this.term !== null);
      } catch (error) {
        this.log.error({ err: error }, 'leadership change handler failed');
      }
    }
    return this.term;
  }

  start(): void {
    this.stopped = false;
    const loop = async () => {
      // renew() handles its own failures; the catch only keeps a bug from ending the loop.
      this.renewing = this.renew().catch((error: unknown) => this.log.error({ err: error }, 'lease loop failed; retrying'));
      await this.renewing;
      if (!this.stopped) this.timer = setTimeout(() => void loop(), Math.max(500, this.ttlMs / 4));
    };
    void loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    // A renewal in flight could otherwise take the lease again right after it is released.
    await this.renewing;
    if (this.term !== null) await releaseLease(this.db, RECONCILER_LEASE, this.holder).catch(() => {});
    this.term = null;
  }
}
