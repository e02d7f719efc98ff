import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export class DataDirLockedError extends Error {
  constructor(
    readonly dataDir: string,
    readonly holderPid: number,
  ) {
    super(
      `data directory ${dataDir} is in use by another drydock process (pid ${holderPid}); ` +
        'embedded Postgres allows one process only: stop it, use another --data-dir, or set DATABASE_URL',
    );
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes `<dataDir>/drydock.lock` for this process. PGlite opened by two processes loses
 * writes silently, so the second one must fail loudly instead. A lock left by a dead
 * process (kill -9) is taken over. Returns the release function.
 */
export function lockDataDir(dataDir: string, purpose: string): () => void {
  mkdirSync(dataDir, { recursive: true });
  const path = join(dataDir, 'drydock.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, JSON.stringify({ pid: process.pid, purpose, started_at: new Date().toISOString() }));
      closeSync(fd);
      return () => rmSync(path, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      let holder = 0;
      try {
        holder = Number(JSON.parse(readFileSync(path, 'utf8')).pid) || 0;
      } catch {
        // A half-written lock file: its writer died mid-write, so it is stale.
      }
      if (holder && holder !== process.pid && isAlive(holder)) throw new DataDirLockedError(dataDir, holder);
      rmSync(path, { force: true });
    }
  }
  throw new Error(`could not take the lock on ${dataDir}`);
}
