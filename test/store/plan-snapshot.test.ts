// The instances as a dry run reads them (plan-snapshot.ts): all of them, or only the rows written
// since an earlier read's cursor, with the count that reveals deletions. Also against a server's
// concurrent sessions: a transaction still open when a cursor was taken is read once it commits.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertDeployment } from '../../src/store/deployments.js';
import { insertInstances } from '../../src/store/instances.js';
import { migrateUp } from '../../src/store/migrator.js';
import { registerNode } from '../../src/store/nodes.js';
import { openDb } from '../../src/store/open.js';
import { loadPlanSnapshot } from '../../src/store/plan-snapshot.js';
import type { Db } from '../../src/store/db.js';
import { ADMIN_URL, createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { createServerDb, type ServerDb } from '../support/server-db.js';
import { registerRequest, WORKLOAD } from '../support/store-fixtures.js';

const ids = (text: string) => (JSON.parse(text) as unknown[][]).map((r) => r[0]);

async function fleet(db: Db): Promise<string> {
  const node = (await registerNode(db, registerRequest('ps-a'), 'ps-a-id')).id;
  await insertDeployment(db, 'dep-ps', { name: 'ps', replicas: 4, min_available: 0, workload: WORKLOAD });
  await insertInstances(db, ['ps-b', 'ps-a', 'ps-C', 'ps-d'].map((id) => ({ id, deploymentId: 'dep-ps', nodeId: node, replaces: null })));
  return node;
}

describe(`the instances a dry run reads on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let node: string;

  beforeAll(async () => {
    t = await createTestDb();
    node = await fleet(t.db);
  });
  afterAll(async () => t?.cleanup());

  it('reads every instance by id in byte order, with the count, the database clock and a cursor', async () => {
    const before = Date.now();
    const { instances } = await loadPlanSnapshot(t.db, 'tool');
    expect(instances).toMatchObject({ complete: true, count: 4 });
    expect(ids(instances.rows)).toEqual(['ps-C', 'ps-a', 'ps-b', 'ps-d']);
    expect(Math.abs(instances.now - before)).toBeLessThan(60_000);
    expect(instances.cursor).toMatch(/^[0-9]+:[0-9]+:/);
  });

  it('since a cursor: only the rows inserted or updated after it, and a count that shows deletions', async () => {
    const first = (await loadPlanSnapshot(t.db, 'tool')).instances;
    const unchanged = (await loadPlanSnapshot(t.db, 'tool', [], { since: first.cursor })).instances;
    expect(unchanged).toMatchObject({ complete: false, count: 4 });
    expect(ids(unchanged.rows)).toEqual([]);

    await t.db.query(`UPDATE instances SET status = 'running' WHERE id = 'ps-b'`);
    await insertInstances(t.db, [{ id: 'ps-e', deploymentId: 'dep-ps', nodeId: node, replaces: null }]);
    const changed = (await loadPlanSnapshot(t.db, 'tool', [], { since: unchanged.cursor })).instances;
    expect(changed).toMatchObject({ complete: false, count: 5 });
    expect(ids(changed.rows)).toEqual(['ps-b', 'ps-e']);
    expect((JSON.parse(changed.rows) as unknown[][])[0]?.[4]).toBe('running');

    await t.db.query(`DELETE FROM instances WHERE id = 'ps-a'`);
    const deleted = (await loadPlanSnapshot(t.db, 'tool', [], { since: changed.cursor })).instances;
    expect(deleted).toMatchObject({ complete: false, count: 4 });
    expect(ids(deleted.rows)).toEqual([]);
    expect(deleted.ids).toBeUndefined();
    // Asked for, every id there is comes along, from the same snapshot as the count.
    const withIds = (await loadPlanSnapshot(t.db, 'tool', [], { since: changed.cursor, withIds: true })).instances;
    expect(withIds).toMatchObject({ complete: false, count: 4 });
    expect(JSON.parse(withIds.ids ?? 'null')).toEqual(['ps-C', 'ps-b', 'ps-d', 'ps-e']);
    // Told how many a kept copy holds: fewer in the database bring the ids without asking.
    const fewer = (await loadPlanSnapshot(t.db, 'tool', [], { since: changed.cursor, kept: 5 })).instances;
    expect(JSON.parse(fewer.ids ?? 'null')).toEqual(['ps-C', 'ps-b', 'ps-d', 'ps-e']);
    expect((await loadPlanSnapshot(t.db, 'tool', [], { since: changed.cursor, kept: 4 })).instances.ids).toBeUndefined();
    // A complete read never needs them.
    expect((await loadPlanSnapshot(t.db, 'tool', [], { withIds: true, kept: 9 })).instances.ids).toBeUndefined();
  });

  it('reads everything again from a cursor ahead of the database (another cluster, a restored backup)', async () => {
    const { instances } = await loadPlanSnapshot(t.db, 'tool', [], { since: '4000000000:4000000000:' });
    expect(instances.complete).toBe(true);
    expect(ids(instances.rows)).toHaveLength(instances.count);
  });

  it('refuses a cursor that is not a snapshot', async () => {
    for (const since of ['x:1:', '1:2', "1:2:'; DROP TABLE instances; --"]) await expect(loadPlanSnapshot(t.db, 'tool', [], { since })).rejects.toThrow(/not a pg_snapshot cursor/);
  });
});

describe('the instances a dry run reads, beside another session on the Postgres server', () => {
  let server: ServerDb;
  let db: Db;

  beforeAll(async () => {
    server = await createServerDb('drydock_ps');
    db = await openDb({ databaseUrl: server.url });
    await migrateUp(db);
    await fleet(db);
  });
  afterAll(async () => {
    await db?.close();
    await server?.drop();
  });

  it('reads a row written by a transaction that was open when the cursor was taken and committed after', async () => {
    const other = new pg.Client({ connectionString: server.url });
    await other.connect();
    try {
      await other.query('BEGIN');
      await other.query(`UPDATE instances SET status = 'stopped' WHERE id = 'ps-d'`);
      // A later transaction commits first: the snapshot's xmax passes the open one, its xmin does not.
      await db.query(`UPDATE instances SET status = 'running' WHERE id = 'ps-a'`);
      const taken = (await loadPlanSnapshot(db, 'tool')).instances;
      expect((JSON.parse(taken.rows) as unknown[][]).find((r) => r[0] === 'ps-d')?.[4]).toBe('pending');
      await other.query('COMMIT');
      const after = (await loadPlanSnapshot(db, 'tool', [], { since: taken.cursor })).instances;
      expect(after.complete).toBe(false);
      expect(taken.cursor.split(':')[0]).not.toBe(taken.cursor.split(':')[1]);
      expect((JSON.parse(after.rows) as unknown[][]).find((r) => r[0] === 'ps-d')?.[4]).toBe('stopped');
    } finally {
      await other.end();
    }
  });

  it('reads only what changed even while another database’s transaction holds every snapshot’s xmin back', async () => {
    // xids are the cluster's: a transaction open in another database (a backup, a stuck session)
    // makes every snapshot's xmin its xid, while rows written meanwhile are already visible.
    const elsewhere = new pg.Client({ connectionString: ADMIN_URL });
    await elsewhere.connect();
    try {
      await elsewhere.query('BEGIN');
      await elsewhere.query('SELECT pg_current_xact_id()');
      await db.query(`UPDATE instances SET status = 'running' WHERE id = 'ps-b'`);
      const taken = (await loadPlanSnapshot(db, 'tool')).instances;
      await db.query(`UPDATE instances SET status = 'running' WHERE id = 'ps-C'`);
      const after = (await loadPlanSnapshot(db, 'tool', [], { since: taken.cursor })).instances;
      expect(after.complete).toBe(false);
      expect(ids(after.rows)).toEqual(['ps-C']);
    } finally {
      await elsewhere.query('ROLLBACK');
      await elsewhere.end();
    }
  });
});
