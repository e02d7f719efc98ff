import type pg from 'pg';

/**
 * The one database seam: SQL text with bound parameters in, rows out. Both engines (a
 * Postgres server and embedded PGlite) sit behind node-postgres, so every query and every
 * transaction takes the same code path.
 */
export interface Db {
  readonly engine: 'postgres' | 'pglite';
  query<R = Record<string, unknown>>(text: string, values?: readonly unknown[]): Promise<R[]>;
  /** Runs `work` in one transaction; a throw rolls it back. Nested calls join the outer one. */
  transaction<T>(work: (tx: Db) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

class ClientDb implements Db {
  constructor(
    readonly engine: Db['engine'],
    private readonly client: pg.PoolClient,
  ) {}

  async query<R>(text: string, values: readonly unknown[] = []): Promise<R[]> {
    const result = await this.client.query(text, values as unknown[]);
    return result.rows as R[];
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
    try {
      await client.query('BEGIN');
      const result = await work(new ClientDb(this.engine, client));
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      client.release();
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
