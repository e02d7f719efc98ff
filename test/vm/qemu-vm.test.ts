import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { probeHttp } from '../../src/agent/drivers/http-probe.js';
import { freePort, isSameProcessAlive } from '../../src/agent/drivers/process-driver.js';
import { MigrationError, QemuVm, type VmRecord } from '../../src/agent/drivers/qemu-vm.js';
import { probeAccel } from '../../src/agent/drivers/vm-accel.js';
import { ensureGuestImage } from '../support/guest-image.js';

/**
 * Real QEMU (TCG: KVM is a nested PVM here and its guests die, STACK.md) booting the test guest
 * image. Every QEMU a test starts is SIGKILLed by pid afterwards, whatever the test did.
 */

type GuestImage = Awaited<ReturnType<typeof ensureGuestImage>>;
interface GuestStatus {
  boot_id: string;
  uptime_s: number;
  requests: number;
  image: string;
}

let image: GuestImage;
const startedRecords: VmRecord[] = [];
const openVms: QemuVm[] = [];
const runDirs: string[] = [];

beforeAll(async () => {
  image = await ensureGuestImage();
}, 300_000);

afterEach(async () => {
  await Promise.all(openVms.splice(0).map((vm) => vm.detach().catch(() => undefined)));
  for (const record of startedRecords.splice(0)) {
    if (isSameProcessAlive(record.pid, record.procStart)) process.kill(record.pid, 'SIGKILL');
    await waitFor(() => !isSameProcessAlive(record.pid, record.procStart), 5000, `QEMU ${record.pid} to die`);
  }
  for (const dir of runDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function startVm(options: { incoming?: boolean } = {}): Promise<QemuVm> {
  const runDir = mkdtempSync(join(tmpdir(), 'drydock-qvm-'));
  runDirs.push(runDir);
  const vm = await QemuVm.start({
    id: `test-${runDirs.length}`,
    kernel: image.kernelPath,
    initrd: image.initrdPath,
    cmdline: image.imageJson.cmdline,
    memoryMb: 128,
    vcpus: 1,
    guestPort: image.imageJson.guest_port,
    hostPort: await freePort(),
    accel: 'tcg',
    runDir,
    incoming: options.incoming ?? false,
  });
  startedRecords.push(vm.record());
  openVms.push(vm);
  return vm;
}

/** Poll until `check` holds; fails with what was awaited when it has not by the deadline. */
async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

// Boot to first 200 is 2.2–2.8 s under TCG on a quiet machine (STACK.md); the bound allows for a
// busy one.
const waitHealthy = (vm: QemuVm) =>
  waitFor(() => probeHttp(`http://127.0.0.1:${vm.hostPort}${image.imageJson.health_path}`, 1000), 60_000, `VM ${vm.pid} to answer its health check`);

async function guestStatus(vm: QemuVm): Promise<GuestStatus> {
  const response = await fetch(`http://127.0.0.1:${vm.hostPort}${image.imageJson.status_path}`, { signal: AbortSignal.timeout(5000) });
  expect(response.status).toBe(200);
  return (await response.json()) as GuestStatus;
}

describe('QemuVm (real QEMU, TCG)', () => {
  it('boots a 128 MiB guest that answers HTTP and keeps state between requests', async () => {
    const vm = await startVm();
    await waitHealthy(vm);
    expect(await vm.status()).toBe('running');
    const first = await guestStatus(vm);
    const second = await guestStatus(vm);
    expect(second.boot_id).toBe(first.boot_id);
    expect(second.requests).toBeGreaterThan(first.requests);
    // QMP errors come through with QEMU's class and description.
    await expect(vm.prepareIncoming(await freePort())).rejects.toMatchObject({ errorClass: 'GenericError', desc: expect.stringMatching(/incoming/) });
  });

  it('live-migrates to a second QEMU: the target runs the same guest (same boot, counters kept)', async () => {
    const source = await startVm();
    await waitHealthy(source);
    const before = await guestStatus(source);
    const target = await startVm({ incoming: true });
    expect(await target.status()).toBe('inmigrate');
    const uri = await target.prepareIncoming(await freePort());

    const stats = await source.migrateOut(uri, { deadlineMs: 60_000 });
    expect(stats.total_ms).toBeGreaterThan(0);
    expect(stats.transferred_bytes).toBeGreaterThan(0);
    // QEMU reports whole milliseconds; at 1 GiB/s on loopback the switchover measured 1–3 ms.
    expect(stats.downtime_ms).toBeGreaterThan(0);
    expect(stats.downtime_ms).toBeLessThanOrEqual(stats.total_ms);

    await target.awaitIncomingRunning(10_000);
    expect(await target.status()).toBe('running');
    const after = await guestStatus(target);
    expect(after.boot_id).toBe(before.boot_id);
    expect(after.requests).toBeGreaterThan(before.requests);

    expect(await source.status()).toBe('postmigrate');
    await source.quit();
    expect(source.isAlive()).toBe(false);
  });

  it('resumes the handed-over guest on the source when the target dies after the switchover', async () => {
    const source = await startVm();
    await waitHealthy(source);
    const before = await guestStatus(source);
    const target = await startVm({ incoming: true });
    const uri = await target.prepareIncoming(await freePort());
    await source.migrateOut(uri, { deadlineMs: 60_000 });
    expect(await source.status()).toBe('postmigrate');
    // Paused here and refusing connections at once: nothing waits on it.
    await source.closeHostForward();
    await expect(fetch(`http://127.0.0.1:${source.hostPort}/healthz`, { signal: AbortSignal.timeout(2000) })).rejects.toThrow();
    process.kill(target.pid, 'SIGKILL');
    await source.resumeAfterMigration(image.imageJson.guest_port);
    expect(await source.status()).toBe('running');
    await waitHealthy(source);
    const after = await guestStatus(source);
    expect(after.boot_id).toBe(before.boot_id);
    expect(after.requests).toBeGreaterThan(before.requests);
    // Only a source holding a handed-over guest resumes.
    await expect(source.resumeAfterMigration(image.imageJson.guest_port)).rejects.toThrow(/is running, not a source holding a migrated guest/);
  });

  it('keeps the source running when the target dies mid-transfer', async () => {
    const source = await startVm();
    await waitHealthy(source);
    const before = await guestStatus(source);
    const target = await startVm({ incoming: true });
    const uri = await target.prepareIncoming(await freePort());

    // 16 MiB/s makes the ~94 MB stream last several seconds, so the kill lands mid-transfer.
    let killedAt: number | null = null;
    const migration = source.migrateOut(uri, {
      deadlineMs: 60_000,
      maxBandwidthBytes: 16 * 1024 * 1024,
      onProgress: (progress) => {
        if (killedAt === null && progress.transferred_bytes > 4 * 1024 * 1024) {
          killedAt = progress.transferred_bytes;
          process.kill(target.pid, 'SIGKILL');
        }
      },
    });
    const error = await migration.then(
      () => null,
      (rejection: unknown) => rejection,
    );
    expect(killedAt, 'the target was killed during the transfer').not.toBeNull();
    expect(error).toBeInstanceOf(MigrationError);
    expect((error as MigrationError).reason).toBe('failed');
    await waitFor(() => !target.isAlive(), 5000, 'the killed target to be gone');

    await waitFor(async () => (await source.status()) === 'running', 10_000, 'the source to run again');
    const after = await guestStatus(source);
    expect(after.boot_id).toBe(before.boot_id);
    expect(after.requests).toBeGreaterThan(before.requests);
  });

  it('cancels a migration that misses its deadline; the source keeps running', async () => {
    const source = await startVm();
    await waitHealthy(source);
    const before = await guestStatus(source);
    const target = await startVm({ incoming: true });
    const uri = await target.prepareIncoming(await freePort());

    // ~94 MB at 16 MiB/s needs ~6 s, far past the 1 s deadline.
    const started = Date.now();
    const error = await source.migrateOut(uri, { deadlineMs: 1000, maxBandwidthBytes: 16 * 1024 * 1024 }).then(
      () => null,
      (rejection: unknown) => rejection,
    );
    expect(error).toBeInstanceOf(MigrationError);
    expect((error as MigrationError).reason).toBe('deadline');
    expect(Date.now() - started).toBeLessThan(10_000);

    await waitFor(async () => (await source.status()) === 'running', 10_000, 'the source to run again');
    const after = await guestStatus(source);
    expect(after.boot_id).toBe(before.boot_id);
    // The target's half-received stream ends with the cancel: QEMU exits on a failed incoming migration.
    await waitFor(() => !target.isAlive(), 10_000, 'the target QEMU to exit after the cancel');
  });

  it('adopts a running QEMU from its record without touching the guest', async () => {
    const vm = await startVm();
    await waitHealthy(vm);
    const before = await guestStatus(vm);
    const record = JSON.parse(JSON.stringify(vm.record())) as VmRecord;
    await vm.detach(); // What an agent crash leaves: QEMU running, nobody on its monitor.

    const adopted = await QemuVm.adopt(record);
    expect(adopted).not.toBeNull();
    openVms.push(adopted as QemuVm);
    expect(adopted?.pid).toBe(record.pid);
    expect(await adopted?.status()).toBe('running');
    const after = await guestStatus(adopted as QemuVm);
    expect(after.boot_id).toBe(before.boot_id);
    expect(after.requests).toBeGreaterThan(before.requests);

    await adopted?.kill();
    expect(await QemuVm.adopt(record)).toBeNull();
  });

  it('powers the guest off through ACPI within the grace period', async () => {
    const vm = await startVm();
    await waitHealthy(vm);
    const events: string[] = [];
    vm.onEvent((event) => events.push(`${event.event}:${String(event.data?.reason ?? '')}`));
    const started = Date.now();
    const result = await vm.powerdown(30_000);
    expect(result.graceful, 'the guest powered off by itself, no SIGKILL').toBe(true);
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(vm.isAlive()).toBe(false);
    await vm.exited;
    // QEMU said so itself, on the same socket as the command replies.
    expect(events).toContain('SHUTDOWN:guest-shutdown');
  });

  it('auto acceleration falls back to TCG here and says why', async () => {
    const lines: { level: string; fields: Record<string, unknown>; message: string }[] = [];
    const log = {
      info: (fields: Record<string, unknown>, message: string) => lines.push({ level: 'info', fields, message }),
      warn: (fields: Record<string, unknown>, message: string) => lines.push({ level: 'warn', fields, message }),
    };
    const accel = await probeAccel(
      'auto',
      { kernel: image.kernelPath, initrd: image.initrdPath, cmdline: image.imageJson.cmdline, guestPort: image.imageJson.guest_port, healthPath: image.imageJson.health_path },
      log,
    );
    // This machine kind's /dev/kvm is a nested PVM on which QEMU or the guest dies (STACK.md);
    // on a host with working KVM, auto picks kvm and this expectation changes with it.
    expect(accel).toBe('tcg');
    expect(lines).toHaveLength(1);
    expect(lines[0]?.fields.accel).toBe('tcg');
    expect(String(lines[0]?.fields.reason)).toMatch(/kvm/i);
    expect(await probeAccel('tcg', { kernel: '', initrd: '', cmdline: '', guestPort: 0 }, log)).toBe('tcg');
  });
});
