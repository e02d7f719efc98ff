import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningOperator } from '../../src/operator/server.js';
import type { Db } from '../../src/store/db.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { ApiClient, startTestOperator } from '../support/operator.js';

/** The real database, except that listing policies fails the way a bug or a broken query would. */
function failingPolicyList(db: Db, armed: () => boolean): Db {
  const failing = (inner: Db): Db => ({
    engine: inner.engine,
    async query(text, values) {
      if (armed() && text.includes('ORDER BY name') && text.includes('policies')) {
        throw Object.assign(new Error('relation "policies" is broken'), { code: 'XX001', detail: 'a detail only the log should hold' });
      }
      return inner.query(text, values);
    },
    transaction: (work) => inner.transaction((tx) => work(failing(tx))),
    close: () => inner.close(),
  });
  return failing(db);
}

describe(`an unknown throw in a route on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let op: RunningOperator;
  let api: ApiClient;
  let armed = false;
  const lines: Record<string, unknown>[] = [];
  beforeAll(async () => {
    t = await createTestDb();
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        done();
      },
    });
    op = await startTestOperator(failingPolicyList(t.db, () => armed), { log: pino({ level: 'error' }, sink) });
    api = new ApiClient(op.url);
  });
  afterAll(async () => {
    await op?.close();
    await t?.cleanup();
  });

  it('answers 500 INTERNAL without the cause, and logs the original error as the cause', async () => {
    armed = true;
    const response = await api.get('/api/v1/policies');
    armed = false;
    expect(response.status).toBe(500);
    expect(response.text).toBe('{"error":{"code":"INTERNAL","message":"the operator failed to handle this request; see its log","details":{}}}');
    const line = lines.find((l) => l.msg === 'request failed');
    const err = line?.err as { message: string; stack: string } | undefined;
    expect(err?.message).toContain('relation "policies" is broken');
    expect(err?.stack).toMatch(/caused by: Error: relation "policies" is broken/);
    expect(line?.cause).toMatchObject({ code: 'XX001', detail: 'a detail only the log should hold' });
    expect(line?.url).toBe('/api/v1/policies');
  });
});
