// A control-plane rollout's expand runs only if every running replica's build declares it
// tolerates a newer build's expand migrations (issue 11, item 4), on both engines.
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { replicasBlockingExpand } from '../../src/domain/schema-compat.js';
import { SchemaStepRunner } from '../../src/operator/schema-steps.js';
import type { RunningOperator } from '../../src/operator/server.js';
import { markReplicaStopped, upsertReplica } from '../../src/store/operator-replicas.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { startTestOperator } from '../support/operator.js';

describe(`expand tolerance of running replicas on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let op: RunningOperator;

  beforeAll(async () => {
    t = await createTestDb();
    op = await startTestOperator(t.db);
  });
  afterAll(async () => {
    await op?.close();
    await t?.cleanup();
  });

  it('lists only live replicas that declare they do not tolerate it', () => {
    const base = { hostname: 'h', region: 'r', version: '1.0.0', knows_schema_version: 16 };
    expect(replicasBlockingExpand([{ ...base, live: true }, { ...base, live: true, tolerates_expand: true }, { ...base, live: false, tolerates_expand: false }])).toEqual([]);
    expect(replicasBlockingExpand([{ ...base, hostname: 'old', live: true, tolerates_expand: false }]).map((r) => r.hostname)).toEqual(['old']);
  });

  it('refuses the expand while an intolerant replica runs, naming it; goes past the check once it stopped', async () => {
    const runner = new SchemaStepRunner(t.db, { databaseUrl: undefined, trustedKeys: [], allowUnsigned: false, log: pino({ level: 'silent' }) });
    // This operator registered itself as a build that tolerates expands.
    expect((await t.db.query<{ tolerates_expand: boolean }>('SELECT tolerates_expand FROM operator_replicas'))[0]?.tolerates_expand).toBe(true);
    await upsertReplica(t.db, {
      id: 'legacy-1', hostname: 'cp-legacy', region: 'eu-west', url: 'http://127.0.0.1:1', version: '0.9.0', knowsSchemaVersion: 12,
      toleratesExpand: false, ready: true, reason: 'schema compatible', leader: false, startedAt: new Date(),
    });
    const refused = await runner.run('operator', '2.0.0', 'pre');
    expect(refused).toEqual({ ok: false, reason: expect.stringMatching(/^not expanding: 1 running replica\(s\) do not tolerate .*cp-legacy \(eu-west, 0\.9\.0\)/) });
    // A contract is judged by the target build itself (it knows the contract), not by this check.
    expect((await runner.run('operator', '2.0.0', 'post')).ok).toBe(false);
    expect(JSON.stringify(await runner.run('operator', '2.0.0', 'post'))).not.toMatch(/not expanding/);
    await markReplicaStopped(t.db, 'legacy-1');
    const next = await runner.run('operator', '2.0.0', 'pre');
    expect(next.ok).toBe(false);
    expect(JSON.stringify(next)).not.toMatch(/not expanding/);
  });
});
