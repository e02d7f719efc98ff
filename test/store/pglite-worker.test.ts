// The embedded engine runs PGlite in a worker thread (src/store/pglite-db.ts). These tests
// hold it to what callers had when the driver ran in their own thread: the same value shapes,
// transactions that nothing else interleaves into, SQLSTATE codes on errors — and add what the
// worker is for: the caller's event loop keeps running while a heavy query does. They run on
// both engines; on a Postgres server they check the adapters agree.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sqlState } from '../../src/store/db.js';
import { openDb } from '../../src/store/open.js';
import { createTestDb, type TestDb } from '../support/db.js';

// The worker is the default (src/store/open.ts); this file says so anyway, so an opt-out in the
// environment (DRYDOCK_PGLITE_WORKER=0) cannot make it test the other thread. Each test file
// runs in a process of its own, so this reaches no other file.
process.env.DRYDOCK_PGLITE_WORKER = '1';

let t: TestDb;

beforeAll(async () => {
  t = await createTestDb();
  await t.db.query(`CREATE TABLE worker_values (id int8 PRIMARY KEY, at timestamptz, doc jsonb, data bytea, tags text[], note text UNIQUE)`);
});

afterAll(async () => {
  await t?.cleanup();
});

describe('the embedded engine behind the Db seam', () => {
  it('returns int8 as a string, timestamptz as a Date, jsonb parsed, bytea as a Buffer and text[] as an array', async () => {
    const at = new Date('2026-11-21T10:20:30.456Z');
    const data = Buffer.from([0, 1, 2, 254, 255]);
    await t.db.query(`INSERT INTO worker_values (id, at, doc, data, tags) VALUES ($1, $2, $3, $4, $5)`, [
      '9007199254740993',
      at,
      { nested: { list: [1, 'two', null] }, flag: true },
      data,
      ['a', 'b,c', 'd"e'],
    ]);
    const [row] = await t.db.query<{ id: unknown; at: unknown; doc: unknown; data: unknown; tags: unknown }>(`SELECT id, at, doc, data, tags FROM worker_values WHERE id = $1`, [
      '9007199254740993',
    ]);
    expect(row?.id).toBe('9007199254740993');
    expect(row?.at).toBeInstanceOf(Date);
    expect((row?.at as Date).toISOString()).toBe(at.toISOString());
    expect(row?.doc).toEqual({ nested: { list: [1, 'two', null] }, flag: true });
    expect(Buffer.isBuffer(row?.data)).toBe(true);
    expect((row?.data as Buffer).equals(data)).toBe(true);
    expect(row?.tags).toEqual(['a', 'b,c', 'd"e']);

    const [computed] = await t.db.query<{ n: unknown; missing: unknown; arr: unknown }>(`SELECT count(*) AS n, NULL::text AS missing, ARRAY[1, 2]::int[] AS arr FROM worker_values`);
    expect(computed).toEqual({ n: '1', missing: null, arr: [1, 2] });
  });

  it('carries a large bytea both ways and leaves the caller’s buffer usable', async () => {
    const big = Buffer.alloc(5 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4096) big[i] = i % 251;
    const slice = big.subarray(1024 * 1024);
    await t.db.query(`INSERT INTO worker_values (id, data) VALUES (2, $1)`, [slice]);
    // A driver that took the caller's memory away would leave it empty here.
    expect(slice.length).toBe(4 * 1024 * 1024);
    const [row] = await t.db.query<{ data: Buffer }>(`SELECT data FROM worker_values WHERE id = 2`);
    expect(Buffer.isBuffer(row?.data)).toBe(true);
    expect(row?.data.equals(slice)).toBe(true);
  });

  it('keeps the SQLSTATE, message and constraint of an error, inside a transaction or not', async () => {
    await t.db.query(`INSERT INTO worker_values (id, note) VALUES (3, 'taken')`);
    const direct = await t.db.query(`INSERT INTO worker_values (id, note) VALUES (4, 'taken')`).catch((error: unknown) => error);
    expect(sqlState(direct)).toBe('23505');
    expect(direct).toBeInstanceOf(Error);
    expect((direct as Error).message).toMatch(/duplicate key value violates unique constraint/);
    expect(direct).toMatchObject({ constraint: 'worker_values_note_key' });

    const inTransaction = await t.db.transaction((tx) => tx.query(`INSERT INTO worker_values (id, note) VALUES (5, 'taken')`)).catch((error: unknown) => error);
    expect(sqlState(inTransaction)).toBe('23505');
    const syntax = await t.db.query(`SELEC 1`).catch((error: unknown) => error);
    expect(sqlState(syntax)).toBe('42601');

    // A constraint checked at COMMIT fails the commit itself; the database stays usable after it.
    await t.db.query(`CREATE TABLE worker_deferred (v int UNIQUE DEFERRABLE INITIALLY DEFERRED)`);
    for (let i = 0; i < 12; i++) {
      const atCommit = await t.db
        .transaction(async (tx) => {
          await tx.query(`INSERT INTO worker_deferred VALUES (1), (1)`);
        })
        .catch((error: unknown) => error);
      expect(sqlState(atCommit)).toBe('23505');
    }
    expect(await t.db.query(`SELECT count(*)::int AS n FROM worker_deferred`)).toEqual([{ n: 0 }]);
  });

  it('rolls a transaction back when its work throws, and the database stays usable', async () => {
    const thrown = await t.db
      .transaction(async (tx) => {
        await tx.query(`INSERT INTO worker_values (id, note) VALUES (10, 'rolled back')`);
        const [seen] = await tx.query<{ n: string }>(`SELECT count(*) AS n FROM worker_values WHERE id = 10`);
        expect(seen?.n).toBe('1');
        throw new Error('changed my mind');
      })
      .catch((error: unknown) => error);
    expect((thrown as Error).message).toBe('changed my mind');
    expect(await t.db.query(`SELECT id FROM worker_values WHERE id = 10`)).toEqual([]);
    // Nested transactions join the outer one, and a committed one keeps its rows.
    await t.db.transaction((tx) => tx.transaction((inner) => inner.query(`INSERT INTO worker_values (id) VALUES (11)`)));
    expect(await t.db.query(`SELECT id FROM worker_values WHERE id = 11`)).toEqual([{ id: '11' }]);
  });

  it('does not let a concurrent statement land inside another caller’s transaction', async () => {
    const order: string[] = [];
    let outside: Promise<unknown> | undefined;
    const transaction = t.db
      .transaction(async (tx) => {
        await tx.query(`INSERT INTO worker_values (id, note) VALUES (20, 'inside')`);
        // Another caller writes while this transaction is open, and reads the table.
        outside = t.db
          .query(`INSERT INTO worker_values (id, note) VALUES (21, 'outside')`)
          .then(() => t.db.query<{ id: string }>(`SELECT id FROM worker_values WHERE id IN (20, 21) ORDER BY id`))
          .then((rows) => {
            order.push('outside done');
            return rows;
          });
        await new Promise((resolve) => setTimeout(resolve, 100));
        await tx.query(`SELECT 1`);
        order.push('transaction work done');
        throw new Error('roll back');
      })
      .catch(() => order.push('rolled back'));
    await transaction;
    const seen = await outside;
    // Had the outside statements run in the transaction's session, the rollback would have
    // taken row 21 with it, and the read would have seen the uncommitted row 20.
    expect(await t.db.query(`SELECT id FROM worker_values WHERE id IN (20, 21) ORDER BY id`)).toEqual([{ id: '21' }]);
    expect(seen).toEqual([{ id: '21' }]);
    expect(order.indexOf('transaction work done')).toBeLessThan(order.indexOf('rolled back'));
  });

  it('keeps the event loop turning while a heavy query runs', async () => {
    let ticks = 0;
    const timer = setInterval(() => {
      ticks += 1;
    }, 20);
    let ticksDuringQuery = 0;
    try {
      // About a second of work in PGlite on this machine kind (several hundred ms on a server).
      const ticksBefore = ticks;
      const [row] = await t.db.query<{ n: string }>(`SELECT count(*) AS n FROM generate_series(1, 5000) a, generate_series(1, 1000) b WHERE (a + b) % 7 = 0`);
      ticksDuringQuery = ticks - ticksBefore;
      expect(row?.n).toBe('714286');
    } finally {
      clearInterval(timer);
    }
    // In the caller's own thread the query blocked every timer: at most one tick, when it ended.
    expect(ticksDuringQuery).toBeGreaterThanOrEqual(5);
  });

  it('hands the one session to an urgent transaction or statement (the heartbeat batch) before statements that waited longer', async () => {
    // The embedded engine on either suite's run: a server has a session per caller and ignores it.
    const dataDir = mkdtempSync(join(tmpdir(), 'drydock-test-urgent-'));
    const db = await openDb({ dataDir });
    try {
      await db.query('CREATE TABLE turns (n serial PRIMARY KEY, who text NOT NULL)');
      let holding!: () => void;
      const began = new Promise<void>((r) => (holding = r));
      let release!: () => void;
      const released = new Promise<void>((r) => (release = r));
      const holder = db.transaction(async (tx) => {
        await tx.query(`INSERT INTO turns (who) VALUES ('holder')`);
        holding();
        await released;
      });
      await began;
      // All wait for the session: the plain statement first, then the urgent transaction, then
      // an urgent statement on its own (a batch of idle nodes' heartbeats is one).
      const plain = db.query(`INSERT INTO turns (who) VALUES ('plain')`);
      const urgent = db.transaction((tx) => tx.query(`INSERT INTO turns (who) VALUES ('urgent')`), { urgent: true });
      const urgentStatement = db.query(`INSERT INTO turns (who) VALUES ('urgent statement')`, [], { urgent: true });
      await new Promise((r) => setTimeout(r, 50));
      release();
      await Promise.all([holder, plain, urgent, urgentStatement]);
      expect((await db.query<{ who: string }>('SELECT who FROM turns ORDER BY n')).map((r) => r.who)).toEqual(['holder', 'urgent', 'urgent statement', 'plain']);
    } finally {
      await db.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('runs in the caller’s thread with DRYDOCK_PGLITE_WORKER=0 (the opt-out): the same query stops the timers', async () => {
    // The embedded engine on either suite's run (the server engine has no thread to choose).
    const dataDir = mkdtempSync(join(tmpdir(), 'drydock-test-main-thread-'));
    process.env.DRYDOCK_PGLITE_WORKER = '0';
    const main = await openDb({ dataDir }).finally(() => {
      process.env.DRYDOCK_PGLITE_WORKER = '1';
    });
    let ticks = 0;
    const timer = setInterval(() => {
      ticks += 1;
    }, 20);
    try {
      await new Promise((r) => setTimeout(r, 50));
      const before = ticks;
      const [row] = await main.query<{ n: string }>(`SELECT count(*) AS n FROM generate_series(1, 5000) a, generate_series(1, 1000) b WHERE (a + b) % 7 = 0`);
      expect(row?.n).toBe('714286');
      expect(ticks - before).toBeLessThanOrEqual(1);
    } finally {
      clearInterval(timer);
      await main.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
