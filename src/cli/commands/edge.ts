import type { Command } from 'commander';
import { EdgeRouter } from '../../edge/router.js';
import { createLogger } from '../../logging.js';
import { action, DEFAULT_OPERATOR_URL } from '../context.js';
import { exitWithParent } from '../../parent-watchdog.js';

export function registerEdgeCommand(program: Command): void {
  program
    .command('edge')
    .description('HTTP router: <deployment>.localhost and /d/<deployment>/ to healthy endpoints, following the operator')
    .option('--listen <host:port>', 'address to listen on', '127.0.0.1:8088')
    .action(
      action(async (opts, command: Command) => {
        const globals = command.optsWithGlobals<{ operator?: string; token?: string }>();
        const log = createLogger('edge');
        const edge = new EdgeRouter({
          listen: opts.listen,
          operatorUrl: globals.operator ?? process.env.DRYDOCK_URL ?? DEFAULT_OPERATOR_URL,
          token: globals.token ?? process.env.DRYDOCK_TOKEN,
          log,
        });
        await edge.start();
        const shutdown = async () => {
          await edge.stop();
          process.exit(0);
        };
        process.once('SIGINT', () => void shutdown());
        process.once('SIGTERM', () => void shutdown());
        exitWithParent(() => void shutdown());
      }),
    );
}
