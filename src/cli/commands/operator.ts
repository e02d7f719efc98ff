import { type Command, Option } from 'commander';
import { parseDuration } from '../../domain/duration.js';
import { createLogger } from '../../logging.js';
import { DEFAULT_REGION_SILENCE } from '../../domain/liveness-guard.js';
import { HTTP_LIMIT_DEFAULTS } from '../../operator/http-limits.js';
import { OPERATOR_DEFAULTS, startOperator } from '../../operator/server.js';
import { DEFAULT_RETRY_POLICY } from '../../domain/webhooks.js';
import { DEFAULT_DATA_DIR } from '../../store/open.js';
import { action } from '../context.js';
import { exitWithParent } from '../../parent-watchdog.js';
import { readTrustedKeys } from '../trusted-keys.js';

const collectValues = (value: string, previous: string[] = []) => [...previous, value];
import { serverTlsFrom } from '../../tls.js';

export function durationOption(value: string, name: string): number {
  const ms = parseDuration(value);
  if (ms === null) throw new Error(`${name} must be a duration like 30s or 10m, got "${value}"`);
  return ms;
}

function byteCountOption(value: string, name: string): number {
  const bytes = Number(value);
  if (!Number.isInteger(bytes) || bytes <= 0) throw new Error(`${name} must be a whole number of bytes, got "${value}"`);
  return bytes;
}

/** A share in (0, 1]; above 1 would never hold (use a huge --region-silence-min-nodes to turn the rule off). */
function fractionOption(value: string, name: string): number {
  const share = Number(value);
  if (!Number.isFinite(share) || share <= 0 || share > 1) throw new Error(`${name} must be a fraction in (0, 1], got "${value}"`);
  return share;
}

function countOption(value: string, name: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${name} must be a whole number of nodes (1 or more), got "${value}"`);
  return n;
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
    .option('--region-silence-share <fraction>', 'when this share of a region goes silent at once, none of it is marked down', String(DEFAULT_REGION_SILENCE.share))
    .option('--region-silence-min-nodes <n>', '... and at least this many nodes of it', String(DEFAULT_REGION_SILENCE.minNodes))
    .option('--drain-timeout <duration>', 'default bound on a drain', '10m')
    .option('--no-migrate', 'do not apply pending pre migrations at start')
    .option('--headers-timeout <duration>', 'request headers must arrive within this', `${HTTP_LIMIT_DEFAULTS.headersTimeoutMs / 1000}s`)
    .option('--request-timeout <duration>', 'a whole request (body included) must arrive within this; responses are not bounded', `${HTTP_LIMIT_DEFAULTS.requestTimeoutMs / 60_000}m`)
    .option('--keep-alive-timeout <duration>', 'close an idle keep-alive connection after this', `${HTTP_LIMIT_DEFAULTS.keepAliveTimeoutMs / 1000}s`)
    .option('--body-min-bytes <bytes>', 'cut off a body slower than this many bytes per --body-rate-window', String(HTTP_LIMIT_DEFAULTS.bodyMinBytes))
    .option('--body-rate-window <duration>', 'window the minimum body rate is measured over', `${HTTP_LIMIT_DEFAULTS.bodyRateWindowMs / 1000}s`)
    .option('--region <region>', "this replica's control-plane region in the registry (GET /api/v1/operators)", 'local')
    .option('--hostname <name>', "this replica's hostname in the registry (default: the machine's)")
    .option('--advertise-url <url>', 'where clients reach this replica, as the registry lists it (default: the listen address)')
    .option('--trusted-key <file>', "ed25519 public key (PEM) whose signed operator builds this replica may run to migrate the schema in a control-plane rollout (repeatable)", collectValues)
    .option('--allow-unsigned', 'DEVELOPMENT ONLY: run unsigned operator builds to migrate the schema', false)
    .option('--shutdown-delay <duration>', 'on SIGTERM, keep answering this long after leaving the registry and handing the lease over (behind a load balancer)', '0s')
    .addOption(new Option('--tls-cert <file>', 'serve HTTPS with this certificate chain (PEM); needs --tls-key').env('DRYDOCK_TLS_CERT'))
    .addOption(new Option('--tls-key <file>', 'the private key of --tls-cert (PEM)').env('DRYDOCK_TLS_KEY'))
    .option('--webhook-retry-initial <duration>', 'wait after a failed webhook delivery; doubled after each further failure', `${DEFAULT_RETRY_POLICY.initialMs / 1000}s`)
    .option('--webhook-retry-max <duration>', 'longest wait between two attempts of a delivery', `${DEFAULT_RETRY_POLICY.maxMs / 60_000}m`)
    .option('--webhook-give-up <duration>', 'a delivery still failing this long after its event is given up', `${DEFAULT_RETRY_POLICY.giveUpAfterMs / 3_600_000}h`)
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
          regionSilence: {
            share: fractionOption(opts.regionSilenceShare, '--region-silence-share'),
            minNodes: countOption(opts.regionSilenceMinNodes, '--region-silence-min-nodes'),
          },
          migrationTimeoutMs: OPERATOR_DEFAULTS.migrationTimeoutMs,
          reconcileIntervalMs: OPERATOR_DEFAULTS.reconcileIntervalMs,
          http: {
            headersTimeoutMs: durationOption(opts.headersTimeout, '--headers-timeout'),
            requestTimeoutMs: durationOption(opts.requestTimeout, '--request-timeout'),
            keepAliveTimeoutMs: durationOption(opts.keepAliveTimeout, '--keep-alive-timeout'),
            bodyMinBytes: byteCountOption(opts.bodyMinBytes, '--body-min-bytes'),
            bodyRateWindowMs: durationOption(opts.bodyRateWindow, '--body-rate-window'),
          },
          version: DRYDOCK_VERSION,
          region: opts.region,
          hostname: opts.hostname,
          advertiseUrl: opts.advertiseUrl,
          shutdownDelayMs: durationOption(opts.shutdownDelay, '--shutdown-delay'),
          trustedKeys: readTrustedKeys(opts.trustedKey ?? []),
          allowUnsigned: opts.allowUnsigned === true,
          tls: serverTlsFrom(opts),
          webhookRetry: {
            initialMs: durationOption(opts.webhookRetryInitial, '--webhook-retry-initial'),
            maxMs: durationOption(opts.webhookRetryMax, '--webhook-retry-max'),
            giveUpAfterMs: durationOption(opts.webhookGiveUp, '--webhook-give-up'),
          },
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
