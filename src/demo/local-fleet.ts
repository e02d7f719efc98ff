import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ApiClient } from '../api-client.js';
import { SIMULATED_REBOOT } from '../agent/components/reboot.js';
import { PARENT_PID_ENV } from '../parent-watchdog.js';
import type { InstanceView } from '../store/instances.js';
import type { NodeView } from '../store/nodes.js';

export interface FleetProcess {
  name: string;
  child: ChildProcess;
  pid: number;
  log: string;
}

/** Polls `check` until it returns a value (not undefined) or the deadline passes. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs: number, intervalMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${(lastError as Error).message})` : ''}`);
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export interface LocalFleetOptions {
  /** The drydock entry point to run (the built bundle). */
  bin: string;
  /** Root of every process's data dir and log. */
  dir: string;
  env?: NodeJS.ProcessEnv;
  /** Bearer token for the fleet's own API calls (waiting for nodes, recording PIDs). */
  token?: string;
  /** Delete `dir` (databases, logs) once everything is stopped (tests; the demo keeps its logs). */
  removeDirOnStop?: boolean;
}

/**
 * Real operator and agent processes on loopback, each with its own data dir and log file,
 * tracked by PID so they (and the instances they started) can be stopped for sure.
 * Used by `drydock demo` and by the end-to-end tests.
 */
export class LocalFleet {
  readonly processes = new Map<string, FleetProcess>();
  operatorUrl = '';
  /** PIDs of every instance seen through the API, stopped by `stop()`. */
  readonly instancePids = new Set<number>();
  /** PIDs of every operator and agent process this fleet ever started. */
  readonly spawnedPids = new Set<number>();

  constructor(private readonly options: LocalFleetOptions) {
    mkdirSync(options.dir, { recursive: true });
  }

  /** Where the fleet's logs and data dirs are. */
  get dir(): string {
    return this.options.dir;
  }

  spawn(name: string, args: string[], bin = this.options.bin): FleetProcess {
    const log = join(this.options.dir, `${name}.log`);
    const fd = openSync(log, 'a');
    const child = spawn(process.execPath, [bin, ...args], {
      stdio: ['ignore', fd, fd],
      env: { ...process.env, DRYDOCK_LOG_FORMAT: 'json', [PARENT_PID_ENV]: String(process.pid), ...this.options.env },
    });
    closeSync(fd);
    const proc = { name, child, pid: child.pid as number, log };
    this.spawnedPids.add(proc.pid);
    this.processes.set(name, proc);
    return proc;
  }

  async startOperator(listen: string, extraArgs: string[] = []): Promise<string> {
    const proc = this.spawn('operator', ['operator', '--listen', listen, '--data-dir', join(this.options.dir, 'operator'), ...extraArgs]);
    const port = listen.split(':').pop();
    if (port === '0') throw new Error('the local fleet needs a fixed operator port');
    this.operatorUrl = `http://${listen}`;
    await waitFor(
      'the operator to answer /health/ready',
      async () => {
        if (proc.child.exitCode !== null) throw new Error(`operator exited with code ${proc.child.exitCode}; see ${proc.log}`);
        const response = await fetch(`${this.operatorUrl}/health/ready`);
        return response.ok ? true : undefined;
      },
      60_000,
    );
    return this.operatorUrl;
  }

  startAgent(hostname: string, region: string, extraArgs: string[] = []): FleetProcess {
    return this.spawn(hostname, [
      'agent',
      '--operator', this.operatorUrl,
      '--hostname', hostname,
      '--region', region,
      '--listen', '127.0.0.1:0',
      '--data-dir', join(this.options.dir, 'agents', hostname),
      // A local node never reboots its host: an os-image install "reboots" by the agent exiting.
      '--reboot-command', SIMULATED_REBOOT,
      ...extraArgs,
    ]);
  }

  /**
   * An agent under `drydock supervisor`, started from `bin` (its first version), so it can
   * upgrade itself, and "reboot" (`--reboot-command exit`: the supervisor starts it again). Stopping the supervisor stops its agent; instances keep running.
   * `dataDir` defaults to `<dir>/agents/<hostname>`.
   */
  startSupervisedAgent(hostname: string, region: string, bin: string, agentArgs: string[] = [], deadline = '30s', dataDir = join(this.options.dir, 'agents', hostname)): FleetProcess {
    return this.spawn(
      hostname,
      ['supervisor', '--data-dir', dataDir, '--deadline', deadline, '--', 'agent', '--operator', this.operatorUrl, '--hostname', hostname, '--region', region, '--listen', '127.0.0.1:0', '--reboot-command', SIMULATED_REBOOT, ...agentArgs],
      bin,
    );
  }

  /** Starts `drydock edge` against the operator and waits for its /health. */
  async startEdge(listen: string, extraArgs: string[] = []): Promise<string> {
    const proc = this.spawn('edge', ['edge', '--operator', this.operatorUrl, '--listen', listen, ...extraArgs]);
    const url = `http://${listen}`;
    await waitFor(
      'the edge to answer /health',
      async () => {
        if (proc.child.exitCode !== null) throw new Error(`edge exited with code ${proc.child.exitCode}; see ${proc.log}`);
        return (await fetch(`${url}/health`)).ok ? true : undefined;
      },
      30_000,
    );
    return url;
  }

  client(token = this.options.token): ApiClient {
    return new ApiClient({ baseUrl: this.operatorUrl, token });
  }

  async waitForNodes(count: number, timeoutMs = 30_000): Promise<NodeView[]> {
    return waitFor(
      `${count} ready nodes`,
      async () => {
        const nodes = await this.client().get<NodeView[]>('/api/v1/nodes');
        return nodes.filter((n) => n.status === 'ready').length >= count ? nodes : undefined;
      },
      timeoutMs,
    );
  }

  /** Remembers instance PIDs so `stop` can end them even after their agent is gone. */
  async recordInstancePids(): Promise<void> {
    try {
      const instances = await this.client().get<InstanceView[]>('/api/v1/instances');
      for (const i of instances) if (i.pid) this.instancePids.add(i.pid);
    } catch {
      // The operator may be gone already; PIDs recorded earlier still count.
    }
  }

  /** SIGTERM (then SIGKILL) one process and wait until it is gone. */
  async stopProcess(name: string, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const proc = this.processes.get(name);
    if (!proc) return;
    this.processes.delete(name);
    await terminate(proc.pid, signal, () => proc.child.exitCode !== null || proc.child.signalCode !== null);
  }

  /** Stops agents, the instances they host (by process group), then the operator. */
  async stop(): Promise<void> {
    await this.recordInstancePids();
    const names = [...this.processes.keys()];
    await Promise.all(names.filter((n) => n !== 'operator').map((n) => this.stopProcess(n)));
    await Promise.all([...this.instancePids].map((pid) => terminate(-pid, 'SIGTERM', () => !isAlive(pid))));
    await this.stopProcess('operator');
    if (this.options.removeDirOnStop) rmSync(this.options.dir, { recursive: true, force: true });
  }
}

async function terminate(pid: number, signal: NodeJS.Signals, gone: () => boolean): Promise<void> {
  const send = (sig: NodeJS.Signals) => {
    try {
      process.kill(pid, sig);
    } catch {
      // Already gone.
    }
  };
  if (gone()) return;
  send(signal);
  const deadline = Date.now() + 10_000;
  while (!gone() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (!gone()) {
    send('SIGKILL');
    const killDeadline = Date.now() + 5_000;
    while (!gone() && Date.now() < killDeadline) await new Promise((r) => setTimeout(r, 50));
  }
}
