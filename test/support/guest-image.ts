import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { buildGuestImage, GUEST_IMAGE_NAME, type GuestImage } from '../../src/vm/guest-image.js';
import { parseImageJson } from '../../src/vm/vm-image-archive.js';

export type { GuestImage };

const REPO = resolve(import.meta.dirname, '../..');
/** The reference guest built for tests, reused across runs (`.cache/` is git-ignored). */
export const GUEST_IMAGE_DIR = join(REPO, '.cache/guest-image');
/** Downloaded kernel packages (~27 MB), shared by every test build. */
export const GUEST_DEB_CACHE = join(REPO, '.cache/vm-debs');
const LOCK = join(REPO, '.cache/guest-image.lock');
/** The sources that decide the image's bytes besides the Debian packages: a change to one rebuilds it. */
const SOURCES = ['cpio.ts', 'guest-init.ts', 'guest-image.ts', 'vm-image-archive.ts'].map((file) => join(REPO, 'src/vm', file));
const INPUTS_FILE = '.sources.sha256';
/** A build takes ~4 s (plus a download the first time); a lock older than this is someone stuck. */
const LOCK_WAIT_MS = 5 * 60_000;

/**
 * The reference guest image, built once into {@link GUEST_IMAGE_DIR} and reused while its
 * files match the sha256 image.json records and src/vm is unchanged. Safe when several vitest
 * workers call it at once: one builds under an O_EXCL lock file (into a private dir renamed
 * into place), the others wait for the lock and then reuse its build.
 */
export async function ensureGuestImage(): Promise<GuestImage> {
  const ready = loadBuilt();
  if (ready) return ready;
  await withLock(async () => {
    if (loadBuilt()) return; // built by whoever held the lock before us
    const staging = `${GUEST_IMAGE_DIR}.tmp-${process.pid}`;
    rmSync(staging, { recursive: true, force: true });
    try {
      await buildGuestImage({ outDir: staging, cacheDir: GUEST_DEB_CACHE });
      writeFileSync(join(staging, INPUTS_FILE), sourcesHash());
      rmSync(GUEST_IMAGE_DIR, { recursive: true, force: true });
      renameSync(staging, GUEST_IMAGE_DIR);
    } finally {
      rmSync(staging, { recursive: true, force: true });
    }
  });
  const built = loadBuilt();
  if (!built) throw new Error(`the guest image in ${GUEST_IMAGE_DIR} does not check out right after building it`);
  return built;
}

/** The build in GUEST_IMAGE_DIR, or null when there is none or it is stale or damaged. */
function loadBuilt(): GuestImage | null {
  const dir = GUEST_IMAGE_DIR;
  try {
    if (readFileSync(join(dir, INPUTS_FILE), 'utf8') !== sourcesHash()) return null;
    const imageJson = parseImageJson(readFileSync(join(dir, 'image.json'), 'utf8'));
    const kernelPath = join(dir, 'vmlinuz');
    const initrdPath = join(dir, 'initrd.img');
    if (sha256File(kernelPath) !== imageJson.files.vmlinuz || sha256File(initrdPath) !== imageJson.files['initrd.img']) return null;
    const tarPath = join(dir, `${GUEST_IMAGE_NAME}-${imageJson.version}.vm-image.tar`);
    return { dir, imageJson, kernelPath, initrdPath, tarPath, sha256: sha256File(tarPath) };
  } catch {
    return null;
  }
}

async function withLock(run: () => Promise<void>): Promise<void> {
  mkdirSync(join(REPO, '.cache'), { recursive: true });
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      const fd = openSync(LOCK, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    // A holder killed mid-build leaves its lock: take it over when its pid is gone. (Two
    // waiters may both do so and build twice; each renames a complete dir, so both are fine.)
    // An empty read is a lock just released or not yet written: look again.
    const holder = readText(LOCK);
    if (holder !== '' && !isAlive(Number(holder))) rmSync(LOCK, { force: true });
    else if (Date.now() > deadline) throw new Error(`${LOCK} is held by pid ${readText(LOCK)} for over ${LOCK_WAIT_MS / 1000} s; remove it if that process is stuck`);
    else await new Promise((done) => setTimeout(done, holder === '' ? 20 : 250));
  }
  try {
    await run();
  } finally {
    rmSync(LOCK, { force: true });
  }
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function sourcesHash(): string {
  const hash = createHash('sha256');
  for (const file of SOURCES) hash.update(readFileSync(file));
  return hash.digest('hex');
}

function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}


export { type GuestStatus, guestStatus } from '../../src/vm/guest-status.js';
