import type pg from 'pg';

/**
 * The one database seam: SQL text with bound parameters in, rows out. Both engines (a
 * Postgres server and embedded PGlite) sit behind node-postgres, so every statement gets the
 * same parameter conversion and the same row shapes. The embedded engine runs in a worker
 * thread (pglite-db.ts), where a pool like PoolDb's serves it.
 */
export interface Db {
  readonly engine: 'postgres' | 'pglite';
  /** One statement; on its own it is its own transaction. `options` count only outside a transaction. */
  query<R = Record<string, unknown>>(text: string, values?: readonly unknown[], options?: SessionOptions): Promise<R[]>;
  /** Runs `work` in one transaction; a throw rolls it back. Nested calls join the outer one. */
  transaction<T>(work: (tx: Db) => Promise<T>, options?: SessionOptions): Promise<T>;
  close(): Promise<void>;
}

export interface SessionOptions {
  /**
   * Ahead of the other work waiting for the embedded engine's one session (the heartbeat batch:
   * a node's liveness and its agent's reply wait for it). A server engine, with a session per
   * caller, has nothing to reorder and ignores it.
   */
  urgent?: boolean;
}

class ClientDb implements Db {
  /** The statement last sent: a transaction's session runs one at a time, so callers that ask side by side (Promise.all) wait their turn here, not in pg's deprecated queue. */
  private last: Promise<unknown> = Promise.resolve();

  constructor(
    readonly engine: Db['engine'],
    private readonly client: pg.PoolClient,
  ) {}

  async query<R>(text: string, values: readonly unknown[] = []): Promise<R[]> {
    const run = this.last.then(() => this.client.query(text, values as unknown[]));
    this.last = run.catch(() => undefined);
    return (await run).rows as R[];
  }

  transaction<T>(work: (tx: Db) => Promise<T>): Promise<T> {
    return work(this);
  }

  async close(): Promise<void> {}
}

export class PoolDb implements Db {
  constructor(
    readonly engine: Db['engine'],
    private readonly pool: pg.Pool,
    private readonly onClose: () => Promise<void> = async () => {},
  ) {}

  async query<R>(text: string, values: readonly unknown[] = []): Promise<R[]> {
    const result = await this.pool.query(text, values as unknown[]);
    return result.rows as R[];
  }

  async transaction<T>(work: (tx: Db) => Promise<T>): Promise<T> {
    // A checked-out client, never a raw BEGIN through pool.query: with PGlite's single
    // session another caller's statement would otherwise land inside our transaction.
    const client = await this.pool.connect();
    // pg-pool takes its own 'error' listener off a client while it is checked out. Without one
    // here, a session that dies between two statements (terminated backend, server restart)
    // emits an unhandled 'error' and ends the process; with it, the next statement rejects.
    let lost: Error | undefined;
    const onError = (error: Error) => {
      lost ??= error;
    };
    client.on('error', onError);
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const result = await work(new ClientDb(this.engine, client));
      await client.query('COMMIT');
      return result;
    } catch (error) {
      if (lost || isConnectionLost(error)) {
        broken = lost ?? (error as Error);
        // Work that caught the driver's error and threw its own still lost the connection:
        // say so, so the caller answers 503 instead of blaming the request.
        if (!isConnectionLost(error)) throw new ConnectionLostError(broken, error);
      } else {
        await client.query('ROLLBACK').catch((rollbackError: unknown) => {
          if (isConnectionLost(rollbackError)) broken = rollbackError as Error;
        });
      }
      throw error;
    } finally {
      client.removeListener('error', onError);
      // Released with its error, a broken client is discarded by the pool instead of being
      // handed to the next caller; the pool opens a new session when one is needed.
      client.release(broken ?? lost);
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
    await this.onClose();
  }
}

/** SQLSTATE of an error thrown by either engine, if it has one. */
export function sqlState(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error ? String((error as { code: unknown }).code) : undefined;
}

/**
 * A lost session surfaced through an error of the caller's own; `cause` is what the caller
 * threw, `connectionError` what the driver reported.
 */
export class ConnectionLostError extends Error {
  constructor(
    readonly connectionError: Error,
    cause: unknown,
  ) {
    super(`the database connection was lost: ${connectionError.message}`, { cause });
  }
}

// SQLSTATEs that mean the session is gone or cannot be had, not that the statement was wrong:
// class 08 (connection exception), 57P01 admin_shutdown (pg_terminate_backend, a fast
// shutdown), 57P02 crash_shutdown, 57P03 cannot_connect_now (starting up or shutting down),
// 53300 too_many_connections.
const LOST_SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300']);
// Socket errors from node: the server is not there or the connection broke.
const LOST_SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);
// node-postgres reports a dead socket with plain Errors that carry no code.
const LOST_MESSAGES = [/^Connection terminated/, /not queryable/, /timeout exceeded when trying to connect/, /^Connection ended unexpectedly/];

/**
 * True when `error` says the database connection was lost or could not be opened — a
 * transient condition where retrying later may succeed — as opposed to an error in the
 * statement. The one place that knows the shapes both drivers use; looks through `cause`
 * and the members of an AggregateError (a refused connection to each address of a host).
 */
export function isConnectionLost(error: unknown, depth = 0): boolean {
  if (typeof error !== 'object' || error === null || depth > 5) return false;
  if (error instanceof ConnectionLostError) return true;
  const code = sqlState(error);
  if (code !== undefined && ((code.length === 5 && code.startsWith('08')) || LOST_SQLSTATES.has(code) || LOST_SOCKET_CODES.has(code))) return true;
  const message = (error as { message?: unknown }).message;
  if (code === undefined && typeof message === 'string' && LOST_MESSAGES.some((pattern) => pattern.test(message))) return true;
  if (error instanceof AggregateError && error.errors.some((e) => isConnectionLost(e, depth + 1))) return true;
  return isConnectionLost((error as { cause?: unknown }).cause, depth + 1);
}
