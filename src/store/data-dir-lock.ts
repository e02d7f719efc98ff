import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { resolve } from 'node:path';

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

// Lock files this process holds right now. A lock file naming our own pid is only stale when
// it is not in here (an earlier process with the same pid left it, e.g. a restarted container
// that is pid 1 every time); when it is in here, this is a second open in the same process,
// which loses writes just like a second process would.
const heldByThisProcess = new Set<string>();

/**
 * Takes `<dataDir>/drydock.lock` for this process. PGlite opened twice (by two processes, or
 * twice by one) loses writes silently, so the second open must fail loudly instead. A lock
 * left by a dead process (kill -9) is taken over. Returns the release function.
 */
export function lockDataDir(dataDir: string, purpose: string): () => void {
  mkdirSync(dataDir, { recursive: true });
  const path = resolve(dataDir, 'drydock.lock');
  if (heldByThisProcess.has(path)) throw new DataDirLockedError(dataDir, process.pid);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, JSON.stringify({ pid: process.pid, purpose, started_at: new Date().toISOString() }));
      closeSync(fd);
      heldByThisProcess.add(path);
      let released = false;
      return () => {
        // Only the first call releases: a later one must not remove a lock someone took since.
        if (released) return;
        released = true;
        heldByThisProcess.delete(path);
        rmSync(path, { force: true });
      };
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
