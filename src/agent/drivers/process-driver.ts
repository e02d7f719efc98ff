import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { DesiredInstance } from '../../domain/protocol.js';
import { type ParsedWorkloadStatus, parseWorkloadStatus, WORKLOAD_STATUS_MAX_BYTES } from '../../domain/workload-report.js';
import type { ProcessWorkload } from '../../domain/types.js';
import type { HostedProcess } from '../state-file.js';
import type { InstanceDriver, StartedInstance } from './instance-driver.js';

/** Start time of a process from /proc (Linux); null where /proc is not available. */
export function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22 (starttime); fields after the ")" of the command name are space separated.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

/** Is this pid still the process we started (same start time), and not a zombie? */
export function isSameProcessAlive(pid: number, procStart: string | null): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (isZombie(pid)) return false;
  if (procStart === null) return true;
  return processStartTime(pid) === procStart;
}

/** A free loopback port, chosen by the kernel. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface StartedProcess {
  pid: number;
  port: number;
  procStart: string | null;
  child: ChildProcess;
}

/**
 * Where a process instance may report its volume and activity (DRYDOCK_STATUS_FILE): beside its
 * log, in the agent's data dir.
 */
export function statusFilePath(logDir: string, instanceId: string): string {
  return join(logDir, `${instanceId}.status.json`);
}

/**
 * The `process` driver: each instance is a real child process in its own process group
 * (detached), so it outlives the agent and a stop can signal the whole group. Output goes
 * to `<logDir>/<instance>.log`. The workload sees only PATH, HOME, its own env, PORT and
 * DRYDOCK_STATUS_FILE: the agent's environment (which may hold tokens) is not passed on. A
 * status file left by an earlier run of the instance is removed first: a new process reports
 * afresh.
 */
export async function startProcess(instanceId: string, deployment: string, workload: ProcessWorkload, logDir: string): Promise<StartedProcess> {
  mkdirSync(logDir, { recursive: true });
  const port = await freePort();
  const log = openSync(join(logDir, `${instanceId}.log`), 'a');
  const statusFile = statusFilePath(logDir, instanceId);
  rmSync(statusFile, { force: true });
  try {
    const child = spawn(workload.command, workload.args ?? [], {
      detached: true,
      stdio: ['ignore', log, log],
      env: {
        PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
        HOME: process.env.HOME ?? '/',
        ...workload.env,
        PORT: String(port),
        DRYDOCK_INSTANCE_ID: instanceId,
        DRYDOCK_DEPLOYMENT: deployment,
        DRYDOCK_STATUS_FILE: statusFile,
      },
    });
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('spawn', () => resolve(child.pid as number));
      child.once('error', reject);
    });
    child.unref();
    return { pid, port, procStart: processStartTime(pid), child };
  } finally {
    closeSync(log);
  }
}

/** SIGTERM to the instance's process group, SIGKILL after `graceMs`. Resolves when it is gone. */
export async function stopProcess(pid: number, procStart: string | null, graceMs: number): Promise<void> {
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(-pid, sig);
    } catch {
      try {
        process.kill(pid, sig);
      } catch {
        // Already gone.
      }
    }
  };
  if (!isSameProcessAlive(pid, procStart)) return;
  signal('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!isSameProcessAlive(pid, procStart)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  signal('SIGKILL');
  const killDeadline = Date.now() + 5000;
  while (Date.now() < killDeadline && isSameProcessAlive(pid, procStart)) await new Promise((r) => setTimeout(r, 50));
}

/** One HTTP probe of the instance's health path; healthy means a 2xx within the timeout. */
export async function probeHealth(port: number, path: string, timeoutMs: number): Promise<boolean> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(timeoutMs) });
    await response.arrayBuffer();
    return response.ok;
  } catch {
    return false;
  }
}

/**
 * A process instance's status file: none is an empty report; more than
 * WORKLOAD_STATUS_MAX_BYTES is not read past that bound (and refused).
 */
export async function readStatusFile(path: string): Promise<ParsedWorkloadStatus> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { ok: true, report: {} };
    return { ok: false, problem: `unreadable (${(error as Error).message})` };
  }
  try {
    const buffer = Buffer.alloc(WORKLOAD_STATUS_MAX_BYTES + 1);
    let length = 0;
    while (length < buffer.length) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    if (length > WORKLOAD_STATUS_MAX_BYTES) return { ok: false, problem: `larger than ${WORKLOAD_STATUS_MAX_BYTES} bytes` };
    return parseWorkloadStatus(buffer.subarray(0, length).toString('utf8'));
  } catch (error) {
    return { ok: false, problem: `unreadable (${(error as Error).message})` };
  } finally {
    await handle.close();
  }
}

/** The `process` driver behind the InstanceDriver seam: behaviour as before the seam existed. */
export class ProcessDriver implements InstanceDriver {
  readonly name = 'process';

  constructor(private readonly logDir: string) {}

  async start(instance: DesiredInstance): Promise<StartedInstance> {
    if (instance.workload.driver === 'vm') throw new Error('the process driver cannot start a vm workload');
    const started = await startProcess(instance.id, instance.deployment, instance.workload, this.logDir);
    const exited = new Promise<string>((resolve) => started.child.once('exit', (code, signal) => resolve(`exited (${signal ?? `code ${code}`})`)));
    return { pid: started.pid, port: started.port, procStart: started.procStart, exited };
  }

  isAlive(proc: HostedProcess): boolean {
    return proc.pid > 0 && isSameProcessAlive(proc.pid, proc.procStart);
  }

  stop(proc: HostedProcess, graceMs: number): Promise<void> {
    return stopProcess(proc.pid, proc.procStart, graceMs);
  }

  probe(proc: HostedProcess, timeoutMs: number): Promise<boolean> {
    return probeHealth(proc.port, proc.workload.health_path ?? '/', timeoutMs);
  }

  readWorkloadStatus(proc: HostedProcess): Promise<ParsedWorkloadStatus> {
    return readStatusFile(statusFilePath(this.logDir, proc.id));
  }
}
