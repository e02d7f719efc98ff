import { resolve } from 'node:path';
import { hostname } from 'node:os';
import { type Command, Option } from 'commander';
import { Agent, type OperatorReplicaSettings } from '../../agent/agent.js';
import { supervisorLinkFromEnv } from '../../agent/supervisor/agent-link.js';
import { NODE_ROLES } from '../../domain/types.js';
import { createLogger } from '../../logging.js';
import { action, DEFAULT_OPERATOR_URL, parseIntOption } from '../context.js';
import { durationOption } from './operator.js';
import { readTrustedKeys } from '../trusted-keys.js';
import { exitWithParent } from '../../parent-watchdog.js';
import { DEFAULT_REBOOT_COMMAND } from '../../agent/components/reboot.js';
import { DEFAULT_BOOT_TRIES } from '../../domain/boot-slots.js';

function parseLabels(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const labels = { ...previous };
  for (const pair of value.split(',').filter(Boolean)) {
    const [key, val] = pair.split('=');
    if (!key || val === undefined) throw new Error(`--label must be key=value, got "${pair}"`);
    labels[key] = val;
  }
  return labels;
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** Reads each trusted public key; a missing or non-ed25519 file stops the agent at start. */

export function registerAgentCommand(program: Command): void {
  program
    .command('agent')
    .description('run a node agent: registers, heartbeats, hosts instances, converges to the desired state')
    .option('--hostname <name>', 'node hostname (its identity)', hostname())
    .requiredOption('--region <region>', 'failure domain, e.g. us-east')
    .addOption(new Option('--role <role>', 'node role').choices([...NODE_ROLES]).default('worker'))
    .option('--max-instances <n>', 'instances this node may host', '10')
    .option('--label <k=v,...>', 'node labels (repeatable)', parseLabels)
    .option('--listen <host:port>', "address of the agent's own /health and /metrics", '127.0.0.1:8081')
    .option('--data-dir <dir>', 'agent state, instance logs', './.drydock-agent')
    .option('--heartbeat-interval <duration>', 'time between heartbeats', '2s')
    .option('--drain-delay <duration>', 'wait between an endpoint being withdrawn and its instance being stopped', '1s')
    .option('--health-failure-threshold <n>', 'failed health probes in a row (one a second) before a serving instance counts as unhealthy', '3')
    .option('--stop-grace <duration>', 'SIGTERM to SIGKILL grace when stopping an instance', '10s')
    .option('--trusted-key <file>', 'ed25519 public key (PEM) whose artifact signatures are accepted (repeatable)', collect)
    .option('--allow-unsigned', 'DEVELOPMENT ONLY: install component artifacts that carry no signature', false)
    .option('--component-health-deadline <duration>', "deadline of a component's health check", '30s')
    .option('--keep-versions <n>', 'versions of each component kept on disk after an install is done (current and previous; never a version a rollback needs)', '2')
    .option('--boot-tries <n>', 'boots a new os-image slot gets to pass its required.d checks before the node falls back to the previous slot', String(DEFAULT_BOOT_TRIES))
    .option('--reboot-command <command>', 'how the node reboots into a new os-image slot (`exit`: simulated, the agent exits and its supervisor starts it again)', DEFAULT_REBOOT_COMMAND)
    .addOption(
      new Option('--vm-accel <accel>', 'accelerator of vm workloads: auto boots a KVM probe and falls back to TCG (software) when the guest does not run')
        .choices(['auto', 'kvm', 'tcg'])
        .default('auto'),
    )
    .option('--vm-migration-bandwidth <MiB/s>', 'how fast a live migration out of this node may send, in MiB/s (QEMU max-bandwidth)', '1024')
    .option('--operator-listen <host:port>', 'control-plane node: run the local operator replica (component `operator`) listening here')
    .option('--operator-listen-alt <host:port>', 'the second address of the operator replica: a blue-green rollout starts the new version here beside the running one (the two addresses swap roles)')
    .option('--operator-env-file <file>', "the replica's node-local settings (KEY=VALUE: DATABASE_URL, ...); an artifact's operator.env wins over it")
    .option('--operator-arg <arg>', 'one more argument for `drydock operator` (repeatable, e.g. --operator-arg=--tokens=/etc/drydock/tokens.yaml)', collect)
    .option('--operator-bootstrap <artifact>', 'operator artifact (.tar.gz) installed as the first version when the node has none')
    .option('--operator-deadline <duration>', 'a new operator version must be ready and registered within this, else the previous one returns', '60s')
    .option('--operator-shutdown-delay <duration>', 'a stopping replica keeps answering this long after leaving the registry', '1500ms')
    .action(
      action(async (opts, command: Command) => {
        const log = createLogger('agent');
        if (opts.operatorListenAlt && !opts.operatorListen) throw new Error('--operator-listen-alt needs --operator-listen (the replica\'s first address)');
        const trustedKeys = readTrustedKeys(opts.trustedKey ?? []);
        if (opts.allowUnsigned) {
          log.warn('!!! --allow-unsigned: this agent installs UNSIGNED component artifacts. Development only: never run a production node like this. !!!');
        } else if (trustedKeys.length === 0) {
          log.warn('no --trusted-key given: every component artifact will be refused (no trusted key)');
        }
        // Set only when `drydock supervisor` started this agent: then it may upgrade itself.
        const supervisor = supervisorLinkFromEnv(log);
        // --operator and --token are the global options every API command shares.
        const globals = command.optsWithGlobals<{ operator?: string; token?: string }>();
        const agent = new Agent({
          operatorUrl: globals.operator ?? process.env.DRYDOCK_URL ?? DEFAULT_OPERATOR_URL,
          token: globals.token ?? process.env.DRYDOCK_TOKEN,
          hostname: opts.hostname,
          region: opts.region,
          role: opts.role,
          maxInstances: parseIntOption(opts.maxInstances, '--max-instances'),
          labels: opts.label ?? {},
          listen: opts.listen,
          // Absolute, so installer steps (health, install scripts) resolve whatever the cwd.
          dataDir: resolve(opts.dataDir),
          heartbeatIntervalMs: durationOption(opts.heartbeatInterval, '--heartbeat-interval'),
          drainDelayMs: durationOption(opts.drainDelay, '--drain-delay'),
          probeFailureThreshold: failureThresholdOption(opts.healthFailureThreshold),
          stopGraceMs: durationOption(opts.stopGrace, '--stop-grace'),
          version: DRYDOCK_VERSION,
          trustedKeys,
          allowUnsigned: opts.allowUnsigned === true,
          componentHealthDeadlineMs: durationOption(opts.componentHealthDeadline, '--component-health-deadline'),
          keepVersions: keepVersionsOption(opts.keepVersions),
          bootTries: bootTriesOption(opts.bootTries),
          rebootCommand: opts.rebootCommand,
          vmAccel: opts.vmAccel,
          vmMigrationBandwidthBytes: migrationBandwidth(opts.vmMigrationBandwidth),
          ...(supervisor ? { supervisor } : {}),
          ...(opts.operatorListen ? { operatorReplica: operatorReplicaSettings(opts) } : {}),
          log,
        });
        await agent.start();
        const shutdown = async (signal: string) => {
          log.info({ signal }, 'agent stopping; instances keep running');
          await agent.stop();
          process.exit(0);
        };
        process.once('SIGINT', () => void shutdown('SIGINT'));
        process.once('SIGTERM', () => void shutdown('SIGTERM'));
        // The launcher that owned this fleet is gone: nothing it started may outlive it (its VMs included).
        exitWithParent((reason) => {
          log.warn({ reason }, 'launcher gone: stopping this agent and every instance it hosts');
          void agent
            .stopInstances()
            .catch((error: unknown) => log.error({ err: error }, 'could not stop every instance'))
            .finally(() => void shutdown(reason));
        });
      }),
    );
}

function operatorReplicaSettings(opts: Record<string, string | string[] | undefined>): OperatorReplicaSettings {
  const altListen = opts.operatorListenAlt as string | undefined;
  if (altListen !== undefined && altListen === opts.operatorListen) throw new Error('--operator-listen-alt must differ from --operator-listen (both replicas run at once during a blue-green rollout)');
  return {
    listen: opts.operatorListen as string,
    altListen,
    nodeEnvFile: opts.operatorEnvFile as string | undefined,
    extraArgs: (opts.operatorArg as string[] | undefined) ?? [],
    bootstrapArtifact: opts.operatorBootstrap as string | undefined,
    deadlineMs: durationOption(opts.operatorDeadline as string, '--operator-deadline'),
    shutdownDelayMs: durationOption(opts.operatorShutdownDelay as string, '--operator-shutdown-delay'),
  };
}

function migrationBandwidth(value: string): number {
  const mib = parseIntOption(value, '--vm-migration-bandwidth');
  if (mib < 1) throw new Error(`--vm-migration-bandwidth must be at least 1 (MiB/s), got "${value}"`);
  return mib * 1024 * 1024;
}

/** At least 1: the version the node runs always stays (a rollback's version too, whatever this says). */
function keepVersionsOption(value: string): number {
  const n = parseIntOption(value, '--keep-versions');
  if (n < 1) throw new Error(`--keep-versions must be at least 1, got "${value}"`);
  return n;
}

function failureThresholdOption(value: string): number {
  const n = parseIntOption(value, '--health-failure-threshold');
  if (n < 1 || n > 100) throw new Error(`--health-failure-threshold must be between 1 and 100, got "${value}"`);
  return n;
}

function bootTriesOption(value: string): number {
  const n = parseIntOption(value, '--boot-tries');
  if (n < 1 || n > 100) throw new Error(`--boot-tries must be between 1 and 100, got "${value}"`);
  return n;
}
