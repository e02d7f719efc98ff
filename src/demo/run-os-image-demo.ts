// `drydock demo --scenario os-image`: an OS image rolled across a local fleet of supervised
// agents (issue 12, DESIGN.md §12). Each node is provisioned with os 1.0.0, then a rollout takes
// it to 2.0.0 — staged while the node serves, drained, a preNode hook, one (simulated) reboot
// into the new slot, its boot checks, a postNode hook — and a second rollout brings 2.0.1,
// whose boot checks fail: every node that gets it tries it 3 times and boots its previous slot
// again by itself, and the breaker trips. The report says per node what happened.
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { watchRollout } from '../cli/rollout-watch.js';
import type { NodeView } from '../store/nodes.js';
import { cli, publishArtifact, writeTokens } from './demo-setup.js';
import { assertPortFree, demoStopper, finishDemo, writeSpec } from './demo-session.js';
import { LocalFleet, waitFor } from './local-fleet.js';
import { buildOsImageReport, type OsImageDemoReport, printOsImageReport, type RebootCounts } from './os-image-report.js';
import { writeOsImage } from './os-images.js';
import { simulatedReboots } from './simulated-reboots.js';

export interface OsImageDemoOptions {
  bin: string;
  listen: string;
  dir: string;
  regions: string[];
  nodesPerRegion: number;
  /** Stop everything after the report instead of waiting for Ctrl-C. */
  exit: boolean;
  reportFile?: string | undefined;
}

/** The demo's regions and nodes when the command line names none: 4 nodes keep it near a minute. */
export const OS_IMAGE_DEMO_SIZE = { regions: ['us-east', 'eu-west'], nodesPerRegion: 2 };
/** Boots a new slot gets before the node falls back (the agents' `--boot-tries`). */
const BOOT_TRIES = 3;
const BROKEN_CHECK = 'kernel panic: no root filesystem (simulated)';
const say = (line = '') => process.stdout.write(`${line}\n`);

export async function runOsImageDemo(options: OsImageDemoOptions): Promise<OsImageDemoReport> {
  await assertPortFree(options.listen);
  const dir = resolve(options.dir, `os-image-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  const hooksDir = join(dir, 'hooks');
  mkdirSync(hooksDir, { recursive: true });
  const hooksFile = (hostname: string) => join(hooksDir, `${hostname}.log`);
  const { file: tokensFile, tokens } = writeTokens(dir, () => randomBytes(24).toString('base64url'));
  const fleet = new LocalFleet({ bin: options.bin, dir, token: tokens.alice });
  const shutdown = demoStopper(fleet, dir, say, async () => {}, 'supervisors, agents, operator');
  const started = Date.now();
  const tty = process.stdout.isTTY === true;

  try {
    say(`drydock demo --scenario os-image — state and logs in ${dir}`);
    // A grace above a few reboots' worth of silence: a rebooting node is not a lost one.
    const url = await fleet.startOperator(options.listen, ['--tokens', tokensFile, '--heartbeat-interval', '1s', '--heartbeat-grace', '10s']);
    say(`✓ operator on ${url} (embedded Postgres)`);
    const alice = (args: string[]) => cli(options.bin, url, tokens.alice, args);
    const bob = (args: string[]) => cli(options.bin, url, tokens.bob, args);
    const client = fleet.client(tokens.alice);
    await alice(['keys', 'generate', '--out', join(dir, 'keys')]);

    const hosts = options.regions.flatMap((region) => Array.from({ length: options.nodesPerRegion }, (_, i) => ({ region, hostname: `${region}-node-${i + 1}` })));
    for (const { region, hostname } of hosts) {
      fleet.startSupervisedAgent(hostname, region, options.bin, [
        '--token', tokens.agents, '--trusted-key', join(dir, 'keys', 'drydock-signing.pub'), '--heartbeat-interval', '1s', '--boot-tries', String(BOOT_TRIES),
      ]);
    }
    // The images are published while the agents start (each is a `drydock artifacts publish` as a user would run it).
    const images = join(dir, 'images');
    const key = join(dir, 'keys', 'drydock-signing.key');
    const published = Promise.all([
      writeOsImage(images, '1.0.0').then((file) => publishArtifact(alice, key, { component: 'os', version: '1.0.0', kind: 'os-image', file, live: true })),
      writeOsImage(images, '2.0.0').then((file) => publishArtifact(alice, key, { component: 'os', version: '2.0.0', kind: 'os-image', file, live: false })),
      writeOsImage(images, '2.0.1', { fail: BROKEN_CHECK }).then((file) => publishArtifact(alice, key, { component: 'os', version: '2.0.1', kind: 'os-image', file, live: false })),
    ]);
    // Awaited below; a failure before then (the agents never came up) must not go unhandled.
    published.catch(() => {});
    await fleet.waitForNodes(hosts.length, 90_000);
    say(`✓ ${hosts.length} supervised agents in ${options.regions.join(', ')} (--reboot-command exit: a reboot is the agent exiting and its supervisor starting it again; --boot-tries ${BOOT_TRIES})`);
    const rebootsNow = () => new Map(hosts.map(({ hostname }) => [hostname, simulatedReboots(fleet.processes.get(hostname)?.log ?? '')]));
    const since = (before: Map<string, number>) => {
      const now = rebootsNow();
      return new Map(hosts.map(({ hostname }) => [hostname, (now.get(hostname) ?? 0) - (before.get(hostname) ?? 0)]));
    };

    say('\n── signed os images (kind os-image: reboot: true; a .tar.gz of `version` and `required.d/` boot checks)');
    const [first, second, bad] = await published;
    say(`  ${first}\n  ${second}\n  ${bad}  ← its boot check fails`);

    say('\n── provision: every node installs os 1.0.0 (one reboot each)');
    const beforeProvision = rebootsNow();
    // What `drydock node set-version NODE os 1.0.0` does, for every node at once.
    await Promise.all(hosts.map(({ hostname }) => client.request('PUT', `/api/v1/nodes/${encodeURIComponent(hostname)}/components/os`, { version: '1.0.0' })));
    await waitFor(
      'every node on os 1.0.0',
      async () => {
        const nodes = await client.get<NodeView[]>('/api/v1/nodes');
        return nodes.length === hosts.length && nodes.every((n) => n.components.os === '1.0.0' && n.status === 'ready') ? true : undefined;
      },
      90_000,
    );
    const provision = since(beforeProvision);
    say(`✓ ${hosts.length} nodes on os 1.0.0`);

    const hooks = {
      preNode: [nodeHook(hooksDir)],
      postNode: [nodeHook(hooksDir)],
    };
    const strategy = {
      order: 'rolling',
      // One node per region at a time: two batches of two on the default fleet.
      batch: { size: options.regions.length },
      maxUnavailablePerRegion: 1,
      drain: { mode: 'migrate', timeout: '1m' },
      health: { timeout: '90s', minHealthyTime: '1s' },
      circuitBreaker: { maxConsecutiveFailures: 2 },
    };
    say(`\n── rollout os 2.0.0: per node staged while serving, drained, preNode, reboot into the new slot, boot checks, postNode (hooks append to ${hooksDir}/<node>.log)`);
    const upgradeSpec = writeSpec(dir, 'os-2.0.0', { target: { component: 'os', version: '2.0.0' }, selector: { regions: options.regions }, strategy, hooks });
    const beforeUpgrade = rebootsNow();
    const upgrade = JSON.parse(await alice(['rollout', 'create', '-f', upgradeSpec, '--json'])) as { id: string };
    const upgradeStatus = await watchRollout(client, upgrade.id, { tty });
    const upgradeReboots = since(beforeUpgrade);
    say(`  rollout ${upgradeStatus}`);
    if (upgradeStatus !== 'completed') throw new Error(`the os 2.0.0 rollout ended ${upgradeStatus}; see ${dir}`);

    say(`\n── rollout os 2.0.1 (broken image): each node that gets it fails its boot checks ${BOOT_TRIES} times and boots its previous slot again, by itself`);
    const brokenSpec = writeSpec(dir, 'os-2.0.1', { target: { component: 'os', version: '2.0.1' }, selector: { regions: options.regions }, strategy, hooks });
    const beforeBroken = rebootsNow();
    const broken = JSON.parse(await alice(['rollout', 'create', '-f', brokenSpec, '--json'])) as { id: string };
    const tripped = await watchRollout(client, broken.id, { tty });
    say(`  rollout ${tripped}: the breaker stopped it`);
    if (tripped !== 'awaiting_decision') throw new Error(`the os 2.0.1 rollout ended ${tripped} instead of tripping the breaker; see ${dir}`);
    say('  bob decides: abort (the failed nodes are back on 2.0.0 already; the others never got 2.0.1)');
    await bob(['rollout', 'decide', broken.id, 'abort']);
    const brokenStatus = await watchRollout(client, broken.id, { tty });
    say(`  rollout ${brokenStatus}`);
    await waitFor(
      'every node on os 2.0.0, ready and enabled',
      async () => {
        const nodes = await client.get<NodeView[]>('/api/v1/nodes');
        return nodes.every((n) => n.components.os === '2.0.0' && n.status === 'ready' && !n.cordoned) ? true : undefined;
      },
      60_000,
    );
    const brokenReboots = since(beforeBroken);

    const reboots = new Map<string, RebootCounts>(
      hosts.map(({ hostname }) => [hostname, { provision: provision.get(hostname) ?? 0, upgrade: upgradeReboots.get(hostname) ?? 0, broken: brokenReboots.get(hostname) ?? 0 }]),
    );
    const report = await buildOsImageReport(client, { runDir: dir, elapsedMs: Date.now() - started, rolloutIds: [upgrade.id, broken.id], reboots, hooksFile });
    say('');
    printOsImageReport(report, say);
    if (await finishDemo(report, options, shutdown, dir, say)) return report;
    say('\nThe fleet keeps running. Try:');
    say(`  DRYDOCK_URL=${url} DRYDOCK_TOKEN=${tokens.alice} node bin/drydock.mjs node show ${hosts[0]?.hostname ?? ''}`);
    say(`  DRYDOCK_URL=${url} DRYDOCK_TOKEN=${tokens.alice} node bin/drydock.mjs events --kind node.reverted`);
    say(`  cat ${hooksDir}/*.log`);
    say('Press Ctrl-C to stop the demo fleet.');
    return await new Promise<never>(() => {});
  } catch (error) {
    await shutdown();
    throw error;
  }
}

/** A node hook (run on the node by its agent) appending `<point> <to-version> <rollout id>` to `<hooksDir>/<node>.log`. */
function nodeHook(hooksDir: string): Record<string, unknown> {
  return {
    run: ['/bin/sh', '-c', 'echo "$DRYDOCK_PHASE $DRYDOCK_TO_VERSION $DRYDOCK_ROLLOUT_ID" >> "$DEMO_HOOKS_DIR/$DRYDOCK_NODE.log"'],
    timeout: '30s',
    env: { DEMO_HOOKS_DIR: hooksDir },
  };
}
