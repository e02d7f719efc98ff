// Runs a hook command (DESIGN.md §12) so that its outcome survives the process that started it:
// the command runs in its own process group under a tiny /bin/sh wrapper that appends its output
// to `<key>.out` and writes its exit status to `<key>.exit` (renamed into place, so it is whole
// or absent). An agent killed -9 mid-hook finds the result (or the still-running group) when it
// starts again and never runs a finished hook twice. On timeout the whole group is killed.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readFileSync, readSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { HOOK_OUTPUT_TAIL_BYTES } from '../domain/protocol.js';

export interface HookOutcome {
  status: 'succeeded' | 'failed';
  exitCode: number | null;
  outputTail: string;
  reason: string | null;
  finishedAt: Date;
}

/** Appends the command's output to $1 and its exit status to $2 (atomically, by rename). */
const WRAPPER = 'out="$1"; status="$2"; shift 2; "$@" </dev/null >>"$out" 2>&1; code=$?; printf %s "$code" >"$status.tmp" && mv "$status.tmp" "$status"';
/** How often a running hook's status file and group are looked at. */
const POLL_MS = 100;
/** SIGTERM → SIGKILL grace for a hook past its timeout. */
const KILL_GRACE_MS = 2_000;

/**
 * What a hook's process starts with besides its own env: enough to find programs, nothing of the
 * agent's or operator's own environment (tokens, database URLs).
 */
function baseEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of ['PATH', 'HOME', 'LANG', 'TZ']) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  env.PATH ??= '/usr/local/bin:/usr/bin:/bin';
  return env;
}

export interface HookFiles {
  out: string;
  status: string;
}

export function hookFiles(dir: string, key: string): HookFiles {
  return { out: join(dir, `${key}.out`), status: join(dir, `${key}.exit`) };
}

/** Removes a finished run's files once its outcome is recorded (the output tail lives on in the record). */
export function removeHookFiles(files: HookFiles): void {
  for (const path of [files.out, files.status]) rmSync(path, { force: true });
}

/** Starts the command; returns the process group id (the wrapper's pid). */
export function spawnHook(argv: readonly string[], env: Record<string, string>, files: HookFiles): { pid: number; exited: () => boolean } {
  mkdirSync(join(files.out, '..'), { recursive: true });
  const child = spawn('/bin/sh', ['-c', WRAPPER, 'drydock-hook', files.out, files.status, ...argv], {
    detached: true,
    stdio: 'ignore',
    env: { ...baseEnv(), ...env },
  });
  if (child.pid === undefined) throw new Error(`could not start /bin/sh for hook ${argv[0] ?? ''}`);
  let exited = false;
  child.once('exit', () => (exited = true));
  child.unref();
  return { pid: child.pid, exited: () => exited };
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // Gone already.
  }
}

function readStatus(files: HookFiles): number | undefined {
  if (!existsSync(files.status)) return undefined;
  const code = Number.parseInt(readFileSync(files.status, 'utf8').trim(), 10);
  return Number.isFinite(code) ? code : undefined;
}

/**
 * Output as text the operator stores: a NUL byte (binary output) would make Postgres refuse the
 * report — and the operator refuses any request carrying one — so it becomes U+FFFD.
 */
export function printable(text: string): string {
  return text.replaceAll('\u0000', '\uFFFD');
}

/** The last HOOK_OUTPUT_TAIL_BYTES of the output file ('' when there is none). */
export function outputTail(path: string, bytes = HOOK_OUTPUT_TAIL_BYTES): string {
  if (!existsSync(path)) return '';
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const length = Math.min(size, bytes);
    const buffer = Buffer.alloc(length);
    readSync(fd, buffer, 0, length, size - length);
    // A cut through a multi-byte character decodes to U+FFFD, never throws.
    return printable(new TextDecoder('utf-8', { fatal: false }).decode(buffer));
  } finally {
    closeSync(fd);
  }
}

/**
 * Waits for a started (or adopted) hook: its status file, or its group gone without one, or its
 * deadline (then the group gets SIGTERM, and SIGKILL after KILL_GRACE_MS).
 */
export async function awaitHook(pgid: number, files: HookFiles, deadlineMs: number, timeoutMs: number, exited: () => boolean = () => false, signal?: AbortSignal): Promise<HookOutcome | undefined> {
  const done = (code: number): HookOutcome => ({
    status: code === 0 ? 'succeeded' : 'failed',
    exitCode: code,
    outputTail: outputTail(files.out),
    reason: code === 0 ? null : `exit code ${code}`,
    finishedAt: new Date(),
  });
  for (;;) {
    if (signal?.aborted) return undefined;
    const code = readStatus(files);
    if (code !== undefined) return done(code);
    if (exited() || !groupAlive(pgid)) {
      const late = readStatus(files);
      if (late !== undefined) return done(late);
      return { status: 'failed', exitCode: null, outputTail: outputTail(files.out), reason: 'the hook process ended without an exit status (killed)', finishedAt: new Date() };
    }
    if (Date.now() >= deadlineMs) {
      killGroup(pgid, 'SIGTERM');
      const hard = Date.now() + KILL_GRACE_MS;
      while (groupAlive(pgid) && Date.now() < hard) await new Promise((r) => setTimeout(r, 50));
      if (groupAlive(pgid)) killGroup(pgid, 'SIGKILL');
      return { status: 'failed', exitCode: null, outputTail: outputTail(files.out), reason: `timed out after ${timeoutMs / 1000} s (process group killed)`, finishedAt: new Date() };
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
