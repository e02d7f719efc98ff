import { assessSchema, type SchemaAssessment } from '../domain/schema-compat.js';
import type { Db } from './db.js';
import { MIGRATIONS, type Migration } from './migrations/index.js';

// Any constant works; it only has to be the same for every operator sharing the database.
const MIGRATION_LOCK = 0x64727964; // "dryd"

export interface AppliedMigration {
  version: number;
  name: string;
  phase: 'pre' | 'post';
  applied_at: string;
}

export interface MigrationStatusRow {
  version: number;
  name: string;
  phase: 'pre' | 'post';
  applied_at: string | null;
  /** False for a migration recorded by a newer binary. */
  known: boolean;
}

async function ensureTable(db: Db): Promise<void> {
  await db.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    phase      text NOT NULL CHECK (phase IN ('pre', 'post')),
    applied_at timestamptz NOT NULL DEFAULT now()
  )`);
}

export async function appliedMigrations(db: Db): Promise<AppliedMigration[]> {
  const exists = await db.query<{ present: boolean }>(`SELECT to_regclass('schema_migrations') IS NOT NULL AS present`);
  if (!exists[0]?.present) return [];
  return db.query<AppliedMigration>(
    `SELECT version, name, phase, to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS applied_at
       FROM schema_migrations ORDER BY version`,
  );
}

export async function migrationStatus(db: Db, known: readonly Migration[] = MIGRATIONS): Promise<MigrationStatusRow[]> {
  const applied = new Map((await appliedMigrations(db)).map((m) => [m.version, m]));
  const rows: MigrationStatusRow[] = known.map((m) => ({
    version: m.version,
    name: m.name,
    phase: m.phase,
    applied_at: applied.get(m.version)?.applied_at ?? null,
    known: true,
  }));
  for (const m of applied.values()) {
    if (!known.some((k) => k.version === m.version)) rows.push({ ...m, known: false });
  }
  return rows.sort((a, b) => a.version - b.version);
}

/**
 * Applies pending migrations up to `phase` (`pre` applies only pre ones; `post` applies all).
 * Each runs in its own transaction under an advisory lock, and re-checks that nobody applied
 * it meanwhile, so two operators starting together apply each migration exactly once.
 */
export async function migrateUp(
  db: Db,
  options: { phase: 'pre' | 'post' } = { phase: 'pre' },
  known: readonly Migration[] = MIGRATIONS,
): Promise<Migration[]> {
  await db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await ensureTable(tx);
  });
  const applied: Migration[] = [];
  for (const migration of known) {
    if (migration.phase === 'post' && options.phase === 'pre') continue;
    const didApply = await db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      const existing = await tx.query('SELECT 1 FROM schema_migrations WHERE version = $1', [migration.version]);
      if (existing.length > 0) return false;
      await tx.query(migration.sql);
      await tx.query('INSERT INTO schema_migrations (version, name, phase) VALUES ($1, $2, $3)', [
        migration.version,
        migration.name,
        migration.phase,
      ]);
      return true;
    });
    if (didApply) applied.push(migration);
  }
  return applied;
}

/** Known migrations not applied yet (both phases), oldest first. */
export async function pendingMigrations(db: Db, known: readonly Migration[] = MIGRATIONS): Promise<Migration[]> {
  const applied = new Set((await appliedMigrations(db)).map((m) => m.version));
  return known.filter((m) => !applied.has(m.version));
}

export async function schemaAssessment(db: Db, known: readonly Migration[] = MIGRATIONS): Promise<SchemaAssessment> {
  return assessSchema(known, await appliedMigrations(db));
}
