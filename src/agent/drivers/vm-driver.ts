import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { DesiredInstance, DesiredVmImage } from '../../domain/protocol.js';
import type { VmWorkload } from '../../domain/types.js';
import { parseImageJson, readVmImageArchive, type VmImageJson } from '../../vm/vm-image-archive.js';
import { guestWorkloadStatus } from '../../vm/guest-status.js';
import type { ParsedWorkloadStatus } from '../../domain/workload-report.js';
import { downloadArtifact } from '../components/download.js';
import { refusalReason, type TrustPolicy } from '../components/verify.js';
import type { HostedProcess } from '../state-file.js';
import { probeHttp } from './http-probe.js';
import type { InstanceDriver, LiveMigrationDriver, LiveMigrationStats, StartedInstance } from './instance-driver.js';
import { freePort, isSameProcessAlive } from './process-driver.js';
import { QemuVm, type VmAccel } from './qemu-vm.js';
import { type AccelRequest, probeAccel } from './vm-accel.js';

export interface VmDriverOptions {
  /** Images are unpacked under `<dataDir>/images`, VMs run under `<dataDir>/vms`. */
  dataDir: string;
  /** The operator's base URL (image downloads) and the credentials every gateway call carries. */
  operatorUrl: string;
  token?: string | undefined;
  nodeCredential: () => string | undefined;
  trust: TrustPolicy;
  /** `--vm-accel`: auto probes KVM with a short boot and falls back to TCG (default auto). */
  accel: AccelRequest;
  /** `--vm-migration-bandwidth`: bytes per second a live migration may send (default 1 GiB/s). */
  migrationBandwidthBytes?: number | undefined;
  log: Logger;
}

/** A unix socket address holds a path of at most 107 bytes (sun_path is 108 with its NUL). */
const UNIX_SOCKET_PATH_MAX = 107;

/**
 * A guest's status is read at most this often (5 s), not at every 1 s supervision tick: each read
 * is a request the guest serves (the reference guest forks a shell for it), and a volume or a
 * backup changes over minutes.
 */
const VM_STATUS_INTERVAL_MS = 5000;

/** How long a target waits for its incoming guest (a move's default deadline). */
const INCOMING_WAIT_MS = 10 * 60_000;

interface Image {
  kernelPath: string;
  initrdPath: string;
  json: VmImageJson;
}

/**
 * The `vm` driver (DESIGN.md §10): each instance is a QEMU virtual machine booted from a signed
 * `vm-image` artifact, reachable through a loopback port forwarded to its guest port, controlled
 * over QMP. QEMU runs in its own process group: it outlives an agent crash and the next agent
 * adopts it through its QMP socket (same pid, guest untouched). Live-capable.
 */
export class VmDriver implements InstanceDriver, LiveMigrationDriver {
  readonly name = 'vm';
  readonly live: LiveMigrationDriver = this;
  private readonly images = new Map<string, Promise<Image>>();
  /** QMP connections of the VMs this agent started or adopted, by instance id. */
  private readonly vms = new Map<string, QemuVm>();
  private runtime: string | undefined;
  /** When each guest's status was last read (ms since the epoch). */
  private readonly statusReadAt = new Map<string, number>();

  constructor(private readonly options: VmDriverOptions) {}

  start(instance: DesiredInstance): Promise<StartedInstance> {
    return this.boot(instance, false);
  }

  async startIncoming(instance: DesiredInstance): Promise<StartedInstance & { address: string }> {
    const started = await this.boot(instance, true);
    const vm = this.vms.get(instance.id) as QemuVm;
    try {
      const address = await vm.prepareIncoming(await freePort());
      // The guest must run once it has arrived: QEMU starts it by itself unless the source was
      // paused; then it is continued here (never left paused on the only node that holds it).
      vm.awaitIncomingRunning(INCOMING_WAIT_MS).catch((error: unknown) =>
        this.options.log.warn({ err: error, instance: instance.id }, 'the incoming guest did not start running'),
      );
      return { ...started, address };
    } catch (error) {
      await vm.kill().catch(() => {});
      throw error;
    }
  }

  private async boot(instance: DesiredInstance, incoming: boolean): Promise<StartedInstance> {
    const workload = instance.workload;
    if (workload.driver !== 'vm') throw new Error('the vm driver starts vm workloads only');
    if (!instance.image) throw new Error(`no image in the desired state for ${instance.id}: the operator could not resolve ${workload.image}`);
    const image = await this.image(instance.image);
    const accel = await this.accel(image, workload);
    const runDir = join(this.runtimeRoot(), instance.id.slice(0, 12));
    rmSync(runDir, { recursive: true, force: true });
    mkdirSync(runDir, { recursive: true });
    const vm = await QemuVm.start({
      id: instance.id,
      kernel: image.kernelPath,
      initrd: image.initrdPath,
      cmdline: image.json.cmdline,
      memoryMb: workload.memory_mb,
      vcpus: workload.vcpus,
      guestPort: workload.guest_port,
      hostPort: await freePort(),
      accel,
      runDir,
      incoming,
    });
    this.vms.set(instance.id, vm);
    const record = vm.record();
    return {
      pid: record.pid,
      port: record.hostPort,
      procStart: record.procStart,
      vm: record,
      healthPath: workload.health_path ?? image.json.health_path,
      statusPath: image.json.status_path,
      exited: vm.exited.then(() => 'QEMU exited'),
    };
  }

  private async accel(image: Image, workload: VmWorkload): Promise<VmAccel> {
    const accel = await probeAccel(
      this.options.accel,
      { kernel: image.kernelPath, initrd: image.initrdPath, cmdline: image.json.cmdline, guestPort: workload.guest_port, healthPath: image.json.health_path },
      this.options.log,
      { scratchDir: this.runtimeRoot() },
    );
    return accel;
  }

  /**
   * Where VMs' run dirs (QMP socket, pid file, console log) and the KVM probe's scratch dir go:
   * `<dataDir>/vms`, or — when that would make a QMP socket path longer than a unix socket
   * address holds (107 bytes) — a short directory under the system's temp dir named after the
   * data dir, so each agent keeps its own. Created on first use.
   */
  private runtimeRoot(): string {
    if (!this.runtime) {
      const inDataDir = join(this.options.dataDir, 'vms');
      // The longest path made under it: the KVM probe's mkdtemp dir and its socket.
      const longest = Buffer.byteLength(join(inDataDir, 'drydock-kvm-probe-XXXXXX', 'qmp.sock'));
      this.runtime = longest <= UNIX_SOCKET_PATH_MAX
        ? inDataDir
        : join(tmpdir(), `drydock-vm-${createHash('sha256').update(this.options.dataDir).digest('hex').slice(0, 12)}`);
      mkdirSync(this.runtime, { recursive: true });
    }
    return this.runtime;
  }

  /** Downloads, verifies (sha256 and signature, like any component) and unpacks an image once per artifact. */
  private image(desired: DesiredVmImage): Promise<Image> {
    let loading = this.images.get(desired.artifact_id);
    if (!loading) {
      loading = this.fetchImage(desired);
      this.images.set(desired.artifact_id, loading);
      loading.catch(() => this.images.delete(desired.artifact_id));
    }
    return loading;
  }

  private async fetchImage(desired: DesiredVmImage): Promise<Image> {
    const root = join(this.options.dataDir, 'images');
    const dir = join(root, desired.artifact_id);
    // Unpacked only after the bytes were verified, and renamed into place whole: a directory
    // that exists holds a verified image.
    if (existsSync(join(dir, 'image.json'))) {
      return { kernelPath: join(dir, 'vmlinuz'), initrdPath: join(dir, 'initrd.img'), json: parseImageJson(readFileSync(join(dir, 'image.json'), 'utf8')) };
    }
    const tar = join(root, `${desired.artifact_id}.${process.pid}.tar`);
    const staging = join(root, `${desired.artifact_id}.${process.pid}.unpacking`);
    try {
      const downloaded = await downloadArtifact({
        url: new URL(desired.url, this.options.operatorUrl).toString(),
        token: this.options.token,
        nodeCredential: this.options.nodeCredential(),
        file: tar,
        maxBytes: desired.size,
      });
      const refusal = refusalReason(desired.component, { ...desired, kind: 'vm-image' }, downloaded.sha256, this.options.trust);
      if (refusal) throw new Error(`vm-image ${desired.component}@${desired.version} refused: ${refusal}`);
      rmSync(staging, { recursive: true, force: true });
      const unpacked = await readVmImageArchive(tar, staging);
      renameSync(staging, dir);
      this.options.log.info({ image: `${desired.component}@${desired.version}`, artifact: desired.artifact_id }, 'vm image verified and unpacked');
      return { kernelPath: join(dir, 'vmlinuz'), initrdPath: join(dir, 'initrd.img'), json: unpacked.imageJson };
    } finally {
      rmSync(tar, { force: true });
      rmSync(staging, { recursive: true, force: true });
    }
  }

  isAlive(proc: HostedProcess): boolean {
    return proc.pid > 0 && isSameProcessAlive(proc.pid, proc.procStart);
  }

  /** The QMP connection of a VM, adopting it (through its socket) when a previous agent started it. */
  private async connect(proc: HostedProcess): Promise<QemuVm | null> {
    const held = this.vms.get(proc.id);
    if (held?.isAlive()) return held;
    if (!proc.vm) return null;
    const vm = await QemuVm.adopt(proc.vm);
    if (vm) this.vms.set(proc.id, vm);
    return vm;
  }

  async stop(proc: HostedProcess, graceMs: number): Promise<void> {
    const vm = await this.connect(proc).catch(() => null);
    this.vms.delete(proc.id);
    this.statusReadAt.delete(proc.id);
    if (vm) {
      // A migrated source holds a paused guest that cannot hear the power button: quit it.
      if ((await vm.status().catch(() => null)) === 'postmigrate') await vm.quit(2000);
      else await vm.powerdown(graceMs);
    } else if (this.isAlive(proc)) {
      // No QMP (socket gone): QEMU quits on SIGTERM; SIGKILL if it does not.
      process.kill(proc.pid, 'SIGTERM');
      const deadline = Date.now() + graceMs;
      while (Date.now() < deadline && this.isAlive(proc)) await new Promise((r) => setTimeout(r, 50));
      if (this.isAlive(proc)) process.kill(proc.pid, 'SIGKILL');
    }
  }

  probe(proc: HostedProcess, timeoutMs: number): Promise<boolean> {
    return probeHttp(`http://127.0.0.1:${proc.port}${proc.healthPath ?? proc.workload.health_path ?? '/'}`, timeoutMs);
  }

  async readWorkloadStatus(proc: HostedProcess): Promise<ParsedWorkloadStatus | undefined> {
    if (!proc.statusPath) return { ok: true, report: {} };
    const now = Date.now();
    if (now - (this.statusReadAt.get(proc.id) ?? 0) < VM_STATUS_INTERVAL_MS) return undefined;
    this.statusReadAt.set(proc.id, now);
    return guestWorkloadStatus(`http://127.0.0.1:${proc.port}${proc.statusPath}`, 900);
  }

  async migrateOut(proc: HostedProcess, address: string, options: { downtimeLimitMs: number; deadlineMs: number }): Promise<LiveMigrationStats> {
    const vm = await this.connect(proc);
    if (!vm) throw new Error('the source VM is gone');
    const stats = await vm.migrateOut(address, {
      downtimeLimitMs: options.downtimeLimitMs,
      deadlineMs: options.deadlineMs,
      ...(this.options.migrationBandwidthBytes ? { maxBandwidthBytes: this.options.migrationBandwidthBytes } : {}),
    });
    // The guest runs on the target now. This QEMU keeps it paused as it was handed over, so it
    // can resume here if the target dies before taking over (libvirt's confirm step), and is
    // quit once the operator withdraws it. New connections are refused at once meanwhile (the
    // edge retries them elsewhere); one still open here resets when it quits or answers on resume.
    await vm.closeHostForward().catch((error: unknown) => this.options.log.warn({ err: error, instance: proc.id }, 'could not close the migrated source\'s port'));
    return { total_ms: stats.total_ms, downtime_ms: stats.downtime_ms, transferred_bytes: stats.transferred_bytes };
  }

  async resume(proc: HostedProcess): Promise<void> {
    const vm = await this.connect(proc);
    if (!vm) throw new Error('the source VM is gone');
    if (proc.workload.driver !== 'vm') throw new Error('the vm driver resumes vm workloads only');
    await vm.resumeAfterMigration(proc.workload.guest_port);
  }

  async settleUnwatched(proc: HostedProcess): Promise<LiveMigrationStats | null> {
    const vm = await this.connect(proc);
    if (!vm) return null;
    const stats = await vm.settleUnwatchedMigration();
    if (!stats) return null;
    await vm.closeHostForward().catch((error: unknown) => this.options.log.warn({ err: error, instance: proc.id }, 'could not close the migrated source\'s port'));
    return { total_ms: stats.total_ms, downtime_ms: stats.downtime_ms, transferred_bytes: stats.transferred_bytes };
  }
}
