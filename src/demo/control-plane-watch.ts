// What the control-plane drill measures while it runs: each replica's readiness per region and
// who leads (every 250 ms), and API traffic through the edge (every failure counted).
import type { ReplicaView } from '../store/operator-replicas.js';
import type { ControlPlaneFleet } from './control-plane-fleet.js';

export interface ReplicaWatch {
  /** The fewest replicas of each region that answered /health/ready with 200 at one sample. */
  readonly minReady: Map<string, number>;
  /** Every replica seen leading (hostname), in order of first sight. */
  readonly leaders: string[];
  samples: number;
  stop(): Promise<void>;
}

/** Samples each replica's own /health/ready (not the registry, which lags) and the registry's leader. */
export function watchReplicas(cp: ControlPlaneFleet, intervalMs = 250): ReplicaWatch {
  const regions = [...new Set(cp.nodes.map((n) => n.region))];
  const watch: ReplicaWatch = { minReady: new Map(regions.map((r) => [r, Infinity])), leaders: [], samples: 0, stop: async () => {} };
  let running = true;
  const loop = (async () => {
    while (running) {
      // Both addresses of each node: a blue-green rollout runs two replicas on one node.
      const ready = await Promise.all(
        cp.nodes.flatMap((n) =>
          [n.listen, n.altListen].map(async (listen) => {
            const response = await fetch(`http://${listen}/health/ready`, { signal: AbortSignal.timeout(1_000) }).catch(() => undefined);
            await response?.arrayBuffer().catch(() => undefined);
            return response?.status === 200 ? n.region : undefined;
          }),
        ),
      );
      for (const region of regions) watch.minReady.set(region, Math.min(watch.minReady.get(region) ?? Infinity, ready.filter((r) => r === region).length));
      const replicas = await cp.replicas().catch(() => [] as ReplicaView[]);
      for (const r of replicas) if (r.live && r.leader && !watch.leaders.includes(r.hostname)) watch.leaders.push(r.hostname);
      watch.samples++;
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  })();
  watch.stop = async () => {
    running = false;
    await loop;
  };
  return watch;
}

export interface ServingSample {
  at: number;
  version: string;
}

/**
 * Which version answers through the load balancer: one GET `healthUrl` at a time (so the
 * samples are in order), each answer's version with its time. Failures are not samples.
 */
export function watchServing(healthUrl: string, pauseMs = 50): { samples: ServingSample[]; stop(): Promise<void> } {
  const samples: ServingSample[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const response = await fetch(healthUrl, { signal: AbortSignal.timeout(5_000) }).catch(() => undefined);
      const body = (await response?.json().catch(() => undefined)) as { version?: string } | undefined;
      if (response?.status === 200 && body?.version) samples.push({ at: Date.now(), version: body.version });
      await new Promise((r) => setTimeout(r, pauseMs));
    }
  })();
  return {
    samples,
    async stop() {
      running = false;
      await loop;
    },
  };
}

export interface TrafficStats {
  sent: number;
  failed: number;
  errors: string[];
  startedAt: number;
  stoppedAt: number | null;
}

/** `workers` clients each sending GET `url` then pausing `pauseMs`; counts every failed request. */
export function apiTraffic(url: string, workers = 2, pauseMs = 25): { stats: TrafficStats; stop(): Promise<void> } {
  const stats: TrafficStats = { sent: 0, failed: 0, errors: [], startedAt: Date.now(), stoppedAt: null };
  let running = true;
  const worker = async () => {
    while (running) {
      stats.sent++;
      try {
        const response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
        if (response.status !== 200) throw new Error(`HTTP ${response.status}: ${(await response.text()).slice(0, 200)}`);
        await response.arrayBuffer();
      } catch (error) {
        stats.failed++;
        if (stats.errors.length < 20) stats.errors.push((error as Error).message);
      }
      await new Promise((r) => setTimeout(r, pauseMs));
    }
  };
  const loop = Promise.all(Array.from({ length: workers }, worker));
  return {
    stats,
    async stop() {
      running = false;
      await loop;
      stats.stoppedAt = Date.now();
    },
  };
}
