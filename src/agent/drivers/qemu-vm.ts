import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { isSameProcessAlive, processStartTime } from './process-driver.js';
import { QmpClient, QmpConnectionError, type QmpEvent } from './qmp.js';

export type VmAccel = 'kvm' | 'tcg';

export interface VmSpec {
  /** The instance this VM hosts; names the QEMU process (`-name drydock-<id>`). */
  id: string;
  kernel: string;
  initrd: string;
  /**
   * A raw disk image (virtio), none by default. QEMU migrates RAM and device state, not the
   * disk: a migration target must be started on the same file (shared storage).
   */
  disk?: string;
  /** The kernel command line (`-append`). */
  cmdline: string;
  memoryMb: number;
  vcpus: number;
  /** The port the guest serves on; forwarded from 127.0.0.1:`hostPort`. */
  guestPort: number;
  hostPort: number;
  accel: VmAccel;
  /**
   * One directory per VM: qmp.sock, qemu.pid, console.log (the guest's serial console) and
   * qemu.log (QEMU's own output). Keep it short: a unix socket path holds at most 107 bytes.
   */
  runDir: string;
  /** Start as a migration target (`-incoming defer`), waiting for {@link QemuVm.prepareIncoming}. Default false. */
  incoming?: boolean;
  /** Default `qemu-system-x86_64` from PATH. */
  qemuBinary?: string;
  /** How long to wait for QEMU's QMP socket after spawning it. Default 10 000 ms. */
  startTimeoutMs?: number;
}

/** What the agent persists to find a running VM again after it restarts (plain JSON). */
export interface VmRecord {
  id: string;
  pid: number;
  /** /proc start time of `pid`, so a recycled pid is not mistaken for our QEMU. */
  procStart: string | null;
  qmpPath: string;
  hostPort: number;
  runDir: string;
  accel: VmAccel;
}

export interface MigrationProgress {
  /** query-migrate's status: setup, active, device, … */
  status: string;
  transferred_bytes: number;
  remaining_bytes: number;
  total_bytes: number;
  elapsed_ms: number;
}

/** The numbers QEMU reports for a completed migration (query-migrate). */
export interface MigrationStats {
  total_ms: number;
  /** How long the guest was stopped at switchover. */
  downtime_ms: number;
  /** RAM bytes sent (`ram.transferred`). */
  transferred_bytes: number;
  setup_ms?: number;
}

export interface MigrateOutOptions {
  /** The longest pause QEMU may plan for at switchover (`downtime-limit`). Default 300 ms. */
  downtimeLimitMs?: number;
  /**
   * Bytes per second (`max-bandwidth`). Default 1 GiB/s: QEMU 7.2's own default (128 MiB/s)
   * would throttle a loopback migration for nothing.
   */
  maxBandwidthBytes?: number;
  /** Cancel the migration (`migrate_cancel`) and reject when it has not completed in this long. */
  deadlineMs: number;
  /** How often to poll query-migrate. Default 25 ms: the poll is also how soon a completion is seen. */
  pollMs?: number;
  onProgress?: (progress: MigrationProgress) => void;
}

/** A migration that did not complete; the source keeps running (QEMU restarts it). */
export class MigrationError extends Error {
  constructor(
    readonly reason: 'failed' | 'cancelled' | 'deadline' | 'source-gone',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options?.cause === undefined ? undefined : options);
  }
}

/** QEMU did not come up, or its QMP socket is not reachable. */
export class VmStartError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : options);
  }
}

const GIB = 1024 * 1024 * 1024;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface QueryMigrate {
  status?: string;
  'total-time'?: number;
  downtime?: number;
  'setup-time'?: number;
  'error-desc'?: string;
  ram?: { transferred?: number; remaining?: number; total?: number };
}

/**
 * One QEMU process hosting one VM, controlled over QMP. QEMU runs in its own process group with
 * its output in a file, so it outlives an agent crash; the next agent finds it again with
 * {@link QemuVm.adopt} from the {@link VmRecord} it persisted.
 */
export class QemuVm {
  private exitedPromise: Promise<void> | null = null;

  private constructor(
    private readonly rec: VmRecord,
    private readonly qmp: QmpClient,
    child: ChildProcess | null,
  ) {
    if (child) {
      this.exitedPromise = new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) resolve();
        else child.once('exit', () => resolve());
      });
    }
  }

  /**
   * Resolves when the QEMU process is gone. For our own child that is its exit event; an adopted
   * QEMU is not our child, so its pid is watched, from the first time someone asks.
   */
  get exited(): Promise<void> {
    this.exitedPromise ??= this.pollUntilGone();
    return this.exitedPromise;
  }

  static async start(requested: VmSpec): Promise<QemuVm> {
    // Absolute, since QEMU runs in the run dir rather than in the caller's working directory.
    const spec = { ...requested, runDir: resolve(requested.runDir) };
    mkdirSync(spec.runDir, { recursive: true });
    const qmpPath = join(spec.runDir, 'qmp.sock');
    const args = qemuArgs(spec, qmpPath);
    rmSync(qmpPath, { force: true });
    const log = openSync(join(spec.runDir, 'qemu.log'), 'a');
    let child: ChildProcess;
    try {
      child = spawn(spec.qemuBinary ?? 'qemu-system-x86_64', args, {
        detached: true,
        // Its working directory is the run dir, so nothing it writes (a core dump) lands in the agent's.
        cwd: spec.runDir,
        stdio: ['ignore', log, log],
        // QEMU needs nothing from the agent's environment, which may hold tokens.
        env: { PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin', HOME: process.env.HOME ?? '/' },
      });
      await new Promise<void>((resolve, reject) => {
        child.once('spawn', resolve);
        child.once('error', reject);
      });
    } catch (error) {
      throw new VmStartError(`could not run ${spec.qemuBinary ?? 'qemu-system-x86_64'}: ${(error as Error).message}; is QEMU installed?`, { cause: error });
    } finally {
      closeSync(log);
    }
    child.unref();
    const pid = child.pid as number;
    const rec: VmRecord = { id: spec.id, pid, procStart: processStartTime(pid), qmpPath, hostPort: spec.hostPort, runDir: spec.runDir, accel: spec.accel };
    let onEarlyExit: ((code: number | null, signal: NodeJS.Signals | null) => void) | undefined;
    const exitedEarly = new Promise<never>((_, reject) => {
      onEarlyExit = (code, signal) => reject(new VmStartError(`QEMU exited at start (${signal ?? `code ${code}`}): ${logTail(spec.runDir)}`));
      child.once('exit', onEarlyExit);
    });
    const connecting = QmpClient.connect(qmpPath, { deadlineMs: spec.startTimeoutMs ?? 10_000 });
    try {
      const qmp = await Promise.race([connecting, exitedEarly]);
      return new QemuVm(rec, qmp, child);
    } catch (error) {
      connecting.then((qmp) => qmp.close()).catch(() => undefined);
      killPid(pid, rec.procStart);
      if (error instanceof VmStartError) throw error;
      throw new VmStartError(`QEMU ${spec.id} did not open its QMP socket: ${(error as Error).message}; ${logTail(spec.runDir)}`, { cause: error });
    } finally {
      if (onEarlyExit) child.removeListener('exit', onEarlyExit);
    }
  }

  /**
   * Reconnect to the QEMU of a persisted record; null when that process is gone (a recycled pid
   * does not count: the start time must match). The guest is not touched.
   */
  static async adopt(record: VmRecord, options: { connectTimeoutMs?: number } = {}): Promise<QemuVm | null> {
    if (!isSameProcessAlive(record.pid, record.procStart)) return null;
    try {
      const qmp = await QmpClient.connect(record.qmpPath, { deadlineMs: options.connectTimeoutMs ?? 5000 });
      return new QemuVm({ ...record }, qmp, null);
    } catch (error) {
      if (!isSameProcessAlive(record.pid, record.procStart)) return null;
      throw new VmStartError(`QEMU ${record.id} (pid ${record.pid}) is running but its QMP socket is not reachable: ${(error as Error).message}`, { cause: error });
    }
  }

  get pid(): number {
    return this.rec.pid;
  }

  get hostPort(): number {
    return this.rec.hostPort;
  }

  get accel(): VmAccel {
    return this.rec.accel;
  }

  record(): VmRecord {
    return { ...this.rec };
  }

  isAlive(): boolean {
    return isSameProcessAlive(this.rec.pid, this.rec.procStart);
  }

  /** QMP events (SHUTDOWN, STOP, RESUME, GUEST_PANICKED, …) from now on; returns the unsubscribe. */
  onEvent(listener: (event: QmpEvent) => void): () => void {
    this.qmp.on('event', listener);
    return () => this.qmp.off('event', listener);
  }

  /** QMP `query-status`: running, paused, inmigrate, postmigrate, internal-error, shutdown, … */
  async status(): Promise<string> {
    const result = await this.qmp.execute<{ status: string }>('query-status');
    return result.status;
  }

  /** On a VM started with `incoming: true`: listen for the migration stream; returns the URI to migrate to. */
  async prepareIncoming(port: number): Promise<string> {
    const uri = `tcp:127.0.0.1:${port}`;
    await this.qmp.execute('migrate-incoming', { uri });
    return uri;
  }

  /**
   * On a migration target: wait until the incoming migration has finished and the guest runs
   * (`cont` if QEMU left it paused). Throws when the VM ends up in any other state.
   */
  async awaitIncomingRunning(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const status = await this.status();
      if (status === 'running') return;
      if (status === 'paused') await this.qmp.execute('cont');
      else if (status !== 'inmigrate' && status !== 'prelaunch' && status !== 'finish-migrate' && status !== 'restore-vm') {
        throw new MigrationError('failed', `the migration target ${this.rec.id} is ${status}, not running`);
      }
      if (Date.now() >= deadline) throw new MigrationError('deadline', `the migration target ${this.rec.id} is still ${status} after ${timeoutMs} ms`);
      await sleep(20);
    }
  }

  /**
   * Live-migrate this VM (precopy) to `uri` and wait for the outcome. On success the source is
   * `postmigrate` (stopped) and the caller should quit it at once, so connections still open to
   * it reset rather than hang. On failure, cancellation or the deadline the source keeps running.
   */
  async migrateOut(uri: string, options: MigrateOutOptions): Promise<MigrationStats> {
    const started = Date.now();
    const deadline = started + options.deadlineMs;
    try {
      await this.qmp.execute('migrate-set-parameters', {
        'downtime-limit': options.downtimeLimitMs ?? 300,
        'max-bandwidth': options.maxBandwidthBytes ?? GIB,
      });
      await this.qmp.execute('migrate', { uri });
    } catch (error) {
      // E.g. a migration already running, or a URI QEMU rejects: nothing started, the source runs on.
      throw new MigrationError('failed', `migration of ${this.rec.id} to ${uri} did not start: ${(error as Error).message}`, { cause: error });
    }
    for (;;) {
      let info: QueryMigrate;
      try {
        info = await this.qmp.execute<QueryMigrate>('query-migrate');
      } catch (error) {
        if (error instanceof QmpConnectionError) throw new MigrationError('source-gone', `the source QEMU ${this.rec.id} went away during the migration`, { cause: error });
        throw error;
      }
      const status = info.status ?? 'none';
      if (status === 'completed') return migrationStats(info);
      if (status === 'failed') throw new MigrationError('failed', `migration of ${this.rec.id} to ${uri} failed: ${info['error-desc'] ?? 'QEMU gave no reason'}`);
      if (status === 'cancelled') throw new MigrationError('cancelled', `migration of ${this.rec.id} to ${uri} was cancelled`);
      options.onProgress?.({
        status,
        transferred_bytes: info.ram?.transferred ?? 0,
        remaining_bytes: info.ram?.remaining ?? 0,
        total_bytes: info.ram?.total ?? 0,
        elapsed_ms: Date.now() - started,
      });
      if (Date.now() >= deadline) return this.cancelAfterDeadline(uri, options.deadlineMs);
      await sleep(options.pollMs ?? 25);
    }
  }

  private async cancelAfterDeadline(uri: string, deadlineMs: number): Promise<MigrationStats> {
    const stats = await this.cancelAndSettle();
    if (stats) return stats;
    throw new MigrationError('deadline', `migration of ${this.rec.id} to ${uri} did not complete within ${deadlineMs} ms and was cancelled`);
  }

  /**
   * Cancels a migration in flight and waits (up to 5 s) for QEMU to settle. Returns the stats
   * when it completed while the cancel was on its way (the source is then stopped and the target
   * runs, so that is the outcome), null when it was cancelled or failed (the source runs on).
   */
  private async cancelAndSettle(): Promise<MigrationStats | null> {
    await this.cancelMigration();
    const settle = Date.now() + 5000;
    while (Date.now() < settle) {
      const info = await this.qmp.execute<QueryMigrate>('query-migrate');
      if (info.status === 'completed') return migrationStats(info);
      if (info.status === 'cancelled' || info.status === 'failed' || info.status === undefined) return null;
      await sleep(25);
    }
    return null;
  }

  /**
   * What became of a migration out of this VM that nobody watched (the agent that started it
   * was killed): completed — the guest runs on the target and this QEMU should quit — or, when it
   * is still in flight, cancelled here so the guest keeps running on this side (null).
   */
  async settleUnwatchedMigration(): Promise<MigrationStats | null> {
    const info = await this.qmp.execute<QueryMigrate>('query-migrate');
    if (info.status === 'completed') return migrationStats(info);
    if (info.status === undefined || info.status === 'none' || info.status === 'failed' || info.status === 'cancelled') return null;
    return this.cancelAndSettle();
  }

  /** QMP `migrate_cancel`: the source resumes; a no-op when no migration runs. */
  async cancelMigration(): Promise<void> {
    await this.qmp.execute('migrate_cancel');
  }

  /** QMP `quit`, then wait for the process to end; SIGKILL when it has not after `graceMs` (default 5000). */
  /**
   * After a completed migration out (`postmigrate`): stop accepting connections on the guest's
   * host port, so new requests are refused at once (a router retries them elsewhere) instead of
   * waiting on a guest that is paused here and runs on the target. The VM stays resumable.
   */
  async closeHostForward(): Promise<void> {
    await this.hmp(`hostfwd_remove n0 tcp:127.0.0.1:${this.rec.hostPort}`);
  }

  /**
   * The target of a completed migration died before the guest served there: resume the guest
   * here, from the state it was handed over in, and accept connections again. Only from
   * `postmigrate` (anything else is not a source holding a handed-over guest).
   */
  async resumeAfterMigration(guestPort: number): Promise<void> {
    const status = await this.status();
    if (status !== 'postmigrate') throw new MigrationError('failed', `${this.rec.id} is ${status}, not a source holding a migrated guest`);
    await this.qmp.execute('cont');
    await this.hmp(`hostfwd_add n0 tcp:127.0.0.1:${this.rec.hostPort}-:${guestPort}`);
  }

  /** A human-monitor command (hostfwd has no QMP equivalent); QEMU reports its errors as text. */
  private async hmp(commandLine: string): Promise<void> {
    const output = await this.qmp.execute<string>('human-monitor-command', { 'command-line': commandLine });
    if (typeof output === 'string' && /could not|invalid|error|not found/i.test(output)) throw new Error(`${commandLine}: ${output.trim()}`);
  }

  async quit(graceMs = 5000): Promise<void> {
    await this.qmp.execute('quit').catch(() => undefined); // QEMU may close the socket before replying.
    if (await this.waitForExit(graceMs)) return;
    await this.kill();
  }

  /**
   * ACPI power button (`system_powerdown`), then wait for the guest to power off; SIGKILL after
   * `graceMs`. Returns whether the guest shut down by itself.
   */
  async powerdown(graceMs: number): Promise<{ graceful: boolean }> {
    await this.qmp.execute('system_powerdown').catch(() => undefined);
    if (await this.waitForExit(graceMs)) return { graceful: true };
    await this.kill();
    return { graceful: false };
  }

  /** SIGKILL the QEMU process (only if it is still ours) and wait until it is gone. */
  async kill(): Promise<void> {
    killPid(this.rec.pid, this.rec.procStart);
    await this.waitForExit(5000);
    await this.qmp.close();
  }

  /** Drop the QMP connection and leave QEMU running (to be adopted later). */
  async detach(): Promise<void> {
    await this.qmp.close();
  }

  private async waitForExit(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.isAlive()) {
      if (Date.now() >= deadline) return false;
      await sleep(25);
    }
    return true;
  }

  /** For an adopted QEMU (not our child, no exit event): watch the pid, without holding the event loop open. */
  private pollUntilGone(): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        if (!this.isAlive()) resolve();
        else setTimeout(check, 250).unref();
      };
      check();
    });
  }
}

/** The QEMU command line. Machine type and device set are fixed so any two VMs of one image can migrate between each other. */
export function qemuArgs(spec: VmSpec, qmpPath: string): string[] {
  for (const [what, path] of [['runDir', spec.runDir], ['disk', spec.disk ?? '']] as const) {
    // QEMU's option syntax splits on commas; rather than escape them, refuse such paths.
    if (path.includes(',')) throw new VmStartError(`the VM's ${what} must not contain a comma: ${path}`);
  }
  if (Buffer.byteLength(qmpPath) > 107) throw new VmStartError(`the QMP socket path is too long for a unix socket (max 107 bytes): ${qmpPath}; use a shorter runDir`);
  const args = [
    '-name', `drydock-${spec.id.replace(/[^A-Za-z0-9_.-]/g, '_')}`,
    '-machine', 'pc-i440fx-7.2',
    ...(spec.accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg', '-cpu', 'max']),
    '-m', String(spec.memoryMb),
    '-smp', String(spec.vcpus),
    '-kernel', resolve(spec.kernel),
    '-initrd', resolve(spec.initrd),
    '-append', spec.cmdline,
    ...(spec.disk ? ['-drive', `file=${resolve(spec.disk)},format=raw,if=virtio`] : []),
    '-no-reboot',
    '-display', 'none',
    '-serial', `file:${join(spec.runDir, 'console.log')}`,
    '-netdev', `user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:${spec.hostPort}-:${spec.guestPort}`,
    '-device', 'virtio-net-pci,netdev=n0',
    '-qmp', `unix:${qmpPath},server=on,wait=off`,
    '-pidfile', join(spec.runDir, 'qemu.pid'),
  ];
  if (spec.incoming) args.push('-incoming', 'defer');
  return args;
}

function migrationStats(info: QueryMigrate): MigrationStats {
  const stats: MigrationStats = {
    total_ms: info['total-time'] ?? 0,
    downtime_ms: info.downtime ?? 0,
    transferred_bytes: info.ram?.transferred ?? 0,
  };
  if (info['setup-time'] !== undefined) stats.setup_ms = info['setup-time'];
  return stats;
}

function killPid(pid: number, procStart: string | null): void {
  if (!isSameProcessAlive(pid, procStart)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Gone in between.
  }
}

/** The end of QEMU's own output, for an error message that says why it did not start. */
function logTail(runDir: string): string {
  try {
    const text = readFileSync(join(runDir, 'qemu.log'), 'utf8').trim();
    return text ? `qemu.log: ${text.slice(-600)}` : `qemu.log in ${runDir} is empty`;
  } catch {
    return `no qemu.log in ${runDir}`;
  }
}
