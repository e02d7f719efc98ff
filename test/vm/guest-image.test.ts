import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create as createTar } from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/agent/drivers/process-driver.js';
import { type CpioEntry, writeCpio } from '../../src/vm/cpio.js';
import { buildGuestImage, GUEST_IMAGE_NAME } from '../../src/vm/guest-image.js';
import { readVmImageArchive, VmImageArchiveError } from '../../src/vm/vm-image-archive.js';
import { ensureGuestImage, GUEST_DEB_CACHE, type GuestImage } from '../support/guest-image.js';

const temps: string[] = [];
function tempDir(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `drydock-${name}-`));
  temps.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
});

interface ParsedCpioEntry {
  name: string;
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  mtime: number;
  rdev: [number, number];
  check: number;
  data: Buffer;
}

/** Reads a newc archive back, checking magic and 4-byte alignment on the way. */
function parseCpio(archive: Buffer): ParsedCpioEntry[] {
  const entries: ParsedCpioEntry[] = [];
  let offset = 0;
  const align = (n: number) => n + ((4 - (n % 4)) % 4);
  for (;;) {
    expect(archive.toString('ascii', offset, offset + 6)).toBe('070701');
    const field = (i: number) => Number.parseInt(archive.toString('ascii', offset + 6 + i * 8, offset + 14 + i * 8), 16);
    const nameSize = field(11);
    const fileSize = field(6);
    const name = archive.toString('utf8', offset + 110, offset + 110 + nameSize - 1);
    expect(archive[offset + 110 + nameSize - 1]).toBe(0);
    const dataStart = align(offset + 110 + nameSize);
    const entry: ParsedCpioEntry = {
      name,
      ino: field(0),
      mode: field(1),
      uid: field(2),
      gid: field(3),
      nlink: field(4),
      mtime: field(5),
      rdev: [field(9), field(10)],
      check: field(12),
      data: archive.subarray(dataStart, dataStart + fileSize),
    };
    offset = align(dataStart + fileSize);
    if (name === 'TRAILER!!!') {
      expect(offset).toBe(archive.length);
      return entries;
    }
    entries.push(entry);
  }
}

describe('writeCpio', () => {
  const entries: CpioEntry[] = [
    { type: 'file', name: 'init', mode: 0o755, data: Buffer.from('#!/bin/sh\n') },
    { type: 'symlink', name: 'bin/sh', target: '/bin/busybox' },
    { type: 'dir', name: 'bin' },
    { type: 'file', name: 'bin/busybox', mode: 0o755, data: Buffer.from('odd length') },
    { type: 'chardev', name: 'dev/console', mode: 0o600, major: 5, minor: 1 },
    { type: 'dir', name: 'dev' },
    { type: 'dir', name: 'tmp', mode: 0o1777 },
  ];

  it('writes entries sorted by name with fixed owners, times and sequential inodes', () => {
    const parsed = parseCpio(writeCpio(entries));
    expect(parsed.map((e) => e.name)).toEqual(['bin', 'bin/busybox', 'bin/sh', 'dev', 'dev/console', 'init', 'tmp']);
    expect(parsed.map((e) => e.ino)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    for (const entry of parsed) expect({ uid: entry.uid, gid: entry.gid, mtime: entry.mtime, check: entry.check }).toEqual({ uid: 0, gid: 0, mtime: 0, check: 0 });
    const byName = new Map(parsed.map((e) => [e.name, e]));
    expect(byName.get('bin')).toMatchObject({ mode: 0o040755, nlink: 2 });
    expect(byName.get('tmp')?.mode).toBe(0o041777);
    expect(byName.get('bin/busybox')).toMatchObject({ mode: 0o100755, nlink: 1 });
    expect(byName.get('bin/busybox')?.data.toString()).toBe('odd length');
    expect(byName.get('bin/sh')?.mode).toBe(0o120777);
    expect(byName.get('bin/sh')?.data.toString()).toBe('/bin/busybox');
    expect(byName.get('dev/console')).toMatchObject({ mode: 0o020600, rdev: [5, 1] });
  });

  it('gives the same bytes whatever order the entries come in', () => {
    expect(writeCpio([...entries].reverse()).equals(writeCpio(entries))).toBe(true);
  });

  it('refuses a missing parent directory, a duplicate name and absolute or dotted names', () => {
    expect(() => writeCpio([{ type: 'symlink', name: 'bin/sh', target: 'busybox' }])).toThrow(/no directory entry for "bin"/);
    expect(() => writeCpio([{ type: 'dir', name: 'bin' }, { type: 'dir', name: 'bin' }])).toThrow(/appears twice/);
    expect(() => writeCpio([{ type: 'dir', name: '/bin' }])).toThrow(/relative path/);
    expect(() => writeCpio([{ type: 'dir', name: 'bin' }, { type: 'dir', name: 'bin/../etc' }])).toThrow(/relative path/);
  });
});

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

describe('buildGuestImage', () => {
  it('builds byte-identical outputs twice from the same inputs', async () => {
    const [first, second] = [tempDir('guest-a'), tempDir('guest-b')];
    const a = await buildGuestImage({ outDir: first, cacheDir: GUEST_DEB_CACHE, version: '1.2.3' });
    const b = await buildGuestImage({ outDir: second, cacheDir: GUEST_DEB_CACHE, version: '1.2.3' });
    const tar = `${GUEST_IMAGE_NAME}-1.2.3.vm-image.tar`;
    expect(readdirSync(first).sort()).toEqual([tar, 'image.json', 'initrd.img', 'vmlinuz'].sort());
    for (const file of readdirSync(first)) expect(sha256(join(second, file)), file).toBe(sha256(join(first, file)));
    expect(b.sha256).toBe(a.sha256);
    expect(a.sha256).toBe(sha256(join(first, tar)));
    expect(a.imageJson).toMatchObject({ name: GUEST_IMAGE_NAME, version: '1.2.3', guest_port: 8080, health_path: '/healthz', status_path: '/status' });
    expect(a.imageJson.kernel_package).toMatch(/^linux-image-.+-cloud-amd64$/);
    expect(a.imageJson.files.vmlinuz).toBe(sha256(a.kernelPath));
    expect(a.imageJson.files['initrd.img']).toBe(sha256(a.initrdPath));
  });

  it('refuses a version that is not semver', async () => {
    await expect(buildGuestImage({ outDir: tempDir('guest-bad'), cacheDir: GUEST_DEB_CACHE, version: 'latest' })).rejects.toMatchObject({ code: 'INVALID_OPTION' });
  });
});

describe('readVmImageArchive', () => {
  let image: GuestImage;
  beforeAll(async () => {
    image = await ensureGuestImage();
  });

  it('unpacks the artifact and checks it against image.json', async () => {
    const unpacked = await readVmImageArchive(image.tarPath, join(tempDir('unpack'), 'image'));
    expect(unpacked.imageJson).toEqual(image.imageJson);
    expect(sha256(unpacked.kernelPath)).toBe(image.imageJson.files.vmlinuz);
    expect(sha256(unpacked.initrdPath)).toBe(image.imageJson.files['initrd.img']);
    // From bytes too, as the agent has them after a download.
    const fromBytes = await readVmImageArchive(readFileSync(image.tarPath), tempDir('unpack-bytes'));
    expect(fromBytes.imageJson).toEqual(image.imageJson);
  });

  it('rejects a damaged initrd and leaves nothing behind', async () => {
    const bytes = readFileSync(image.tarPath);
    // Entries are sorted: image.json (a 512-byte header, its text padded to 512), then
    // initrd.img's header, then its content.
    const initrdStart = 512 + Math.ceil(statSync(join(image.dir, 'image.json')).size / 512) * 512 + 512;
    bytes[initrdStart + 100] = (bytes[initrdStart + 100] as number) ^ 0xff;
    const into = tempDir('unpack-damaged');
    await expect(readVmImageArchive(bytes, into)).rejects.toThrow(VmImageArchiveError);
    await expect(readVmImageArchive(bytes, into)).rejects.toThrow(/initrd\.img has sha256/);
    expect(readdirSync(into)).toEqual([]);
  });

  it('rejects an archive with an entry besides the three files', async () => {
    const src = tempDir('unpack-extra-src');
    for (const file of ['image.json', 'initrd.img', 'vmlinuz']) copyFileSync(join(image.dir, file), join(src, file));
    writeFileSync(join(src, 'extra.sh'), '#!/bin/sh\n');
    const tar = join(tempDir('unpack-extra'), 'extra.tar');
    await createTar({ file: tar, cwd: src, portable: true }, ['extra.sh', 'image.json', 'initrd.img', 'vmlinuz']);
    const into = tempDir('unpack-extra-into');
    await expect(readVmImageArchive(tar, into)).rejects.toThrow(/unexpected entries: extra\.sh/);
    expect(readdirSync(into)).toEqual([]);
  });
});

describe('the guest under QEMU (TCG)', () => {
  let image: GuestImage;
  let qemu: ChildProcess | undefined;
  let runDir: string;
  let port: number;
  let exited: Promise<number | null>;
  const bootStartedAt = { ms: 0 };

  beforeAll(async () => {
    image = await ensureGuestImage();
    runDir = tempDir('guest-vm');
    port = await freePort();
    qemu = spawn(
      'qemu-system-x86_64',
      [
        ...['-machine', 'pc-i440fx-7.2', '-accel', 'tcg', '-cpu', 'max', '-m', '128', '-display', 'none', '-no-reboot'],
        ...['-serial', `file:${join(runDir, 'console.log')}`, '-qmp', `unix:${join(runDir, 'qmp.sock')},server=on,wait=off`],
        ...['-kernel', image.kernelPath, '-initrd', image.initrdPath, '-append', image.imageJson.cmdline],
        ...['-netdev', `user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:${port}-:${image.imageJson.guest_port}`, '-device', 'virtio-net-pci,netdev=n0'],
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const child = qemu;
    exited = new Promise((resolveExit) => child.once('exit', (code) => resolveExit(code)));
    bootStartedAt.ms = performance.now();
  });

  afterAll(async () => {
    // Only the QEMU this file started, by its pid.
    if (qemu?.pid !== undefined && qemu.exitCode === null && qemu.signalCode === null) {
      qemu.kill('SIGKILL');
      await exited;
    }
  });

  const consoleLog = () => (existsSync(join(runDir, 'console.log')) ? readFileSync(join(runDir, 'console.log'), 'utf8') : '');
  const get = async (path: string, timeoutMs = 5_000) => {
    const response = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(timeoutMs) });
    return { status: response.status, body: await response.text() };
  };

  it('boots and answers /healthz, /status and /', async () => {
    // slirp accepts connections before the guest listens, so only an HTTP answer counts; and a
    // connection opened while the guest boots waits for slirp's SYN retry (seconds), so each
    // probe gives up after 500 ms and the next one starts afresh.
    const deadline = performance.now() + 90_000;
    let health: { status: number; body: string } | undefined;
    while (performance.now() < deadline && qemu?.exitCode === null) {
      health = await get(image.imageJson.health_path, 500).catch(() => undefined);
      if (health?.status === 200) break;
      await new Promise((done) => setTimeout(done, 100));
    }
    expect(health, `no 200 from /healthz within 90 s; console:\n${consoleLog()}`).toEqual({ status: 200, body: 'ok\n' });
    process.stderr.write(`guest served /healthz ${Math.round(performance.now() - bootStartedAt.ms)} ms after QEMU started\n`);

    const first = await get(image.imageJson.status_path);
    const second = await get(image.imageJson.status_path);
    const root = await get('/');
    expect([first.status, second.status, root.status]).toEqual([200, 200, 200]);
    const [a, b, c] = [first, second, root].map((r) => JSON.parse(r.body) as { boot_id: string; uptime_s: number; requests: number; image: string });
    expect(a?.boot_id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(b?.boot_id).toBe(a?.boot_id);
    expect(c?.boot_id).toBe(a?.boot_id);
    expect(a?.requests).toBeGreaterThanOrEqual(1);
    expect(b?.requests).toBe((a?.requests ?? 0) + 1);
    expect(c?.requests).toBe((b?.requests ?? 0) + 1);
    expect(typeof a?.uptime_s).toBe('number');
    expect(b?.uptime_s).toBeGreaterThanOrEqual(a?.uptime_s ?? Infinity);
    expect(a?.image).toBe(`${GUEST_IMAGE_NAME}@${image.imageJson.version}`);
    expect((await get('/nope')).status).toBe(404);
  });

  it('serves a burst of concurrent requests and counts each one', async () => {
    const status = async () => JSON.parse((await get(image.imageJson.status_path)).body) as { requests: number };
    const before = await status();
    const burst = await Promise.all(Array.from({ length: 8 }, () => get(image.imageJson.status_path)));
    expect(burst.map((r) => r.status)).toEqual(Array(8).fill(200));
    expect((await status()).requests).toBe(before.requests + 8 + 1);
  });

  it('powers off on ACPI system_powerdown, and QEMU exits', async () => {
    const replies = await qmp(join(runDir, 'qmp.sock'), ['qmp_capabilities', 'system_powerdown']);
    expect(replies).toEqual([{ return: {} }, { return: {} }]);
    const code = await Promise.race([exited, new Promise<'timeout'>((done) => setTimeout(() => done('timeout'), 60_000))]);
    expect(code, `QEMU still runs 60 s after system_powerdown; console:\n${consoleLog()}`).toBe(0);
    expect(consoleLog()).toContain('ACPI power button pressed');
  });
});

/** A minimal QMP exchange: read the greeting, send each command, collect the replies (events are skipped). */
function qmp(socketPath: string, commands: string[]): Promise<unknown[]> {
  return new Promise((resolveReplies, reject) => {
    const socket = connect(socketPath);
    const replies: unknown[] = [];
    let buffered = '';
    let greeted = false;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`QMP: no reply to ${commands.join(', ')} within 10 s`));
    }, 10_000);
    socket.setEncoding('utf8');
    socket.on('error', reject);
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const message = JSON.parse(buffered.slice(0, newline)) as Record<string, unknown>;
        buffered = buffered.slice(newline + 1);
        if ('QMP' in message && !greeted) {
          greeted = true;
          for (const execute of commands) socket.write(`${JSON.stringify({ execute })}\n`);
        } else if ('return' in message || 'error' in message) {
          replies.push(message);
          if (replies.length === commands.length) {
            clearTimeout(timer);
            socket.end();
            resolveReplies(replies);
          }
        }
      }
    });
  });
}
