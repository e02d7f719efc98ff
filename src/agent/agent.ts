import type { ChildProcess } from 'node:child_process';
import type { KeyObject } from 'node:crypto';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { ApiCallError, ApiClient } from '../api-client.js';
import { parseListen } from '../listen-address.js';
import { type LocalPhase, planConvergence } from '../domain/agent-converge.js';
import { type ActualInstance, type DesiredInstance, type DesiredState, PROTOCOL_VERSION } from '../domain/protocol.js';
import type { NodeRole } from '../domain/types.js';
import { agentInstaller } from './components/agent-installer.js';
import { ComponentReconciler } from './components/component-reconciler.js';
import { isSameProcessAlive, probeHealth, startProcess, stopProcess } from './drivers/process-driver.js';
import { buildAgentServer } from './http-server.js';
import { AgentMetrics } from './metrics.js';
import { type AgentState, type HostedProcess, readAgentState, writeAgentState } from './state-file.js';

export interface AgentOptions {
  operatorUrl: string;
  token?: string | undefined;
  hostname: string;
  region: string;
  role: NodeRole;
  maxInstances: number;
  labels: Record<string, string>;
  /** host:port for the agent's own /health and /metrics (default 127.0.0.1:8081). */
  listen: string;
  dataDir: string;
  heartbeatIntervalMs: number;
  /** Wait between the operator withdrawing an instance and stopping it, for routers to catch up (default 1 s). */
  drainDelayMs: number;
  /** SIGTERM → SIGKILL grace when stopping an instance (default 10 s). */
  stopGraceMs: number;
  version: string;
  /** Public keys whose artifact signatures this agent accepts (`--trusted-key`; default none: nothing installs). */
  trustedKeys: KeyObject[];
  /** Development only: install artifacts without a signature (`--allow-unsigned`; default false). */
  allowUnsigned: boolean;
  /** Deadline of a component's `health` check (default 30 s). */
  componentHealthDeadlineMs?: number;
  /** Set when `drydock supervisor` runs this agent: only then are `agent` artifacts installed (default: unsupervised). */
  supervisor?: SupervisorLink;
  log: Logger;
}

/** What a supervised agent knows of its supervisor (see supervisor/switch-record.ts). */
export interface SupervisorLink {
  /** The version dir under components/node-agent/ this process was started from. */
  versionDir: string;
  /** The supervisor's assessment deadline. */
  deadlineMs: number;
  /** Ends the process so the supervisor starts `current` (exit code EXIT_RESTART). */
  restart: (reason: string) => void;
}

interface Hosted {
  proc: HostedProcess;
  phase: LocalPhase;
  healthy: boolean;
  child?: ChildProcess;
  restarts: number;
  restartAt?: number;
  message?: string;
}

const MAX_BACKOFF_MS = 30_000;

/**
 * The node agent: registers, heartbeats its actual state, long-polls its desired state and
 * converges to it. Instances are detached process groups recorded in the data dir, so a
 * restarted agent adopts them (same PIDs) instead of starting them again.
 */
export class Agent {
  readonly metrics = new AgentMetrics();
  private readonly client: ApiClient;
  private readonly statePath: string;
  private readonly logDir: string;
  private state: AgentState;
  private readonly hosted = new Map<string, Hosted>();
  private desired: DesiredState | undefined;
  private generation = 0;
  private converging: Promise<void> = Promise.resolve();
  private componentsDone: Promise<void> = Promise.resolve();
  private stopped = false;
  private readonly abort = new AbortController();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private server: FastifyInstance | undefined;
  private lastContact: Date | undefined;
  private heartbeatAcknowledgedAt: number | undefined;
  readonly components: ComponentReconciler;
  url = '';

  constructor(private readonly options: AgentOptions) {
    this.client = new ApiClient({ baseUrl: options.operatorUrl, token: options.token, timeoutMs: 10_000 });
    this.statePath = join(options.dataDir, 'agent-state.json');
    this.logDir = join(options.dataDir, 'instances');
    this.state = readAgentState(this.statePath);
    this.components = new ComponentReconciler({
      dataDir: options.dataDir,
      operatorUrl: options.operatorUrl,
      token: options.token,
      nodeId: () => this.nodeId ?? '',
      trust: { trustedKeys: options.trustedKeys, allowUnsigned: options.allowUnsigned },
      builtIn: { 'node-agent': options.version },
      healthDeadlineMs: options.componentHealthDeadlineMs,
      ...(options.supervisor ? { agentInstaller: this.selfInstaller(options.supervisor) } : {}),
      // Each phase change reaches the operator at once, not at the next interval.
      onPhaseChange: () => void this.heartbeat().catch(() => {}),
      log: options.log.child({ part: 'components' }),
    });
  }

  /** A supervised agent proves a new version of itself by one heartbeat the operator acknowledged. */
  private selfInstaller(link: SupervisorLink) {
    return agentInstaller({
      dataDir: this.options.dataDir,
      runningDir: link.versionDir,
      runningVersion: this.options.version,
      deadlineMs: link.deadlineMs,
      restart: link.restart,
      heartbeatAcknowledged: async (untilMs) => {
        while (this.heartbeatAcknowledgedAt === undefined && Date.now() < untilMs) {
          // Stopping is not a verdict: the install stays `assessing`, as after a crash.
          if (this.stopped) throw new Error('agent stopping during its own assessment');
          await new Promise((r) => setTimeout(r, 100));
        }
        return this.heartbeatAcknowledgedAt !== undefined;
      },
    });
  }

  get nodeId(): string | undefined {
    return this.state.nodeId;
  }

  async start(): Promise<void> {
    this.adopt();
    this.server = await buildAgentServer(this);
    this.url = await listenOn(this.server, this.options.listen);
    await this.register();
    // An install the previous process left half done is finished or undone before anything else.
    this.componentsDone = this.components.reconcile().catch((error) => this.options.log.error({ err: error }, 'component recovery failed'));
    this.loop('heartbeat', () => this.heartbeat(), this.options.heartbeatIntervalMs);
    this.loop('supervise', () => this.supervise(), 1000);
    void this.longPoll();
    this.options.log.info({ node_id: this.nodeId, url: this.url, adopted: this.hosted.size }, 'agent started');
  }

  /** Stops the agent only: the instances keep running and are adopted by the next agent. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    for (const timer of this.timers.values()) clearTimeout(timer);
    await this.converging.catch(() => {});
    await this.componentsDone;
    await this.server?.close();
  }

  health() {
    const reachable = this.lastContact !== undefined && Date.now() - this.lastContact.getTime() < this.options.heartbeatIntervalMs * 5;
    return {
      status: 'healthy',
      node_id: this.nodeId ?? null,
      hostname: this.options.hostname,
      region: this.options.region,
      version: this.options.version,
      supervised: this.options.supervisor !== undefined,
      operator: { url: this.options.operatorUrl, reachable, last_contact_at: this.lastContact?.toISOString() ?? null },
      instances: this.actualInstances(),
    };
  }

  private loop(name: string, work: () => Promise<void>, intervalMs: number): void {
    const run = async () => {
      if (this.stopped) return;
      await work().catch((error) => this.options.log.warn({ err: error, loop: name }, 'agent loop step failed'));
      if (!this.stopped) this.timers.set(name, setTimeout(run, intervalMs));
    };
    void run();
  }

  /** Re-adopts the instances a previous agent process left running. */
  private adopt(): void {
    for (const proc of Object.values(this.state.processes)) {
      const alive = proc.pid > 0 && isSameProcessAlive(proc.pid, proc.procStart);
      this.hosted.set(proc.id, {
        proc,
        phase: alive ? 'running' : proc.desired === 'running' ? 'backoff' : 'stopped',
        healthy: false,
        restarts: 0,
        restartAt: Date.now(),
        ...(alive ? {} : { message: 'exited while the agent was not running' }),
      });
      if (alive) this.options.log.info({ instance: proc.id, pid: proc.pid }, 'adopted running instance');
    }
  }

  private persist(): void {
    this.state.processes = Object.fromEntries([...this.hosted].filter(([, h]) => h.phase !== 'stopped').map(([id, h]) => [id, h.proc]));
    writeAgentState(this.statePath, this.state);
  }

  private async register(): Promise<void> {
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        const reply = await this.client.post<{ node_id: string }>('/api/v1/agent/register', {
          hostname: this.options.hostname,
          region: this.options.region,
          role: this.options.role,
          max_instances: this.options.maxInstances,
          labels: this.options.labels,
          ...(this.state.nodeId && this.state.hostname === this.options.hostname ? { node_id: this.state.nodeId } : {}),
          agent_version: this.options.version,
          agent_url: this.url,
          protocol_version: PROTOCOL_VERSION,
        });
        this.state.nodeId = reply.node_id;
        this.state.hostname = this.options.hostname;
        this.persist();
        this.lastContact = new Date();
        return;
      } catch (error) {
        if (error instanceof ApiCallError && error.status >= 400 && error.status < 500) throw error;
        if (attempt % 10 === 0) this.options.log.warn({ err: (error as Error).message }, 'operator not reachable; retrying registration');
        await new Promise((r) => setTimeout(r, Math.min(5000, 500 * (attempt + 1))));
      }
    }
  }

  private async heartbeat(): Promise<void> {
    if (!this.nodeId) return;
    try {
      const desired = await this.client.post<DesiredState>('/api/v1/agent/heartbeat', {
        node_id: this.nodeId,
        agent_version: this.options.version,
        protocol_version: PROTOCOL_VERSION,
        components: this.components.installedVersions(),
        instances: this.actualInstances(),
        installs: this.components.reports(),
        generation: this.generation,
      });
      this.metrics.heartbeatsSent.inc();
      this.lastContact = new Date();
      this.heartbeatAcknowledgedAt ??= this.lastContact.getTime();
      this.apply(desired);
    } catch (error) {
      this.metrics.heartbeatFailures.inc();
      if (error instanceof ApiCallError && error.code === 'NODE_NOT_REGISTERED') {
        this.state.nodeId = undefined;
        await this.register();
        return;
      }
      throw error;
    }
  }

  private async longPoll(): Promise<void> {
    while (!this.stopped) {
      if (!this.nodeId) {
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      try {
        const desired = await this.client.get<DesiredState>(
          `/api/v1/agent/desired?node_id=${encodeURIComponent(this.nodeId)}&after=${this.generation}&wait=25`,
          { signal: this.abort.signal, timeoutMs: 35_000 },
        );
        this.lastContact = new Date();
        this.apply(desired);
      } catch {
        if (!this.stopped) await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  /** Applies a desired state unless a newer one was applied already (replies can cross). */
  private apply(desired: DesiredState): void {
    if (desired.generation < this.generation) return;
    this.generation = desired.generation;
    this.desired = desired;
    this.converging = this.converging.then(() => this.converge(desired)).catch((error) => {
      this.options.log.error({ err: error }, 'converge failed');
    });
    // Installs run beside instance convergence (an install may take minutes), one at a time.
    if (!this.stopped) {
      this.componentsDone = this.components.reconcile(desired.components ?? {}).catch((error) => {
        this.options.log.error({ err: error }, 'component reconcile failed');
      });
    }
  }

  private async converge(desired: DesiredState): Promise<void> {
    if (this.stopped) return;
    const phases = new Map([...this.hosted].map(([id, h]) => [id, h.phase]));
    const plan = planConvergence(desired.instances, phases);
    for (const id of plan.stop) this.stopInstance(id);
    for (const instance of plan.start) await this.startInstance(instance);
    if (plan.start.length + plan.stop.length > 0) void this.heartbeat().catch(() => {});
  }

  private async startInstance(instance: DesiredInstance, restarts = 0): Promise<void> {
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
      const started = await startProcess(instance.id, instance.deployment, instance.workload, this.logDir);
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
    this.metrics.instanceRestarts.inc();
    this.options.log.warn({ instance: hosted.proc.id, message: hosted.message }, 'instance crashed');
  }

  private stopInstance(id: string): void {
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
          void this.heartbeat().catch(() => {});
        });
    }, delay);
  }

  /** Once a second: notice exits of adopted processes, restart crashed ones, probe health. */
  private async supervise(): Promise<void> {
    const probes: Promise<void>[] = [];
    for (const hosted of this.hosted.values()) {
      if (hosted.phase === 'backoff' && Date.now() >= (hosted.restartAt ?? 0) && this.isWanted(hosted.proc.id)) {
        const want = this.desired?.instances.find((d) => d.id === hosted.proc.id);
        await this.startInstance(
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
          if (changed) void this.heartbeat().catch(() => {});
        }),
      );
    }
    await Promise.all(probes);
    for (const [id, hosted] of this.hosted) {
      if (hosted.phase === 'stopped' && !this.desired?.instances.some((d) => d.id === id)) this.hosted.delete(id);
    }
  }

  /** Until the first desired state arrives, adopted instances are assumed wanted. */
  private isWanted(id: string): boolean {
    if (!this.desired) return true;
    return this.desired.instances.some((d) => d.id === id && d.desired === 'running');
  }

  actualInstances(): ActualInstance[] {
    const report: ActualInstance[] = [];
    for (const [id, h] of this.hosted) {
      const status = h.phase === 'backoff' ? 'failed' : h.phase;
      report.push({
        id,
        status,
        healthy: h.phase === 'running' && h.healthy,
        pid: h.proc.pid || null,
        port: h.proc.port || null,
        ...(h.message && h.phase === 'backoff' ? { message: h.message } : {}),
      });
    }
    for (const want of this.desired?.instances ?? []) {
      if (!this.hosted.has(want.id) && want.desired === 'stopped') {
        report.push({ id: want.id, status: 'stopped', healthy: false, pid: null, port: null });
      }
    }
    return report;
  }
}

async function listenOn(server: FastifyInstance, listen: string): Promise<string> {
  const { host, port } = parseListen(listen, 8081);
  await server.listen({ host, port });
  const address = server.server.address();
  const bound = typeof address === 'object' && address ? address.port : port;
  return `http://${host}:${bound}`;
}
