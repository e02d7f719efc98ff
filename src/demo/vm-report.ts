import { guestStatus } from '../vm/guest-status.js';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ApiClient } from '../api-client.js';
import type { MigrationView } from '../store/instance-migrations.js';
import type { InstanceView } from '../store/instances.js';
import { waitFor } from './local-fleet.js';
import { percentile } from './rollout-timing.js';

/** Nearest-rank percentiles of one measure over the completed live migrations. */
export interface Spread {
  p50: number;
  p99: number;
  max: number;
}

/** The report's `vms` section: how the deployments ran and what their live migrations cost. */
export interface VmReport {
  driver: 'vm' | 'process';
  /** Why the deployments ran as processes; null when they ran as VMs or processes were asked for. */
  fallback_reason: string | null;
  /** The accelerators the agents chose (`--vm-accel auto` logs its choice), e.g. ['tcg']. */
  accel: string[];
  /** Completed live migrations. */
  migrated: number;
  /** Live migrations that failed (the source kept serving, DESIGN.md §10). */
  failed: number;
  /** How long guests were paused at switchover, from QEMU; null without a completed migration. */
  downtime_ms: Spread | null;
  /** Whole migrations, from QEMU's start of transfer to completion; null without one. */
  total_ms: Spread | null;
  /**
   * Every guest recorded before the rollout answered after it, following its completed
   * migrations, with the boot id it had: moved with its memory, never rebooted. False when any
   * guest changed, did not answer or none was checked; null when there were no VMs.
   */
  boot_ids_preserved: boolean | null;
  /** Guests whose boot id was compared. */
  checked: number;
  /** What broke boot_ids_preserved, per guest (empty when it holds). */
  problems: string[];
}

/** A guest as it was before the rollout: the instance hosting it and its kernel's boot id. */
export interface GuestRecord {
  deployment: string;
  instance_id: string;
  boot_id: string;
}

async function guestBootId(url: string): Promise<string> {
  return (await guestStatus(url, 5000)).boot_id;
}

/** The boot id of every running guest of `deployments`, read from each instance's own URL (not through the edge). */
export async function recordGuests(client: ApiClient, deployments: readonly string[]): Promise<GuestRecord[]> {
  const instances = await client.get<InstanceView[]>('/api/v1/instances');
  const guests: GuestRecord[] = [];
  for (const instance of instances) {
    if (!deployments.includes(instance.deployment) || instance.desired !== 'running' || instance.url === null) continue;
    const url = instance.url;
    // Healthy already; a guest busy with traffic under TCG may still miss one 5 s window.
    const bootId = await waitFor(`${instance.deployment}'s guest ${instance.id} to answer /status`, () => guestBootId(url), 20_000, 500);
    guests.push({ deployment: instance.deployment, instance_id: instance.id, boot_id: bootId });
  }
  return guests;
}

/**
 * Checks every recorded guest after the rollout: its instance, or the target of the completed
 * migration that moved it (and so on, a guest may move more than once), must answer with the
 * boot id recorded before. Waits until no migration is open, so none is caught mid-flight.
 */
export async function checkGuests(client: ApiClient, guests: readonly GuestRecord[], accel: string[]): Promise<VmReport> {
  await waitFor('every migration to end', async () => ((await client.get<MigrationView[]>('/api/v1/migrations?state=open')).length === 0 ? true : undefined), 120_000, 500);
  const migrations = await client.get<MigrationView[]>('/api/v1/migrations?limit=1000');
  const movedTo = new Map(migrations.filter((m) => m.state === 'completed').map((m) => [m.instance_id, m.target_instance_id]));
  const problems: string[] = [];
  for (const guest of guests) {
    let instanceId = guest.instance_id;
    // A move chain is as long as the number of completed migrations at most: a cycle cannot go on.
    for (let hops = 0; movedTo.has(instanceId) && hops <= movedTo.size; hops++) instanceId = movedTo.get(instanceId) as string;
    try {
      const instance = await client.get<InstanceView>(`/api/v1/instances/${encodeURIComponent(instanceId)}`);
      if (instance.url === null) throw new Error(`instance ${instanceId} has no URL`);
      const url = instance.url;
      const bootId = await waitFor(`guest ${instanceId} to answer /status`, () => guestBootId(url), 20_000, 500);
      if (bootId !== guest.boot_id) problems.push(`${guest.deployment}: the guest of ${guest.instance_id} now on ${instanceId} booted again (boot id ${guest.boot_id} → ${bootId})`);
    } catch (error) {
      problems.push(`${guest.deployment}: the guest of ${guest.instance_id} (now ${instanceId}) did not answer: ${(error as Error).message}`);
    }
  }
  const live = migrations.filter((m) => m.mode === 'live');
  const completed = live.filter((m) => m.state === 'completed');
  return {
    driver: 'vm',
    fallback_reason: null,
    accel,
    migrated: completed.length,
    failed: live.filter((m) => m.state === 'failed').length,
    downtime_ms: spread(completed.map((m) => m.downtime_ms)),
    total_ms: spread(completed.map((m) => m.total_ms)),
    boot_ids_preserved: guests.length > 0 && problems.length === 0,
    checked: guests.length,
    problems,
  };
}

/** The `vms` section of a demo that ran processes. */
export function processReport(fallbackReason: string | null): VmReport {
  return { driver: 'process', fallback_reason: fallbackReason, accel: [], migrated: 0, failed: 0, downtime_ms: null, total_ms: null, boot_ids_preserved: null, checked: 0, problems: [] };
}

function spread(values: readonly (number | null)[]): Spread | null {
  const sorted = values.filter((v): v is number => v !== null).sort((a, b) => a - b);
  if (sorted.length === 0) return null;
  return { p50: percentile(sorted, 50) as number, p99: percentile(sorted, 99) as number, max: sorted.at(-1) as number };
}

/**
 * The accelerators agents chose, from their logs in `dir` (`--vm-accel auto` logs "VMs use
 * TCG …" or "VMs use KVM …" with an `accel` field, once per agent process).
 */
export function agentAccel(dir: string): string[] {
  const found = new Set<string>();
  for (const file of readdirSync(dir)) {
    if (!file.endsWith('.log')) continue;
    for (const line of readFileSync(join(dir, file), 'utf8').split('\n')) {
      if (!line.includes('"VMs use ')) continue;
      try {
        const accel = (JSON.parse(line) as { accel?: unknown }).accel;
        if (typeof accel === 'string') found.add(accel);
      } catch {
        // A line cut short by a crash.
      }
    }
  }
  return [...found].sort();
}

/** The report's VM lines for people. */
export function printVmReport(vms: VmReport, say: (line?: string) => void): void {
  if (vms.driver === 'process') {
    say(`  workloads           processes${vms.fallback_reason ? ` (VMs: ${vms.fallback_reason})` : ''}`);
    return;
  }
  const ms = (s: Spread | null) => (s === null ? '–' : `p50 ${s.p50} ms  p99 ${s.p99} ms  max ${s.max} ms`);
  say(`  workloads           VMs under QEMU (${vms.accel.map((a) => a.toUpperCase()).join(', ') || 'accelerator not logged'})`);
  say(`  VMs migrated        ${vms.migrated} live${vms.failed > 0 ? `, ${vms.failed} failed (their sources kept serving)` : ''}`);
  say(`  downtime            ${ms(vms.downtime_ms)}`);
  say(`  migration time      ${ms(vms.total_ms)}`);
  const verdict = vms.boot_ids_preserved ? 'yes' : 'NO';
  say(`  state preserved     ${verdict}: ${vms.checked - vms.problems.length} of ${vms.checked} guests kept their boot id across their migrations`);
  for (const problem of vms.problems.slice(0, 10)) say(`    ${problem}`);
}
