// The whole-node drain phase of `npm run bench:migration` (DESIGN.md §10), and the pieces both
// of its phases share: a client polling a deployment through the edge, a guest's /status, and
// nearest-rank percentiles. Not a bench of its own: bench/migration.ts runs it on its fleet.
//
// The drain: every node of the fleet is cordoned, a fresh agent joins, a 3-replica VM
// deployment lands whole on it, the others are enabled again, and the fresh node is drained
// under traffic. Measured: POST /api/v1/nodes/:id/drain → GET /api/v1/nodes/:id showing
// `drain.state: completed` (every instance moved and its source reported stopped).
import type { ApiClient } from '../src/api-client.js';
import { type LocalFleet, waitFor } from '../src/demo/local-fleet.js';
import type { DeploymentView } from '../src/store/deployments.js';
import type { EventRow } from '../src/store/events.js';
import type { MigrationView } from '../src/store/instance-migrations.js';
import type { InstanceView } from '../src/store/instances.js';
import type { NodeView } from '../src/store/nodes.js';
import { type GuestStatus, guestStatus } from '../src/vm/guest-status.js';
import { Latencies } from './http-load.js';

/** The status of an instance's guest as the API locates it now; retried while its endpoint settles. */
export async function instanceGuestStatus(client: ApiClient, instanceId: string): Promise<GuestStatus> {
  return waitFor(
    `the guest of ${instanceId} to answer /status`,
    async () => {
      const instance = await client.get<InstanceView>(`/api/v1/instances/${instanceId}`);
      return instance.url ? guestStatus(instance.url) : undefined;
    },
    15_000,
    100,
  );
}

/** Nearest-rank percentile (q in 0..1) of the finite values; NaN when there are none. */
export function percentile(values: readonly (number | null | undefined)[], q: number): number {
  const sorted = values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
}

export interface TrafficStats {
  sent: number;
  failed: number;
  /** The first failures, with when they happened (ms since the client started). */
  failures: { at_ms: number; error: string }[];
  /** performance.now() of the first and the last failed request (NaN: none failed). */
  firstFailureAt: number;
  lastFailureAt: number;
  latency: Latencies;
  bootIds: Set<string>;
}

/**
 * GET /d/<deployment>/status through the edge, one at a time, `everyMs` between the end of one
 * and the start of the next (fetch keeps the connection alive). A non-200 or a network error
 * (5 s timeout) counts as failed.
 */
export function trafficThroughEdge(edge: string, deployment: string, everyMs: number) {
  const stats: TrafficStats = { sent: 0, failed: 0, failures: [], firstFailureAt: Number.NaN, lastFailureAt: Number.NaN, latency: new Latencies(), bootIds: new Set() };
  const started = performance.now();
  let running = true;
  const done = (async () => {
    while (running) {
      stats.sent++;
      const t0 = performance.now();
      try {
        const response = await fetch(`${edge}/d/${deployment}/status`, { signal: AbortSignal.timeout(5000) });
        const text = await response.text();
        if (response.status !== 200) throw new Error(`HTTP ${response.status}: ${text.slice(0, 200)}`);
        stats.bootIds.add((JSON.parse(text) as GuestStatus).boot_id);
      } catch (error) {
        stats.failed++;
        if (stats.failed === 1) stats.firstFailureAt = t0;
        stats.lastFailureAt = t0;
        if (stats.failures.length < 20) stats.failures.push({ at_ms: Math.round(t0 - started), error: (error as Error).message });
      }
      stats.latency.add(performance.now() - t0);
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    stats,
    async stop(): Promise<TrafficStats> {
      running = false;
      await done;
      return stats;
    },
  };
}

/** Sum of the edge's `drydock_edge_retries_total` samples for one deployment. */
export async function edgeRetries(edge: string, deployment: string): Promise<number> {
  const text = await (await fetch(`${edge}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  return text
    .split('\n')
    .filter((line) => line.startsWith('drydock_edge_retries_total{') && line.includes(`deployment="${deployment}"`))
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
}

export interface MovePhases {
  /** Move written → the target listening for the guest (its QEMU started, maybe its image fetched first). */
  prepare_ms: number | undefined;
  /** → the transfer done and the source quit (includes the source agent hearing of the address). */
  transfer_ms: number | undefined;
  /** → the target published as the endpoint (its health probe, a heartbeat, a fleet pass). */
  switch_ms: number | undefined;
}

/** Where each move's time went, from the migration.* events the reconciler wrote (database clock). */
export async function movePhases(client: ApiClient, migrationIds: readonly string[], afterEventId: number): Promise<Map<string, MovePhases>> {
  const events = await client.get<EventRow[]>(`/api/v1/events?after=${afterEventId}&kind_prefix=migration.&limit=5000`);
  const phases = new Map<string, MovePhases>();
  const gap = (from: number, to: number) => (Number.isFinite(from) && Number.isFinite(to) ? to - from : undefined);
  for (const id of migrationIds) {
    const at = (kind: string) => {
      const event = events.find((e) => e.kind === kind && e.data.migration_id === id);
      return event ? Date.parse(event.at) : Number.NaN;
    };
    const started = Date.parse((await client.get<MigrationView>(`/api/v1/migrations/${id}`)).started_at);
    const [ready, switching, completed] = [at('migration.target_ready'), at('migration.switching'), at('migration.completed')];
    phases.set(id, { prepare_ms: gap(started, ready), transfer_ms: gap(ready, switching), switch_ms: gap(switching, completed) });
  }
  return phases;
}

export interface VmDrainOptions {
  fleet: LocalFleet;
  edge: string;
  /** The deployment's workload (a `vm` workload of the published image). */
  workload: Record<string, unknown>;
  /** Agent arguments besides --max-instances (trusted key, accel, heartbeat interval). */
  agentArgs: string[];
  /** VMs on the drained node. Default 3. */
  vms: number;
  /** The drain must complete within this long, or the phase fails. */
  timeoutMs: number;
  clientEveryMs: number;
  log: (line: string) => void;
}

export interface VmDrainResult {
  vms: number;
  state: string;
  drain_ms: number;
  /** From the drain request to the last move's `completed` (its target published), by the migration rows' ended_at. */
  last_move_completed_ms: number;
  /** From the drain request to this client seeing every move ended in the API (polled every 100 ms). */
  moves_ended_ms: number;
  /** Failed client requests, first and last, in ms after the drain request (null: none failed). */
  client_failures_from_ms: number | null;
  client_failures_until_ms: number | null;
  moves: ({ hostname_to: string | null; state: string; total_ms: number | null; downtime_ms: number | null; end_to_end_ms: number | null; reason: string | null } & MovePhases)[];
  boot_ids_preserved: boolean;
  client_sent: number;
  client_failed: number;
  client_failures: TrafficStats['failures'];
  client_latency_ms: { p50: number; p99: number; max: number };
  edge_retries: number;
  placement_s: number;
}

const DEPLOYMENT = 'vmdrain';

export async function measureVmDrain(options: VmDrainOptions): Promise<VmDrainResult> {
  const { fleet, edge, log } = options;
  const client = fleet.client();
  const others = (await client.get<NodeView[]>('/api/v1/nodes')).filter((n) => n.status === 'ready');
  for (const node of others) await client.post(`/api/v1/nodes/${node.id}/cordon`, {});
  const hostname = 'vm-drain';
  fleet.startAgent(hostname, 'us-east', ['--max-instances', String(options.vms), ...options.agentArgs]);
  const node = await waitFor(
    `${hostname} to be ready`,
    async () => (await client.get<NodeView[]>('/api/v1/nodes')).find((n) => n.hostname === hostname && n.status === 'ready'),
    60_000,
  );

  const placing = performance.now();
  const deployment = await client.post<DeploymentView>('/api/v1/deployments', {
    name: DEPLOYMENT,
    replicas: options.vms,
    min_available: options.vms - 1,
    workload: options.workload,
  });
  const instances = await waitFor(
    `${options.vms} VMs serving on ${hostname}`,
    async () => {
      await fleet.recordInstancePids();
      const all = await client.get<InstanceView[]>(`/api/v1/instances?deployment=${deployment.id}`);
      const serving = all.filter((i) => i.published && i.healthy && i.node_id === node.id);
      return serving.length === options.vms ? serving : undefined;
    },
    180_000,
    500,
  );
  const placementS = (performance.now() - placing) / 1000;
  await fleet.recordInstancePids();
  log(`drain phase: ${options.vms} VMs serving on ${hostname} after ${placementS.toFixed(1)} s`);
  for (const other of others) await client.post(`/api/v1/nodes/${other.id}/enable`, {});
  await waitFor(
    'the other nodes to be ready again',
    async () => ((await client.get<NodeView[]>('/api/v1/nodes')).filter((n) => n.status === 'ready').length === others.length + 1 ? true : undefined),
    30_000,
  );
  const before = new Map<string, GuestStatus>();
  for (const instance of instances) before.set(instance.id, await guestStatus(instance.url as string));
  await waitFor('the edge to route the deployment', async () => ((await fetch(`${edge}/d/${DEPLOYMENT}/status`)).ok ? true : undefined), 30_000);

  const lastEvent = (await client.get<EventRow[]>('/api/v1/events?order=desc&limit=1'))[0]?.id ?? 0;
  const retriesBefore = await edgeRetries(edge, DEPLOYMENT);
  const traffic = trafficThroughEdge(edge, DEPLOYMENT, options.clientEveryMs);
  await new Promise((r) => setTimeout(r, 1000));
  const requestedAt = Date.now();
  const t0 = performance.now();
  await client.post(`/api/v1/nodes/${node.id}/drain`, {});
  let state = 'running';
  try {
    state = await waitFor(
      `the drain of ${hostname} to end`,
      async () => {
        const drain = (await client.get<NodeView>(`/api/v1/nodes/${node.id}`)).drain;
        return drain && drain.state !== 'running' ? drain.state : undefined;
      },
      options.timeoutMs,
      50,
    );
  } catch (error) {
    log(`drain phase: ${(error as Error).message}`);
    state = 'timed_out';
  }
  const drainMs = performance.now() - t0;
  // The drain ends when nothing runs on the node; the moves end when their targets are published.
  // Both are waited for, so traffic covers every switchover and the rows carry their end times.
  const moves = await waitFor(
    `the moves off ${hostname} to end`,
    async () => {
      const rows = (await client.get<MigrationView[]>(`/api/v1/migrations?node=${node.id}`)).filter((m) => m.source_node_id === node.id);
      return rows.length > 0 && rows.every((m) => m.ended_at !== null) ? rows : undefined;
    },
    Math.max(10_000, options.timeoutMs - drainMs),
    100,
  ).catch(async (error: unknown) => {
    log(`drain phase: ${(error as Error).message}`);
    return (await client.get<MigrationView[]>(`/api/v1/migrations?node=${node.id}`)).filter((m) => m.source_node_id === node.id);
  });
  const movesEndedMs = performance.now() - t0;
  await new Promise((r) => setTimeout(r, 500)); // some traffic after the last switchover too
  const stats = await traffic.stop();
  await fleet.recordInstancePids();
  const sinceDrain = (at: number) => (Number.isFinite(at) ? Math.round(at - t0) : null);

  let preserved = moves.length === options.vms;
  for (const move of moves) {
    if (move.state !== 'completed') {
      preserved = false;
      continue;
    }
    const after = await instanceGuestStatus(client, move.target_instance_id).catch(() => undefined);
    if (after?.boot_id !== before.get(move.instance_id)?.boot_id) preserved = false;
  }
  const phases = await movePhases(client, moves.map((m) => m.id), lastEvent);
  const endedAt = moves.map((m) => (m.ended_at ? Date.parse(m.ended_at) : Number.NaN));
  return {
    vms: options.vms,
    state,
    drain_ms: Math.round(drainMs),
    last_move_completed_ms: Math.round(Math.max(...endedAt) - requestedAt),
    moves_ended_ms: Math.round(movesEndedMs),
    client_failures_from_ms: sinceDrain(stats.firstFailureAt),
    client_failures_until_ms: sinceDrain(stats.lastFailureAt),
    moves: moves.map((m) => ({
      hostname_to: m.target_hostname,
      state: m.state,
      total_ms: m.total_ms,
      downtime_ms: m.downtime_ms,
      end_to_end_ms: m.ended_at ? Date.parse(m.ended_at) - Date.parse(m.started_at) : null,
      reason: m.reason,
      ...(phases.get(m.id) as MovePhases),
    })),
    boot_ids_preserved: preserved,
    client_sent: stats.sent,
    client_failed: stats.failed,
    client_failures: stats.failures,
    client_latency_ms: latencySummary(stats.latency),
    edge_retries: (await edgeRetries(edge, DEPLOYMENT)) - retriesBefore,
    placement_s: Number(placementS.toFixed(1)),
  };
}

export function latencySummary(latency: Latencies): { p50: number; p99: number; max: number } {
  const { p50, p99, max } = latency.summary();
  return { p50, p99, max };
}
