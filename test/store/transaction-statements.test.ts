// A transaction is one session: statements its work asks for side by side (Promise.all, as the
// plan's reads do inside create and approve) run one at a time in the order they were asked,
// without leaning on node-postgres's deprecated queue of a busy client.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';

describe(`statements asked side by side in a transaction on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  const warnings: string[] = [];
  const onWarning = (warning: Error) => warnings.push(warning.message);

  beforeAll(async () => {
    t = await createTestDb();
    await t.db.query('CREATE TABLE side_by_side (k int PRIMARY KEY)');
    process.on('warning', onWarning);
  });
  afterAll(async () => {
    process.off('warning', onWarning);
    await t?.cleanup();
  });

  it('run in the order asked, each answered its own rows, and a failing one fails only itself and the transaction', async () => {
    const answers = await t.db.transaction((tx) =>
      Promise.all([
        tx.query('INSERT INTO side_by_side VALUES (1), (2)'),
        tx.query<{ n: number }>('SELECT count(*)::int AS n FROM side_by_side'),
        tx.query('INSERT INTO side_by_side VALUES (3)'),
        tx.query<{ k: number }>('SELECT k FROM side_by_side ORDER BY k'),
      ]),
    );
    expect(answers[1]).toEqual([{ n: 2 }]);
    expect(answers[3]).toEqual([{ k: 1 }, { k: 2 }, { k: 3 }]);

    const failed = t.db.transaction(async (tx) => {
      const [a, b] = await Promise.allSettled([tx.query('INSERT INTO side_by_side VALUES (4)'), tx.query('INSERT INTO side_by_side VALUES (1)')]);
      expect(a.status).toBe('fulfilled');
      expect(b.status).toBe('rejected');
      throw new Error('roll back');
    });
    await expect(failed).rejects.toThrow('roll back');
    expect(await t.db.query('SELECT k FROM side_by_side ORDER BY k')).toEqual([{ k: 1 }, { k: 2 }, { k: 3 }]);
    expect(warnings.filter((w) => w.includes('already executing'))).toEqual([]);
  });
});
