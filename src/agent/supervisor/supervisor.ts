import { type ChildProcess, spawn } from 'node:child_process';
import type { Logger } from 'pino';
import type { ComponentLayout } from '../components/layout.js';
import { processStartTime } from '../drivers/process-driver.js';
import { type Counters, decideAfterExit } from './restart-policy.js';
import {
  AGENT_COMPONENT,
  AGENT_VERSION_DIR_ENV,
  agentBundle,
  DEADLINE_ENV,
  hasBundle,
  type PendingSwitch,
  readSwitch,
  SUPERVISOR_PID_ENV,
  writeSwitch,
} from './switch-record.js';
import { claimDataDir, endProcess, prepareAgentVersions, readPidFile, writePidFile } from './takeover.js';

export interface SupervisorOptions {
  /** Absolute data dir, shared with the agent (it gets `--data-dir` from here). */
  dataDir: string;
  /** How long a new agent version has to be proven (default 60 s in the CLI). */
  deadlineMs: number;
  /** Arguments after `drydock agent`. */
  agentArgs: string[];
  /** The bundle and version the supervisor runs: the first agent version when none is installed. */
  own: { bundle: string; version: string };
  log: Logger;
}

interface Exit {
  code: number | null;
  signal: string | null;
  deadlineExpired: boolean;
}

/** How often a running assessment is checked for `proven` and for its deadline. */
const WATCH_MS = 250;
/** SIGTERM → SIGKILL grace when the supervisor itself stops. */
const STOP_GRACE_MS = 15_000;

/**
 * Runs the node agent from `components/node-agent/current` and keeps it running: restarts a
 * crashed agent with backoff, starts the new version when the agent hands over (EXIT_RESTART),
 * and returns to the previous version when a new one keeps exiting or is not proven by its
 * deadline. It knows nothing of the operator: the agent proves itself, the supervisor only
 * reads and writes the files of switch-record.ts. Instances are not its business either; they
 * outlive every agent process and the next agent re-adopts them.
 */
export class Supervisor {
  private child: ChildProcess | undefined;
  private stopping = false;
  private wake: (() => void) | undefined;
  private layout!: ComponentLayout;

  constructor(private readonly options: SupervisorOptions) {}

  /** Resolves when the supervisor was stopped. */
  async run(): Promise<void> {
    const { dataDir, log } = this.options;
    await claimDataDir(dataDir, log);
    this.layout = prepareAgentVersions(dataDir, this.options.own, log);
    let counters: Counters = { crashes: 0, pendingExits: 0 };
    while (!this.stopping) {
      const version = this.layout.currentVersion(AGENT_COMPONENT) as string;
      let pending = this.pendingSwitch(version);
      if (pending && !pending.deadline_at) {
        pending = writeSwitch(dataDir, { ...pending, deadline_at: new Date(Date.now() + this.options.deadlineMs).toISOString() });
      }
      const started = Date.now();
      const exit = await this.runAgent(version, pending);
      if (this.stopping) break;
      const after = this.pendingSwitch(version);
      const step = decideAfterExit(
        { version, ...exit, ranMs: Date.now() - started, stillPending: after !== undefined, previous: after?.previous ?? null, deadlineMs: this.options.deadlineMs },
        counters,
      );
      counters = step.counters;
      if (step.kind === 'revert') {
        this.revert(after as PendingSwitch, step.reason);
        continue;
      }
      if (step.delayMs > 0) log.warn({ version, restart_in_ms: step.delayMs }, `${step.note}; restarting`);
      await this.sleep(step.delayMs);
    }
  }

  /** Stops the agent (its instances keep running), then the loop. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    const child = this.child;
    if (child?.pid && child.exitCode === null && child.signalCode === null) {
      await endProcess(child.pid, processStartTime(child.pid), 'SIGTERM', STOP_GRACE_MS);
    }
  }

  /** The switch to `version` that still waits for its proof, if any. */
  private pendingSwitch(version: string): PendingSwitch | undefined {
    const record = readSwitch(this.options.dataDir);
    return record?.version === version && record.state === 'pending' ? record : undefined;
  }

  private runAgent(version: string, pending: PendingSwitch | undefined): Promise<Exit> {
    const { dataDir, log } = this.options;
    const child = spawn(process.execPath, [agentBundle(dataDir, version), 'agent', ...this.options.agentArgs, '--data-dir', dataDir], {
      stdio: 'inherit',
      env: { ...process.env, [SUPERVISOR_PID_ENV]: String(process.pid), [AGENT_VERSION_DIR_ENV]: version, [DEADLINE_ENV]: String(this.options.deadlineMs) },
    });
    this.child = child;
    return new Promise<Exit>((resolve) => {
      let deadlineExpired = false;
      let watch: NodeJS.Timeout | undefined;
      child.once('spawn', () => {
        const own = readPidFile(dataDir);
        writePidFile(dataDir, { pid: process.pid, proc_start: own?.proc_start ?? null, agent_pid: child.pid as number, agent_proc_start: processStartTime(child.pid as number) });
        log.info({ version, agent_pid: child.pid, assessing: pending !== undefined }, 'agent started');
      });
      if (pending?.deadline_at) {
        const deadline = Date.parse(pending.deadline_at);
        watch = setInterval(() => {
          if (!this.pendingSwitch(version)) return clearInterval(watch); // proven (or settled by the agent)
          if (Date.now() < deadline || deadlineExpired) return;
          // Unproven past its deadline: killed like a crash would end it, then reverted.
          deadlineExpired = true;
          log.warn({ version, agent_pid: child.pid }, 'agent not proven by its deadline; stopping it');
          child.kill('SIGKILL');
        }, WATCH_MS);
      }
      child.once('error', (error) => {
        log.error({ err: error, version }, 'agent could not be started');
      });
      child.once('close', (code, signal) => {
        clearInterval(watch);
        this.child = undefined;
        log.info({ version, code, signal }, 'agent exited');
        resolve({ code, signal, deadlineExpired });
      });
    });
  }

  /** `reverted` is written before `current` moves, so a killed supervisor finishes the move. */
  private revert(pending: PendingSwitch, reason: string): void {
    const { dataDir, log } = this.options;
    writeSwitch(dataDir, { ...pending, state: 'reverted', reason });
    if (!hasBundle(dataDir, pending.previous)) {
      log.error({ version: pending.version, previous: pending.previous }, 'cannot revert: the previous agent bundle is missing; keeping the new version');
      return;
    }
    this.layout.switchCurrent(AGENT_COMPONENT, pending.previous);
    log.warn({ version: pending.version, back_to: pending.previous, reason }, 'agent version reverted');
  }

  private sleep(ms: number): Promise<void> {
    if (ms <= 0 || this.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }
}
