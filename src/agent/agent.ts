import type { KeyObject } from 'node:crypto';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { ApiCallError, ApiClient } from '../api-client.js';
import { parseListen } from '../listen-address.js';
import { type ActualInstance, type DesiredState, NODE_CREDENTIAL_HEADER, PROTOCOL_VERSION, type RegisterResponse } from '../domain/protocol.js';
import type { NodeRole } from '../domain/types.js';
import { agentInstaller } from './components/agent-installer.js';
import { ComponentReconciler } from './components/component-reconciler.js';
import { osImageInstaller } from './components/os-image-installer.js';
import { OsImageSlots } from './components/os-image-slots.js';
import { DEFAULT_REBOOT_COMMAND, rebooter } from './components/reboot.js';
import { boot, DEFAULT_BOOT_TRIES, slotsReport, slotVersion } from '../domain/boot-slots.js';
import { ComponentLayout } from './components/layout.js';
import { installBootstrapOperator } from './components/operator-bootstrap.js';
import { operatorInstaller } from './components/operator-installer.js';
import { OPERATOR_COMPONENT, OperatorReplica } from './components/operator-replica.js';
import { buildAgentServer } from './http-server.js';
import { ProcessDriver } from './drivers/process-driver.js';
import type { AccelRequest } from './drivers/vm-accel.js';
import { VmDriver } from './drivers/vm-driver.js';
import { NodeHookRunner } from './hooks/node-hook-runner.js';
import { InstanceHost } from './instance-host.js';
import { AgentMetrics } from './metrics.js';
import { type AgentState, readAgentState, writeAgentState } from './state-file.js';

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
  /** Failed health probes in a row before a serving instance counts as unhealthy (default 3). */
  probeFailureThreshold?: number;
  /** SIGTERM → SIGKILL grace when stopping an instance (default 10 s). */
  stopGraceMs: number;
  version: string;
  /** Public keys whose artifact signatures this agent accepts (`--trusted-key`; default none: nothing installs). */
  trustedKeys: KeyObject[];
  /** Development only: install artifacts without a signature (`--allow-unsigned`; default false). */
  allowUnsigned: boolean;
  /** `--vm-accel` for `vm` workloads: auto probes KVM with a short boot and falls back to TCG (default auto). */
  vmAccel?: AccelRequest;
  /** `--vm-migration-bandwidth`: bytes per second a live migration out of this node may send (default 1 GiB/s). */
  vmMigrationBandwidthBytes?: number;
  /** Deadline of a component's `health` check (default 30 s). */
  componentHealthDeadlineMs?: number;
  /** Versions of each component kept on disk once an install is done (default 2). */
  keepVersions?: number;
  /** Boots a new os-image slot gets before the node falls back to the previous one (`--boot-tries`, default 3). */
  bootTries?: number;
  /** How the node reboots into a new os-image slot (`--reboot-command`; default `systemctl reboot`; `exit`: simulated). */
  rebootCommand?: string;
  /** Set when `drydock supervisor` runs this agent: only then are `agent` artifacts installed (default: unsupervised). */
  supervisor?: SupervisorLink;
  /** Set on a control-plane node: the agent runs the local operator replica as component `operator`. */
  operatorReplica?: OperatorReplicaSettings;
  log: Logger;
}

/** The operator replica a control-plane node runs (`--operator-listen` and friends; DESIGN.md §11). */
export interface OperatorReplicaSettings {
  listen: string;
  /** The second address a blue-green install starts the new replica on (absent: no blue-green). */
  altListen?: string | undefined;
  nodeEnvFile?: string | undefined;
  extraArgs: string[];
  /** An operator artifact (.tar.gz) installed as the first version when the node has none. */
  bootstrapArtifact?: string | undefined;
  /** How long a new version has to become ready and registered (default 60 s). */
  deadlineMs: number;
  /** The replica's --shutdown-delay: it keeps answering this long after leaving the registry. */
  shutdownDelayMs: number;
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

/**
 * The node agent: registers, heartbeats its actual state, long-polls its desired state and
 * converges to it. Instances are detached process groups recorded in the data dir, so a
 * restarted agent adopts them (same PIDs) instead of starting them again.
 */
export class Agent {
  readonly metrics = new AgentMetrics();
  private readonly client: ApiClient;
  private readonly statePath: string;
  private state: AgentState;
  private readonly instances: InstanceHost;
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
  private heartbeatInFlight: Promise<void> | undefined;
  private heartbeatAgain = false;
  readonly components: ComponentReconciler;
  /** The node's A/B boot slots of its os-image component. */
  readonly slots: OsImageSlots;
  /** The local operator replica on a control-plane node (`--operator-listen`), else undefined. */
  readonly operatorReplica: OperatorReplica | undefined;
  /** preNode / postNode hooks of the desired state (journaled in the data dir). */
  private readonly hooks: NodeHookRunner;
  url = '';

  constructor(private readonly options: AgentOptions) {
    this.client = new ApiClient({ baseUrl: options.operatorUrl, token: options.token, timeoutMs: 10_000 });
    this.statePath = join(options.dataDir, 'agent-state.json');
    this.state = readAgentState(this.statePath);
    this.instances = new InstanceHost(
      {
        drivers: {
          process: new ProcessDriver(join(options.dataDir, 'instances')),
          vm: new VmDriver({
            dataDir: options.dataDir,
            operatorUrl: options.operatorUrl,
            token: options.token,
            nodeCredential: () => this.state.nodeCredential,
            trust: { trustedKeys: options.trustedKeys, allowUnsigned: options.allowUnsigned },
            accel: options.vmAccel ?? 'auto',
            migrationBandwidthBytes: options.vmMigrationBandwidthBytes,
            log: options.log.child({ part: 'vm' }),
          }),
        },
        drainDelayMs: options.drainDelayMs,
        ...(options.probeFailureThreshold !== undefined ? { probeFailureThreshold: options.probeFailureThreshold } : {}),
        stopGraceMs: options.stopGraceMs,
        metrics: this.metrics,
        log: options.log,
        persist: (processes) => {
          this.state.processes = processes;
          writeAgentState(this.statePath, this.state);
        },
        onChange: () => void this.heartbeat().catch(() => {}),
      },
      this.state.processes,
    );
    const layout = new ComponentLayout(join(options.dataDir, 'components'));
    this.slots = new OsImageSlots(options.dataDir);
    this.operatorReplica = options.operatorReplica
      ? new OperatorReplica({
          layout,
          listen: options.operatorReplica.listen,
          altListen: options.operatorReplica.altListen,
          region: options.region,
          hostname: options.hostname,
          nodeEnvFile: options.operatorReplica.nodeEnvFile,
          extraArgs: options.operatorReplica.extraArgs,
          stateFile: join(options.dataDir, 'operator-replica.json'),
          shutdownDelayMs: options.operatorReplica.shutdownDelayMs,
          log: options.log.child({ part: 'operator-replica' }),
        })
      : undefined;
    this.components = new ComponentReconciler({
      dataDir: options.dataDir,
      operatorUrl: options.operatorUrl,
      token: options.token,
      nodeId: () => this.nodeId ?? '',
      nodeCredential: () => this.state.nodeCredential,
      trust: { trustedKeys: options.trustedKeys, allowUnsigned: options.allowUnsigned },
      builtIn: { 'node-agent': options.version },
      healthDeadlineMs: options.componentHealthDeadlineMs,
      ...(options.keepVersions === undefined ? {} : { keepVersions: options.keepVersions }),
      ...(options.supervisor ? { agentInstaller: this.selfInstaller(options.supervisor) } : {}),
      ...(this.operatorReplica
        ? {
            operatorInstaller: operatorInstaller({
              replica: this.operatorReplica,
              deadlineMs: options.operatorReplica?.deadlineMs ?? 60_000,
              stopping: () => this.stopped,
            }),
          }
        : {}),
      osImageInstaller: osImageInstaller({
        slots: this.slots,
        bootTries: options.bootTries ?? DEFAULT_BOOT_TRIES,
        reboot: rebooter(options.rebootCommand ?? DEFAULT_REBOOT_COMMAND, options.log.child({ part: 'reboot' }), {
          beforeSimulatedReboot: () => this.instances.stopAll(),
        }),
        log: options.log.child({ part: 'os-image' }),
      }),
      // Each phase change reaches the operator at once, not at the next interval.
      onPhaseChange: () => void this.heartbeat().catch(() => {}),
      log: options.log.child({ part: 'components' }),
    });
    // A hook's start and end reach the operator at once; the next hook may be waiting in the reply.
    this.hooks = new NodeHookRunner(options.dataDir, () => void this.heartbeat().catch(() => {}), options.log.child({ part: 'hooks' }));
  }

  /** Installs the bootstrap build when the node has no operator yet, then starts (or adopts) the replica. */
  private async startOperatorReplica(replica: OperatorReplica): Promise<void> {
    const layout = this.components.layout;
    const bootstrap = this.options.operatorReplica?.bootstrapArtifact;
    if (layout.currentVersion(OPERATOR_COMPONENT) === null && bootstrap) {
      const version = await installBootstrapOperator(layout, bootstrap);
      this.components.seedInstalled(OPERATOR_COMPONENT, version);
      this.options.log.info({ version, artifact: bootstrap }, 'installed the bootstrap operator build');
    }
    const current = layout.currentVersion(OPERATOR_COMPONENT);
    if (current !== null) this.components.seedInstalled(OPERATOR_COMPONENT, current);
    await replica.ensureRunning();
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

  private credentialHeader(): Record<string, string> {
    return this.state.nodeCredential ? { [NODE_CREDENTIAL_HEADER]: this.state.nodeCredential } : {};
  }

  get nodeId(): string | undefined {
    return this.state.nodeId;
  }

  async start(): Promise<void> {
    this.server = await buildAgentServer(this);
    this.url = await listenOn(this.server, this.options.listen);
    // This start may be a boot (DESIGN.md §12): the boot loader's choice of slot, then the boot
    // checks of a new slot, before anything else and without the operator.
    if (this.slots.exists()) {
      const before = this.slots.read();
      const booted = boot(before);
      if (booted !== before) {
        this.slots.write(booted);
        this.options.log.info({ slot: booted.active, version: slotVersion(booted, booted.active), tries_left: booted.tries_left, fallback: booted.fallback?.reason }, 'booted');
      }
      await this.components.recoverBoot().catch((error) => this.options.log.error({ err: error }, 'boot assessment failed'));
    }
    // The local operator replica first: the control plane this agent registers with may be it.
    if (this.operatorReplica) await this.startOperatorReplica(this.operatorReplica);
    await this.register();
    // Stopped while waiting to be registered (refused until re-enrolled): nothing more to start.
    if (this.stopped) return;
    // An install the previous process left half done is finished or undone before anything else.
    this.componentsDone = this.components.reconcile().catch((error) => this.options.log.error({ err: error }, 'component recovery failed'));
    // Adopted instances' volume and activity before the first heartbeat (instance-host.ts).
    await this.instances.readWorkloadStatuses();
    this.loop('heartbeat', () => this.heartbeat(), this.options.heartbeatIntervalMs);
    this.loop('supervise', () => this.instances.supervise(), 1000);
    const replica = this.operatorReplica;
    if (replica) this.loop('operator-replica', () => replica.supervise(this.components.desiredOf(OPERATOR_COMPONENT)), 1000);
    void this.longPoll();
    this.options.log.info({ node_id: this.nodeId, url: this.url, adopted: this.instances.size }, 'agent started');
  }

  /** Stops the agent only: the instances keep running and are adopted by the next agent. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    this.hooks.stop();
    for (const timer of this.timers.values()) clearTimeout(timer);
    await this.converging.catch(() => {});
    await this.componentsDone;
    // A heartbeat still on the wire lands before stop() returns: after it, this agent writes nothing.
    await this.heartbeatInFlight?.catch(() => {});
    await this.server?.close();
  }

  /**
   * Stops every instance this agent hosts (graceful, then forced after the stop grace). Only for
   * an agent whose launcher is gone (`drydock demo`, a test fleet killed -9): its instances and
   * VMs must not outlive the fleet that owned them. A normal stop leaves them for the next agent.
   */
  async stopInstances(): Promise<void> {
    await this.instances.stopAll();
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
      await work().catch((error) => this.loopFailed(name, error));
      if (!this.stopped) this.timers.set(name, setTimeout(run, intervalMs));
    };
    void run();
  }

  /**
   * A deleted node (`drydock delete node`) is refused on every call until this agent is stopped
   * or its agent-state.json removed: said plainly once a minute rather than warned on every try.
   */
  private decommissionedSaidAt = -Infinity;
  private loopFailed(name: string, error: unknown): void {
    if (error instanceof ApiCallError && error.code === 'NODE_DECOMMISSIONED') {
      if (Date.now() - this.decommissionedSaidAt < 60_000) return;
      this.decommissionedSaidAt = Date.now();
      this.options.log.error({ node_id: this.state.nodeId, code: error.code }, `this node was deleted from the fleet: ${error.message}`);
      return;
    }
    this.options.log.warn({ err: error, loop: name }, 'agent loop step failed');
  }

  /** A wait that stop() cuts short, so a stopping agent never sits out a retry delay. */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.abort.signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.abort.signal.addEventListener('abort', done, { once: true });
    });
  }

  private persist(): void {
    writeAgentState(this.statePath, this.state);
  }

  /**
   * Registers, proving the node's credential when it has one (DESIGN.md §9): the operator
   * registers an existing node again only for the agent holding its credential. Without it (a
   * wiped data dir) the agent keeps asking, saying why, until an admin re-enrolls the node.
   */
  private async register(): Promise<void> {
    let refusals = 0;
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        const sameNode = this.state.hostname === this.options.hostname;
        const reply = await this.client.post<RegisterResponse>('/api/v1/agent/register', {
          hostname: this.options.hostname,
          region: this.options.region,
          role: this.options.role,
          max_instances: this.options.maxInstances,
          labels: this.options.labels,
          ...(this.state.nodeId && this.state.hostname === this.options.hostname ? { node_id: this.state.nodeId } : {}),
          agent_version: this.options.version,
          agent_url: this.url,
          protocol_version: PROTOCOL_VERSION,
        }, { headers: sameNode ? this.credentialHeader() : {} });
        this.state.nodeId = reply.node_id;
        this.state.hostname = this.options.hostname;
        this.state.nodeCredential = reply.node_credential;
        this.persist();
        this.lastContact = new Date();
        return;
      } catch (error) {
        if (error instanceof ApiCallError && error.code === 'NODE_CREDENTIAL_REQUIRED') {
          // Every minute, not every try: the log must say it plainly without drowning.
          if (refusals++ % 12 === 0) {
            this.options.log.error(
              { hostname: this.options.hostname, node_id: error.details.node_id },
              `registration refused: ${error.message}. Retrying every 5 s until an admin runs \`drydock node re-enroll ${this.options.hostname}\``,
            );
          }
          await this.pause(5000);
          continue;
        }
        if (error instanceof ApiCallError && error.code === 'NODE_ID_TAKEN' && this.state.nodeId !== undefined) {
          // The id in our state file is another hostname's (a copied data dir): register as new.
          this.options.log.warn({ node_id: this.state.nodeId }, 'the remembered node id belongs to another hostname; registering without it');
          this.state.nodeId = undefined;
          this.state.nodeCredential = undefined;
          continue;
        }
        if (error instanceof ApiCallError && error.status >= 400 && error.status < 500) throw error;
        if (attempt % 10 === 0) this.options.log.warn({ err: (error as Error).message }, 'operator not reachable; retrying registration');
        await this.pause(Math.min(5000, 500 * (attempt + 1)));
      }
    }
  }

  /**
   * Heartbeats go one at a time: a report sent later must never arrive before an older one (it
   * would show the operator a state the node already left). A call while one is in flight asks
   * for one more right after it.
   */
  private heartbeat(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.heartbeatInFlight) {
      this.heartbeatAgain = true;
      return this.heartbeatInFlight;
    }
    this.heartbeatInFlight = this.sendHeartbeat().finally(() => {
      this.heartbeatInFlight = undefined;
      if (this.heartbeatAgain && !this.stopped) {
        this.heartbeatAgain = false;
        void this.heartbeat().catch(() => {});
      }
    });
    return this.heartbeatInFlight;
  }

  private async sendHeartbeat(): Promise<void> {
    if (!this.nodeId) return;
    try {
      const desired = await this.client.post<DesiredState>('/api/v1/agent/heartbeat', {
        node_id: this.nodeId,
        agent_version: this.options.version,
        protocol_version: PROTOCOL_VERSION,
        components: this.components.installedVersions(),
        instances: this.actualInstances(),
        installs: this.components.reports(),
        ...(this.slots.exists() ? { slots: slotsReport(this.slots.read()) } : {}),
        ...this.hookReports(),
        generation: this.generation,
      }, { headers: this.credentialHeader() });
      this.metrics.heartbeatsSent.inc();
      this.lastContact = new Date();
      this.heartbeatAcknowledgedAt ??= this.lastContact.getTime();
      this.apply(desired);
    } catch (error) {
      this.metrics.heartbeatFailures.inc();
      if (error instanceof ApiCallError && (error.code === 'NODE_NOT_REGISTERED' || error.code === 'NODE_CREDENTIAL_INVALID')) {
        this.state.nodeId = undefined;
        await this.register();
        return;
      }
      throw error;
    }
  }

  /** The runs of the desired state's hooks as far as they got (no field when there are none: older operators). */
  private hookReports(): { hooks?: ReturnType<NodeHookRunner['reports']> } {
    const reports = this.hooks.reports(this.desired?.hooks ?? []);
    return reports.length > 0 ? { hooks: reports } : {};
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
          { signal: this.abort.signal, timeoutMs: 35_000, headers: this.credentialHeader() },
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
      this.hooks.reconcile(desired.hooks ?? []);
      this.componentsDone = this.components.reconcile(desired.components ?? {}).catch((error) => {
        this.options.log.error({ err: error }, 'component reconcile failed');
      });
    }
  }

  private async converge(desired: DesiredState): Promise<void> {
    if (this.stopped) return;
    await this.instances.converge(desired.instances);
  }

  actualInstances(): ActualInstance[] {
    return this.instances.actual();
  }
}

async function listenOn(server: FastifyInstance, listen: string): Promise<string> {
  const { host, port } = parseListen(listen, 8081);
  await server.listen({ host, port });
  const address = server.server.address();
  const bound = typeof address === 'object' && address ? address.port : port;
  return `http://${host}:${bound}`;
}
