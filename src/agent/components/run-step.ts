import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export interface StepResult {
  ok: boolean;
  /** "exit code 3", "killed after 30000 ms deadline", "could not start: …". */
  outcome: string;
  /** Last lines of the step's output, for the reason people see. */
  tail: string;
}

const TAIL_BYTES = 400;

/**
 * Runs one installer executable (`install`, `health`, `rollback`) in its own process group,
 * with only PATH, HOME and the given env. Its output is appended to `logFile`; past the
 * deadline the whole group gets SIGKILL (a hung health check must not hang the agent).
 */
export function runStep(executable: string, options: { cwd: string; env: Record<string, string>; logFile: string; deadlineMs: number }): Promise<StepResult> {
  mkdirSync(dirname(options.logFile), { recursive: true });
  const log = createWriteStream(options.logFile, { flags: 'a' });
  log.write(`--- ${new Date().toISOString()} ${executable}\n`);
  let tail = '';
  const keep = (chunk: Buffer) => {
    log.write(chunk);
    tail = (tail + chunk.toString('utf8')).slice(-TAIL_BYTES);
  };
  return new Promise<StepResult>((resolve) => {
    let finished = false;
    const finish = (result: StepResult) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      log.end(`--- ${result.outcome}\n`, () => resolve({ ...result, tail: tail.trim() }));
    };
    const child = spawn(executable, [], {
      cwd: options.cwd,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin', HOME: process.env.HOME ?? '/', ...options.env },
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-(child.pid as number), 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, options.deadlineMs);
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.once('error', (error) => finish({ ok: false, outcome: `could not start: ${error.message}`, tail }));
    child.once('close', (code, signal) => {
      if (timedOut) finish({ ok: false, outcome: `killed after its ${options.deadlineMs} ms deadline`, tail });
      else finish({ ok: code === 0, outcome: code === null ? `killed by ${signal}` : `exit code ${code}`, tail });
    });
  });
}

/** "health failed (exit code 1): <tail>" */
export function describeFailure(step: string, result: StepResult): string {
  return `${step} failed (${result.outcome})${result.tail ? `: ${result.tail}` : ''}`;
}
