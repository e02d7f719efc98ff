import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Command, Option } from 'commander';
import { runExampleApp } from '../../demo/example-app.js';
import { runDemo } from '../../demo/run-demo.js';
import { runControlPlaneDemo } from '../../demo/run-control-plane-demo.js';
import { OS_IMAGE_DEMO_SIZE, runOsImageDemo } from '../../demo/run-os-image-demo.js';
import { DEMO_SIZES, WORKLOAD_MODES, type WorkloadsMode } from '../../demo/vm-workloads.js';
import { action, parseIntOption } from '../context.js';
import { defaultVmCacheDir } from './vm.js';

/** What `drydock demo --scenario` runs. */
export const DEMO_SCENARIOS = ['upgrade', 'control-plane', 'os-image'] as const;
type Scenario = (typeof DEMO_SCENARIOS)[number];
const DEFAULT_SIZE = { regions: ['us-east', 'eu-west', 'ap-south'], nodesPerRegion: 3 };

export function registerDemoCommands(program: Command): void {
  program
    .command('demo')
    .description('the main job on one machine: a fleet upgraded under live traffic, a bad version caught and rolled back (other scenarios: --scenario)')
    .addOption(
      new Option(
        '--scenario <name>',
        'upgrade: the fleet upgraded under live traffic, a bad agent build caught and rolled back; ' +
          'control-plane: the same as --control-plane; ' +
          'os-image: an OS image rolled across the fleet with preNode and postNode hooks and one (simulated) reboot per node, then an image whose boot checks fail: each node that gets it falls back to its previous slot by itself after 3 tries and the breaker trips',
      )
        .choices(DEMO_SCENARIOS)
        .default('upgrade'),
    )
    .option('--listen <host:port>', 'operator address', '127.0.0.1:8080')
    .option('--dir <dir>', 'where each demo run keeps its state and logs (a fresh subdirectory per run)', './.drydock/demo')
    .option('--regions <list>', `comma-separated regions (default ${DEFAULT_SIZE.regions.join(',')}; os-image: ${OS_IMAGE_DEMO_SIZE.regions.join(',')})`)
    .option('--nodes-per-region <n>', `agents per region (default ${DEFAULT_SIZE.nodesPerRegion}; os-image: ${OS_IMAGE_DEMO_SIZE.nodesPerRegion})`)
    .option('--deployments <n>', `example deployments, at most 8 (default ${DEMO_SIZES.process.deployments}; ${DEMO_SIZES.vm.deployments} when they run as VMs)`)
    .option('--replicas <n>', `replicas of each example deployment (default ${DEMO_SIZES.process.replicas}; ${DEMO_SIZES.vm.replicas} when they run as VMs)`)
    .option('--rate <n>', `requests per second the traffic generator sends through the edge (default ${DEMO_SIZES.process.rate}; ${DEMO_SIZES.vm.rate} to VMs)`)
    .addOption(
      new Option('--workloads <kind>', 'run the example deployments as VMs (QEMU) or processes; auto: VMs when qemu-system-x86_64 and busybox-static are installed and the guest image builds, else processes')
        .choices(WORKLOAD_MODES)
        .default('auto'),
    )
    .option('--vm-cache <dir>', `kernel packages and the guest image, kept between runs (default ${defaultVmCacheDir()})`)
    .option('--control-plane', 'instead: the control plane upgrading itself — operator replicas per region behind the edge on a PostgreSQL server (DATABASE_URL, else 127.0.0.1:5432), operator 1.0.0 → 2.0.0 with an expand and a contract migration')
    .option('--exit', 'stop everything after the report instead of waiting for Ctrl-C')
    .option('--report <file>', 'write the report as JSON')
    .option('--approve-in-ui', "wait for the upgrade to be approved in the dashboard (as bob) instead of by bob's CLI")
    .action(
      action(async (opts) => {
        const scenario = opts.scenario as Scenario;
        if (opts.controlPlane && scenario !== 'upgrade' && scenario !== 'control-plane') throw new Error(`--control-plane is the control-plane scenario; it cannot be combined with --scenario ${scenario}`);
        const size = scenario === 'os-image' ? OS_IMAGE_DEMO_SIZE : DEFAULT_SIZE;
        const regions = opts.regions === undefined ? size.regions : String(opts.regions).split(',').filter(Boolean);
        const nodesPerRegion = opts.nodesPerRegion === undefined ? size.nodesPerRegion : parseIntOption(opts.nodesPerRegion, '--nodes-per-region');
        if (scenario === 'os-image') {
          await runOsImageDemo({ bin: fileURLToPath(import.meta.url), listen: opts.listen, dir: opts.dir, regions, nodesPerRegion, exit: opts.exit ?? false, reportFile: opts.report });
          return;
        }
        if (opts.controlPlane || scenario === 'control-plane') {
          const report = await runControlPlaneDemo({
            bin: fileURLToPath(import.meta.url),
            dir: opts.dir,
            databaseUrl: process.env.DATABASE_URL,
            regions,
            perRegion: nodesPerRegion,
            reportFile: opts.report,
          });
          if (report.status !== 'completed') process.exitCode = 1;
          return;
        }
        const optionalInt = (value: string | undefined, name: string) => (value === undefined ? undefined : parseIntOption(value, name));
        const deployments = optionalInt(opts.deployments, '--deployments');
        await runDemo({
          // The running bundle is what every demo process runs, so all are the same version.
          bin: fileURLToPath(import.meta.url),
          listen: opts.listen,
          dir: opts.dir,
          regions,
          nodesPerRegion,
          deployments: deployments === undefined ? undefined : Math.min(8, Math.max(1, deployments)),
          replicas: optionalInt(opts.replicas, '--replicas'),
          rate: opts.rate === undefined ? undefined : Math.max(1, parseIntOption(opts.rate, '--rate')),
          workloads: opts.workloads as WorkloadsMode,
          vmCacheDir: resolve(opts.vmCache ?? defaultVmCacheDir()),
          exit: opts.exit ?? false,
          reportFile: opts.report,
          approveInUi: opts.approveInUi === true,
        });
      }),
    );

  program
    .command('example-app')
    .description('the example workload: an HTTP server on $PORT with /health (what the demo deploys)')
    .action(() => runExampleApp());
}
