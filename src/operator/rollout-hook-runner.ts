// Runs preRollout / postRollout hooks on the leader (DESIGN.md §12): a command in its own
// process group (output and exit status in files under the OS temp dir, the same runner as the
// agent's) or a webhook, bounded by the hook's timeout, then records the outcome in hook_runs —
// only while the run is still this process's open attempt — and wakes its rollout. A run whose
// leader died is found open and not running here: the rollout decides to start it again.
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { callWebhook } from '../hooks/call-webhook.js';
import { awaitHook, type HookOutcome, hookFiles, removeHookFiles, spawnHook } from '../hooks/run-command.js';
import type { Db } from '../store/db.js';
import { finishOperatorHookRun, type OperatorHookRun } from '../store/hook-runs.js';

/** Tries at recording an outcome before giving up (the run then times out in the rollout's eyes). */
const RECORD_ATTEMPTS = 5;

export class RolloutHookRunner {
  private readonly running = new Map<string, { pgid: number | null }>();
  private readonly abort = new AbortController();
  private readonly dir: string;

  constructor(
    private readonly db: Db,
    /** This process's lease holder id: the owner written on the runs it starts. */
    private readonly owner: string,
    private readonly onFinished: (rolloutId: string) => void,
    private readonly log: Logger,
  ) {
    this.dir = join(tmpdir(), `drydock-hooks-${owner}`);
  }

  isRunning(id: string): boolean {
    return this.running.has(id);
  }

  start(run: OperatorHookRun): void {
    if (this.running.has(run.id) || this.abort.signal.aborted) return;
    const entry = { pgid: null as number | null };
    this.running.set(run.id, entry);
    void this.execute(run, entry)
      .catch((error: unknown) => this.log.error({ err: error, hook_id: run.id }, 'hook run failed to execute'))
      .finally(() => this.running.delete(run.id));
  }

  /** Stops carrying out runs: their process groups are killed; the next leader runs them again. */
  stop(): void {
    this.abort.abort();
    for (const { pgid } of this.running.values()) {
      if (pgid === null) continue;
      try {
        process.kill(-pgid, 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
  }

  private async execute(run: OperatorHookRun, entry: { pgid: number | null }): Promise<void> {
    const timeout = run.hook.timeout;
    let outcome: HookOutcome | undefined;
    if ('run' in run.hook) {
      const key = createHash('sha256').update(`${run.id}#${run.attempt}`).digest('hex').slice(0, 32);
      const files = hookFiles(this.dir, key);
      const { pid, exited } = spawnHook(run.hook.run, run.env, files);
      entry.pgid = pid;
      outcome = await awaitHook(pid, files, Date.now() + timeout, timeout, exited, this.abort.signal);
      if (outcome) removeHookFiles(files);
    } else {
      outcome = await callWebhook(run.hook.webhook, run.env, timeout);
    }
    if (!outcome || this.abort.signal.aborted) return;
    this.log.info({ hook_id: run.id, status: outcome.status, reason: outcome.reason }, 'rollout hook finished');
    for (let attempt = 1; attempt <= RECORD_ATTEMPTS; attempt++) {
      try {
        await finishOperatorHookRun(this.db, run, this.owner, outcome);
        break;
      } catch (error) {
        if (attempt === RECORD_ATTEMPTS) throw error;
        await new Promise((r) => setTimeout(r, 200 * attempt));
      }
    }
    this.onFinished(run.rolloutId);
  }
}
