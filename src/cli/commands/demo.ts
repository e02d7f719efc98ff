import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { runExampleApp } from '../../demo/example-app.js';
import { runDemo } from '../../demo/run-demo.js';
import { action, parseIntOption } from '../context.js';

export function registerDemoCommands(program: Command): void {
  program
    .command('demo')
    .description('the main job on one machine: a fleet upgraded under live traffic, a bad version caught and rolled back')
    .option('--listen <host:port>', 'operator address', '127.0.0.1:8080')
    .option('--dir <dir>', 'where each demo run keeps its state and logs (a fresh subdirectory per run)', './.drydock/demo')
    .option('--regions <list>', 'comma-separated regions', 'us-east,eu-west,ap-south')
    .option('--nodes-per-region <n>', 'agents per region', '3')
    .option('--deployments <n>', 'example deployments', '4')
    .option('--replicas <n>', 'replicas of each example deployment', '3')
    .option('--rate <n>', 'requests per second the traffic generator sends through the edge', '50')
    .option('--exit', 'stop everything after the report instead of waiting for Ctrl-C')
    .option('--report <file>', 'write the report as JSON')
    .action(
      action(async (opts) => {
        await runDemo({
          // The running bundle is what every demo process runs, so all are the same version.
          bin: fileURLToPath(import.meta.url),
          listen: opts.listen,
          dir: opts.dir,
          regions: String(opts.regions).split(',').filter(Boolean),
          nodesPerRegion: parseIntOption(opts.nodesPerRegion, '--nodes-per-region'),
          deployments: Math.min(8, Math.max(1, parseIntOption(opts.deployments, '--deployments'))),
          replicas: parseIntOption(opts.replicas, '--replicas'),
          rate: Math.max(1, parseIntOption(opts.rate, '--rate')),
          exit: opts.exit ?? false,
          reportFile: opts.report,
        });
      }),
    );

  program
    .command('example-app')
    .description('the example workload: an HTTP server on $PORT with /health (what the demo deploys)')
    .action(() => runExampleApp());
}
