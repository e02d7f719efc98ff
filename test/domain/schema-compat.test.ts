import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { assessSchema, replicasBlockingContract, type SchemaMigrationRef } from '../../src/domain/schema-compat.js';

const pre = (version: number, name = `m${version}`): SchemaMigrationRef => ({ version, name, phase: 'pre' });
const post = (version: number, name = `m${version}`): SchemaMigrationRef => ({ version, name, phase: 'post' });

describe('assessSchema', () => {
  it('is ready when every known pre migration is applied', () => {
    const known = [pre(1, 'fleet'), pre(2, 'rollouts')];
    expect(assessSchema(known, known)).toEqual({ ready: true, reason: 'schema compatible', behind: [], ahead: [] });
  });

  it('is behind when a known pre migration is missing, and names it', () => {
    const result = assessSchema([pre(1, 'fleet'), pre(2, 'rollouts')], [pre(1, 'fleet')]);
    expect(result.ready).toBe(false);
    expect(result.behind).toEqual([pre(2, 'rollouts')]);
    expect(result.ahead).toEqual([]);
    expect(result.reason).toMatch(/behind/);
    expect(result.reason).toContain('2 rollouts');
    expect(result.reason).toContain('drydock migrate up');
  });

  it('is ready against an empty database with no known migrations, and behind with some', () => {
    expect(assessSchema([], []).ready).toBe(true);
    expect(assessSchema([pre(1)], []).behind).toEqual([pre(1)]);
  });

  it('accepts unknown pre migrations: a newer binary only expanded the schema', () => {
    const result = assessSchema([pre(1)], [pre(1), pre(2, 'newer_expand')]);
    expect(result).toEqual({ ready: true, reason: 'schema compatible', behind: [], ahead: [] });
  });

  it('does not need known post migrations to be applied yet (they run after the rollout)', () => {
    const result = assessSchema([pre(1), post(2, 'contract')], [pre(1)]);
    expect(result.ready).toBe(true);
    expect(result.behind).toEqual([]);
  });

  it('accepts known post migrations that were applied', () => {
    expect(assessSchema([pre(1), post(2)], [pre(1), post(2)]).ready).toBe(true);
  });

  it('refuses unknown post migrations: a newer binary contracted the schema', () => {
    const result = assessSchema([pre(1)], [pre(1), post(3, 'drop_old_column')]);
    expect(result.ready).toBe(false);
    expect(result.ahead).toEqual([post(3, 'drop_old_column')]);
    expect(result.behind).toEqual([]);
    expect(result.reason).toMatch(/ahead/);
    expect(result.reason).toContain('3 drop_old_column');
  });

  it('reports both lists when the schema is behind and ahead at once, leading with behind', () => {
    const result = assessSchema([pre(1), pre(2)], [pre(1), post(9)]);
    expect(result.ready).toBe(false);
    expect(result.behind).toEqual([pre(2)]);
    expect(result.ahead).toEqual([post(9)]);
    expect(result.reason).toMatch(/behind/);
  });

  it('is ready exactly when no known pre is missing and no applied post is unknown', () => {
    const migration = fc.record({
      version: fc.integer({ min: 1, max: 30 }),
      name: fc.constantFrom('a', 'b', 'c'),
      phase: fc.constantFrom<'pre' | 'post'>('pre', 'post'),
    });
    const uniqueList = fc.uniqueArray(migration, { selector: (m) => m.version, maxLength: 12 });
    fc.assert(
      fc.property(uniqueList, uniqueList, (known, applied) => {
        const result = assessSchema(known, applied);
        const appliedVersions = new Set(applied.map((m) => m.version));
        const knownVersions = new Set(known.map((m) => m.version));
        const missingPre = known.some((m) => m.phase === 'pre' && !appliedVersions.has(m.version));
        const unknownPost = applied.some((m) => m.phase === 'post' && !knownVersions.has(m.version));
        expect(result.ready).toBe(!missingPre && !unknownPost);
        expect(result.behind.every((m) => m.phase === 'pre' && !appliedVersions.has(m.version))).toBe(true);
        expect(result.ahead.every((m) => m.phase === 'post' && !knownVersions.has(m.version))).toBe(true);
      }),
      { numRuns: 200 },
    );
  });
});

describe('replicasBlockingContract', () => {
  const replica = (hostname: string, knows: number, live = true) => ({ hostname, region: 'eu', version: `v${knows}`, knows_schema_version: knows, live });
  const post = { version: 12, name: 'drop_old_column', phase: 'post' as const };
  const pre = { version: 11, name: 'add_column', phase: 'pre' as const };

  it('names every live replica whose build does not know the newest contract about to run', () => {
    const replicas = [replica('old', 11), replica('new', 12), replica('newer', 13), replica('gone', 10, false)];
    expect(replicasBlockingContract([pre, post], replicas).map((r) => r.hostname)).toEqual(['old']);
  });

  it('blocks nothing when no contract is pending or every replica knows it', () => {
    expect(replicasBlockingContract([pre], [replica('old', 1)])).toEqual([]);
    expect(replicasBlockingContract([post], [replica('a', 12), replica('b', 14)])).toEqual([]);
  });
});
