import { type Command, Option } from 'commander';
import { replicasBlockingContract } from '../../domain/schema-compat.js';
import { REPLICA_STALE_AFTER_MS } from '../../operator/replica-registry.js';
import { migrateUp, migrationStatus, pendingMigrations, schemaAssessment } from '../../store/migrator.js';
import { hasReplicaRegistry, listReplicas } from '../../store/operator-replicas.js';
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
    .option('--force', 'contract even while registered operator replicas run builds that do not know the contract (they stop being ready)', false)
    .action(
      action(async (opts) => {
        const db = await openDb({ databaseUrl: opts.databaseUrl, dataDir: opts.dataDir, purpose: 'drydock migrate' });
        try {
          if (opts.phase === 'post') {
            // A contract removes what older builds still use: refused while a live replica runs one.
            const replicas = (await hasReplicaRegistry(db)) ? await listReplicas(db, REPLICA_STALE_AFTER_MS) : [];
            const blocking = replicasBlockingContract(await pendingMigrations(db), replicas);
            if (blocking.length > 0 && !opts.force) {
              const list = blocking.map((r) => `${r.hostname} (${r.region}, ${r.version}, knows schema ${r.knows_schema_version})`).join(', ');
              throw new Error(
                `refusing to contract: ${blocking.length} running operator replica(s) do not know the contract migration: ${list}; upgrade them first (drydock operators), or pass --force`,
              );
            }
          }
          const applied = await migrateUp(db, { phase: opts.phase });
          if (applied.length === 0) process.stdout.write('schema is up to date\n');
          for (const m of applied) process.stdout.write(`applied ${String(m.version).padStart(4, '0')}_${m.name} (${m.phase})\n`);
        } finally {
          await db.close();
        }
      }),
    );
}
