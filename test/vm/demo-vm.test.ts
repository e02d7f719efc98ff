import { execFile, execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { freePort } from '../../src/agent/drivers/process-driver.js';
import type { DemoReport } from '../../src/demo/demo-report.js';
import { chooseWorkloads, fallbackLine, VM_INSTALL_HINT } from '../../src/demo/vm-workloads.js';
import { ensureGuestImage, GUEST_DEB_CACHE } from '../support/guest-image.js';
import { BUNDLE } from '../support/processes.js';

const run = promisify(execFile);

/** Live processes (not zombies) whose command line mentions `needle`; `comm` narrows them (e.g. QEMU). */
function processesMentioning(needle: string, comm?: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // /proc/PID/comm is the executable's name cut to 15 characters: qemu-system-x86.
      if (comm !== undefined && !readFileSync(`/proc/${entry}/comm`, 'utf8').startsWith(comm)) continue;
      if (cmdline.includes(needle) && !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) pids.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return pids;
}

describe('demo workloads: VMs when QEMU runs and the guest image builds, else processes with one line', () => {
  it('without qemu-system-x86_64, auto falls back with one line saying how to get VMs, and --workloads vm fails saying the same', async () => {
    const emptyPath = mkdtempSync(join(tmpdir(), 'drydock-no-qemu-'));
    const saved = process.env.PATH;
    process.env.PATH = emptyPath;
    try {
      const auto = await chooseWorkloads({ mode: 'auto', cacheDir: emptyPath, bundle: BUNDLE });
      expect(auto).toEqual({ driver: 'process', reason: 'qemu-system-x86_64 not found', hint: VM_INSTALL_HINT });
      expect(auto.driver === 'process' && fallbackLine(auto)).toBe(
        'VMs: qemu-system-x86_64 not found, running deployments as processes (apt-get install -y qemu-system-x86 busybox-static to run them as VMs)',
      );
      await expect(chooseWorkloads({ mode: 'vm', cacheDir: emptyPath, bundle: BUNDLE })).rejects.toThrow(
        '--workloads vm: qemu-system-x86_64 not found; apt-get install -y qemu-system-x86 busybox-static',
      );
      expect(await chooseWorkloads({ mode: 'process', cacheDir: emptyPath, bundle: BUNDLE })).toEqual({ driver: 'process', reason: null, hint: null });
    } finally {
      process.env.PATH = saved;
      rmSync(emptyPath, { recursive: true, force: true });
    }
  });

  it('falls back with one line saying why when the guest image does not build (here: the package index cannot be read)', async () => {
    // A PATH with the real QEMU and dpkg-query (busybox-static is found) and an apt-cache that
    // fails the way it does without a readable package index.
    const bin = mkdtempSync(join(tmpdir(), 'drydock-no-apt-'));
    for (const tool of ['qemu-system-x86_64', 'dpkg-query']) symlinkSync(execFileSync('sh', ['-c', `command -v ${tool}`]).toString().trim(), join(bin, tool));
    writeFileSync(join(bin, 'apt-cache'), '#!/bin/sh\necho "E: No packages found" >&2\nexit 100\n', { mode: 0o755 });
    const saved = process.env.PATH;
    process.env.PATH = bin;
    try {
      const auto = await chooseWorkloads({ mode: 'auto', cacheDir: join(bin, 'cache'), bundle: BUNDLE });
      expect(auto).toMatchObject({ driver: 'process', hint: null });
      const line = auto.driver === 'process' ? fallbackLine(auto) : null;
      expect(line).toMatch(/^VMs: the guest image did not build \(apt-cache knows no linux-image-cloud-amd64; run `apt-get update` \(a Debian mirror must be reachable\)\), running deployments as processes$/);
      expect(line).not.toContain('\n');
    } finally {
      process.env.PATH = saved;
      rmSync(bin, { recursive: true, force: true });
    }
  });

  it('builds the guest image once per drydock bundle and reuses it on the next run (no apt, no network)', async () => {
    await ensureGuestImage(); // the kernel package is in GUEST_DEB_CACHE from here on
    const cacheDir = mkdtempSync(join(tmpdir(), 'drydock-demo-vm-cache-'));
    try {
      for (const deb of readdirSync(GUEST_DEB_CACHE).filter((f) => f.endsWith('.deb'))) copyFileSync(join(GUEST_DEB_CACHE, deb), join(cacheDir, deb));
      const bundle = join(cacheDir, 'drydock.mjs');
      writeFileSync(bundle, 'a stand-in bundle: its hash keys the cached image\n');
      const first = await chooseWorkloads({ mode: 'vm', cacheDir, bundle });
      const second = await chooseWorkloads({ mode: 'vm', cacheDir, bundle });
      expect(first.driver === 'vm' && first.built).toBe(true);
      expect(second.driver === 'vm' && second.built).toBe(false);
      expect(second.driver === 'vm' && second.image.sha256).toBe(first.driver === 'vm' && first.image.sha256);
      // Another bundle (another drydock build) may carry other guest scripts: built again.
      writeFileSync(bundle, 'another build\n');
      const third = await chooseWorkloads({ mode: 'vm', cacheDir, bundle });
      expect(third.driver === 'vm' && third.built).toBe(true);
    } finally {
      rmSync(cacheDir, { recursive: true, force: true });
    }
  });
});

// `drydock demo` with VMs end to end: real agents boot the reference guest under QEMU (TCG
// here), the agent upgrade's drains move them live under traffic through the edge, and the
// report says what that cost and whether every guest is still the one that booted.
describe('drydock demo --exit --workloads vm', () => {
  it('migrates VMs live during the upgrade with their boot ids intact, zero failed requests, and leaves no QEMU behind', async () => {
    await ensureGuestImage(); // the kernel package is cached: the demo's build needs no download
    const dir = mkdtempSync(join(tmpdir(), 'drydock-demo-vm-test-'));
    const reportFile = join(dir, 'report.json');
    const { stdout } = await run(
      process.execPath,
      [
        BUNDLE, 'demo', '--exit', '--workloads', 'vm', '--vm-cache', GUEST_DEB_CACHE,
        '--dir', join(dir, 'runs'), '--listen', `127.0.0.1:${await freePort()}`,
        '--regions', 'us-east,eu-west', '--nodes-per-region', '2', '--rate', '20', '--report', reportFile,
      ],
      { timeout: 600_000, maxBuffer: 32 * 1024 * 1024 },
    );
    expect(stdout).toMatch(/✓ VMs: QEMU \d+\.\d+/);
    expect(stdout).toMatch(/✓ 2 deployments × 2 replicas healthy \(VMs\): web, api/);
    expect(stdout).toMatch(/all demo processes stopped/);
    const report = JSON.parse(readFileSync(reportFile, 'utf8')) as DemoReport;
    expect({ failed: report.requests.failed, errors: report.requests.errors }).toEqual({ failed: 0, errors: [] });
    expect(report.requests.sent).toBeGreaterThan(200);
    expect(report.rollouts.map((r) => [r.name, r.status])).toEqual([
      ['node-agent-2.0.0', 'completed'],
      ['node-agent-2.0.1', 'rolled_back'],
    ]);
    for (const node of report.nodes) expect(node.components['node-agent']).toBe('2.0.0');
    const { vms } = report;
    expect(vms).toMatchObject({ driver: 'vm', fallback_reason: null, boot_ids_preserved: true, checked: 4, problems: [] });
    expect(vms.migrated).toBeGreaterThanOrEqual(1);
    expect(vms.accel.length).toBeGreaterThan(0);
    for (const spread of [vms.downtime_ms, vms.total_ms]) {
      expect(spread).not.toBeNull();
      expect(spread?.p50).toBeGreaterThanOrEqual(0);
      expect(spread?.p50).toBeLessThanOrEqual(spread?.p99 ?? -1);
      expect(spread?.p99).toBeLessThanOrEqual(spread?.max ?? -1);
    }
    // A guest paused for longer than it took to move it all makes no sense.
    expect(vms.downtime_ms?.max).toBeLessThanOrEqual(vms.total_ms?.max ?? -1);
    expect(stdout).toMatch(/VMs migrated +\d+ live/);
    expect(stdout).toMatch(/downtime +p50 \d+ ms {2}p99 \d+ ms {2}max \d+ ms/);
    expect(stdout).toMatch(/state preserved +yes: 4 of 4 guests kept their boot id/);
    // Nothing the demo started is left: no QEMU (source, target or KVM probe: their command lines
    // name the image under the agent's data dir), agent, edge or operator.
    expect(processesMentioning(dir, 'qemu-system')).toEqual([]);
    expect(processesMentioning(dir)).toEqual([]);
    // Kept when the test fails, for its logs.
    rmSync(dir, { recursive: true, force: true });
  }, 660_000);
});
