// The agent's journal of node hook runs (DESIGN.md §12), in its data dir: written before a hook
// starts (with its process group once spawned) and when it ends, by write-then-rename, so an
// agent killed at any point knows on restart which runs finished (never run again), which are
// still running (adopted: waited for, killed at their deadline) and which never started.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export interface HookJournalEntry {
  id: string;
  attempt: number;
  kind: 'run' | 'webhook';
  status: 'running' | 'succeeded' | 'failed';
  /** The hook's process group (null: not spawned yet, or a webhook). */
  pgid: number | null;
  startedAt: string;
  deadlineMs: number;
  timeoutMs: number;
  finishedAt?: string;
  exitCode?: number | null;
  outputTail?: string;
  reason?: string | null;
}

/** Finished entries kept (newest first) once runs are no longer asked for: enough for any rollout in flight. */
const KEEP_FINISHED = 200;

export const journalKey = (id: string, attempt: number): string => `${id}#${attempt}`;

export class HookJournal {
  private entries: Record<string, HookJournalEntry>;

  constructor(private readonly path: string) {
    this.entries = HookJournal.read(path);
  }

  private static read(path: string): Record<string, HookJournalEntry> {
    try {
      return JSON.parse(readFileSync(path, 'utf8')) as Record<string, HookJournalEntry>;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw new Error(`hook journal ${path} is unreadable (${(error as Error).message}); move it away to start fresh`);
    }
  }

  get(id: string, attempt: number): HookJournalEntry | undefined {
    return this.entries[journalKey(id, attempt)];
  }

  /** Records an entry durably (before anything it describes happens, or right after it happened). */
  put(entry: HookJournalEntry): void {
    this.entries[journalKey(entry.id, entry.attempt)] = entry;
    this.prune();
    mkdirSync(dirname(this.path), { recursive: true });
    const tmp = `${this.path}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.entries, null, 2));
    renameSync(tmp, this.path);
  }

  private prune(): void {
    const finished = Object.entries(this.entries)
      .filter(([, e]) => e.status !== 'running')
      .sort(([, a], [, b]) => (b.finishedAt ?? '').localeCompare(a.finishedAt ?? ''));
    for (const [key] of finished.slice(KEEP_FINISHED)) delete this.entries[key];
  }
}
