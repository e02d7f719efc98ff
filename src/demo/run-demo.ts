import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { watchRollout } from '../cli/rollout-watch.js';
import { freePort } from '../agent/drivers/process-driver.js';
import { parseListen } from '../listen-address.js';
import type { DeploymentView } from '../store/deployments.js';
import { buildReport, type DemoReport, printReport } from './demo-report.js';
import { cli, writeBinaryComponent, writeBundles, writeTokens } from './demo-setup.js';
import { LocalFleet, waitFor } from './local-fleet.js';
import { TrafficGenerator } from './traffic.js';

export interface DemoOptions {
  bin: string;
  listen: string;
  dir: string;
  regions: string[];
  nodesPerRegion: number;
  deployments: number;
  replicas: number;
  rate: number;
  /** Stop everything after the report instead of waiting for Ctrl-C. */
  exit: boolean;
  reportFile?: string | undefined;
}

const DEPLOYMENT_NAMES = ['web', 'api', 'shop', 'blog', 'search', 'auth', 'media', 'mail'];
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
  let stopping: Promise<void> | undefined;
  const shutdown = () => {
    stopping ??= (async () => {
      await traffic?.stop();
      say('\nstopping the demo fleet (edge, agents, instances, operator)...');
      await fleet.stop();
      say('all demo processes stopped.');
    })();
    return stopping;
  };
  const onSignal = () => void shutdown().then(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const started = Date.now();

  try {
    say(`drydock demo — state and logs in ${dir}`);
    const bundles = writeBundles(options.bin, join(dir, 'bundles'));
    const url = await fleet.startOperator(options.listen, ['--tokens', tokensFile, '--heartbeat-interval', '1s']);
    say(`✓ operator on ${url} (embedded Postgres, tokens for alice, bob, agents, edge)`);
    const as = (token: string) => (args: string[]) => cli(options.bin, url, token, args);
    const alice = as(tokens.alice);
    const bob = as(tokens.bob);

    await alice(['keys', 'generate', '--out', join(dir, 'keys')]);
    const publicKey = join(dir, 'keys', 'drydock-signing.pub');
    for (const region of options.regions) {
      for (let i = 1; i <= options.nodesPerRegion; i++) {
        fleet.startSupervisedAgent(`${region}-worker-${i}`, region, bundles.v1, [
          '--max-instances', '4', '--trusted-key', publicKey, '--token', tokens.agents, '--heartbeat-interval', '1s',
        ], '20s');
      }
    }
    const nodes = await fleet.waitForNodes(options.regions.length * options.nodesPerRegion, 60_000);
    say(`✓ ${nodes.length} agents (node-agent 1.0.0, supervised) in ${options.regions.join(', ')}`);

    const client = fleet.client(tokens.alice);
    const names = DEPLOYMENT_NAMES.slice(0, options.deployments);
    for (const name of names) {
      await client.post<DeploymentView>('/api/v1/deployments', {
        name,
        replicas: options.replicas,
        min_available: Math.max(1, options.replicas - 1),
        workload: { command: process.execPath, args: [options.bin, 'example-app'], env: { MESSAGE: `hello from ${name}` }, health_path: '/health' },
      });
    }
    await waitFor(
      'every deployment to be healthy',
      async () => {
        const list = await client.get<(DeploymentView & { health: string })[]>('/api/v1/deployments');
        return list.every((d) => d.health === 'healthy') ? list : undefined;
      },
      60_000,
    );
    await fleet.recordInstancePids();
    say(`✓ ${names.length} deployments × ${options.replicas} replicas healthy: ${names.join(', ')}`);

    const edge = await fleet.startEdge(`127.0.0.1:${await freePort()}`, ['--token', tokens.edge]);
    traffic = new TrafficGenerator(edge, names, options.rate);
    traffic.start();
    say(`✓ edge on ${edge}, traffic ${options.rate} req/s through it`);

    // a. Signed artifacts: the agent (this build as 1.0.0 and 2.0.0, a broken 2.0.1) and a binary component.
    say('\n── publish signed artifacts');
    const publish = async (component: string, version: string, kind: string, file: string, live: boolean) => {
      const id = (await alice(['artifacts', 'publish', '--component', component, '--version', version, '--kind', kind, '--file', file, '--key', join(dir, 'keys', 'drydock-signing.key')])).trim();
      await alice(['artifacts', 'bless', id]);
      if (live) await alice(['artifacts', 'promote', id]);
      say(`  ${component} ${version} (${kind}) ${live ? 'live' : 'blessed'}`);
    };
    await publish('node-agent', '1.0.0', 'agent', bundles.v1, true);
    await publish('node-agent', '2.0.0', 'agent', bundles.v2, false);
    await publish('node-agent', '2.0.1', 'agent', bundles.broken, false);
    await publish('hello-tool', '1.0.0', 'binary', await writeBinaryComponent(dir, '1.0.0'), true);

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
    say(`\n── created by alice: ${created.status}; approved by bob`);
    await bob(['rollout', 'approve', created.id]);
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
    const report = await buildReport(client, stats, Date.now() - started, created.id);
    say('');
    printReport(report, say);
    if (options.reportFile) {
      writeFileSync(options.reportFile, `${JSON.stringify(report, null, 2)}\n`);
      say(`report written to ${options.reportFile}`);
    }
    if (options.exit) {
      await shutdown();
      return report;
    }
    say('\nThe fleet keeps running. Try:');
    say(`  curl -s ${edge}/d/web/`);
    say(`  curl -s ${url}/health ; curl -s ${url}/metrics | grep ^drydock_nodes`);
    say(`  DRYDOCK_URL=${url} DRYDOCK_TOKEN=${tokens.alice} node bin/drydock.mjs nodes`);
    say(`  DRYDOCK_URL=${url} DRYDOCK_TOKEN=${tokens.alice} node bin/drydock.mjs rollout list`);
    say(`  DRYDOCK_URL=${url} DRYDOCK_TOKEN=${tokens.alice} node bin/drydock.mjs events --kind rollout.`);
    say('Press Ctrl-C to stop the demo fleet.');
    setInterval(() => void fleet.recordInstancePids(), 5_000);
    return await new Promise<never>(() => {});
  } catch (error) {
    await shutdown();
    throw error;
  }
}

/** Fails early and clearly when the operator's address is taken (a second demo, another service). */
async function assertPortFree(listen: string): Promise<void> {
  const { host, port } = parseListen(listen, 8080);
  await new Promise<void>((resolvePromise, reject) => {
    const probe = createServer();
    probe.once('error', () => reject(new Error(`${host}:${port} is in use; pick another address with --listen (npm start -- --listen 127.0.0.1:18080)`)));
    probe.listen(port, host, () => probe.close(() => resolvePromise()));
  });
}

function writeSpec(dir: string, name: string, body: Record<string, unknown>): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, stringify({ name, ...body }));
  return file;
}
