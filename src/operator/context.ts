import type { Logger } from 'pino';
import type { Db } from '../store/db.js';
import type { TokenStore } from './auth.js';
import type { CredentialCache } from './credential-cache.js';
import type { DesiredCache } from './desired-cache.js';
import type { DesiredWaiters } from './desired-waiters.js';
import type { FleetReconciler } from './fleet-reconciler.js';
import type { HeartbeatBuffer } from './heartbeat-buffer.js';
import type { LeaderLease } from './leader-lease.js';
import type { RolloutReconciler } from './rollout-reconciler.js';
import type { MigrationReconciler } from './migration-reconciler.js';
import type { OperatorMetrics } from './metrics.js';

/** What every route plugin may use. Built once per operator by `startOperator`/`buildOperatorApp`. */
export interface OperatorContext {
  db: Db;
  log: Logger;
  tokens: TokenStore | undefined;
  waiters: DesiredWaiters;
  reconciler: FleetReconciler;
  rollouts: RolloutReconciler;
  migrations: MigrationReconciler;
  lease: LeaderLease;
  heartbeats: HeartbeatBuffer;
  /** Node credential digests (agent gateway). */
  credentials: CredentialCache;
  /** Desired state per node by generation (agent gateway). */
  desired: DesiredCache;
  metrics: OperatorMetrics;
  newId: () => string;
  version: string;
  /** This replica in the registry (set once it registered; /health reports it). */
  replica?: { readonly id: string; readonly registered: boolean };
  startedAt: Date;
  settings: {
    heartbeatIntervalMs: number;
    heartbeatGraceMs: number;
    drainTimeoutMs: number;
  };
}
