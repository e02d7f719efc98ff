import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { runExampleApp } from '../../demo/example-app.js';
import { runDemo } from '../../demo/run-demo.js';
import { action, parseIntOption } from '../context.js';

export function registerDemoCommands(program: Command): void {
  program
    .command('demo')
    .description('the main job on one machine: operator on embedded Postgres, a local fleet, an example deployment')
    .option('--listen <host:port>', 'operator address', '127.0.0.1:8080')
    .option('--dir <dir>', 'where each demo run keeps its state and logs (a fresh subdirectory per run)', './.drydock/demo')
    .option('--regions <list>', 'comma-separated regions', 'us-east,eu-west,ap-south')
    .option('--nodes-per-region <n>', 'agents per region', '1')
    .option('--replicas <n>', 'replicas of the example deployment', '3')
    .option('--exit', 'stop everything once the fleet is up instead of waiting for Ctrl-C')
    .action(
      action(async (opts) => {
        await runDemo({
          // The running bundle is what every demo process runs, so all are the same version.
          bin: fileURLToPath(import.meta.url),
          listen: opts.listen,
          dir: opts.dir,
          regions: String(opts.regions).split(',').filter(Boolean),
          nodesPerRegion: parseIntOption(opts.nodesPerRegion, '--nodes-per-region'),
          replicas: parseIntOption(opts.replicas, '--replicas'),
          exit: opts.exit ?? false,
        });
      }),
    );

  program
    .command('example-app')
    .description('the example workload: an HTTP server on $PORT with /health (what the demo deploys)')
    .action(() => runExampleApp());
}
