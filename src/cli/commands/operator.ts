import { type Command, Option } from 'commander';
import { parseDuration } from '../../domain/duration.js';
import { createLogger } from '../../logging.js';
import { OPERATOR_DEFAULTS, startOperator } from '../../operator/server.js';
import { DEFAULT_DATA_DIR } from '../../store/open.js';
import { action } from '../context.js';
import { exitWithParent } from '../../parent-watchdog.js';

export function durationOption(value: string, name: string): number {
  const ms = parseDuration(value);
  if (ms === null) throw new Error(`${name} must be a duration like 30s or 10m, got "${value}"`);
  return ms;
}

export function registerOperatorCommand(program: Command): void {
  program
    .command('operator')
    .description('run a control-plane replica: HTTP API, agent gateway, reconciler, metrics')
    .option('--listen <host:port>', 'address to listen on', OPERATOR_DEFAULTS.listen)
    .option('--data-dir <dir>', 'embedded database directory (when DATABASE_URL is not set)', DEFAULT_DATA_DIR)
    .addOption(new Option('--database-url <url>', 'PostgreSQL server URL (default: embedded PGlite)').env('DATABASE_URL'))
    .option('--tokens <file>', 'YAML tokens file; without it the API is open and bound to loopback only')
    .option('--heartbeat-grace <duration>', 'a node silent this long is down', '10s')
    .option('--heartbeat-interval <duration>', 'interval agents are told to heartbeat at', '2s')
    .option('--drain-timeout <duration>', 'default bound on a drain', '10m')
    .option('--no-migrate', 'do not apply pending pre migrations at start')
    .action(
      action(async (opts) => {
        const log = createLogger('operator');
        const operator = await startOperator({
          listen: opts.listen,
          dataDir: opts.dataDir,
          databaseUrl: opts.databaseUrl,
          tokensFile: opts.tokens,
          migrate: opts.migrate,
          heartbeatGraceMs: durationOption(opts.heartbeatGrace, '--heartbeat-grace'),
          heartbeatIntervalMs: durationOption(opts.heartbeatInterval, '--heartbeat-interval'),
          drainTimeoutMs: durationOption(opts.drainTimeout, '--drain-timeout'),
          migrationTimeoutMs: OPERATOR_DEFAULTS.migrationTimeoutMs,
          reconcileIntervalMs: OPERATOR_DEFAULTS.reconcileIntervalMs,
          version: DRYDOCK_VERSION,
          log,
        });
        const shutdown = async (signal: string) => {
          log.info({ signal }, 'operator stopping');
          await operator.close();
          process.exit(0);
        };
        process.once('SIGINT', () => void shutdown('SIGINT'));
        process.once('SIGTERM', () => void shutdown('SIGTERM'));
        exitWithParent((reason) => void shutdown(reason));
      }),
    );
}
