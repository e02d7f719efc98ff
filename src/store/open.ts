import { join, resolve } from 'node:path';
import pg from 'pg';
import { lockDataDir } from './data-dir-lock.js';
import { type Db, PoolDb } from './db.js';
import { loadEmbeddedEngine } from './embedded-engine.js';
import { openPgliteWorkerDb } from './pglite-db.js';

export const DEFAULT_DATA_DIR = './.drydock';

export interface OpenDbOptions {
  /** Where the embedded engine runs (default `worker`, or `main` with DRYDOCK_PGLITE_WORKER=0). */
  embeddedThread?: 'main' | 'worker';
  /** A Postgres server; when absent the embedded engine is used. */
  databaseUrl?: string | undefined;
  /** Where the embedded engine keeps its files (default ./.drydock). */
  dataDir?: string | undefined;
  /** Who holds the data dir, written into the lock file. */
  purpose?: string;
  /** Connection pool size for the server engine (default 10). */
  poolSize?: number;
  /**
   * Told when an idle pooled session of the server engine dies (terminated backend, server
   * restart). The pool has dropped it already and opens a new one when needed (default: ignored).
   */
  onIdleConnectionError?: (error: Error) => void;
}

/**
 * Where the embedded engine runs: `worker` (its own thread, the default) or `main` (this thread,
 * with DRYDOCK_PGLITE_WORKER=0). PGlite runs Postgres on the thread that calls it: on `main` a
 * heavy query stops HTTP and timers for its whole duration. Measured with 2,000 nodes every 2 s
 * (bench:heartbeats-http, 2 cores, quiet): on `main` 511 heartbeats/s of 1,000, p99 16 s and 5,000
 * false node.down; in the worker 999/s, heartbeat p99 177-270 ms, API p99 84-101 ms, none down.
 * The worker costs about 170 MiB of RSS (a second V8 heap with the bundle).
 */
function defaultEmbeddedThread(): 'main' | 'worker' {
  return process.env.DRYDOCK_PGLITE_WORKER === '0' ? 'main' : 'worker';
}

export async function openDb(options: OpenDbOptions = {}): Promise<Db> {
  if (options.databaseUrl) {
    // TCP keep-alive notices a server that vanished without closing the socket.
    const pool = new pg.Pool({ connectionString: options.databaseUrl, max: options.poolSize ?? 10, keepAlive: true });
    // An idle client losing its connection must not crash the process; the next query reconnects.
    // (A checked-out client has its own listener: PoolDb.transaction.)
    const onIdleError = options.onIdleConnectionError ?? (() => {});
    pool.on('error', (error) => onIdleError(error));
    await pool.query('select 1');
    return new PoolDb('postgres', pool);
  }
  const dataDir = resolve(options.dataDir ?? DEFAULT_DATA_DIR);
  const release = lockDataDir(dataDir, options.purpose ?? 'drydock');
  try {
    if ((options.embeddedThread ?? defaultEmbeddedThread()) === 'worker') {
      // PGlite in a worker thread of its own (pglite-db.ts): a heavy query there does not stop
      // this thread's timers and HTTP.
      return await openPgliteWorkerDb(join(dataDir, 'pgdata'), async () => release());
    }
    // Loaded lazily: only the embedded mode needs PGlite (agents and the CLI never do).
    const { createPgConfig } = await loadEmbeddedEngine(() => import('@electric-sql/pglite/node-postgres'));
    const pool = new pg.Pool(createPgConfig(join(dataDir, 'pgdata')) as unknown as pg.PoolConfig);
    await pool.query('select 1');
    return new PoolDb('pglite', pool, async () => release());
  } catch (error) {
    release();
    throw error;
  }
}
