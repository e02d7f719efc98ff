// isConnectionLost is the one place that tells "the session is gone, retry later" (a 503) from
// "the statement was wrong" (never a 503): real errors from both engines, and the shapes the
// drivers use.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/agent/drivers/process-driver.js';
import { ConnectionLostError, isConnectionLost } from '../../src/store/db.js';
import { openDb } from '../../src/store/open.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';

const rejection = (promise: Promise<unknown>) => promise.then(() => undefined, (error: unknown) => error);
const withCode = (code: string, message = 'x') => Object.assign(new Error(message), { code });

describe(`isConnectionLost on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  beforeAll(async () => {
    t = await createTestDb();
  });
  afterAll(async () => t.cleanup());

  it('statement errors from the engine are not a lost connection', async () => {
    const errors = [
      await rejection(t.db.query('SELEC 1')),
      await rejection(t.db.query('SELECT * FROM no_such_table')),
      await rejection(t.db.query('SELECT 1 / 0')),
      await rejection(t.db.query("SELECT 'a'::int")),
      await rejection(t.db.transaction(async (tx) => tx.query('SELECT $1::int', ['2147483648']))),
    ];
    for (const error of errors) {
      expect(error).toBeInstanceOf(Error);
      expect(isConnectionLost(error)).toBe(false);
    }
  });

  it('a server that refuses the connection is a lost connection', async () => {
    const port = await freePort();
    const error = await rejection(openDb({ databaseUrl: `postgres://postgres@127.0.0.1:${port}/nothing` }));
    expect(error).toBeInstanceOf(Error);
    expect(isConnectionLost(error)).toBe(true);
  });

  it('knows the SQLSTATEs, socket codes and driver messages of a dead session, through causes and aggregates', () => {
    for (const code of ['08000', '08003', '08006', '08001', '57P01', '57P02', '57P03', '53300', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE']) {
      expect([code, isConnectionLost(withCode(code))]).toEqual([code, true]);
    }
    for (const code of ['23505', '40001', '57014', '42P01', '22003', '25P02', 'ENOENT']) {
      expect([code, isConnectionLost(withCode(code))]).toEqual([code, false]);
    }
    expect(isConnectionLost(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(isConnectionLost(new Error('Client has encountered a connection error and is not queryable'))).toBe(true);
    expect(isConnectionLost(new Error('bad input: Connection terminated'))).toBe(false);
    expect(isConnectionLost(new Error('wrapped', { cause: withCode('57P01') }))).toBe(true);
    expect(isConnectionLost(new AggregateError([withCode('ECONNREFUSED'), withCode('ECONNREFUSED')]))).toBe(true);
    expect(isConnectionLost(new ConnectionLostError(new Error('Connection terminated unexpectedly'), new Error('mine')))).toBe(true);
    expect([undefined, null, 'Connection terminated', 42].map((v) => isConnectionLost(v))).toEqual([false, false, false, false]);
  });
});
