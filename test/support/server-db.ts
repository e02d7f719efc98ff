// A database of its own on the Postgres server, whatever DRYDOCK_TEST_ENGINE says: for behaviour
// only a server has (lost connections, several sessions, leader election between replicas).
import pg from 'pg';
import { ADMIN_URL } from './db.js';

export interface ServerDb {
  name: string;
  url: string;
  /** Runs one statement as the admin, on the admin database (never a session of `name`). */
  admin<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<R[]>;
  /** pg_terminate_backend on every session of this database except `keep`; returns how many. */
  terminateBackends(keep?: readonly number[]): Promise<number>;
  drop(): Promise<void>;
}

export async function createServerDb(prefix: string): Promise<ServerDb> {
  const name = `${prefix}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = async <R extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<R[]> => {
    const client = new pg.Client({ connectionString: ADMIN_URL });
    await client.connect();
    try {
      return (await client.query<R>(text, values)).rows;
    } finally {
      await client.end();
    }
  };
  await admin(`CREATE DATABASE ${name}`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    name,
    url: url.toString(),
    admin,
    async terminateBackends(keep = []) {
      const rows = await admin<{ n: number }>(
        `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::int AS n
           FROM pg_stat_activity WHERE datname = $1 AND pid <> ALL($2::int[])`,
        [name, [...keep]],
      );
      return rows[0]?.n ?? 0;
    },
    async drop() {
      await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}

/** A plain session on `url` whose connection loss is expected (the test kills it on purpose). */
export async function connectExpectingLoss(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  // Without a listener a terminated session would take the test process down with it.
  client.on('error', () => {});
  await client.connect();
  return client;
}
