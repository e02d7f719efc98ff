import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { isSameProcessAlive, processStartTime } from '../drivers/process-driver.js';

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
 * While it runs, `pidFile` names its group (with the leader's start time), so an agent
 * restarted after a kill -9 can end a step the dead agent left running (killLeftoverStep).
 */
export function runStep(
  executable: string,
  options: { cwd: string; env: Record<string, string>; logFile: string; deadlineMs: number; pidFile?: string },
): Promise<StepResult> {
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
      if (options.pidFile) rmSync(options.pidFile, { force: true });
      log.end(`--- ${result.outcome}\n`, () => resolve({ ...result, tail: tail.trim() }));
    };
    const child = spawn(executable, [], {
      cwd: options.cwd,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin', HOME: process.env.HOME ?? '/', ...options.env },
    });
    if (options.pidFile && child.pid !== undefined) {
      mkdirSync(dirname(options.pidFile), { recursive: true });
      writeFileSync(options.pidFile, `${child.pid} ${processStartTime(child.pid) ?? '-'}\n`);
    }
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

/**
 * Ends the process group of a step that a killed agent left running (its `pidFile` survived),
 * so it cannot go on changing the node while the next agent reverts or assesses again. The
 * group is killed only while its leader is still the recorded process (same start time): a
 * reused PID is left alone. Waits (bounded) for the leader to be gone; removes the file.
 */
export async function killLeftoverStep(pidFile: string, waitMs = 5000): Promise<number | undefined> {
  let text: string;
  try {
    text = readFileSync(pidFile, 'utf8');
  } catch {
    return undefined;
  }
  const [pidText, startText] = text.trim().split(' ');
  const pid = Number(pidText);
  const start = startText === undefined || startText === '-' ? null : startText;
  let killed: number | undefined;
  if (Number.isInteger(pid) && pid > 1 && isSameProcessAlive(pid, start)) {
    try {
      process.kill(-pid, 'SIGKILL');
      killed = pid;
    } catch {
      // Gone in the meantime.
    }
    const deadline = Date.now() + waitMs;
    while (killed !== undefined && isSameProcessAlive(pid, start) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  rmSync(pidFile, { force: true });
  return killed;
}
