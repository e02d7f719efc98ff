import type { ChildProcess } from 'node:child_process';
import type { Logger } from 'pino';
import { type LocalPhase, planConvergence } from '../domain/agent-converge.js';
import type { ActualInstance, DesiredInstance } from '../domain/protocol.js';
import { isSameProcessAlive, probeHealth, startProcess, stopProcess } from './drivers/process-driver.js';
import type { AgentMetrics } from './metrics.js';
import type { HostedProcess } from './state-file.js';

interface Hosted {
  proc: HostedProcess;
  phase: LocalPhase;
  healthy: boolean;
  child?: ChildProcess;
  restarts: number;
  restartAt?: number;
  message?: string;
}

export interface InstanceHostOptions {
  /** Where each instance's output goes (`<logDir>/<instance>.log`). */
  logDir: string;
  /** Wait between the operator withdrawing an instance and stopping it, for routers to catch up. */
  drainDelayMs: number;
  /** SIGTERM → SIGKILL grace when stopping an instance. */
  stopGraceMs: number;
  metrics: AgentMetrics;
  log: Logger;
  /** Records the hosted processes (the agent's state file) after every change. */
  persist: (processes: Record<string, HostedProcess>) => void;
  /** Something a heartbeat should report changed (started, stopped, health flipped). */
  onChange: () => void;
}

const MAX_BACKOFF_MS = 30_000;

/**
 * The instances of one node through the `process` driver: starts and stops them, restarts a
 * crashed one with backoff, probes health every second, and adopts the processes a previous
 * agent left running (same PIDs, checked by process start time).
 */
export class InstanceHost {
  private readonly hosted = new Map<string, Hosted>();
  private desired: readonly DesiredInstance[] | undefined;

  constructor(
    private readonly options: InstanceHostOptions,
    recorded: Record<string, HostedProcess>,
  ) {
    for (const proc of Object.values(recorded)) {
      const alive = proc.pid > 0 && isSameProcessAlive(proc.pid, proc.procStart);
      this.hosted.set(proc.id, {
        proc,
        phase: alive ? 'running' : proc.desired === 'running' ? 'backoff' : 'stopped',
        healthy: false,
        restarts: 0,
        restartAt: Date.now(),
        ...(alive ? {} : { message: 'exited while the agent was not running' }),
      });
      if (alive) options.log.info({ instance: proc.id, pid: proc.pid }, 'adopted running instance');
    }
  }

  get size(): number {
    return this.hosted.size;
  }

  /** Starts what is wanted and not running, stops what runs and is not wanted. */
  async converge(desired: readonly DesiredInstance[]): Promise<void> {
    this.desired = desired;
    const plan = planConvergence(desired, new Map([...this.hosted].map(([id, h]) => [id, h.phase])));
    for (const id of plan.stop) this.stop(id);
    for (const instance of plan.start) await this.start(instance);
    if (plan.start.length + plan.stop.length > 0) this.options.onChange();
  }

  private persist(): void {
    this.options.persist(Object.fromEntries([...this.hosted].filter(([, h]) => h.phase !== 'stopped').map(([id, h]) => [id, h.proc])));
  }

  private async start(instance: DesiredInstance, restarts = 0): Promise<void> {
    const proc: HostedProcess = {
      id: instance.id,
      deployment: instance.deployment,
      pid: 0,
      port: 0,
      procStart: null,
      startedAt: new Date().toISOString(),
      workload: instance.workload,
      desired: 'running',
    };
    try {
      const started = await startProcess(instance.id, instance.deployment, instance.workload, this.options.logDir);
      Object.assign(proc, { pid: started.pid, port: started.port, procStart: started.procStart });
      const hosted: Hosted = { proc, phase: 'starting', healthy: false, child: started.child, restarts };
      started.child.once('exit', (code, signal) => {
        if (this.hosted.get(instance.id) === hosted && hosted.phase !== 'stopping') this.crashed(hosted, `exited (${signal ?? `code ${code}`})`);
      });
      this.hosted.set(instance.id, hosted);
      this.options.log.info({ instance: instance.id, deployment: instance.deployment, pid: started.pid, port: started.port }, 'started instance');
    } catch (error) {
      const hosted: Hosted = { proc, phase: 'backoff', healthy: false, restarts };
      this.hosted.set(instance.id, hosted);
      this.crashed(hosted, `failed to start: ${(error as Error).message}`);
    }
    this.persist();
  }

  private crashed(hosted: Hosted, message: string): void {
    hosted.phase = 'backoff';
    hosted.healthy = false;
    hosted.child = undefined;
    hosted.restarts++;
    const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** Math.min(hosted.restarts, 6));
    hosted.restartAt = Date.now() + delay;
    hosted.message = `${message}; restarting in ${Math.round(delay / 1000)} s`;
    this.options.metrics.instanceRestarts.inc();
    this.options.log.warn({ instance: hosted.proc.id, message: hosted.message }, 'instance crashed');
  }

  private stop(id: string): void {
    const hosted = this.hosted.get(id);
    if (!hosted) return;
    const wasRunning = hosted.phase === 'running' || hosted.phase === 'starting';
    hosted.phase = 'stopping';
    hosted.proc.desired = 'stopped';
    this.persist();
    // The operator withdrew the endpoint in the same change; give routers time to notice.
    const delay = wasRunning ? this.options.drainDelayMs : 0;
    setTimeout(() => {
      void stopProcess(hosted.proc.pid, hosted.proc.procStart, this.options.stopGraceMs)
        .catch((error) => this.options.log.warn({ err: error, instance: id }, 'stop failed'))
        .finally(() => {
          hosted.phase = 'stopped';
          hosted.healthy = false;
          this.persist();
          this.options.log.info({ instance: id, pid: hosted.proc.pid }, 'stopped instance');
          this.options.onChange();
        });
    }, delay);
  }

  /** Once a second: notice exits of adopted processes, restart crashed ones, probe health. */
  async supervise(): Promise<void> {
    const probes: Promise<void>[] = [];
    for (const hosted of this.hosted.values()) {
      if (hosted.phase === 'backoff' && Date.now() >= (hosted.restartAt ?? 0) && this.isWanted(hosted.proc.id)) {
        const want = this.desired?.find((d) => d.id === hosted.proc.id);
        await this.start(
          want ?? { id: hosted.proc.id, deployment_id: '', deployment: hosted.proc.deployment, desired: 'running', workload: hosted.proc.workload },
          hosted.restarts,
        );
        continue;
      }
      if (hosted.phase !== 'running' && hosted.phase !== 'starting') continue;
      if (!hosted.child && !isSameProcessAlive(hosted.proc.pid, hosted.proc.procStart)) {
        this.crashed(hosted, 'exited');
        continue;
      }
      probes.push(
        probeHealth(hosted.proc.port, hosted.proc.workload.health_path ?? '/', 900).then((healthy) => {
          if (hosted.phase !== 'running' && hosted.phase !== 'starting') return;
          const changed = healthy !== hosted.healthy;
          hosted.healthy = healthy;
          if (healthy) hosted.phase = 'running';
          if (changed) this.options.onChange();
        }),
      );
    }
    await Promise.all(probes);
    for (const [id, hosted] of this.hosted) {
      if (hosted.phase === 'stopped' && !this.desired?.some((d) => d.id === id)) this.hosted.delete(id);
    }
  }

  /** Until the first desired state arrives, adopted instances are assumed wanted. */
  private isWanted(id: string): boolean {
    if (!this.desired) return true;
    return this.desired.some((d) => d.id === id && d.desired === 'running');
  }

  /** What the heartbeat reports; a desired-stopped instance this node no longer has is `stopped`. */
  actual(): ActualInstance[] {
    const report: ActualInstance[] = [];
    for (const [id, h] of this.hosted) {
      report.push({
        id,
        status: h.phase === 'backoff' ? 'failed' : h.phase,
        healthy: h.phase === 'running' && h.healthy,
        pid: h.proc.pid || null,
        port: h.proc.port || null,
        ...(h.message && h.phase === 'backoff' ? { message: h.message } : {}),
      });
    }
    for (const want of this.desired ?? []) {
      if (!this.hosted.has(want.id) && want.desired === 'stopped') {
        report.push({ id: want.id, status: 'stopped', healthy: false, pid: null, port: null });
      }
    }
    return report;
  }
}
