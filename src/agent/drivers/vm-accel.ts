import { closeSync, constants, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { probeHttp } from './http-probe.js';
import { freePort } from './process-driver.js';
import { QemuVm, type VmAccel } from './qemu-vm.js';

export type AccelRequest = 'auto' | VmAccel;

/** The image a KVM probe boots: the same kernel the VMs will run, since KVM failures are kernel-specific. */
export interface AccelProbeImage {
  kernel: string;
  initrd: string;
  cmdline: string;
  guestPort: number;
  /** When set, the probe passes only once the guest answers 2xx here; otherwise it must stay `running` for `stableMs`. */
  healthPath?: string;
}

export interface AccelProbeOptions {
  /** How long the KVM probe boot may take to prove itself. Default 15 000 ms. */
  timeoutMs?: number;
  /** Without a health path: how long `running` must hold. Default 2000 ms. */
  stableMs?: number;
  /** Scratch directory for the probe VM. Default os.tmpdir(). */
  scratchDir?: string;
  qemuBinary?: string;
}

export class AccelUnavailableError extends Error {}

/** Where the choice and its reason go (a pino logger fits). */
export interface AccelLog {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
}

/** One probe per kernel per process: the answer does not change while the agent runs. */
const cache = new Map<string, Promise<VmAccel>>();

/**
 * Which accelerator VMs should use. `tcg` and `kvm` are taken as asked (kvm fails when /dev/kvm
 * cannot be opened). `auto` boots the image once under KVM and keeps KVM only if the guest
 * really runs: on a nested PVM host /dev/kvm opens and QEMU starts, but stock kernels then die
 * with "KVM internal error" (STACK.md), so `-accel kvm:tcg` style fallback is not enough.
 */
export function probeAccel(requested: AccelRequest, image: AccelProbeImage, log: AccelLog, options: AccelProbeOptions = {}): Promise<VmAccel> {
  if (requested === 'tcg') return Promise.resolve('tcg');
  if (requested === 'kvm') {
    const problem = kvmDeviceProblem();
    if (problem) return Promise.reject(new AccelUnavailableError(`accel kvm was asked for but ${problem}; use accel tcg or auto`));
    return Promise.resolve('kvm');
  }
  let result = cache.get(image.kernel);
  if (!result) {
    result = chooseAuto(image, log, options);
    cache.set(image.kernel, result);
  }
  return result;
}

async function chooseAuto(image: AccelProbeImage, log: AccelLog, options: AccelProbeOptions): Promise<VmAccel> {
  const problem = kvmDeviceProblem();
  if (problem) {
    log.info({ accel: 'tcg', reason: problem }, 'VMs use TCG (software emulation): KVM is not available');
    return 'tcg';
  }
  const failure = await kvmBootProblem(image, options);
  if (failure) {
    log.warn({ accel: 'tcg', reason: failure }, 'VMs use TCG (software emulation): /dev/kvm opens but a probe boot under KVM failed');
    return 'tcg';
  }
  log.info({ accel: 'kvm' }, 'VMs use KVM: a probe boot ran');
  return 'kvm';
}

function kvmDeviceProblem(): string | null {
  try {
    closeSync(openSync('/dev/kvm', constants.O_RDWR));
    return null;
  } catch (error) {
    return `/dev/kvm cannot be opened (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`;
  }
}

/** Boot the image under KVM; null when it ran, else why not. */
async function kvmBootProblem(image: AccelProbeImage, options: AccelProbeOptions): Promise<string | null> {
  const runDir = mkdtempSync(join(options.scratchDir ?? tmpdir(), 'drydock-kvm-probe-'));
  const hostPort = await freePort();
  let vm: QemuVm | null = null;
  try {
    vm = await QemuVm.start({
      id: 'kvm-probe',
      kernel: image.kernel,
      initrd: image.initrd,
      cmdline: image.cmdline,
      memoryMb: 128,
      vcpus: 1,
      guestPort: image.guestPort,
      hostPort,
      accel: 'kvm',
      runDir,
      qemuBinary: options.qemuBinary,
    });
    const deadline = Date.now() + (options.timeoutMs ?? 15_000);
    const stableMs = options.stableMs ?? 2000;
    const runningSince = Date.now();
    for (;;) {
      const status = await vm.status();
      if (status !== 'running') return `the probe guest is ${status} under KVM`;
      if (image.healthPath) {
        if (await probeHttp(`http://127.0.0.1:${hostPort}${image.healthPath}`, 500)) {
          // Answering once is not enough if it dies right after; check that it still runs.
          const after = await vm.status();
          return after === 'running' ? null : `the probe guest answered, then became ${after}`;
        }
      } else if (Date.now() - runningSince >= stableMs) {
        return null;
      }
      if (Date.now() >= deadline) return `the probe guest did not answer within ${options.timeoutMs ?? 15_000} ms under KVM`;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } catch (error) {
    return `the probe VM failed: ${(error as Error).message}`;
  } finally {
    await vm?.kill().catch(() => undefined);
    rmSync(runDir, { recursive: true, force: true });
  }
}
