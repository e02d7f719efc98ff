import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { DeploymentView } from '../store/deployments.js';
import { LocalFleet, waitFor } from './local-fleet.js';

export interface DemoOptions {
  bin: string;
  listen: string;
  dir: string;
  regions: string[];
  nodesPerRegion: number;
  replicas: number;
  /** Stop everything once the fleet is up (used by tests and CI). */
  exit: boolean;
}

const say = (line: string) => process.stdout.write(`${line}\n`);

/**
 * `drydock demo` (what `npm start` runs): an operator on the embedded database in a fresh
 * directory, a local fleet of agents in several regions, and an example deployment spread
 * over them. Every process it starts is stopped on exit or Ctrl-C.
 */
export async function runDemo(options: DemoOptions): Promise<void> {
  const dir = resolve(options.dir, new Date().toISOString().replace(/[:.]/g, '-'));
  mkdirSync(dir, { recursive: true });
  const fleet = new LocalFleet({ bin: options.bin, dir });
  let stopping: Promise<void> | undefined;
  const shutdown = () => {
    stopping ??= (async () => {
      say('\nstopping the demo fleet (agents, instances, operator)...');
      await fleet.stop();
      say('all demo processes stopped.');
    })();
    return stopping;
  };
  process.once('SIGINT', () => void shutdown().then(() => process.exit(0)));
  process.once('SIGTERM', () => void shutdown().then(() => process.exit(0)));

  try {
    say(`drydock demo — state and logs in ${dir}`);
    const url = await fleet.startOperator(options.listen);
    say(`✓ operator on ${url} (embedded Postgres in ${join(dir, 'operator')})`);
    for (const region of options.regions) {
      for (let i = 1; i <= options.nodesPerRegion; i++) fleet.startAgent(`${region}-worker-${i}`, region, ['--max-instances', '4']);
    }
    const total = options.regions.length * options.nodesPerRegion;
    const nodes = await fleet.waitForNodes(total);
    say(`✓ ${nodes.length} agents registered: ${nodes.map((n) => `${n.hostname}`).join(', ')}`);

    const client = fleet.client();
    const deployment = await client.post<DeploymentView>('/api/v1/deployments', {
      name: 'hello',
      replicas: options.replicas,
      min_available: Math.max(1, options.replicas - 1),
      workload: { command: process.execPath, args: [options.bin, 'example-app'], health_path: '/health' },
    });
    await waitFor(
      'the example deployment to become healthy',
      async () => {
        const health = await client.get<{ status: string }>(`/api/v1/deployments/${deployment.id}/health`);
        return health.status === 'healthy' ? health : undefined;
      },
      60_000,
    );
    await fleet.recordInstancePids();
    const endpoints = await client.get<{ url: string; node_id: string }[]>(`/api/v1/deployments/${deployment.id}/endpoints`);
    say(`✓ deployment "hello": ${options.replicas} replicas healthy at ${endpoints.map((e) => e.url).join(', ')}`);
    say('');
    say('Where to look:');
    say(`  curl -s ${url}/api/v1/nodes | jq '.[] | {hostname, region, status, active_instances}'`);
    say(`  curl -s ${url}/api/v1/deployments/${deployment.id}/health`);
    say(`  curl -s ${url}/api/v1/deployments/${deployment.id}/endpoints`);
    say(`  curl -s ${url}/metrics | grep ^drydock_nodes`);
    say(`  DRYDOCK_URL=${url} node bin/drydock.mjs nodes`);
    say(`  DRYDOCK_URL=${url} node bin/drydock.mjs node drain ${options.regions[0]}-worker-1 --wait`);
    say(`  API description: ${url}/openapi.json`);
    if (options.exit) {
      await shutdown();
      return;
    }
    say('\nPress Ctrl-C to stop the demo fleet.');
    // Keep recording instance PIDs so Ctrl-C can stop instances that moved meanwhile.
    setInterval(() => void fleet.recordInstancePids(), 5_000);
    await new Promise<never>(() => {});
  } catch (error) {
    await shutdown();
    throw error;
  }
}
