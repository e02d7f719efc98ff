import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { InstallRecord } from '../../domain/install-plan.js';

/**
 * What the agent knows about its components, in `<data-dir>/components/journal.json`:
 * the proven versions and the latest install record of each component. Written before every
 * phase the agent enters, so a restarted agent knows where the previous one stopped.
 */
export interface InstallJournal {
  installed: Record<string, string>;
  installs: Record<string, InstallRecord>;
}

export function readJournal(path: string): InstallJournal {
  try {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as Partial<InstallJournal>;
    return { installed: parsed.installed ?? {}, installs: parsed.installs ?? {} };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { installed: {}, installs: {} };
    throw new Error(`install journal ${path} is unreadable (${(error as Error).message}); move it away to start fresh`);
  }
}

/**
 * Write-then-rename, so a crash mid-write leaves the previous journal, never half of one.
 * The file is fsynced before the rename: the journal must not claim less than the disk holds.
 */
export function writeJournal(path: string, journal: InstallJournal): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, JSON.stringify(journal, null, 2));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}
