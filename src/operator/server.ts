import { type KeyObject, randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { RegionSilenceOptions } from '../domain/liveness-guard.js';
import { DEFAULT_HEARTBEAT_GRACE_MS } from '../domain/node-status.js';
import type { Db } from '../store/db.js';
import { migrateUp } from '../store/migrator.js';
import { BUILD_TOLERATES_EXPAND, MIGRATIONS, type Migration } from '../store/migrations/index.js';
import { generationChecksum, generationsOf } from '../store/nodes.js';
import { openDb } from '../store/open.js';
import { loadTokens } from './auth.js';
import { buildOperatorApp } from './app.js';
import type { OperatorContext } from './context.js';
import { CredentialCache } from './credential-cache.js';
import { DesiredCache } from './desired-cache.js';
import { DesiredWaiters } from './desired-waiters.js';
import { FleetReconciler } from './fleet-reconciler.js';
import { HeartbeatBuffer } from './heartbeat-buffer.js';
import { type HttpLimits, resolveHttpLimits } from './http-limits.js';
import { checkReadiness, LeaderLease } from './leader-lease.js';
import { RolloutReconciler } from './rollout-reconciler.js';
import { MigrationReconciler } from './migration-reconciler.js';
import { ReplicaRegistry } from './replica-registry.js';
import { SchemaStepRunner } from './schema-steps.js';
import { isLoopback, LISTEN_BACKLOG, parseListen } from '../listen-address.js';
import { OperatorMetrics } from './metrics.js';
import type { ServerTls } from '../tls.js';
import { WebhookDispatcher } from './webhook-dispatcher.js';
import type { RetryPolicy } from '../domain/webhooks.js';

export interface OperatorOptions {
  /** host:port to listen on (default 127.0.0.1:8080; port 0 picks a free one). */
  listen: string;
  /** Postgres server URL; without it the embedded database in `dataDir` is used. */
  databaseUrl?: string | undefined;
  /** Embedded database directory (default ./.drydock). */
  dataDir?: string | undefined;
  /** YAML tokens file; without it the operator runs open and only on loopback. */
  tokensFile?: string | undefined;
  /** Apply pending `pre` migrations at start (default true). */
  migrate: boolean;
  heartbeatIntervalMs: number;
  heartbeatGraceMs: number;
  drainTimeoutMs: number;
  migrationTimeoutMs: number;
  reconcileIntervalMs: number;
  /** Leader lease lifetime without renewal (default 10 s): how long a dead leader blocks a new one. */
  leaseTtlMs?: number;
  /** A region this silent at once is not marked down (default DEFAULT_REGION_SILENCE: 55 %, at least 3 nodes). */
  regionSilence?: RegionSilenceOptions | undefined;
  /**
   * The migrations this binary knows, which readiness is judged by (default: the built-in
   * list). Tests pass a longer list to act as a newer binary beside an older one.
   */
  knownMigrations?: readonly Migration[];
  /** Bounds on slow clients: header, whole-request and keep-alive time, minimum body rate (defaults in HTTP_LIMIT_DEFAULTS). */
  http?: Partial<HttpLimits> | undefined;
  version: string;
  /** This replica's region in the registry (`GET /api/v1/operators`; default `local`). */
  region?: string | undefined;
  /** This replica's hostname in the registry (default os.hostname()). */
  hostname?: string | undefined;
  /** Where clients reach this replica, as the registry lists it (default its listen URL). */
  advertiseUrl?: string | undefined;
  /**
   * On close, how long the replica keeps answering after it left the registry and handed the
   * lease over, so a load balancer following the registry stops sending to it first (default 0).
   */
  shutdownDelayMs?: number | undefined;
  /** Keys whose signatures let this replica run a target operator build's migrations (control-plane rollouts). */
  trustedKeys?: readonly KeyObject[];
  /** Development only: run unsigned operator builds' migrations. */
  allowUnsigned?: boolean;
  /** How failed webhook deliveries are retried (default DEFAULT_RETRY_POLICY: 5 s doubling to 10 min, for 24 h). */
  webhookRetry?: RetryPolicy | undefined;
  log: Logger;
  /** Serve HTTPS with this certificate and key (--tls-cert, --tls-key); default plain HTTP. */
  tls?: ServerTls | undefined;
  /** Use this database instead of opening one (tests). */
  db?: Db;
}

export const OPERATOR_DEFAULTS = {
  listen: '127.0.0.1:8080',
  heartbeatIntervalMs: 2_000,
  heartbeatGraceMs: DEFAULT_HEARTBEAT_GRACE_MS,
  drainTimeoutMs: 10 * 60_000,
  migrationTimeoutMs: 2 * 60_000,
  reconcileIntervalMs: 500,
} as const;

export interface RunningOperator {
  url: string;
  app: FastifyInstance;
  ctx: OperatorContext;
  close(): Promise<void>;
}

export async function startOperator(options: OperatorOptions): Promise<RunningOperator> {
  const { host, port } = parseListen(options.listen, 8080);
  const tokens = options.tokensFile ? loadTokens(options.tokensFile) : undefined;
  if (!tokens && !isLoopback(host)) {
    throw new Error(
      `refusing to listen on ${host} without authentication: pass --tokens FILE, or listen on 127.0.0.1 for local use`,
    );
  }
  const log = options.log;
  const db =
    options.db ??
    (await openDb({
      databaseUrl: options.databaseUrl,
      dataDir: options.dataDir,
      purpose: 'drydock operator',
      onIdleConnectionError: (error) => log.warn({ err: error }, 'an idle database connection was lost; the pool reconnects'),
    }));
  const ownsDb = !options.db;
  try {
    if (options.migrate) {
      const applied = await migrateUp(db, { phase: 'pre' });
      if (applied.length > 0) log.info({ applied: applied.map((m) => `${m.version}_${m.name}`) }, 'applied migrations');
    }
    const waiters = new DesiredWaiters();
    const known = options.knownMigrations ?? MIGRATIONS;
    const lease = new LeaderLease(db, log.child({ loop: 'lease' }), options.leaseTtlMs ?? 10_000, () => checkReadiness(db, known));
    const reconciler = new FleetReconciler(
      db,
      waiters,
      log.child({ loop: 'fleet' }),
      {
        intervalMs: options.reconcileIntervalMs,
        heartbeatGraceMs: options.heartbeatGraceMs,
        migrationTimeoutMs: options.migrationTimeoutMs,
        ...(options.regionSilence ? { regionSilence: options.regionSilence } : {}),
      },
      lease,
    );
    const schemaSteps = new SchemaStepRunner(db, {
      databaseUrl: options.databaseUrl,
      trustedKeys: options.trustedKeys ?? [],
      allowUnsigned: options.allowUnsigned ?? false,
      log: log.child({ loop: 'schema-steps' }),
    });
    const rollouts = new RolloutReconciler(db, lease, waiters, reconciler, log.child({ loop: 'rollouts' }), options.reconcileIntervalMs, schemaSteps);
    const migrations = new MigrationReconciler(db, waiters, log.child({ loop: 'migrations' }), { intervalMs: options.reconcileIntervalMs }, reconciler.lane, lease);
    // A failed move withdraws its target: the drain that asked for it places another.
    migrations.onNodesChanged = (nodeIds) => {
      reconciler.nodesChanged(nodeIds);
      rollouts.nodesChanged(nodeIds);
    };
    lease.onChange = (leader) => {
      if (!leader) return;
      reconciler.wake();
      rollouts.wake();
      migrations.wake();
    };
    // Drains, migrations and node statuses move rollout tasks: a rollout waits for none of its ticks.
    // A pass that placed a move has a new migration row: the migration reconciler lists it now.
    reconciler.onNodesChanged = (nodeIds) => {
      rollouts.nodesChanged(nodeIds);
      migrations.wake();
    };
    // A heartbeat that changed what the reconciler decides from (instance health, components,
    // installs, a node back from down) is acted on now; one that repeats the last waits for the tick.
    // Window 0: each batch is what arrived while the previous one was written (no fixed wait).
    // Rollouts first: a task waiting for this report moves before the fleet passes it wakes take
    // the database (the embedded engine has one connection). Only instance changes and a return
    // from down cost a fleet pass; other changes (components, installs) are judged for liveness.
    // Two batches at once on a server (a session each; a node is never in both), one on the
    // embedded engine's single session.
    const heartbeats = new HeartbeatBuffer(
      db,
      0,
      1000,
      (nodeIds, fleetNodeIds) => {
        rollouts.nodesChanged(nodeIds);
        if (fleetNodeIds.length > 0) {
          reconciler.nodesChanged(fleetNodeIds);
          migrations.nodesChanged(fleetNodeIds);
        }
        reconciler.nodesTouched(nodeIds);
      },
      db.engine === 'postgres' ? 2 : 1,
    );
    // Liveness counts from arrival: no node is marked down for time its heartbeat waited here.
    reconciler.heartbeatBacklog = () => heartbeats.uncommitted();
    const ctx: OperatorContext = {
      db,
      log,
      tokens,
      waiters,
      reconciler,
      rollouts,
      migrations,
      lease,
      heartbeats,
      credentials: new CredentialCache(db),
      desired: new DesiredCache(db),
      metrics: new OperatorMetrics(db, { leader: () => lease.leader, version: options.version }),
      newId: randomUUID,
      version: options.version,
      startedAt: new Date(),
      settings: {
        heartbeatIntervalMs: options.heartbeatIntervalMs,
        heartbeatGraceMs: options.heartbeatGraceMs,
        drainTimeoutMs: options.drainTimeoutMs,
      },
    };
    for (const queue of [reconciler.liveness, reconciler.nodes, reconciler.deployments, rollouts.queue, migrations.queue]) ctx.metrics.observe(queue);
    migrations.onEnded = (m, d) => ctx.metrics.migrationEnded(m.mode, d.state, d.stats ?? m.stats, Date.now() - m.startedAt.getTime());
    const webhooks = new WebhookDispatcher(db, lease, log.child({ loop: 'webhooks' }), { version: options.version, retry: options.webhookRetry });
    webhooks.onAttempt = (update) => ctx.metrics.webhookAttempt(update.state);
    await ctx.metrics.events.start();
    const app = await buildOperatorApp(ctx, resolveHttpLimits(options.http), options.tls);
    await app.listen({ host, port, backlog: LISTEN_BACKLOG });
    const address = app.server.address();
    const boundPort = typeof address === 'object' && address ? address.port : port;
    const url = `${options.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${boundPort}`;
    await lease.renew();
    const registry = new ReplicaRegistry(
      db,
      lease,
      {
        hostname: options.hostname,
        region: options.region,
        url: options.advertiseUrl ?? url,
        version: options.version,
        knowsSchemaVersion: Math.max(0, ...known.map((m) => m.version)),
        toleratesExpand: BUILD_TOLERATES_EXPAND,
      },
      log.child({ loop: 'registry' }),
    );
    await registry.start();
    ctx.replica = registry;
    const leadershipChanged = lease.onChange;
    lease.onChange = (leader) => {
      leadershipChanged(leader);
      void registry.refresh();
    };
    lease.start();
    reconciler.start();
    rollouts.start();
    migrations.start();
    webhooks.start();

    // Other operator replicas change desired state too, and some writers here do not wake
    // long-polls: one aggregate read a second notices that any generation moved, and only then
    // are the generations of the nodes someone waits for read (not every node's, every second).
    let checksum = await generationChecksum(db);
    // A poll failing (lost connection) is logged and the next tick retries; one in flight at a
    // time, so a database that hangs does not pile polls up.
    let polling = false;
    const poller = setInterval(() => {
      if (waiters.waiting === 0 || polling) return;
      polling = true;
      (async () => {
        const next = await generationChecksum(db);
        if (next === checksum) return;
        checksum = next;
        waiters.wakeNewer(await generationsOf(db, waiters.waitingNodes()));
      })()
        .catch((error) => log.warn({ err: error }, 'generation poll failed'))
        .finally(() => {
          polling = false;
        });
    }, 1000);

    if (!tokens) log.warn(`no --tokens file: the API is OPEN to anyone who can reach ${url} (loopback only)`);
    log.info({ url, engine: db.engine, version: options.version }, 'operator listening');
    return {
      url,
      app,
      ctx,
      async close() {
        clearInterval(poller);
        await webhooks.stop();
        // Out of the registry first (a load balancer following it stops sending here), then the
        // loops end and the lease is handed over; requests already on their way are still served
        // for the shutdown delay before the listener closes.
        await registry.stop();
        await rollouts.stop();
        await migrations.stop();
        await reconciler.stop();
        await lease.stop();
        if (options.shutdownDelayMs) await new Promise((r) => setTimeout(r, options.shutdownDelayMs));
        waiters.wakeAll();
        await app.close();
        await heartbeats.drain();
        if (ownsDb) await db.close();
      },
    };
  } catch (error) {
    if (ownsDb) await db.close().catch(() => {});
    throw error;
  }
}
