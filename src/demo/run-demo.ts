import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ApiClient } from '../api-client.js';
import { watchRollout } from '../cli/rollout-watch.js';
import { freePort } from '../agent/drivers/process-driver.js';
import type { DeploymentView } from '../store/deployments.js';
import { buildReport, type DemoReport, printReport } from './demo-report.js';
import { cli, publishArtifact, writeBinaryComponent, writeBundles, writeTokens } from './demo-setup.js';
import { assertPortFree, demoStopper, finishDemo, writeSpec } from './demo-session.js';
import { LocalFleet, waitFor } from './local-fleet.js';
import { TrafficGenerator } from './traffic.js';
import { agentAccel, checkGuests, type GuestRecord, processReport, recordGuests } from './vm-report.js';
import { chooseWorkloads, DEMO_SIZES, type DemoWorkloads, fallbackLine, type WorkloadsMode } from './vm-workloads.js';

export interface DemoOptions {
  bin: string;
  listen: string;
  dir: string;
  regions: string[];
  nodesPerRegion: number;
  /** Example deployments; undefined: DEMO_SIZES for the driver they run on (4 processes, 2 VMs). */
  deployments?: number | undefined;
  /** Replicas of each; undefined: DEMO_SIZES (3 processes, 2 VMs). */
  replicas?: number | undefined;
  /** Requests per second through the edge; undefined: DEMO_SIZES (50 to processes, 20 to VMs). */
  rate?: number | undefined;
  /** `--workloads`: auto runs the deployments as VMs when QEMU is installed and the guest image builds. */
  workloads: WorkloadsMode;
  /** `--vm-cache`: kernel packages and the built guest image, kept between runs. */
  vmCacheDir: string;
  /** Stop everything after the report instead of waiting for Ctrl-C. */
  exit: boolean;
  reportFile?: string | undefined;
  /** `--approve-in-ui`: wait for a person to approve the upgrade in the dashboard instead of bob's CLI (default false). */
  approveInUi?: boolean;
}

const DEPLOYMENT_NAMES = ['web', 'api', 'shop', 'blog', 'search', 'auth', 'media', 'mail'];
/** Guest memory: what the reference guest is measured with (QEMU's RSS is then ~230 MiB, STACK.md). */
const VM_MEMORY_MB = 128;
/**
 * How often instance PIDs are recorded while the demo runs: a live migration starts a new QEMU
 * on the target, and a stop must find it even when the demo dies mid-rollout.
 */
const RECORD_PIDS_EVERY_MS = 2000;
const say = (line = '') => process.stdout.write(`${line}\n`);
const indent = (text: string) => text.trimEnd().split('\n').map((l) => `    ${l}`).join('\n');

/**
 * `drydock demo` (what `npm start` runs): a real fleet upgrade on one machine, end to end,
 * through the same API and CLI a user would use. Every process it starts is stopped on exit.
 */
export async function runDemo(options: DemoOptions): Promise<DemoReport> {
  await assertPortFree(options.listen);
  const dir = resolve(options.dir, new Date().toISOString().replace(/[:.]/g, '-'));
  mkdirSync(dir, { recursive: true });
  const { file: tokensFile, tokens } = writeTokens(dir, () => randomBytes(24).toString('base64url'));
  const fleet = new LocalFleet({ bin: options.bin, dir, token: tokens.alice });
  let traffic: TrafficGenerator | undefined;
  let recorder: NodeJS.Timeout | undefined;
  const shutdown = demoStopper(fleet, dir, say, async () => {
    clearInterval(recorder);
    await traffic?.stop();
  });
  const started = Date.now();

  try {
    say(`drydock demo — state and logs in ${dir}`);
    const workloads = await chooseWorkloads({
      mode: options.workloads,
      cacheDir: options.vmCacheDir,
      bundle: options.bin,
      // The first build downloads Debian's cloud kernel (~27 MB): say so; the rest of the build takes seconds.
      log: (line) => line.startsWith('downloading') && say(`  VMs: ${line} into ${options.vmCacheDir}`),
    });
    say(describeWorkloads(workloads, options.vmCacheDir));
    const vm = workloads.driver === 'vm' ? workloads : undefined;
    const deploymentCount = options.deployments ?? DEMO_SIZES[workloads.driver].deployments;
    const replicas = options.replicas ?? DEMO_SIZES[workloads.driver].replicas;
    const rate = options.rate ?? DEMO_SIZES[workloads.driver].rate;
    const bundles = writeBundles(options.bin, join(dir, 'bundles'));
    const url = await fleet.startOperator(options.listen, ['--tokens', tokensFile, '--heartbeat-interval', '1s']);
    say(`✓ operator on ${url} (embedded Postgres, tokens for alice, bob, agents, edge)`);
    say(dashboardLines(url, tokens));
    const as = (token: string) => (args: string[]) => cli(options.bin, url, token, args);
    const alice = as(tokens.alice);
    const bob = as(tokens.bob);

    await alice(['keys', 'generate', '--out', join(dir, 'keys')]);
    const publicKey = join(dir, 'keys', 'drydock-signing.pub');
    /** Signs with the demo's key (the one agents trust), uploads, blesses; says what it published. */
    const publish = (component: string, version: string, kind: string, file: string, live: boolean) =>
      publishArtifact(alice, join(dir, 'keys', 'drydock-signing.key'), { component, version, kind, file, live });
    const hostnames = options.regions.flatMap((region) => Array.from({ length: options.nodesPerRegion }, (_, i) => ({ region, hostname: `${region}-worker-${i + 1}` })));
    for (const { region, hostname } of hostnames) {
      const dataDir = join(dir, 'agents', hostname);
      fleet.startSupervisedAgent(hostname, region, bundles.v1, [
        '--max-instances', '4', '--trusted-key', publicKey, '--token', tokens.agents, '--heartbeat-interval', '1s',
        // auto: a short KVM probe boot, TCG when the guest does not run under KVM (each agent logs which).
        ...(vm ? ['--vm-accel', 'auto'] : []),
      ], '20s', dataDir);
    }
    const nodes = await fleet.waitForNodes(options.regions.length * options.nodesPerRegion, 60_000);
    say(`✓ ${nodes.length} agents (node-agent 1.0.0, supervised) in ${options.regions.join(', ')}`);
    recorder = setInterval(() => void fleet.recordInstancePids(), RECORD_PIDS_EVERY_MS);

    const client = fleet.client(tokens.alice);
    const names = DEPLOYMENT_NAMES.slice(0, deploymentCount);
    if (vm) say(`✓ signed and published ${await publish(vm.image.imageJson.name, vm.image.imageJson.version, 'vm-image', vm.image.tarPath, true)}`);
    for (const name of names) {
      await client.post<DeploymentView>('/api/v1/deployments', {
        name,
        replicas,
        min_available: Math.max(1, replicas - 1),
        workload: vm
          ? { driver: 'vm', image: `${vm.image.imageJson.name}@${vm.image.imageJson.version}`, memory_mb: VM_MEMORY_MB, vcpus: 1, guest_port: vm.image.imageJson.guest_port }
          : { command: process.execPath, args: [options.bin, 'example-app'], env: { MESSAGE: `hello from ${name}` }, health_path: '/health' },
      });
    }
    await waitFor(
      `every deployment to be healthy (agents' logs in ${dir})`,
      async () => {
        const list = await client.get<(DeploymentView & { health: string })[]>('/api/v1/deployments');
        return list.every((d) => d.health === 'healthy') ? list : undefined;
      },
      // Under TCG a guest boots in 2–4 s, slower several at once on two cores (STACK.md).
      vm ? 180_000 : 60_000,
    );
    await fleet.recordInstancePids();
    say(`✓ ${names.length} deployments × ${replicas} replicas healthy${vm ? ' (VMs)' : ''}: ${names.join(', ')}`);
    let guests: GuestRecord[] = [];
    if (vm) {
      guests = await recordGuests(client, names);
      say(`✓ boot ids of ${guests.length} guests recorded (each must survive its migrations)`);
    }

    const edge = await fleet.startEdge(`127.0.0.1:${await freePort()}`, ['--token', tokens.edge]);
    traffic = new TrafficGenerator(edge, names, rate);
    traffic.start();
    say(`✓ edge on ${edge}, traffic ${rate} req/s through it`);

    // a. Signed artifacts: the agent (this build as 1.0.0 and 2.0.0, a broken 2.0.1) and a binary component.
    say('\n── publish signed artifacts');
    say(`  ${await publish('node-agent', '1.0.0', 'agent', bundles.v1, true)}`);
    say(`  ${await publish('node-agent', '2.0.0', 'agent', bundles.v2, false)}`);
    say(`  ${await publish('node-agent', '2.0.1', 'agent', bundles.broken, false)}`);
    say(`  ${await publish('hello-tool', '1.0.0', 'binary', await writeBinaryComponent(dir, '1.0.0'), true)}`);

    const upgrade = writeSpec(dir, 'node-agent-2.0.0', {
      target: { component: 'node-agent', version: '2.0.0' },
      selector: { role: 'worker', regions: options.regions },
      strategy: {
        order: 'region-by-region',
        canary: { nodes: 1, soak: '3s' },
        batch: { size: 1 },
        maxUnavailablePerRegion: 1,
        drain: { mode: 'migrate', timeout: '2m' },
        health: { timeout: '90s', minHealthyTime: '2s' },
        circuitBreaker: { maxConsecutiveFailures: 2 },
      },
      approval: { required: true, distinctApprover: true },
    });
    say('\n── plan (drydock rollout plan)');
    say(indent(await alice(['rollout', 'plan', '-f', upgrade])));
    const created = JSON.parse(await alice(['rollout', 'create', '-f', upgrade, '--json'])) as { id: string; status: string };
    if (options.approveInUi) {
      say(`\n── created by alice: ${created.status}; waiting for bob to approve it in the dashboard`);
      say(`  open ${url}/ui/#/approvals and log in with bob's token ${tokens.bob}`);
      await waitForApprovalInUi(client, created.id);
      say('  approved in the dashboard');
    } else {
      say(`\n── created by alice: ${created.status}; approved by bob`);
      await bob(['rollout', 'approve', created.id]);
    }
    const upgradeStatus = await watchRollout(client, created.id, { tty: process.stdout.isTTY === true });
    say(`  rollout ${upgradeStatus}`);
    if (upgradeStatus !== 'completed') throw new Error(`the upgrade rollout ended ${upgradeStatus}; see ${dir}`);

    // b. The circuit-breaker drill: a build whose agent never comes up healthy.
    say('\n── circuit-breaker drill: node-agent 2.0.1 (broken build)');
    const drill = writeSpec(dir, 'node-agent-2.0.1', {
      target: { component: 'node-agent', version: '2.0.1' },
      selector: { role: 'worker' },
      strategy: { order: 'rolling', batch: { size: 1 }, maxUnavailablePerRegion: 1, drain: { mode: 'none' }, health: { timeout: '60s', minHealthyTime: '2s' }, circuitBreaker: { maxConsecutiveFailures: 2 } },
    });
    const drillRollout = JSON.parse(await alice(['rollout', 'create', '-f', drill, '--json'])) as { id: string };
    const tripped = await watchRollout(client, drillRollout.id, { tty: process.stdout.isTTY === true });
    say(`  rollout ${tripped}: the breaker stopped it; the failed nodes returned to 2.0.0 by themselves`);
    if (tripped !== 'awaiting_decision') throw new Error(`the drill ended ${tripped} instead of tripping the breaker`);
    say('  bob decides: rollback');
    await bob(['rollout', 'decide', drillRollout.id, 'rollback']);
    const drillStatus = await watchRollout(client, drillRollout.id, { tty: process.stdout.isTTY === true });
    say(`  rollout ${drillStatus}`);

    // Everything back where it should be before the report: every node on 2.0.0.
    await waitFor(
      'every node to report node-agent 2.0.0',
      async () => {
        const list = await client.get<{ components: Record<string, string> }[]>('/api/v1/nodes');
        return list.every((n) => n.components['node-agent'] === '2.0.0') ? true : undefined;
      },
      60_000,
    );
    await fleet.recordInstancePids();
    const stats = await traffic.stop();
    traffic = undefined;
    const vms = vm ? await checkGuests(client, guests, agentAccel(dir)) : processReport(workloads.driver === 'process' ? workloads.reason : null);
    await fleet.recordInstancePids();
    const report = await buildReport(client, stats, Date.now() - started, vms, created.id);
    say('');
    printReport(report, say);
    if (await finishDemo(report, options, shutdown, dir, say)) return report;
    say('\nThe fleet keeps running. Try:');
    say(`  curl -s ${edge}/d/web/${vm ? 'status' : ''}`);
    say(`  curl -s ${url}/health ; curl -s ${url}/metrics | grep ^drydock_nodes`);
    say(`  DRYDOCK_URL=${url} DRYDOCK_TOKEN=${tokens.alice} node bin/drydock.mjs nodes`);
    say(`  DRYDOCK_URL=${url} DRYDOCK_TOKEN=${tokens.alice} node bin/drydock.mjs rollout list`);
    say(`  DRYDOCK_URL=${url} DRYDOCK_TOKEN=${tokens.alice} node bin/drydock.mjs events --kind rollout.`);
    say(dashboardLines(url, tokens));
    say('Press Ctrl-C to stop the demo fleet.');
    return await new Promise<never>(() => {});
  } catch (error) {
    await shutdown();
    throw error;
  }
}

/** The demo's first line about its workloads: VMs and where their image came from, or the one fallback line. */
function describeWorkloads(workloads: DemoWorkloads, cacheDir: string): string {
  if (workloads.driver === 'process') return fallbackLine(workloads) ?? '✓ deployments run as processes (--workloads process)';
  const { imageJson } = workloads.image;
  const how = workloads.built ? `built in ${(workloads.buildMs / 1000).toFixed(1)} s into ${cacheDir}` : `reused from ${workloads.image.dir}`;
  return `✓ VMs: QEMU ${workloads.qemuVersion}, guest image ${imageJson.name} ${imageJson.version} (${how})`;
}

/** Where the dashboard is and the tokens that log in to it (the demo's tokens are made per run). */
function dashboardLines(url: string, tokens: { alice: string; bob: string }): string {
  return [`✓ dashboard: ${url}/ui/`, `    log in as alice (admin):    ${tokens.alice}`, `    log in as bob   (approver): ${tokens.bob}`].join('\n');
}

/** Polls the rollout until someone decided its approval (a person in the dashboard; no time limit, Ctrl-C stops). */
async function waitForApprovalInUi(client: ApiClient, id: string): Promise<void> {
  for (;;) {
    const rollout = await client.get<{ status: string }>(`/api/v1/rollouts/${encodeURIComponent(id)}`);
    if (rollout.status !== 'awaiting_approval') {
      if (rollout.status === 'rejected' || rollout.status === 'aborted') throw new Error(`the upgrade rollout was ${rollout.status} in the dashboard`);
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}
