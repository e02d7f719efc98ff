import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { Supervisor } from '../../agent/supervisor/supervisor.js';
import { createLogger } from '../../logging.js';
import { action } from '../context.js';
import { durationOption } from './operator.js';
import { exitWithParent } from '../../parent-watchdog.js';

export function registerSupervisorCommand(program: Command): void {
  program
    .command('supervisor')
    .description('run the node agent from <data-dir>/components/node-agent/current: restarts it, upgrades it, reverts a bad version')
    .usage('--data-dir <dir> [--deadline 60s] -- [agent] <agent options...>')
    .requiredOption('--data-dir <dir>', "the agent's data dir (passed to the agent as --data-dir)")
    .option('--deadline <duration>', 'time a new agent version has to be proven healthy (a heartbeat the operator acknowledged)', '60s')
    .argument('[agent-args...]', 'the options of `drydock agent`, after --')
    .action(
      action(async (agentArgs: string[], opts: { dataDir: string; deadline: string }) => {
        const log = createLogger('supervisor');
        const args = agentArgs[0] === 'agent' ? agentArgs.slice(1) : agentArgs;
        const supervisor = new Supervisor({
          dataDir: resolve(opts.dataDir),
          deadlineMs: durationOption(opts.deadline, '--deadline'),
          agentArgs: args,
          // The single-file bundle this runs from: the first agent version when none is installed.
          own: { bundle: fileURLToPath(import.meta.url), version: DRYDOCK_VERSION },
          log,
        });
        const shutdown = (signal: string) => {
          log.info({ signal }, 'supervisor stopping the agent; instances keep running');
          void supervisor.stop();
        };
        process.once('SIGINT', () => shutdown('SIGINT'));
        process.once('SIGTERM', () => shutdown('SIGTERM'));
        exitWithParent((reason) => shutdown(reason));
        await supervisor.run();
        process.exit(0);
      }),
    );
}
