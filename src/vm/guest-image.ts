import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { Parser, type ReadEntry, create as createTar } from 'tar';
import { isSemver } from '../domain/semver.js';
import { type CpioEntry, writeCpio } from './cpio.js';
import { GUEST_MODULE_DIR, GUEST_PORT, HEALTH_PATH, HTTP_HANDLER_PATH, STATUS_PATH, httpHandlerScript, initScript } from './guest-init.js';
import { VM_IMAGE_FILES, type VmImageJson, VmImageJsonSchema } from './vm-image-archive.js';

export const GUEST_IMAGE_NAME = 'drydock-guest';
export const DEFAULT_GUEST_IMAGE_VERSION = '1.0.0';

/**
 * The kernel's virtio network stack and the ACPI power button are modules in Debian's cloud
 * kernel, insmod-ed in this order (each after what its `depends=` names; checked at build).
 * button + evdev turn QEMU's `system_powerdown` into an input event /init waits for.
 */
export const GUEST_MODULES = [
  'virtio_ring',
  'virtio',
  'virtio_pci_modern_dev',
  'virtio_pci_legacy_dev',
  'virtio_pci',
  'failover',
  'net_failover',
  'virtio_net',
  'button',
  'evdev',
] as const;

/** `-no-reboot` is the VMM's part: with `panic=-1`, a guest that dies makes QEMU exit instead of rebooting. */
export const GUEST_CMDLINE = 'console=ttyS0 quiet panic=-1';

/** Booted and served under TCG with 64 MiB (measured); 48 MiB did not get to /init. Drivers may give more. */
export const GUEST_MEMORY_MB_MIN = 96;

/** The Debian metapackage that depends on the current cloud kernel, e.g. linux-image-6.1.0-57-cloud-amd64. */
const KERNEL_METAPACKAGE = 'linux-image-cloud-amd64';
const BUSYBOX = '/bin/busybox';
const BUSYBOX_PACKAGE = 'busybox-static';
/** Every entry of the image tar gets this mtime, so the tar's bytes do not depend on when it was built. */
const FIXED_MTIME = new Date(0);

export interface BuildGuestImageOptions {
  /** Where vmlinuz, initrd.img, image.json and the .vm-image.tar are written (created if missing). */
  outDir: string;
  /** Where downloaded kernel packages are kept and reused (created if missing). */
  cacheDir: string;
  /** The image's version (semver), reported by GET /status. Default {@link DEFAULT_GUEST_IMAGE_VERSION}. */
  version?: string;
  /** Progress lines for people. Default: none. */
  log?: (line: string) => void;
}

export interface GuestImage {
  dir: string;
  imageJson: VmImageJson;
  kernelPath: string;
  initrdPath: string;
  /** The vm-image artifact: an uncompressed tar of image.json, initrd.img and vmlinuz. */
  tarPath: string;
  /** sha256 of the tar. */
  sha256: string;
}

export type GuestImageErrorCode = 'TOOL_MISSING' | 'BUSYBOX_STATIC_MISSING' | 'KERNEL_PACKAGE_UNAVAILABLE' | 'KERNEL_PACKAGE_CONTENT' | 'INVALID_OPTION';

/** A build that cannot go on: `code` is stable, the message says what to do. */
export class GuestImageError extends Error {
  constructor(
    readonly code: GuestImageErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options?.cause === undefined ? undefined : options);
  }
}

/**
 * Builds the reference guest: Debian's cloud kernel and an initramfs of busybox-static, the
 * {@link GUEST_MODULES} and the scripts of guest-init.ts. The same inputs (kernel package,
 * busybox package, version) give byte-identical outputs: the initramfs comes from our own
 * cpio writer and is left uncompressed (gzip -9 would save ~1.4 MB beside a 14 MB kernel, but
 * its bytes could change with the zlib a Node release bundles), and the tar has fixed
 * mtimes, portable headers and sorted entries.
 */
export async function buildGuestImage(options: BuildGuestImageOptions): Promise<GuestImage> {
  const version = options.version ?? DEFAULT_GUEST_IMAGE_VERSION;
  if (!isSemver(version)) {
    throw new GuestImageError('INVALID_OPTION', `the image version must be a semantic version like 1.2.3, got "${version}"`);
  }
  const log = options.log ?? (() => {});
  const dir = resolve(options.outDir);
  const cacheDir = resolve(options.cacheDir);

  const busybox = await readBusybox();
  const kernelPackage = await resolveKernelPackage();
  const deb = await fetchKernelPackage(kernelPackage, cacheDir, log);
  const kernel = await readKernelPackage(deb, GUEST_MODULES);
  log(`kernel ${kernel.release} from ${kernelPackage.name} ${kernelPackage.version}; busybox ${busybox.version}`);

  const image = `${GUEST_IMAGE_NAME}@${version}`;
  const initrd = writeCpio(initramfsEntries({ image, busybox, modules: kernel.modules }));
  const files = { vmlinuz: kernel.vmlinuz, 'initrd.img': initrd };
  const imageJson = VmImageJsonSchema.parse({
    name: GUEST_IMAGE_NAME,
    version,
    guest_port: GUEST_PORT,
    health_path: HEALTH_PATH,
    status_path: STATUS_PATH,
    cmdline: GUEST_CMDLINE,
    memory_mb_min: GUEST_MEMORY_MB_MIN,
    kernel_package: kernelPackage.name,
    kernel_package_version: kernelPackage.version,
    busybox_version: busybox.version,
    files: { vmlinuz: sha256(files.vmlinuz), 'initrd.img': sha256(files['initrd.img']) },
  } satisfies VmImageJson);

  mkdirSync(dir, { recursive: true });
  writeFileAtomic(join(dir, 'vmlinuz'), files.vmlinuz);
  writeFileAtomic(join(dir, 'initrd.img'), files['initrd.img']);
  writeFileAtomic(join(dir, 'image.json'), `${JSON.stringify(imageJson, null, 2)}\n`);
  const tarPath = join(dir, `${GUEST_IMAGE_NAME}-${version}.vm-image.tar`);
  const partial = `${tarPath}.${process.pid}.part`;
  await createTar({ file: partial, cwd: dir, portable: true, mtime: FIXED_MTIME, noDirRecurse: true }, [...VM_IMAGE_FILES]);
  renameSync(partial, tarPath);
  const tarSha256 = sha256(readFileSync(tarPath));
  log(`wrote ${tarPath} (sha256 ${tarSha256})`);
  return { dir, imageJson, kernelPath: join(dir, 'vmlinuz'), initrdPath: join(dir, 'initrd.img'), tarPath, sha256: tarSha256 };
}

interface Busybox {
  binary: Buffer;
  version: string;
  /** Applet paths as busybox installs them, e.g. `bin/sh`, `usr/sbin/httpd`. */
  applets: string[];
}

async function readBusybox(): Promise<Busybox> {
  const missing = () =>
    new GuestImageError('BUSYBOX_STATIC_MISSING', `${BUSYBOX_PACKAGE} is not installed: apt-get install -y ${BUSYBOX_PACKAGE} (the guest has no libc, so it needs the static build)`);
  // Debian's plain `busybox` package also installs /bin/busybox, dynamically linked: ask for the static one by name.
  const version = (await run('dpkg-query', ['-W', '-f=${db:Status-Status} ${Version}', BUSYBOX_PACKAGE]).catch(() => null))?.toString().trim();
  if (!version?.startsWith('installed ') || !existsSync(BUSYBOX)) throw missing();
  const applets = (await run(BUSYBOX, ['--list-full'])).toString().split('\n').filter((line) => line !== '' && line !== 'linuxrc');
  return { binary: readFileSync(BUSYBOX), version: version.slice('installed '.length), applets };
}

interface KernelPackage {
  name: string;
  version: string;
  /** From the package index (signed Release file): what a download or a cached .deb must match. */
  sha256: string;
}

async function resolveKernelPackage(): Promise<KernelPackage> {
  const unavailable = (detail: string, cause?: unknown) =>
    new GuestImageError('KERNEL_PACKAGE_UNAVAILABLE', `${detail}; run \`apt-get update\` (a Debian mirror must be reachable)`, { cause });
  const depends = await run('apt-cache', ['depends', KERNEL_METAPACKAGE]).catch((error: unknown) => {
    throw unavailable(`apt-cache knows no ${KERNEL_METAPACKAGE}`, error);
  });
  const name = /Depends: (linux-image-\S+-cloud-amd64)\s/.exec(depends.toString())?.[1];
  if (!name) throw unavailable(`${KERNEL_METAPACKAGE} depends on no linux-image-<version>-cloud-amd64`);
  const show = (await run('apt-cache', ['show', '--no-all-versions', name])).toString();
  const version = /^Version: (\S+)$/m.exec(show)?.[1];
  const debSha256 = /^SHA256: ([0-9a-f]{64})$/m.exec(show)?.[1];
  if (!version || !debSha256) throw unavailable(`apt-cache shows no candidate version of ${name}`);
  return { name, version, sha256: debSha256 };
}

/** The package's .deb in `cacheDir`, downloaded with `apt-get download` unless a copy with the index's sha256 is there. */
async function fetchKernelPackage(pkg: KernelPackage, cacheDir: string, log: (line: string) => void): Promise<string> {
  // apt names a downloaded file <name>_<version with ':' as %3a>_<arch>.deb.
  const deb = join(cacheDir, `${pkg.name}_${pkg.version.replaceAll(':', '%3a')}_amd64.deb`);
  if (existsSync(deb) && sha256(readFileSync(deb)) === pkg.sha256) return deb;
  mkdirSync(cacheDir, { recursive: true });
  // Into a private dir first: two builds sharing the cache never see each other's half-written file.
  const staging = mkdtempSync(join(cacheDir, '.download-'));
  try {
    log(`downloading ${pkg.name} ${pkg.version}`);
    await run('apt-get', ['download', '-q', `${pkg.name}=${pkg.version}`], { cwd: staging });
    const fetched = readdirSync(staging).find((file) => file.endsWith('.deb'));
    if (!fetched) throw new GuestImageError('KERNEL_PACKAGE_UNAVAILABLE', `apt-get download ${pkg.name}=${pkg.version} wrote no .deb`);
    if (sha256(readFileSync(join(staging, fetched))) !== pkg.sha256) {
      throw new GuestImageError('KERNEL_PACKAGE_UNAVAILABLE', `${fetched} does not match the sha256 of the package index; run \`apt-get update\` and build again`);
    }
    renameSync(join(staging, fetched), deb);
    return deb;
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

interface KernelFiles {
  /** e.g. 6.1.0-57-cloud-amd64 */
  release: string;
  vmlinuz: Buffer;
  /** Uncompressed .ko bytes, in the order asked for. */
  modules: { name: string; data: Buffer }[];
}

/**
 * vmlinuz and the wanted modules out of the .deb, without installing it (installing pulls in
 * initramfs-tools and touches the host's /boot). `dpkg-deb --fsys-tarfile` streams the data
 * tar; it is parsed here in one pass rather than listed and extracted by a second `tar`
 * with wildcards. The package has no modules.dep (depmod makes it on install), so each module
 * is found by file name under kernel/, and its `depends=` is checked against the load order.
 */
async function readKernelPackage(deb: string, wanted: readonly string[]): Promise<KernelFiles> {
  const found = new Map<string, { path: string; data: Buffer }[]>();
  let vmlinuz: { release: string; data: Buffer } | undefined;
  const pick = async (entry: ReadEntry): Promise<void> => {
    const path = entry.path.replace(/^\.?\//, '');
    const kernel = /^boot\/vmlinuz-(.+)$/.exec(path);
    const module = /^(?:usr\/)?lib\/modules\/[^/]+\/kernel\/.*\/([^/]+)\.ko(\.xz|\.zst)?$/.exec(path);
    const name = module?.[1]?.replaceAll('-', '_');
    if (entry.type === 'File' && kernel?.[1]) vmlinuz = { release: kernel[1], data: await collect(entry) };
    else if (entry.type === 'File' && module && name && wanted.includes(name)) {
      const data = await decompressModule(path, await collect(entry));
      found.set(name, [...(found.get(name) ?? []), { path, data }]);
    } else entry.resume();
  };
  await parseTarFrom('dpkg-deb', ['--fsys-tarfile', deb], pick);

  if (!vmlinuz) throw new GuestImageError('KERNEL_PACKAGE_CONTENT', `${deb} holds no boot/vmlinuz-*`);
  const release = vmlinuz.release;
  const modules = wanted.map((name) => {
    const copies = found.get(name) ?? [];
    if (copies.length !== 1) {
      throw new GuestImageError('KERNEL_PACKAGE_CONTENT', `${deb} holds ${copies.length} modules named ${name} (${copies.map((c) => c.path).join(', ') || 'none'}); it may be built in or renamed in this kernel`);
    }
    return { name, data: (copies[0] as { data: Buffer }).data };
  });
  checkModules(modules, release);
  return { release, vmlinuz: vmlinuz.data, modules };
}

/** Each module was built for `release` and is loaded after every module it depends on. */
function checkModules(modules: readonly { name: string; data: Buffer }[], release: string): void {
  const loaded = new Set<string>();
  for (const { name, data } of modules) {
    const vermagic = modinfo(data, 'vermagic');
    if (!vermagic?.startsWith(`${release} `)) throw new GuestImageError('KERNEL_PACKAGE_CONTENT', `${name}.ko is for kernel "${vermagic}", not ${release}`);
    const depends = (modinfo(data, 'depends') ?? '').split(',').filter((dep) => dep !== '');
    const late = depends.filter((dep) => !loaded.has(dep));
    if (late.length > 0) throw new GuestImageError('KERNEL_PACKAGE_CONTENT', `${name} depends on ${late.join(', ')}, which GUEST_MODULES loads later or not at all`);
    loaded.add(name);
  }
}

/** A `key=value` of the module's .modinfo section (NUL-separated strings). */
function modinfo(ko: Buffer, key: string): string | undefined {
  const start = ko.indexOf(`\0${key}=`);
  if (start < 0) return undefined;
  const from = start + key.length + 2;
  return ko.subarray(from, ko.indexOf(0, from)).toString('utf8');
}

/**
 * busybox insmod loads only plain .ko files, so a compressed module is unpacked on the host with
 * the `xz` or `zstd` CLI (node:zlib has neither). Debian 12's cloud kernel ships plain .ko
 * (CONFIG_MODULE_COMPRESS_NONE), so neither tool is needed there.
 */
async function decompressModule(path: string, data: Buffer): Promise<Buffer> {
  if (path.endsWith('.ko')) return data;
  const [tool, pkg] = path.endsWith('.xz') ? ['xz', 'xz-utils'] : ['zstd', 'zstd'];
  return run(tool, ['-dc'], { input: data, missing: `${path} is compressed and ${tool} is not installed: apt-get install -y ${pkg}` });
}

function initramfsEntries(input: { image: string; busybox: Busybox; modules: readonly { name: string; data: Buffer }[] }): CpioEntry[] {
  const files: CpioEntry[] = [
    { type: 'chardev', name: 'dev/console', mode: 0o600, major: 5, minor: 1 },
    { type: 'file', name: 'init', mode: 0o755, data: Buffer.from(initScript({ image: input.image, modules: input.modules.map((m) => m.name) })) },
    { type: 'file', name: HTTP_HANDLER_PATH, mode: 0o755, data: Buffer.from(httpHandlerScript({ image: input.image })) },
    { type: 'file', name: 'bin/busybox', mode: 0o755, data: input.busybox.binary },
    ...input.modules.map((m): CpioEntry => ({ type: 'file', name: `${GUEST_MODULE_DIR}/${m.name}.ko`, mode: 0o644, data: m.data })),
  ];
  const taken = new Set(files.map((f) => f.name));
  const links = input.busybox.applets.filter((applet) => !taken.has(applet)).map((applet): CpioEntry => ({ type: 'symlink', name: applet, target: '/bin/busybox' }));
  // Mount points and every directory a file or link sits in.
  const dirs = new Set(['dev', 'proc', 'sys', 'run', 'tmp']);
  for (const { name } of [...files, ...links]) {
    for (let parent = dirname(name); parent !== '.'; parent = dirname(parent)) dirs.add(parent);
  }
  return [...[...dirs].map((name): CpioEntry => ({ type: 'dir', name, mode: name === 'tmp' ? 0o1777 : 0o755 })), ...files, ...links];
}

/** Streams `command`'s stdout (a tar) through the tar parser; `onEntry` must consume or resume each entry. */
async function parseTarFrom(command: string, args: string[], onEntry: (entry: ReadEntry) => Promise<void>): Promise<void> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const stderr: Buffer[] = [];
  child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
  // The first failure of an entry handler or of the parser; kept (not left as a rejected
  // promise nobody awaits yet, which Node would report as unhandled) and thrown at the end.
  let failure: unknown;
  const handled: Promise<void>[] = [];
  const parser = new Parser({
    onReadEntry: (entry) => {
      handled.push(onEntry(entry).catch((error: unknown) => void (failure ??= error)));
    },
  });
  const parsed = new Promise<void>((resolveParsed) => {
    parser.on('end', () => resolveParsed());
    parser.on('error', (error: unknown) => {
      failure ??= error;
      resolveParsed();
    });
  });
  const exited = new Promise<number | null>((resolveExit, reject) => {
    child.once('error', (error) => reject(toolError(command, error)));
    child.once('close', (code) => resolveExit(code));
  });
  child.stdout.pipe(parser);
  const code = await exited;
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${code}: ${Buffer.concat(stderr).toString().trim()}`);
  await parsed;
  await Promise.all(handled);
  if (failure !== undefined) throw failure;
}

function collect(entry: ReadEntry): Promise<Buffer> {
  return new Promise((resolveData, reject) => {
    const chunks: Buffer[] = [];
    entry.on('data', (chunk: Buffer) => chunks.push(chunk));
    entry.on('end', () => resolveData(Buffer.concat(chunks)));
    entry.on('error', reject);
  });
}

/** Runs a command to completion; its stdout, or an error carrying its stderr. */
function run(command: string, args: string[], options: { cwd?: string; input?: Buffer; /** The message when `command` is not installed. */ missing?: string } = {}): Promise<Buffer> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.once('error', (error) => reject(toolError(command, error, options.missing)));
    child.once('close', (code) => {
      if (code === 0) resolveRun(Buffer.concat(stdout));
      else reject(new Error(`${command} ${args.join(' ')} exited with ${code}: ${Buffer.concat(stderr).toString().trim()}`));
    });
    // A command that exits without reading its input must fail by its exit code, not by EPIPE.
    child.stdin.on('error', () => {});
    child.stdin.end(options.input);
  });
}

function toolError(command: string, error: Error, missing?: string): Error {
  if ((error as NodeJS.ErrnoException).code !== 'ENOENT') return error;
  return new GuestImageError('TOOL_MISSING', missing ?? `${command} is not installed; the guest image is built on Debian (apt-get, apt-cache, dpkg-deb, dpkg-query)`, { cause: error });
}

function writeFileAtomic(path: string, data: Buffer | string): void {
  const partial = `${path}.${process.pid}.part`;
  writeFileSync(partial, data);
  // Explicit, so the tar's mode bits do not depend on the umask.
  chmodSync(partial, 0o644);
  renameSync(partial, path);
}

export function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}
