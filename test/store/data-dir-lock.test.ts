import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { buildSync } from 'esbuild';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DataDirLockedError, lockDataDir } from '../../src/store/data-dir-lock.js';
import { openDb } from '../../src/store/open.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';

const LOCK_MODULE = fileURLToPath(new URL('../../src/store/data-dir-lock.ts', import.meta.url));

/**
 * The real lock module as plain JavaScript, so a second process can run it. It imports only
 * node:* modules, so one bundled file is all that process needs.
 */
function bundleLockModule(dir: string): string {
  const out = join(dir, 'data-dir-lock.mjs');
  buildSync({ entryPoints: [LOCK_MODULE], bundle: true, format: 'esm', platform: 'node', target: 'node20', outfile: out, logLevel: 'silent' });
  return out;
}

const nodeArgs = (code: string) => ['--input-type=module', '-e', code];

/** Tries to take the lock from another process; resolves with how that went. */
async function lockInAnotherProcess(lockModule: string, dataDir: string): Promise<{ locked: boolean; holderPid?: number; message: string }> {
  const code = `
    const { lockDataDir, DataDirLockedError } = await import(${JSON.stringify(lockModule)});
    try {
      lockDataDir(${JSON.stringify(dataDir)}, 'second process')();
      console.log(JSON.stringify({ locked: false, message: 'took the lock' }));
    } catch (error) {
      console.log(JSON.stringify({ locked: error instanceof DataDirLockedError, holderPid: error.holderPid, message: error.message }));
    }`;
  const { stdout } = await promisify(execFile)(process.execPath, nodeArgs(code), { timeout: 30_000 });
  return JSON.parse(stdout.trim().split('\n').at(-1) as string);
}

/** Starts another process that takes the lock and holds it until killed. */
async function holdLockInAnotherProcess(lockModule: string, dataDir: string): Promise<ChildProcess> {
  const code = `
    const { lockDataDir } = await import(${JSON.stringify(lockModule)});
    lockDataDir(${JSON.stringify(dataDir)}, 'holder');
    console.log('locked');
    setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, nodeArgs(code), { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the holder process did not take the lock within 30 s')), 30_000);
    child.once('exit', (status) => reject(new Error(`the holder process exited early (${status})`)));
    child.stdout?.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('locked')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return child;
}

async function kill9(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

describe(`data-dir lock on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  const dirs: string[] = [];
  const children: ChildProcess[] = [];
  const tempDir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'drydock-lock-'));
    dirs.push(dir);
    return dir;
  };
  let lockModule: string;
  beforeAll(async () => {
    t = await createTestDb();
    lockModule = bundleLockModule(tempDir());
  });
  afterEach(async () => {
    for (const child of children.splice(0)) await kill9(child);
  });
  afterAll(async () => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    await t.cleanup();
  });

  it('refuses a second lock of the same dir in this process, and frees it on release', () => {
    const dir = tempDir();
    const release = lockDataDir(dir, 'first');
    const lock = JSON.parse(readFileSync(join(dir, 'drydock.lock'), 'utf8'));
    expect(lock).toMatchObject({ pid: process.pid, purpose: 'first' });

    expect(() => lockDataDir(dir, 'second')).toThrow(DataDirLockedError);
    // The same dir spelled differently is the same lock.
    expect(() => lockDataDir(`${dir}/./`, 'third')).toThrow(DataDirLockedError);
    expect(JSON.parse(readFileSync(join(dir, 'drydock.lock'), 'utf8')).purpose).toBe('first');

    release();
    expect(existsSync(join(dir, 'drydock.lock'))).toBe(false);
    const again = lockDataDir(dir, 'after release');
    // A second call of the old release must not remove the new holder's lock.
    release();
    expect(JSON.parse(readFileSync(join(dir, 'drydock.lock'), 'utf8')).purpose).toBe('after release');
    again();
  });

  it('refuses a dir another live process holds, in lockDataDir and in openDb, and takes it over once that process is killed', async () => {
    const dir = tempDir();
    const holder = await holdLockInAnotherProcess(lockModule, dir);
    children.push(holder);
    let refused: unknown;
    try {
      lockDataDir(dir, 'contender');
    } catch (error) {
      refused = error;
    }
    expect(refused).toBeInstanceOf(DataDirLockedError);
    expect((refused as DataDirLockedError).holderPid).toBe(holder.pid);
    expect((refused as DataDirLockedError).message).toMatch(/in use by another drydock process.*--data-dir.*DATABASE_URL/);
    // openDb takes the lock before it starts the embedded engine, so it is refused the same way.
    await expect(openDb({ dataDir: dir })).rejects.toMatchObject({ holderPid: holder.pid });
    expect(existsSync(join(dir, 'pgdata'))).toBe(false);

    await kill9(holder); // a kill -9 leaves the lock file behind
    expect(JSON.parse(readFileSync(join(dir, 'drydock.lock'), 'utf8')).pid).toBe(holder.pid);
    const release = lockDataDir(dir, 'successor');
    expect(JSON.parse(readFileSync(join(dir, 'drydock.lock'), 'utf8'))).toMatchObject({ pid: process.pid, purpose: 'successor' });
    release();
  });

  it('takes over a half-written lock file and one its own pid left behind in an earlier life', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'drydock.lock'), '{"pid": 12');
    lockDataDir(dir, 'after crash')();
    // A restarted container often gets the same pid: a lock with our pid that we do not hold is stale.
    writeFileSync(join(dir, 'drydock.lock'), JSON.stringify({ pid: process.pid, purpose: 'previous life' }));
    const release = lockDataDir(dir, 'this life');
    expect(JSON.parse(readFileSync(join(dir, 'drydock.lock'), 'utf8')).purpose).toBe('this life');
    release();
  });

  if (TEST_ENGINE === 'pglite') {
    it('refuses to open an embedded data dir that is open: openDb in this process, the lock from another process', async () => {
      const dataDir = t.dataDir as string;
      await t.db.query('CREATE TABLE lock_probe (n int)');
      await expect(openDb({ dataDir })).rejects.toBeInstanceOf(DataDirLockedError);
      const other = await lockInAnotherProcess(lockModule, dataDir);
      expect(other).toMatchObject({ locked: true, holderPid: process.pid });
      expect(other.message).toContain(dataDir);
      // The refused opens did not disturb the open database or its lock.
      await t.db.query('INSERT INTO lock_probe VALUES (1)');
      expect(await t.db.query('SELECT n FROM lock_probe')).toEqual([{ n: 1 }]);
      expect(JSON.parse(readFileSync(join(dataDir, 'drydock.lock'), 'utf8')).pid).toBe(process.pid);
    });
  } else {
    it('takes no data-dir lock when a server URL is given, so several opens share one database', async () => {
      const dataDir = tempDir();
      const first = await openDb({ databaseUrl: t.url, dataDir });
      const second = await openDb({ databaseUrl: t.url, dataDir });
      try {
        await first.query('CREATE TABLE lock_probe (n int)');
        await second.query('INSERT INTO lock_probe VALUES (1)');
        expect(await first.query('SELECT n FROM lock_probe')).toEqual([{ n: 1 }]);
        expect(existsSync(join(dataDir, 'drydock.lock'))).toBe(false);
        // And the embedded mode of the same process still guards its own dir.
        const release = lockDataDir(dataDir, 'embedded');
        expect(() => lockDataDir(dataDir, 'embedded again')).toThrow(DataDirLockedError);
        release();
      } finally {
        await first.close();
        await second.close();
      }
    });
  }
});
