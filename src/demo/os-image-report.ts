import { existsSync, readFileSync } from 'node:fs';
import type { ApiClient } from '../api-client.js';
import type { BootSlotsReport } from '../domain/protocol.js';
import type { EventRow } from '../store/events.js';
import type { NodeView } from '../store/nodes.js';

/** Simulated reboots of one node, by step of the demo. */
export interface RebootCounts {
  /** Installing the first image (1.0.0) on the bare node. */
  provision: number;
  /** The upgrade rollout (2.0.0). */
  upgrade: number;
  /** The broken image's rollout (2.0.1): its tries and the fallback boot. */
  broken: number;
}

/** One line a node hook wrote to its node's hooks file: `<point> <to-version> <rollout id>`. */
export interface HookLine {
  point: string;
  version: string;
  rollout_id: string;
}

export interface OsImageNodeReport {
  hostname: string;
  region: string;
  /** The os version the node runs now. */
  os: string | null;
  /** Its A/B slots as its last heartbeat reported them. */
  slots: BootSlotsReport | null;
  reboots: RebootCounts;
  /** The file its preNode and postNode hooks appended to, and what they wrote, in order. */
  hooks_file: string;
  hooks: HookLine[];
  /** Its task in each rollout (by rollout name); absent when the rollout never reached the node. */
  tasks: Record<string, { state: string; last_error: string | null }>;
  /** Set when the node fell back by itself: the image it left and its agent's reason. */
  reverted: { version: string; reason: string } | null;
}

/** What `drydock demo --scenario os-image --report FILE` writes. */
export interface OsImageDemoReport {
  scenario: 'os-image';
  duration_s: number;
  /** The run's state and logs (agents' data dirs, supervisor logs, hooks files). */
  run_dir: string;
  rollouts: { id: string; name: string; version: string; status: string; duration_s: number }[];
  circuit_breaker_trips: number;
  nodes: OsImageNodeReport[];
}

interface RolloutView {
  id: string;
  name: string;
  status: string;
  duration_s: number;
  spec: { target: { version: string } };
  tasks: { hostname: string; state: string; last_error: string | null }[];
}

/** The lines of a hooks file (none when no hook ran yet). */
export function readHookLines(file: string): HookLine[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const [point = '', version = '', rolloutId = ''] = line.trim().split(/\s+/);
      return { point, version, rollout_id: rolloutId };
    });
}

export async function buildOsImageReport(
  client: ApiClient,
  input: { runDir: string; elapsedMs: number; rolloutIds: readonly string[]; reboots: ReadonlyMap<string, RebootCounts>; hooksFile: (hostname: string) => string },
): Promise<OsImageDemoReport> {
  const rollouts = await Promise.all(input.rolloutIds.map((id) => client.get<RolloutView>(`/api/v1/rollouts/${encodeURIComponent(id)}`)));
  const trips = await client.get<EventRow[]>('/api/v1/events?after=0&kind_prefix=rollout.circuit_breaker_tripped&limit=1000');
  const reverts = (await client.get<EventRow[]>('/api/v1/events?after=0&kind_prefix=node.reverted&limit=1000')).filter((e) => e.data.component === 'os');
  const nodes = (await client.get<NodeView[]>('/api/v1/nodes')).sort((a, b) => a.hostname.localeCompare(b.hostname));
  const reports: OsImageNodeReport[] = [];
  for (const node of nodes) {
    const detail = await client.get<NodeView & { slots: BootSlotsReport | null }>(`/api/v1/nodes/${encodeURIComponent(node.id)}`);
    const reverted = reverts.filter((e) => e.node_id === node.id).at(-1);
    const tasks: OsImageNodeReport['tasks'] = {};
    for (const r of rollouts) {
      const task = r.tasks.find((t) => t.hostname === node.hostname);
      if (task) tasks[r.name] = { state: task.state, last_error: task.last_error };
    }
    reports.push({
      hostname: node.hostname,
      region: node.region,
      os: detail.components.os ?? null,
      slots: detail.slots ?? null,
      reboots: input.reboots.get(node.hostname) ?? { provision: 0, upgrade: 0, broken: 0 },
      hooks_file: input.hooksFile(node.hostname),
      hooks: readHookLines(input.hooksFile(node.hostname)),
      tasks,
      reverted: reverted ? { version: String(reverted.data.version), reason: String(reverted.data.reason ?? '') } : null,
    });
  }
  return {
    scenario: 'os-image',
    duration_s: Math.round(input.elapsedMs / 1000),
    run_dir: input.runDir,
    rollouts: rollouts.map((r) => ({ id: r.id, name: r.name, version: r.spec.target.version, status: r.status, duration_s: r.duration_s })),
    circuit_breaker_trips: trips.length,
    nodes: reports,
  };
}

export function printOsImageReport(report: OsImageDemoReport, say: (line?: string) => void): void {
  say('── report');
  say(`  duration            ${report.duration_s} s`);
  for (const r of report.rollouts) say(`  rollout             ${r.name}: ${r.status} in ${r.duration_s} s`);
  say(`  breaker trips       ${report.circuit_breaker_trips}`);
  for (const n of report.nodes) {
    const slots = n.slots ? (['a', 'b'] as const).map((s) => `${s} ${n.slots?.[s].version ?? '-'}${n.slots?.active === s ? ' (active)' : ''}`).join(', ') : 'no slots';
    say(`  ${n.hostname.padEnd(20)}${n.region.padEnd(10)}os ${n.os ?? '-'}   slots: ${slots}`);
    say(`    reboots           ${n.reboots.provision} provisioning, ${n.reboots.upgrade} upgrade, ${n.reboots.broken} broken image`);
    say(`    hooks             ${n.hooks.length === 0 ? 'none ran' : n.hooks.map((h) => `${h.point} (${h.version})`).join(' → ')}`);
    say(`    reverted          ${n.reverted ? `from ${n.reverted.version}: ${n.reverted.reason}` : 'no'}`);
  }
}
