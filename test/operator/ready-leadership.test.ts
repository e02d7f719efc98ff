// A replica that is not ready never leads, and its /health never says "healthy" (issue 8, item
// 11; DESIGN.md §8.10). "Not ready" here is the real case: a contract (`post`) migration this
// binary does not know was applied by a newer one, so the schema is ahead of it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningOperator } from '../../src/operator/server.js';
import type { Db } from '../../src/store/db.js';
import { assertTerm, StaleTermError } from '../../src/store/leases.js';
import { migrateUp } from '../../src/store/migrator.js';
import { MIGRATIONS, type Migration } from '../../src/store/migrations/index.js';
import { openDb } from '../../src/store/open.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { ApiClient, startTestOperator, waitFor } from '../support/operator.js';
import { createServerDb, type ServerDb } from '../support/server-db.js';

/** A contract migration from a newer drydock: this binary's MIGRATIONS do not have it. */
const FUTURE: Migration = { version: 9999, name: 'from_the_future', phase: 'post', sql: 'SELECT 1' };
const applyFuture = (db: Db) => db.query('INSERT INTO schema_migrations (version, name, phase) VALUES ($1, $2, $3)', [FUTURE.version, FUTURE.name, FUTURE.phase]);
const removeFuture = (db: Db) => db.query('DELETE FROM schema_migrations WHERE version = $1', [FUTURE.version]);
/** Renewals every 500 ms, so stepping down and taking over are quick to see. */
const LEASE_TTL_MS = 2_000;

interface HealthBody {
  status: string;
  ready: boolean;
  leader: boolean;
  reason: string;
}

async function leaseRow(db: Db) {
  const rows = await db.query<{ holder: string; term: string; live: boolean }>(
    `SELECT holder, term, expires_at > now() AS live FROM leases WHERE name = 'reconciler'`,
  );
  const row = rows[0];
  return row ? { holder: row.holder, term: Number(row.term), live: row.live } : undefined;
}

/** Lets `op`'s lease loop renew `count` more times, so "it did not take the lease" means something. */
async function renewalsPass(op: RunningOperator, count: number): Promise<void> {
  const target = op.ctx.lease.renewals + count;
  await waitFor(`${count} more lease renewals`, async () => op.ctx.lease.renewals >= target);
}

/** /health of a replica that is not ready: 200, degraded, not the leader, and no "healthy" anywhere. */
async function expectDegraded(api: ApiClient): Promise<HealthBody> {
  const response = await api.get<HealthBody>('/health');
  expect(response.status).toBe(200);
  expect(response.body).toMatchObject({ status: 'degraded', ready: false, leader: false });
  expect(response.body.reason).toMatch(/ahead/);
  expect(response.text).not.toMatch(/healthy/i);
  return response.body;
}

describe(`a replica whose schema is ahead of it on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let op: RunningOperator;
  let api: ApiClient;
  beforeAll(async () => {
    t = await createTestDb();
    op = await startTestOperator(t.db, { leaseTtlMs: LEASE_TTL_MS });
    api = new ApiClient(op.url);
  });
  afterAll(async () => {
    await op?.close();
    await removeFuture(t.db).catch(() => {});
    await t?.cleanup();
  });

  it('gives up the lease, stops reconciling, says degraded on /health and 503 on /health/ready; ready again, it leads again', async () => {
    const healthy = await api.get<HealthBody>('/health');
    expect(healthy.body).toMatchObject({ status: 'healthy', ready: true, leader: true });
    const before = await leaseRow(t.db);
    expect(before).toMatchObject({ holder: op.ctx.lease.holder, live: true });

    await applyFuture(t.db);
    try {
      const ready = await api.get<{ status: string; reason: string; ahead: { version: number }[] }>('/health/ready');
      expect(ready.status).toBe(503);
      expect(ready.body).toMatchObject({ status: 'not_ready', ahead: [{ version: FUTURE.version }] });

      await waitFor('/health to say degraded', async () => (await api.get<HealthBody>('/health')).body.status === 'degraded');
      await expectDegraded(api);
      // Stepped down at once: the row is expired (not left to run out its TTL) and no term is held.
      expect(await leaseRow(t.db)).toEqual({ holder: op.ctx.lease.holder, term: before?.term, live: false });
      expect(op.ctx.lease.term).toBeNull();

      // And it does not take the lease back while not ready, nor run a reconcile pass.
      const passes = op.ctx.reconciler.passes;
      const ticks = op.ctx.rollouts.ticks;
      await renewalsPass(op, 3);
      expect(await leaseRow(t.db)).toMatchObject({ holder: op.ctx.lease.holder, live: false });
      expect(op.ctx.lease.term).toBeNull();
      expect([op.ctx.reconciler.passes, op.ctx.rollouts.ticks]).toEqual([passes, ticks]);
      await expectDegraded(api);
    } finally {
      await removeFuture(t.db);
    }

    expect((await api.get<{ status: string }>('/health/ready')).status).toBe(200);
    await waitFor('/health to say healthy and leading again', async () => {
      const body = (await api.get<HealthBody>('/health')).body;
      return body.status === 'healthy' && body.leader;
    });
    const after = await leaseRow(t.db);
    // A new term: whatever the old one decided cannot be written any more.
    expect(after).toMatchObject({ holder: op.ctx.lease.holder, live: true });
    expect(after?.term).toBeGreaterThan(before?.term as number);
    expect(op.ctx.lease.term).toBe(after?.term);
  });
});

describe('two replicas on one Postgres server: the ready one leads', () => {
  let server: ServerDb;
  const dbs: Db[] = [];
  const ops = new Map<string, RunningOperator>();
  let admin: Db;

  const start = async (name: string, knownMigrations: readonly Migration[]) => {
    const db = await openDb({ databaseUrl: server.url, poolSize: 4 });
    dbs.push(db);
    const op = await startTestOperator(db, { leaseTtlMs: LEASE_TTL_MS, knownMigrations });
    ops.set(name, op);
    return { op, api: new ApiClient(op.url) };
  };

  beforeAll(async () => {
    server = await createServerDb('drydock_ready_lead');
    admin = await openDb({ databaseUrl: server.url, poolSize: 2 });
    await migrateUp(admin);
  });
  afterAll(async () => {
    for (const op of ops.values()) await op.close();
    for (const db of dbs) await db.close();
    await admin?.close();
    await server?.drop();
  });

  it('the leader whose schema goes ahead of it hands over to the newer replica; alone and not ready it never leads; ready again it does', async () => {
    const old = await start('old', MIGRATIONS);
    await waitFor('the old replica to lead', async () => (await leaseRow(admin))?.holder === old.op.ctx.lease.holder);
    const newer = await start('newer', [...MIGRATIONS, FUTURE]);
    await renewalsPass(newer.op, 2);
    expect(newer.op.ctx.lease.term).toBeNull();
    const oldTerm = old.op.ctx.lease.term as number;
    expect(oldTerm).toBe((await leaseRow(admin))?.term);

    // The newer binary's contract migration lands: the old replica is no longer ready.
    await applyFuture(admin);
    const handed = await waitFor('the newer replica to take the lease', async () => {
      const row = await leaseRow(admin);
      return row?.holder === newer.op.ctx.lease.holder && row.live ? row : undefined;
    });
    expect(handed.term).toBeGreaterThan(oldTerm);
    expect(newer.op.ctx.lease.term).toBe(handed.term);
    expect(old.op.ctx.lease.term).toBeNull();
    // The deposed term is fenced off: a write the old leader had decided is refused.
    await expect(admin.transaction((tx) => assertTerm(tx, 'reconciler', old.op.ctx.lease.holder, oldTerm))).rejects.toBeInstanceOf(StaleTermError);
    await expectDegraded(old.api);
    expect((await old.api.get('/health/ready')).status).toBe(503);
    expect((await newer.api.get<HealthBody>('/health')).body).toMatchObject({ status: 'healthy', ready: true, leader: true });
    expect((await newer.api.get('/health/ready')).status).toBe(200);

    // The ready replica goes away (its clean stop releases the lease): the one left is not
    // ready, so nobody leads rather than a replica that cannot read the schema.
    await newer.op.close();
    ops.delete('newer');
    await renewalsPass(old.op, 3);
    expect(await leaseRow(admin)).toMatchObject({ holder: newer.op.ctx.lease.holder, term: handed.term, live: false });
    expect(old.op.ctx.lease.term).toBeNull();
    await expectDegraded(old.api);

    // Compatible again (the contract migration is gone): the old replica may lead again.
    await removeFuture(admin);
    const back = await waitFor('the old replica to lead again', async () => {
      const row = await leaseRow(admin);
      return row?.holder === old.op.ctx.lease.holder && row.live ? row : undefined;
    });
    expect(back.term).toBeGreaterThan(handed.term);
    await waitFor('/health to say healthy', async () => (await old.api.get<HealthBody>('/health')).body.status === 'healthy');
    expect((await old.api.get<HealthBody>('/health')).body).toMatchObject({ ready: true, leader: true });
  });
});
