import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildGuestImage, GUEST_IMAGE_NAME, GuestImageError, type GuestImage } from '../vm/guest-image.js';
import { parseImageJson } from '../vm/vm-image-archive.js';

const run = promisify(execFile);

export const WORKLOAD_MODES = ['auto', 'vm', 'process'] as const;
/** `--workloads`: auto runs VMs when this machine can, else processes. */
export type WorkloadsMode = (typeof WORKLOAD_MODES)[number];

/**
 * The example deployments × replicas and the traffic rate when the command line does not say.
 * As VMs: each QEMU holds ~230 MiB and a share of two cores under TCG (STACK.md), so 4 guests
 * (5 while one migrates); and every request runs the guest's shell handler under emulation, so
 * 20 req/s. Measured on 2 shared cores: at 50 req/s guests answered health probes too late and
 * were taken out of rotation (one run: 251 of 5091 requests failed with 503; another: the
 * upgrade stopped, a node not healthy within 90 s); at 20 req/s three runs failed no request.
 */
export const DEMO_SIZES = {
  process: { deployments: 4, replicas: 3, rate: 50 },
  vm: { deployments: 2, replicas: 2, rate: 20 },
} as const;

/** The one extra requirement for VMs (README), named in the fallback line. */
export const VM_INSTALL_HINT = 'apt-get install -y qemu-system-x86 busybox-static';

export type DemoWorkloads =
  | { driver: 'vm'; image: GuestImage; qemuVersion: string; /** Built this run (false: reused from the cache). */ built: boolean; buildMs: number }
  | { driver: 'process'; /** Why not VMs (null: processes were asked for). */ reason: string | null; /** What to install to get them, when installing is the fix. */ hint: string | null };

export interface ChooseWorkloadsOptions {
  mode: WorkloadsMode;
  /** Kernel packages and the demo's guest image, kept between runs (`--vm-cache`). */
  cacheDir: string;
  /** The running drydock bundle: the guest's scripts are part of it, so its hash keys the cached image. */
  bundle: string;
  log?: (line: string) => void;
}

/**
 * VMs when QEMU runs and the guest image builds (or a build of this very bundle is cached);
 * otherwise processes, with the reason. `--workloads vm` turns the reason into an error.
 */
export async function chooseWorkloads(options: ChooseWorkloadsOptions): Promise<DemoWorkloads> {
  if (options.mode === 'process') return { driver: 'process', reason: null, hint: null };
  const fallBack = (reason: string, hint: string | null): DemoWorkloads => {
    if (options.mode === 'vm') throw new Error(`--workloads vm: ${reason}${hint ? `; ${hint}` : ''}`);
    return { driver: 'process', reason, hint };
  };
  const qemu = await qemuVersion();
  if ('missing' in qemu) return fallBack(qemu.missing, VM_INSTALL_HINT);
  const startedAt = performance.now();
  try {
    const { image, built } = await ensureDemoGuestImage(options.cacheDir, options.bundle, options.log);
    return { driver: 'vm', image, qemuVersion: qemu.version, built, buildMs: Math.round(performance.now() - startedAt) };
  } catch (error) {
    if (error instanceof GuestImageError && error.code === 'BUSYBOX_STATIC_MISSING') return fallBack('busybox-static not installed', VM_INSTALL_HINT);
    // No apt (not Debian), a mirror out of reach, a kernel package that changed shape: the
    // build's message says what to do.
    return fallBack(`the guest image did not build (${oneLine((error as Error).message)})`, null);
  }
}

/** The line the demo prints when it falls back to processes. */
export function fallbackLine(workloads: Extract<DemoWorkloads, { driver: 'process' }>): string | null {
  if (workloads.reason === null) return null;
  return `VMs: ${workloads.reason}, running deployments as processes${workloads.hint ? ` (${workloads.hint} to run them as VMs)` : ''}`;
}

async function qemuVersion(): Promise<{ version: string } | { missing: string }> {
  try {
    const { stdout } = await run('qemu-system-x86_64', ['--version'], { timeout: 10_000 });
    return { version: /version (\S+)/.exec(stdout)?.[1] ?? stdout.split('\n')[0]?.trim() ?? 'unknown' };
  } catch (error) {
    const e = error as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') return { missing: 'qemu-system-x86_64 not found' };
    return { missing: `qemu-system-x86_64 --version failed (${oneLine(e.stderr?.trim() || e.message)})` };
  }
}

/** Where the demo keeps its guest image inside the cache (beside the kernel packages `drydock vm build-image` shares). */
const IMAGE_SUBDIR = 'demo-guest-image';
const BUNDLE_HASH_FILE = '.bundle.sha256';

/**
 * The reference guest in `<cacheDir>/demo-guest-image`, reused while it was built by this same
 * bundle (the guest's /init and HTTP handler are compiled into it) and its files match the
 * sha256s its image.json records. A reused image needs no apt and no network, so a second demo
 * run works offline. Built into a private directory and renamed into place: two demos building
 * at once each rename a complete image (the same bytes: builds are deterministic).
 */
async function ensureDemoGuestImage(cacheDir: string, bundle: string, log?: (line: string) => void): Promise<{ image: GuestImage; built: boolean }> {
  const dir = join(cacheDir, IMAGE_SUBDIR);
  const bundleHash = sha256(readFileSync(bundle));
  const cached = loadBuilt(dir, bundleHash);
  if (cached) return { image: cached, built: false };
  const staging = `${dir}.tmp-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  try {
    await buildGuestImage({ outDir: staging, cacheDir, log });
    writeFileSync(join(staging, BUNDLE_HASH_FILE), bundleHash);
    rmSync(dir, { recursive: true, force: true });
    renameSync(staging, dir);
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  const image = loadBuilt(dir, bundleHash);
  if (!image) throw new Error(`the guest image in ${dir} does not check out right after building it`);
  return { image, built: true };
}

function loadBuilt(dir: string, bundleHash: string): GuestImage | null {
  try {
    if (readFileSync(join(dir, BUNDLE_HASH_FILE), 'utf8') !== bundleHash) return null;
    const imageJson = parseImageJson(readFileSync(join(dir, 'image.json'), 'utf8'));
    const kernelPath = join(dir, 'vmlinuz');
    const initrdPath = join(dir, 'initrd.img');
    const tarPath = join(dir, `${GUEST_IMAGE_NAME}-${imageJson.version}.vm-image.tar`);
    if (!existsSync(tarPath)) return null;
    if (sha256(readFileSync(kernelPath)) !== imageJson.files.vmlinuz || sha256(readFileSync(initrdPath)) !== imageJson.files['initrd.img']) return null;
    return { dir, imageJson, kernelPath, initrdPath, tarPath, sha256: sha256(readFileSync(tarPath)) };
  } catch {
    return null;
  }
}

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');
const oneLine = (text: string) => text.replace(/\s+/g, ' ').trim();
