import type { ApiClient } from '../api-client.js';
import { measureRolloutTiming, type RolloutTiming, type RolloutWaits, type TimedEvent } from './rollout-timing.js';
import type { TrafficStats } from './traffic.js';
import { printVmReport, type VmReport } from './vm-report.js';

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
  /** The main upgrade's handoff latencies and makespan, from the event log (rollout-timing.ts); null when it did not run. */
  upgrade_timing: RolloutTiming | null;
  /**
   * The operator's reconcile passes over the whole demo, by queue, from its /metrics: a handoff
   * is one or two of them, and every queue shares the one embedded database connection.
   */
  reconcile_passes: Record<string, { count: number; mean_ms: number; over_100ms: number }>;
  /** How the deployments ran (VMs or processes) and, for VMs, their live migrations and boot ids (vm-report.ts). */
  vms: VmReport;
}

/** The most events one GET returns (the route's limit). */
const PAGE = 5000;

/** Every event matching `query`, page by page (oldest first). */
async function allEvents(client: ApiClient, query: Record<string, string>): Promise<TimedEvent[]> {
  const out: TimedEvent[] = [];
  let after = 0;
  for (;;) {
    const page = await client.get<TimedEvent[]>(`/api/v1/events?${new URLSearchParams({ ...query, after: String(after), limit: String(PAGE) })}`);
    out.push(...page);
    if (page.length < PAGE) return out;
    after = (page.at(-1) as TimedEvent).id;
  }
}

/**
 * The upgrade rollout's timing. Drains end and installs complete in events that carry only the
 * node (the drain reconciler and the agent write them): those are read by kind from the
 * rollout's first event on, and matched to its tasks by node and time.
 */
export async function measureUpgrade(client: ApiClient, rolloutId: string): Promise<RolloutTiming> {
  const { spec } = await client.get<{ spec: RolloutWaits }>(`/api/v1/rollouts/${encodeURIComponent(rolloutId)}`);
  const rolloutEvents = await allEvents(client, { rollout_id: rolloutId });
  const from = String(Math.max(0, (rolloutEvents[0]?.id ?? 1) - 1));
  const nodeEvents = [
    ...(await allEvents(client, { kind_prefix: 'node.drained', after: from })),
    ...(await allEvents(client, { kind_prefix: 'node.install_completed', after: from })),
  ];
  return measureRolloutTiming(rolloutId, spec, rolloutEvents, nodeEvents);
}

/** Pass counts and times per queue from drydock_reconcile_duration_seconds (a Prometheus histogram). */
export function reconcilePasses(metricsText: string): DemoReport['reconcile_passes'] {
  const counts = new Map<string, number>();
  const sums = new Map<string, number>();
  const fast = new Map<string, number>();
  for (const [, suffix, labelText, value] of metricsText.matchAll(/^drydock_reconcile_duration_seconds_(count|sum|bucket)\{([^}]*)\} (\S+)$/gm)) {
    const labels = Object.fromEntries([...(labelText as string).matchAll(/(\w+)="([^"]*)"/g)].map(([, k, v]) => [k, v]));
    const queue = labels.queue;
    if (queue === undefined) continue;
    if (suffix === 'count') counts.set(queue, Number(value));
    else if (suffix === 'sum') sums.set(queue, Number(value));
    else if (labels.le === '0.1') fast.set(queue, Number(value));
  }
  const passes: DemoReport['reconcile_passes'] = {};
  for (const [queue, count] of counts) {
    passes[queue] = { count, mean_ms: count === 0 ? 0 : Math.round(((sums.get(queue) ?? 0) * 1000) / count), over_100ms: count - (fast.get(queue) ?? count) };
  }
  return passes;
}

export async function buildReport(client: ApiClient, traffic: TrafficStats, elapsedMs: number, vms: VmReport, upgradeId?: string): Promise<DemoReport> {
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
    upgrade_timing: upgradeId === undefined ? null : await measureUpgrade(client, upgradeId),
    // Unauthenticated, and not JSON: plain fetch.
    reconcile_passes: reconcilePasses(await (await fetch(`${client.baseUrl}/metrics`)).text()),
    vms,
  };
}

const seconds = (ms: number) => (ms / 1000).toFixed(1);
const millis = (value: number | null) => (value === null ? '–' : String(value));

export function printReport(report: DemoReport, say: (line?: string) => void): void {
  say('── report');
  say(`  duration            ${report.duration_s} s`);
  say(`  requests            ${report.requests.sent} sent, ${report.requests.failed} failed`);
  for (const r of report.rollouts) say(`  rollout             ${r.name}: ${r.status} in ${r.duration_s} s`);
  const timing = report.upgrade_timing;
  if (timing) {
    const h = timing.handoffs;
    say(`  handoffs            p50 ${millis(h.p50_ms)} ms  p95 ${millis(h.p95_ms)} ms  max ${millis(h.max_ms)} ms (${h.count})`);
    for (const [kind, s] of Object.entries(h.by_kind)) say(`    ${kind.padEnd(46)}p50 ${millis(s.p50_ms)} ms  p95 ${millis(s.p95_ms)} ms  max ${millis(s.max_ms)} ms (${s.count})`);
    const m = timing.makespan;
    if (m) say(`  lower bound         ${seconds(m.lower_bound_ms)} s  (${m.batches.length} batches; ×${(m.total_ms / Math.max(1, m.lower_bound_ms)).toFixed(2)})`);
    if (m) say(`  makespan            ${seconds(m.total_ms)} s  = own waits ${seconds(m.own_waits_ms)} s + drain ${seconds(m.drain_ms)} s + install ${seconds(m.install_ms)} s + other ${seconds(m.other_ms)} s`);
  }
  const passes = Object.entries(report.reconcile_passes).map(([queue, p]) => `${queue} ${p.count} × ${p.mean_ms} ms (${p.over_100ms} > 100 ms)`);
  if (passes.length > 0) say(`  reconcile passes    ${passes.join(', ')}`);
  say(`  migrations          ${report.migrations} (${report.vms.driver === 'vm' ? 'live' : 'make-before-break'})`);
  printVmReport(report.vms, say);
  say(`  breaker trips       ${report.circuit_breaker_trips}`);
  say(`  drift               ${report.drift}`);
  say(`  events              ${report.events}`);
  for (const n of report.nodes) say(`  ${n.hostname.padEnd(20)}${n.region.padEnd(10)}${Object.entries(n.components).map(([c, v]) => `${c} ${v}`).join(', ')}`);
}
