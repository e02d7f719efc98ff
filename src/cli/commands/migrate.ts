import { type Command, Option } from 'commander';
import { migrateUp, migrationStatus, schemaAssessment } from '../../store/migrator.js';
import { DEFAULT_DATA_DIR, openDb } from '../../store/open.js';
import { action } from '../context.js';
import { printJson, printRows } from '../output.js';

export function registerMigrateCommand(program: Command): void {
  const migrate = program.command('migrate').description('database schema migrations (talks to the database, not the API)');
  const dbOptions = (command: Command) =>
    command
      .option('--data-dir <dir>', 'embedded database directory', DEFAULT_DATA_DIR)
      .addOption(new Option('--database-url <url>', 'PostgreSQL server URL').env('DATABASE_URL'));

  dbOptions(migrate.command('status').description('list migrations, their phase and when they were applied'))
    .option('--json', 'machine-readable output')
    .action(
      action(async (opts) => {
        const db = await openDb({ databaseUrl: opts.databaseUrl, dataDir: opts.dataDir, purpose: 'drydock migrate' });
        try {
          const rows = await migrationStatus(db);
          const assessment = await schemaAssessment(db);
          if (opts.json) return printJson({ ready: assessment.ready, reason: assessment.reason, migrations: rows });
          printRows(rows, [['VERSION', (r) => r.version], ['NAME', (r) => r.name], ['PHASE', (r) => r.phase], ['APPLIED', (r) => r.applied_at ?? 'pending'], ['KNOWN', (r) => (r.known ? 'yes' : 'no (newer binary)')]], false, 'no migrations');
          process.stdout.write(`\n${assessment.reason}\n`);
        } finally {
          await db.close();
        }
      }),
    );

  dbOptions(migrate.command('up').description('apply pending migrations: pre (expand) by default, --phase post also contracts'))
    .addOption(new Option('--phase <phase>', 'apply up to this phase').choices(['pre', 'post']).default('pre'))
    .action(
      action(async (opts) => {
        const db = await openDb({ databaseUrl: opts.databaseUrl, dataDir: opts.dataDir, purpose: 'drydock migrate' });
        try {
          const applied = await migrateUp(db, { phase: opts.phase });
          if (applied.length === 0) process.stdout.write('schema is up to date\n');
          for (const m of applied) process.stdout.write(`applied ${String(m.version).padStart(4, '0')}_${m.name} (${m.phase})\n`);
        } finally {
          await db.close();
        }
      }),
    );
}
