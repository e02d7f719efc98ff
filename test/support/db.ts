import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { inject } from 'vitest';
import type { Db } from '../../src/store/db.js';
import { migrateUp } from '../../src/store/migrator.js';
import { openDb } from '../../src/store/open.js';

/** Which engine the store and operator suites run on: pglite (default) or postgres. */
export const TEST_ENGINE = process.env.DRYDOCK_TEST_ENGINE === 'postgres' ? 'postgres' : 'pglite';
export const ADMIN_URL = process.env.DRYDOCK_TEST_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TestDb {
  db: Db;
  /** For the server engine: the URL of this file's own database. */
  url?: string;
  /** For the embedded engine: the data dir. */
  dataDir?: string;
  cleanup(): Promise<void>;
}

/** A fresh, migrated database for one test file: a copy of the template, or a new server database. */
export async function createTestDb(options: { migrated?: boolean } = {}): Promise<TestDb> {
  const migrated = options.migrated ?? true;
  if (TEST_ENGINE === 'postgres') {
    const name = `drydock_t_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
    const admin = new pg.Client({ connectionString: ADMIN_URL });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.end();
    const url = new URL(ADMIN_URL);
    url.pathname = `/${name}`;
    const db = await openDb({ databaseUrl: url.toString() });
    if (migrated) await migrateUp(db);
    return {
      db,
      url: url.toString(),
      async cleanup() {
        await db.close().catch(() => {});
        const again = new pg.Client({ connectionString: ADMIN_URL });
        await again.connect();
        await again.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        await again.end();
      },
    };
  }
  const dataDir = mkdtempSync(join(tmpdir(), 'drydock-test-'));
  if (migrated) cpSync(inject('pgliteTemplate'), dataDir, { recursive: true });
  const db = await openDb({ dataDir });
  return {
    db,
    dataDir,
    async cleanup() {
      await db.close().catch(() => {});
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
