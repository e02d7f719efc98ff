// The control plane as a fleet (issue 11, item 1; DESIGN.md §11): every replica registers and
// refreshes its row; GET /api/v1/operators shows versions, readiness and leadership of all of
// them; a replica that stops says so, and one that goes silent ages out of "live".
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningOperator } from '../../src/operator/server.js';
import type { ReplicaView } from '../../src/store/operator-replicas.js';
import { MIGRATIONS } from '../../src/store/migrations/index.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { ApiClient, startTestOperator, waitFor } from '../support/operator.js';

describe(`operator replica registry on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let a: RunningOperator;
  let b: RunningOperator | undefined;
  let api: ApiClient;
  const replicas = () => api.ok<ReplicaView[]>('/api/v1/operators');

  beforeAll(async () => {
    t = await createTestDb();
    a = await startTestOperator(t.db, { region: 'eu-west', hostname: 'cp-a', leaseTtlMs: 2_000 });
    api = new ApiClient(a.url);
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
    await t?.cleanup();
  });

  it('lists every replica with its region, version, schema, readiness and the one leader', async () => {
    b = await startTestOperator(t.db, { region: 'eu-west', hostname: 'cp-b', version: '2.0.0-test', leaseTtlMs: 2_000 });
    const rows = await waitFor('both replicas registered and ready', async () => {
      const list = await replicas();
      return list.filter((r) => r.live && r.ready).length === 2 && list;
    });
    const newest = Math.max(...MIGRATIONS.map((m) => m.version));
    expect(rows.map((r) => r.hostname).sort()).toEqual(['cp-a', 'cp-b']);
    for (const r of rows) {
      expect(r).toMatchObject({ region: 'eu-west', live: true, ready: true, knows_schema_version: newest, database_schema_version: newest, stopped_at: null });
      expect(r.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    }
    expect(rows.find((r) => r.hostname === 'cp-b')?.version).toBe('2.0.0-test');
    expect(rows.filter((r) => r.leader)).toHaveLength(1);
    // Every replica answers with the same registry.
    expect((await new ApiClient(b.url).ok<ReplicaView[]>('/api/v1/operators')).map((r) => r.id).sort()).toEqual(rows.map((r) => r.id).sort());
  });

  it('a replica that stops says so; the other takes the lead and the registry shows it', async () => {
    const before = await replicas();
    const leader = before.find((r) => r.leader) as ReplicaView;
    const stopping = leader.hostname === 'cp-b' ? (b as RunningOperator) : a;
    const staying = stopping === a ? (b as RunningOperator) : a;
    await stopping.close();
    if (stopping === b) b = undefined;
    else a = staying; // keep the one still running for afterAll
    const viaStaying = new ApiClient(staying.url);
    const rows = await waitFor('the other replica to lead', async () => {
      const list = await viaStaying.ok<ReplicaView[]>('/api/v1/operators');
      return list.some((r) => r.leader && r.id !== leader.id) && list;
    });
    expect(rows.find((r) => r.id === leader.id)).toMatchObject({ live: false, ready: false, leader: false, reason: 'stopped' });
    expect(rows.find((r) => r.id === leader.id)?.stopped_at).not.toBeNull();
    api = viaStaying;
  });

  it('a replica silent longer than the stale bound is neither live, ready nor leader, whatever its row last said', async () => {
    await t.db.query(
      `INSERT INTO operator_replicas (id, hostname, region, url, version, knows_schema_version, ready, reason, leader, started_at, last_seen_at)
       VALUES ('crashed-1', 'cp-c', 'eu-west', 'http://127.0.0.1:1', '1.0.0', 1, true, 'ready', true, now() - interval '1 hour', now() - interval '30 seconds')`,
    );
    const crashed = (await replicas()).find((r) => r.id === 'crashed-1');
    expect(crashed).toMatchObject({ live: false, ready: false, leader: false });
    expect(crashed?.reason).toMatch(/^not seen since /);
    expect(crashed?.seen_ago_ms).toBeGreaterThan(29_000);
  });
});
