import type { ApiClient } from '../api-client.js';
import type { TrafficStats } from './traffic.js';

/** What `drydock demo --report FILE` writes (the shape the issue specifies, plus a few extras). */
export interface DemoReport {
  duration_s: number;
  requests: { sent: number; failed: number; errors: string[] };
  rollouts: { id: string; name: string; status: string; duration_s: number }[];
  nodes: { hostname: string; region: string; components: Record<string, string> }[];
  migrations: number;
  drift: boolean;
  circuit_breaker_trips: number;
  events: number;
}

export async function buildReport(client: ApiClient, traffic: TrafficStats, elapsedMs: number): Promise<DemoReport> {
  const rollouts = await client.get<{ id: string; name: string; status: string; duration_s: number }[]>('/api/v1/rollouts');
  const nodes = await client.get<{ hostname: string; region: string; components: Record<string, string> }[]>('/api/v1/nodes');
  const migrations = await client.get<unknown[]>('/api/v1/events?kind_prefix=instance.migration_completed&limit=5000');
  const trips = await client.get<unknown[]>('/api/v1/events?kind_prefix=rollout.circuit_breaker_tripped&limit=5000');
  const [latest] = await client.get<{ id: number }[]>('/api/v1/events?order=desc&limit=1');
  const drift = await client.get<{ drift: boolean }>('/api/v1/drift');
  return {
    duration_s: Math.round(elapsedMs / 1000),
    requests: { sent: traffic.sent, failed: traffic.failed, errors: traffic.errors },
    rollouts: rollouts.reverse().map((r) => ({ id: r.id, name: r.name, status: r.status, duration_s: r.duration_s })),
    nodes: nodes.map((n) => ({ hostname: n.hostname, region: n.region, components: n.components })),
    migrations: migrations.length,
    drift: drift.drift,
    circuit_breaker_trips: trips.length,
    events: latest?.id ?? 0,
  };
}

export function printReport(report: DemoReport, say: (line?: string) => void): void {
  say('── report');
  say(`  duration            ${report.duration_s} s`);
  say(`  requests            ${report.requests.sent} sent, ${report.requests.failed} failed`);
  for (const r of report.rollouts) say(`  rollout             ${r.name}: ${r.status} in ${r.duration_s} s`);
  say(`  migrations          ${report.migrations} (make-before-break)`);
  say(`  breaker trips       ${report.circuit_breaker_trips}`);
  say(`  drift               ${report.drift}`);
  say(`  events              ${report.events}`);
  for (const n of report.nodes) say(`  ${n.hostname.padEnd(20)}${n.region.padEnd(10)}${Object.entries(n.components).map(([c, v]) => `${c} ${v}`).join(', ')}`);
}
