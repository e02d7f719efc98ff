import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendEvents } from '../../src/store/events.js';
import { acquireLease, assertTerm, currentLease, releaseLease, StaleTermError } from '../../src/store/leases.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe(`store/leases on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  beforeAll(async () => {
    t = await createTestDb();
  });
  afterAll(async () => t.cleanup());

  const eventCount = async (kind: string) =>
    (await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM events WHERE kind = $1', [kind]))[0]?.n;

  it('takes a free lease at term 1 and renews it under the same term, pushing the expiry out', async () => {
    expect(await acquireLease(t.db, 'renew', 'alpha', 5_000)).toBe(1);
    const first = await currentLease(t.db, 'renew');
    expect(first).toMatchObject({ holder: 'alpha', term: 1 });
    await sleep(20);
    expect(await acquireLease(t.db, 'renew', 'alpha', 5_000)).toBe(1);
    expect(await acquireLease(t.db, 'renew', 'alpha', 5_000)).toBe(1);
    const renewed = await currentLease(t.db, 'renew');
    expect(renewed).toMatchObject({ holder: 'alpha', term: 1 });
    expect(new Date(renewed!.expires_at).getTime()).toBeGreaterThan(new Date(first!.expires_at).getTime());
  });

  it('refuses another holder while the lease is live and leaves the row as it was', async () => {
    expect(await acquireLease(t.db, 'live', 'alpha', 10_000)).toBe(1);
    const before = await currentLease(t.db, 'live');
    expect(await acquireLease(t.db, 'live', 'beta', 10_000)).toBeNull();
    expect(await currentLease(t.db, 'live')).toEqual(before);
    // The holder still holds it, under the same term.
    await t.db.transaction((tx) => assertTerm(tx, 'live', 'alpha', 1));
    await expect(t.db.transaction((tx) => assertTerm(tx, 'live', 'beta', 1))).rejects.toBeInstanceOf(StaleTermError);
  });

  it('hands an expired lease to whoever asks with a higher term; the old holder gets a higher term too', async () => {
    expect(await acquireLease(t.db, 'expiry', 'alpha', 150)).toBe(1);
    await sleep(300);
    expect(await acquireLease(t.db, 'expiry', 'beta', 150)).toBe(2);
    expect(await currentLease(t.db, 'expiry')).toMatchObject({ holder: 'beta', term: 2 });
    await sleep(300);
    // Even the same holder coming back after expiry starts a new term: its old term is fenced off.
    expect(await acquireLease(t.db, 'expiry', 'beta', 10_000)).toBe(3);
    expect(await acquireLease(t.db, 'expiry', 'alpha', 10_000)).toBeNull();
  });

  it('a released lease goes to the next holder at once, with the term increased', async () => {
    expect(await acquireLease(t.db, 'release', 'alpha', 60_000)).toBe(1);
    await releaseLease(t.db, 'release', 'alpha');
    expect(await acquireLease(t.db, 'release', 'beta', 60_000)).toBe(2);
    // Releasing someone else's lease does nothing.
    await releaseLease(t.db, 'release', 'alpha');
    expect(await acquireLease(t.db, 'release', 'gamma', 60_000)).toBeNull();
  });

  it('assertTerm with a stale term throws StaleTermError and nothing of that transaction is written', async () => {
    expect(await acquireLease(t.db, 'fence', 'alpha', 150)).toBe(1);
    await sleep(300);
    expect(await acquireLease(t.db, 'fence', 'beta', 10_000)).toBe(2);

    // The deposed leader: checks its term first, as every reconciler transaction does.
    const deposed = t.db.transaction(async (tx) => {
      await assertTerm(tx, 'fence', 'alpha', 1);
      await appendEvents(tx, [{ kind: 'test.deposed_write', actor: 'alpha' }]);
    });
    await expect(deposed).rejects.toBeInstanceOf(StaleTermError);
    await expect(deposed).rejects.toMatchObject({ lease: 'fence', term: 1 });

    // A write made before the check in the same transaction is rolled back with it.
    await expect(
      t.db.transaction(async (tx) => {
        await appendEvents(tx, [{ kind: 'test.deposed_write', actor: 'alpha' }]);
        await assertTerm(tx, 'fence', 'alpha', 1);
      }),
    ).rejects.toBeInstanceOf(StaleTermError);
    // The right holder with an old term is refused too.
    await expect(t.db.transaction((tx) => assertTerm(tx, 'fence', 'beta', 1))).rejects.toBeInstanceOf(StaleTermError);
    expect(await eventCount('test.deposed_write')).toBe(0);

    // The current leader's write goes through.
    await t.db.transaction(async (tx) => {
      await assertTerm(tx, 'fence', 'beta', 2);
      await appendEvents(tx, [{ kind: 'test.leader_write', actor: 'beta' }]);
    });
    expect(await eventCount('test.leader_write')).toBe(1);
  });

  it('assertTerm refuses the current term once the lease has expired', async () => {
    expect(await acquireLease(t.db, 'lapsed', 'alpha', 150)).toBe(1);
    await sleep(300);
    await expect(t.db.transaction((tx) => assertTerm(tx, 'lapsed', 'alpha', 1))).rejects.toBeInstanceOf(StaleTermError);
  });
});
