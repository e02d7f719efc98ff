import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { Db } from '../store/db.js';
import { forgetReplicas, markReplicaStopped, upsertReplica } from '../store/operator-replicas.js';
import type { LeaderLease } from './leader-lease.js';

export interface ReplicaIdentity {
  /** The machine's name (default os.hostname()). */
  hostname?: string | undefined;
  /** The control-plane region this replica serves (default `local`). */
  region?: string | undefined;
  /** Where clients reach this replica (default its listen address). */
  url: string;
  version: string;
  /** The newest schema migration this build knows. */
  knowsSchemaVersion: number;
  /** This build runs unharmed beside a newer build's expand migrations (default true). */
  toleratesExpand?: boolean;
}

/** How often a replica refreshes its row; a row older than STALE_AFTER_MS is no longer live. */
export const REPLICA_REFRESH_MS = 2_000;
export const REPLICA_STALE_AFTER_MS = 5 * REPLICA_REFRESH_MS;
/** Rows of replicas gone this long are deleted (a crashed replica never says it stopped). */
const FORGET_AFTER_MS = 60 * 60_000;

/**
 * This replica's row in the registry (DESIGN.md §11): written at start, refreshed every
 * REPLICA_REFRESH_MS with its readiness and leadership as the lease loop last saw them, marked
 * stopped on a clean shutdown. A failed refresh is logged and retried at the next tick: the row
 * simply ages, and others see it go stale.
 */
export class ReplicaRegistry {
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();
  private readonly startedAt = new Date();
  private refreshes = 0;
  private stopped = false;
  /** The last write of this replica's row succeeded (and it has not stopped): the registry lists it as it is. */
  registered = false;

  constructor(
    private readonly db: Db,
    private readonly lease: LeaderLease,
    private readonly identity: ReplicaIdentity,
    private readonly log: Logger,
  ) {}

  get id(): string {
    return this.lease.holder;
  }

  async start(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => void this.refresh(), REPLICA_REFRESH_MS);
    this.timer.unref();
  }

  /** Writes the row now (also after a leadership or readiness change, so the registry does not lag it). */
  refresh(): Promise<void> {
    this.writing = this.writing.then(async () => {
      // A leadership change after stop() must not bring the stopped row back.
      if (this.stopped) return;
      try {
        const readiness = this.lease.readiness;
        await upsertReplica(this.db, {
          id: this.id,
          hostname: this.identity.hostname ?? hostname(),
          region: this.identity.region ?? 'local',
          url: this.identity.url,
          version: this.identity.version,
          knowsSchemaVersion: this.identity.knowsSchemaVersion,
          toleratesExpand: this.identity.toleratesExpand ?? true,
          ready: readiness.ready,
          reason: readiness.reason,
          leader: this.lease.leader,
          startedAt: this.startedAt,
        });
        this.registered = true;
        if (this.refreshes++ % 30 === 0) await forgetReplicas(this.db, FORGET_AFTER_MS);
      } catch (error) {
        this.registered = false;
        this.log.warn({ err: error }, 'could not refresh this replica in the registry; the next tick retries');
      }
    });
    return this.writing;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.stopped = true;
    this.registered = false;
    await this.writing;
    await markReplicaStopped(this.db, this.id).catch((error: unknown) => this.log.warn({ err: error }, 'could not mark this replica stopped'));
  }
}
