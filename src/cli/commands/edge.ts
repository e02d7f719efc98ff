import { type Command, Option } from 'commander';
import { formatDuration } from '../../domain/duration.js';
import { DEFAULT_HOLD_MS, EdgeRouter } from '../../edge/router.js';
import { createLogger } from '../../logging.js';
import { action, DEFAULT_OPERATOR_URL } from '../context.js';
import { exitWithParent } from '../../parent-watchdog.js';
import { durationOption } from './operator.js';
import { serverTlsFrom } from '../../tls.js';

export function registerEdgeCommand(program: Command): void {
  program
    .command('edge')
    .description('HTTP router: <deployment>.localhost and /d/<deployment>/ to healthy endpoints, following the operator')
    .option('--listen <host:port>', 'address to listen on', '127.0.0.1:8088')
    .option(
      '--hold <duration>',
      'how long a request may wait for an endpoint when its deployment has none to send it to (none healthy, or only the one that just failed), e.g. across a live migration\'s switchover; 0: answer 503/502 at once',
      formatDuration(DEFAULT_HOLD_MS),
    )
    .addOption(new Option('--tls-cert <file>', 'serve HTTPS with this certificate chain (PEM); needs --tls-key').env('DRYDOCK_TLS_CERT'))
    .addOption(new Option('--tls-key <file>', 'the private key of --tls-cert (PEM)').env('DRYDOCK_TLS_KEY'))
    .action(
      action(async (opts, command: Command) => {
        const globals = command.optsWithGlobals<{ operator?: string; token?: string }>();
        const log = createLogger('edge');
        const edge = new EdgeRouter({
          listen: opts.listen,
          // Several replicas may be given, comma-separated; the edge follows whichever answers.
          operatorUrls: (globals.operator ?? process.env.DRYDOCK_URL ?? DEFAULT_OPERATOR_URL).split(',').map((u) => u.trim()).filter(Boolean),
          token: globals.token ?? process.env.DRYDOCK_TOKEN,
          holdMs: durationOption(opts.hold, '--hold'),
          tls: serverTlsFrom(opts),
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
