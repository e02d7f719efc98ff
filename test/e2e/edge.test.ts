import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/agent/drivers/process-driver.js';
import { isAlive, type LocalFleet, waitFor } from '../../src/demo/local-fleet.js';
import type { DeploymentView } from '../../src/store/deployments.js';
import type { NodeView } from '../../src/store/nodes.js';
import { BUNDLE, startTestFleet } from '../support/processes.js';

/** GET with an explicit Host header (fetch may not set Host), on a fresh connection. */
function getWithHost(url: string, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { host }, agent: false }, (res) => {
      let body = '';
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Steady traffic through the edge with keep-alive (Node's fetch), one request every `everyMs`. */
function trafficThroughEdge(url: string, everyMs: number) {
  const stats = { sent: 0, failed: 0, errors: [] as string[], servedBy: new Set<string>() };
  let running = true;
  const done = (async () => {
    while (running) {
      stats.sent++;
      try {
        const response = await fetch(`${url}/d/web/`, { signal: AbortSignal.timeout(5000) });
        const body = (await response.json()) as { instance?: string };
        if (response.status !== 200) throw new Error(`HTTP ${response.status}`);
        if (body.instance) stats.servedBy.add(body.instance);
      } catch (error) {
        stats.failed++;
        stats.errors.push((error as Error).message);
      }
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    stats,
    async stop() {
      running = false;
      await done;
      return stats;
    },
  };
}

describe('drydock edge: routes to healthy endpoints and follows a drain with zero failed requests', () => {
  let fleet: LocalFleet;
  let edge: string;
  let deployment: DeploymentView;

  beforeAll(async () => {
    fleet = await startTestFleet('edge');
    for (const region of ['us-east', 'eu-west', 'ap-south']) fleet.startAgent(`${region}-worker-1`, region, ['--max-instances', '4', '--heartbeat-interval', '1s']);
    await fleet.waitForNodes(3);
    deployment = await fleet.client().post<DeploymentView>('/api/v1/deployments', {
      name: 'web',
      replicas: 3,
      min_available: 2,
      workload: { command: process.execPath, args: [BUNDLE, 'example-app'], health_path: '/health' },
    });
    await waitFor(
      'web to be healthy',
      async () => ((await fleet.client().get<{ status: string }>(`/api/v1/deployments/${deployment.id}/health`)).status === 'healthy' ? true : undefined),
      30_000,
    );
    await fleet.recordInstancePids();
    edge = await fleet.startEdge(`127.0.0.1:${await freePort()}`);
  });

  afterAll(async () => {
    await fleet?.stop();
    expect([...(fleet?.spawnedPids ?? [])].filter(isAlive)).toEqual([]);
    expect([...(fleet?.instancePids ?? [])].filter(isAlive)).toEqual([]);
  });

  it('serves web.localhost and /d/web/ round-robin across the three replicas; unknown deployments are 404', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 9; i++) {
      const response = await getWithHost(`${edge}/`, 'web.localhost');
      expect(response.status).toBe(200);
      seen.add((JSON.parse(response.body) as { instance: string }).instance);
    }
    expect(seen.size).toBe(3);
    const prefixed = await fetch(`${edge}/d/web/health`);
    expect(prefixed.status).toBe(200);
    expect(await prefixed.json()).toEqual({ status: 'healthy' });
    const unknown = await getWithHost(`${edge}/`, 'nope.localhost');
    expect(unknown.status).toBe(404);
    expect((JSON.parse(unknown.body) as { error: { code: string } }).error.code).toBe('UNKNOWN_DEPLOYMENT');
  });

  it('keeps every request succeeding while a node is drained and its instance moves', async () => {
    const client = fleet.client();
    const traffic = trafficThroughEdge(edge, 20);
    await waitFor('traffic to flow', async () => (traffic.stats.sent > 30 ? true : undefined), 10_000);
    const victim = (await client.get<NodeView[]>('/api/v1/nodes')).find((n) => n.hostname === 'us-east-worker-1') as NodeView;
    await client.post(`/api/v1/nodes/${victim.id}/drain`, {});
    await waitFor(
      'the drain to complete',
      async () => ((await client.get<NodeView>(`/api/v1/nodes/${victim.id}`)).drain?.state === 'completed' ? true : undefined),
      60_000,
    );
    await fleet.recordInstancePids();
    const sentAtDrain = traffic.stats.sent;
    await waitFor('traffic after the drain', async () => (traffic.stats.sent > sentAtDrain + 50 ? true : undefined), 20_000);
    const stats = await traffic.stop();
    expect(stats.errors).toEqual([]);
    expect(stats.failed).toBe(0);
    expect(stats.servedBy.size).toBe(4);
    const table = (await (await fetch(`${edge}/endpoints`)).json()) as Record<string, string[]>;
    expect(table.web).toHaveLength(3);
    const metrics = await (await fetch(`${edge}/metrics`)).text();
    expect(metrics).toMatch(/^drydock_edge_requests_total\{deployment="web",code="200"\} \d+/m);
  });
});
