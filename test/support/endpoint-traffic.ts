import { request } from 'node:http';
import type { ApiClient } from '../../src/api-client.js';

/** One GET on a fresh connection (no keep-alive reuse): each request proves the endpoint serves. */
export function get(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, timeout: 3000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/**
 * A client that keeps calling a deployment the way a router would: it follows the published
 * healthy endpoints (refreshed every 200 ms) and sends one request at a time to one of them.
 */
export function startTraffic(client: ApiClient, deploymentId: string) {
  const stats = { sent: 0, failed: 0, errors: [] as string[] };
  let endpoints: string[] = [];
  let running = true;
  const refresh = async () => {
    while (running) {
      const list = await client.get<{ url: string; healthy: boolean }[]>(`/api/v1/deployments/${deploymentId}/endpoints`, { timeoutMs: 2000 }).catch(() => undefined);
      if (list) endpoints = list.filter((e) => e.healthy).map((e) => e.url);
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  const send = async () => {
    let n = 0;
    while (running) {
      const url = endpoints[n++ % Math.max(1, endpoints.length)];
      if (url) {
        stats.sent++;
        try {
          const status = await get(`${url}/`);
          if (status !== 200) throw new Error(`HTTP ${status}`);
        } catch (error) {
          stats.failed++;
          stats.errors.push(`${url}: ${(error as Error).message}`);
        }
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const done = Promise.all([refresh(), send()]);
  return {
    stats,
    async stop() {
      running = false;
      await done;
      return stats;
    },
  };
}
