import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appliedMigrations, migrateUp, migrationStatus, schemaAssessment } from '../../src/store/migrator.js';
import { MIGRATIONS, type Migration } from '../../src/store/migrations/index.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';

describe(`migrator on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  beforeAll(async () => {
    t = await createTestDb({ migrated: false });
  });
  afterAll(async () => t.cleanup());

  it('reports an empty database as behind, then applies every pre migration once', async () => {
    expect((await schemaAssessment(t.db)).ready).toBe(false);
    expect((await schemaAssessment(t.db)).reason).toMatch(/behind/);
    const applied = await migrateUp(t.db);
    expect(applied.map((m) => m.version)).toEqual(MIGRATIONS.filter((m) => m.phase === 'pre').map((m) => m.version));
    expect(await migrateUp(t.db)).toEqual([]);
    const rows = await appliedMigrations(t.db);
    // Each recorded once, in order, under the name and phase of its file.
    expect(rows.map((r) => [r.version, r.name, r.phase])).toEqual(MIGRATIONS.filter((m) => m.phase === 'pre').map((m) => [m.version, m.name, 'pre']));
    expect(rows.slice(0, 4).map((r) => r.name)).toEqual(['fleet', 'artifacts', 'rollouts', 'node_credentials']);
    expect((await schemaAssessment(t.db)).ready).toBe(true);
  });

  it('applies post migrations only when asked, and concurrent runs apply each once', async () => {
    const post: Migration = { version: 9001, name: 'contract_test', phase: 'post', sql: 'CREATE TABLE contract_probe (id int); CREATE INDEX contract_probe_id ON contract_probe (id)' };
    const known = [...MIGRATIONS, post];
    expect(await migrateUp(t.db, { phase: 'pre' }, known)).toEqual([]);
    const results = await Promise.all([migrateUp(t.db, { phase: 'post' }, known), migrateUp(t.db, { phase: 'post' }, known)]);
    expect(results.flat().map((m) => m.version)).toEqual([9001]);
    const status = await migrationStatus(t.db, known);
    expect(status.find((s) => s.version === 9001)?.applied_at).not.toBeNull();
  });

  it('is not ready when a contract migration this binary does not know was applied', async () => {
    // The database now holds 9001 (post), which the shipped binary does not know.
    const assessment = await schemaAssessment(t.db, MIGRATIONS);
    expect(assessment.ready).toBe(false);
    expect(assessment.reason).toMatch(/ahead/);
    const status = await migrationStatus(t.db, MIGRATIONS);
    expect(status.find((s) => s.version === 9001)?.known).toBe(false);
  });
});
