// Runs the node hooks of the agent's desired state (preNode, postNode; DESIGN.md §12), one at a
// time in the order given, and reports each run: running, then succeeded or failed with its exit
// code and output tail. Journaled (hook-journal.ts): after a restart a finished run is only
// reported again, a running one is adopted (its group keeps running while the agent is away),
// and a webhook that was under way is sent again (its body names the run).
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { DesiredHook, HookReport } from '../../domain/protocol.js';
import { callWebhook } from '../../hooks/call-webhook.js';
import { awaitHook, type HookOutcome, hookFiles, removeHookFiles, spawnHook } from '../../hooks/run-command.js';
import { HookJournal, type HookJournalEntry, journalKey } from './hook-journal.js';

export class NodeHookRunner {
  private readonly journal: HookJournal;
  private readonly dir: string;
  /** The run under way in this process (one at a time). */
  private active: Promise<void> | undefined;
  private readonly abort = new AbortController();

  constructor(
    dataDir: string,
    /** Called when a run starts or ends, so the agent reports it at once. */
    private readonly onChange: () => void,
    private readonly log: Logger,
  ) {
    this.dir = join(dataDir, 'hooks');
    this.journal = new HookJournal(join(this.dir, 'journal.json'));
  }

  /** Starts (or adopts) the first unfinished hook of the desired state, unless one runs already. */
  reconcile(desired: readonly DesiredHook[]): void {
    if (this.active || this.abort.signal.aborted) return;
    const next = desired.find((h) => this.journal.get(h.id, h.attempt)?.status !== 'succeeded' && this.journal.get(h.id, h.attempt)?.status !== 'failed');
    if (!next) return;
    this.active = this.execute(next)
      .catch((error: unknown) => this.log.error({ err: error, hook_id: next.id }, 'hook run failed to execute'))
      .finally(() => {
        this.active = undefined;
        this.onChange();
      });
  }

  /** What the agent says about the desired hooks it has a journal entry for. */
  reports(desired: readonly DesiredHook[]): HookReport[] {
    const reports: HookReport[] = [];
    for (const hook of desired) {
      const e = this.journal.get(hook.id, hook.attempt);
      if (!e) continue;
      reports.push({
        id: e.id,
        attempt: e.attempt,
        status: e.status,
        started_at: e.startedAt,
        ...(e.status === 'running'
          ? {}
          : { exit_code: e.exitCode ?? null, output_tail: e.outputTail ?? '', ...(e.reason ? { reason: e.reason } : {}), ...(e.finishedAt ? { finished_at: e.finishedAt } : {}) }),
      });
    }
    return reports;
  }

  /** Stops waiting (the agent is stopping): a running hook keeps running and is adopted by the next agent. */
  stop(): void {
    this.abort.abort();
  }

  private async execute(hook: DesiredHook): Promise<void> {
    const previous = this.journal.get(hook.id, hook.attempt);
    const key = createHash('sha256').update(journalKey(hook.id, hook.attempt)).digest('hex').slice(0, 32);
    const files = hookFiles(this.dir, key);
    let outcome: HookOutcome | undefined;
    let entry: HookJournalEntry;
    if (previous && previous.kind === 'run' && previous.pgid !== null) {
      // Started by an earlier agent process: wait for it (or its result) instead of running it again.
      entry = previous;
      this.log.info({ hook_id: hook.id, pgid: entry.pgid }, 'adopting a hook started before the agent restarted');
      outcome = await awaitHook(entry.pgid as number, files, entry.deadlineMs, entry.timeoutMs, () => false, this.abort.signal);
    } else {
      const now = Date.now();
      entry = {
        id: hook.id,
        attempt: hook.attempt,
        kind: hook.run ? 'run' : 'webhook',
        status: 'running',
        pgid: null,
        startedAt: new Date(now).toISOString(),
        deadlineMs: now + hook.timeout_ms,
        timeoutMs: hook.timeout_ms,
      };
      this.journal.put(entry);
      this.onChange();
      if (hook.run) {
        const { pid, exited } = spawnHook(hook.run, hook.env, files);
        entry = { ...entry, pgid: pid };
        this.journal.put(entry);
        this.log.info({ hook_id: hook.id, pgid: pid, argv: hook.run }, 'hook started');
        outcome = await awaitHook(pid, files, entry.deadlineMs, entry.timeoutMs, exited, this.abort.signal);
      } else if (hook.webhook) {
        outcome = await callWebhook(hook.webhook, hook.env, hook.timeout_ms);
      } else {
        outcome = { status: 'failed', exitCode: null, outputTail: '', reason: 'the hook has neither run nor webhook', finishedAt: new Date() };
      }
    }
    // Stopping mid-wait: no verdict; the next agent adopts the run.
    if (!outcome) return;
    this.journal.put({
      ...entry,
      status: outcome.status,
      finishedAt: outcome.finishedAt.toISOString(),
      exitCode: outcome.exitCode,
      outputTail: outcome.outputTail,
      reason: outcome.reason,
    });
    removeHookFiles(files);
    this.log.info({ hook_id: hook.id, status: outcome.status, reason: outcome.reason }, 'hook finished');
  }
}
