import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { type LocalPhase, planConvergence } from '../domain/agent-converge.js';
import type { MigrationReport } from '../domain/instance-migration.js';
import type { ActualInstance, DesiredInstance } from '../domain/protocol.js';
import { sameWorkloadReport, type WorkloadReport } from '../domain/workload-report.js';
import type { InstanceDriver } from './drivers/instance-driver.js';
import type { AgentMetrics } from './metrics.js';
import type { HostedProcess } from './state-file.js';

interface Hosted {
  proc: HostedProcess;
  phase: LocalPhase;
  healthy: boolean;
  /** Resolves when the instance's process ends; absent for an adopted one (its liveness is polled). */
  exited?: Promise<string>;
  restarts: number;
  restartAt?: number;
  message?: string;
  /** When the probe whose answer `healthy` holds was sent: an older probe's late answer is ignored. */
  probedAt?: number;
  /** Failed probes in a row since the last one that passed. */
  failedProbes?: number;
  /** A live migration out of this instance in flight: true once its guest runs on the target. */
  outgoing?: Promise<boolean>;
  /** What the workload last reported of its data (volume, activity); reported while it runs. */
  workload?: WorkloadReport;
  /** Why its last status could not be used (warned once per distinct problem). */
  statusProblem?: string;
}

export interface InstanceHostOptions {
  /** The driver of each workload kind (`workload.driver`, default `process`). */
  drivers: { process: InstanceDriver; vm?: InstanceDriver | undefined };
  /** Wait between the operator withdrawing an instance and stopping it, for routers to catch up. */
  drainDelayMs: number;
  /** Graceful stop → kill grace when stopping an instance. */
  stopGraceMs: number;
  metrics: AgentMetrics;
  log: Logger;
  /** Records the hosted instances (the agent's state file) after every change. */
  persist: (processes: Record<string, HostedProcess>) => void;
  /** Something a heartbeat should report changed (started, stopped, health flipped, a migration moved). */
  onChange: () => void;
  /**
   * Failed probes in a row before a healthy instance counts as unhealthy (Kubernetes'
   * failureThreshold, default 3): one slow answer from a busy guest does not withdraw an endpoint.
   * An exit is noticed at once whatever this says.
   */
  probeFailureThreshold?: number;
}

const MAX_BACKOFF_MS = 30_000;

/**
 * The instances of one node, through their drivers (DESIGN.md §10): starts and stops them,
 * restarts a crashed one with backoff, probes health every second, adopts what a previous agent
 * left running (same PIDs, checked by process start time), and carries out its side of live
 * migrations: a target waits for the incoming guest, a source transfers it and quits.
 */
export class InstanceHost {
  private readonly hosted = new Map<string, Hosted>();
  private desired: readonly DesiredInstance[] | undefined;

  constructor(
    private readonly options: InstanceHostOptions,
    recorded: Record<string, HostedProcess>,
  ) {
    for (const proc of Object.values(recorded)) {
      const driver = this.driverOf(proc);
      const alive = driver !== undefined && driver.isAlive(proc);
      const hosted: Hosted = {
        proc,
        phase: alive ? 'running' : proc.desired === 'running' ? 'backoff' : 'stopped',
        healthy: false,
        restarts: 0,
        restartAt: Date.now(),
        ...(alive ? {} : { message: driver ? 'exited while the agent was not running' : `no ${proc.workload.driver} driver on this agent` }),
      };
      this.hosted.set(proc.id, hosted);
      if (alive) options.log.info({ instance: proc.id, pid: proc.pid, driver: driver.name }, 'adopted running instance');
      // A transfer this agent's predecessor started has nobody watching it: if it completed, the
      // guest lives on the target (quit here, report it done); if it is still in flight, cancel
      // it and keep the guest here (the operator fails the migration and may start another).
      if (alive && proc.migration?.role === 'source' && proc.migration.state === 'transferring' && driver.live) {
        const report = proc.migration;
        const failed = (reason: string) => this.report(hosted, { ...report, state: 'failed', reason });
        void driver.live
          .settleUnwatched(proc)
          .then((stats) => {
            if (!stats) return failed('the source agent restarted during the transfer; it was cancelled');
            hosted.phase = 'migrated';
            this.report(hosted, { ...report, state: 'completed', ...stats });
          })
          .catch((error: unknown) => failed(`the source agent restarted during the transfer: ${(error as Error).message}`));
      }
      // A source that handed its guest over stays `migrated`, its QEMU (if alive) holding it paused.
      if (proc.migration?.role === 'source' && proc.migration.state === 'completed') hosted.phase = 'migrated';
    }
  }

  get size(): number {
    return this.hosted.size;
  }

  private driverOf(proc: Pick<HostedProcess, 'workload'>): InstanceDriver | undefined {
    return proc.workload.driver === 'vm' ? this.options.drivers.vm : this.options.drivers.process;
  }

  /** Starts what is wanted and not running, stops what runs and is not wanted, moves what is told to move. */
  async converge(desired: readonly DesiredInstance[]): Promise<void> {
    this.desired = desired;
    const handedOver = new Map<string, string>();
    for (const [id, h] of this.hosted) if (h.phase === 'migrated' && h.proc.migration?.role === 'source') handedOver.set(id, h.proc.migration.migration_id);
    const plan = planConvergence(desired, new Map([...this.hosted].map(([id, h]) => [id, h.phase])), handedOver);
    for (const id of plan.stop) this.stop(id);
    for (const instance of plan.start) await this.start(instance);
    for (const id of plan.resume) this.resumeHandedOver(this.hosted.get(id) as Hosted);
    let changed = plan.start.length + plan.stop.length + plan.resume.length > 0;
    for (const want of desired) {
      const hosted = this.hosted.get(want.id);
      if (!hosted) continue;
      // A migration that ended (completed, failed) leaves the desired state: so does its report.
      if (hosted.proc.migration && hosted.proc.migration.migration_id !== want.migration?.id && hosted.phase !== 'migrated') {
        delete hosted.proc.migration;
        this.persist();
        changed = true;
      }
      const m = want.migration;
      if (m?.role === 'source' && m.address && hosted.phase === 'running' && hosted.proc.migration?.migration_id !== m.id) {
        this.migrateOut(hosted, m.id, m.address, m.downtime_limit_ms ?? 300, m.deadline);
        changed = true;
      }
    }
    if (changed) this.options.onChange();
  }

  private persist(): void {
    this.options.persist(Object.fromEntries([...this.hosted].filter(([, h]) => h.phase !== 'stopped').map(([id, h]) => [id, h.proc])));
  }

  private report(hosted: Hosted, report: MigrationReport): void {
    hosted.proc.migration = report;
    this.persist();
    this.options.onChange();
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
    const driver = this.driverOf(instance);
    const incoming = instance.migration?.role === 'target' ? instance.migration.id : undefined;
    try {
      if (!driver) throw new Error(`this agent has no ${instance.workload.driver} driver (start it with QEMU installed)`);
      let started;
      if (incoming !== undefined) {
        if (!driver.live) throw new Error(`the ${driver.name} driver cannot receive a live migration`);
        started = await driver.live.startIncoming(instance);
        proc.migration = { migration_id: incoming, role: 'target', state: 'ready', address: started.address };
      } else {
        started = await driver.start(instance);
      }
      Object.assign(proc, { pid: started.pid, port: started.port, procStart: started.procStart });
      if (started.vm) proc.vm = started.vm;
      if (started.healthPath) proc.healthPath = started.healthPath;
      if (started.statusPath) proc.statusPath = started.statusPath;
      const hosted: Hosted = { proc, phase: 'starting', healthy: false, exited: started.exited, restarts };
      void started.exited.then(async (why) => {
        // A source quits at the switchover, sometimes before its migration's outcome is in: an
        // exit while the guest is moving out is a crash only if the guest did not arrive.
        if (hosted.outgoing && (await hosted.outgoing)) return;
        if (this.hosted.get(instance.id) === hosted && hosted.phase !== 'stopping' && hosted.phase !== 'migrated') this.crashed(hosted, why);
      });
      this.hosted.set(instance.id, hosted);
      if (incoming !== undefined) this.watchArrival(hosted, driver);
      this.options.log.info(
        { instance: instance.id, deployment: instance.deployment, driver: driver.name, pid: started.pid, port: started.port, incoming },
        incoming ? 'started instance waiting for its incoming migration' : 'started instance',
      );
    } catch (error) {
      const hosted: Hosted = { proc, phase: 'backoff', healthy: false, restarts };
      if (incoming !== undefined) proc.migration = { migration_id: incoming, role: 'target', state: 'failed', reason: (error as Error).message };
      this.hosted.set(instance.id, hosted);
      this.crashed(hosted, `failed to start: ${(error as Error).message}`);
    }
    this.persist();
  }

  /**
   * An incoming guest serves the moment its transfer completes, and its source has quit by then:
   * probe it every 100 ms (not at the 1 s supervision tick) so the operator hears at once and
   * moves the endpoint. Ends when it answers, stops waiting or the move's deadline (10 min) passes.
   */
  private watchArrival(hosted: Hosted, driver: InstanceDriver): void {
    const until = Date.now() + 600_000;
    let probing = false;
    const timer = setInterval(() => {
      if (hosted.phase !== 'starting' || Date.now() > until || this.hosted.get(hosted.proc.id) !== hosted) {
        clearInterval(timer);
        return;
      }
      if (probing) return;
      probing = true;
      const sentAt = performance.now();
      void driver.probe(hosted.proc, 250).then((healthy) => {
        probing = false;
        if (!healthy || hosted.phase !== 'starting' || sentAt < (hosted.probedAt ?? 0)) return;
        clearInterval(timer);
        hosted.probedAt = sentAt;
        hosted.healthy = true;
        hosted.phase = 'running';
        this.options.log.info({ instance: hosted.proc.id }, 'live migration: the guest arrived and serves');
        this.options.onChange();
      });
    }, 100);
    timer.unref();
  }

  private crashed(hosted: Hosted, message: string): void {
    hosted.phase = 'backoff';
    hosted.healthy = false;
    hosted.exited = undefined;
    hosted.workload = undefined;
    hosted.restarts++;
    this.options.metrics.instanceRestarts.inc();
    const target = hosted.proc.migration?.role === 'target' ? hosted.proc.migration : undefined;
    if (target && target.state !== 'failed') {
      // An incoming guest that died is not restarted as a fresh boot: the migration fails and
      // the operator withdraws this instance (the guest still runs on the source).
      hosted.proc.migration = { ...target, state: 'failed', reason: message };
    }
    if (hosted.proc.migration?.role === 'target' && hosted.proc.migration.state === 'failed') {
      hosted.restartAt = Number.POSITIVE_INFINITY;
      hosted.message = `${message}; not restarted: it was the target of migration ${hosted.proc.migration.migration_id}`;
    } else {
      const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** Math.min(hosted.restarts, 6));
      hosted.restartAt = Date.now() + delay;
      hosted.message = `${message}; restarting in ${Math.round(delay / 1000)} s`;
    }
    this.options.log.warn({ instance: hosted.proc.id, message: hosted.message }, 'instance crashed');
    this.persist();
    this.options.onChange();
  }

  /** The source side of a live migration: transfer, then the guest lives on the target only. */
  private migrateOut(hosted: Hosted, migrationId: string, address: string, downtimeLimitMs: number, deadline: string | undefined): void {
    const driver = this.driverOf(hosted.proc)?.live;
    const base = { migration_id: migrationId, role: 'source' as const };
    if (!driver) {
      this.report(hosted, { ...base, state: 'failed', reason: `the ${hosted.proc.workload.driver ?? 'process'} driver cannot migrate live` });
      return;
    }
    const deadlineMs = Math.max(1000, (deadline ? Date.parse(deadline) : Date.now() + 600_000) - Date.now());
    this.report(hosted, { ...base, state: 'transferring' });
    this.options.log.info({ instance: hosted.proc.id, migration: migrationId, address }, 'live migration: transferring');
    hosted.outgoing = driver.migrateOut(hosted.proc, address, { downtimeLimitMs, deadlineMs }).then(
      (stats) => {
        hosted.phase = 'migrated';
        hosted.healthy = false;
        this.options.log.info({ instance: hosted.proc.id, migration: migrationId, ...stats }, 'live migration: completed; the guest stays paused here until the target takes over');
        this.report(hosted, { ...base, state: 'completed', ...stats });
        return true;
      },
      (error: unknown) => {
        this.options.log.warn({ err: error, instance: hosted.proc.id, migration: migrationId }, 'live migration failed; the guest keeps running here');
        this.report(hosted, { ...base, state: 'failed', reason: (error as Error).message });
        hosted.outgoing = undefined;
        return false;
      },
    );
  }

  /**
   * The target of a completed move died before taking over (the operator failed the move and
   * still wants the instance here): resume the guest this QEMU kept paused. When that cannot
   * be done (the QEMU is gone), it is a crash: restarted as a fresh boot.
   */
  private resumeHandedOver(hosted: Hosted): void {
    const from = hosted.proc.migration?.migration_id;
    hosted.phase = 'starting';
    hosted.healthy = false;
    hosted.outgoing = undefined;
    delete hosted.proc.migration;
    this.persist();
    const driver = this.driverOf(hosted.proc)?.live;
    const resumed = driver && this.driverOf(hosted.proc)?.isAlive(hosted.proc) ? driver.resume(hosted.proc) : Promise.reject(new Error('its QEMU has quit'));
    resumed.then(
      () => {
        this.options.log.warn({ instance: hosted.proc.id, migration: from }, 'live migration: the target failed before taking over; resumed the guest here');
        this.options.onChange();
      },
      (error: unknown) => {
        if (hosted.phase === 'starting') this.crashed(hosted, `could not resume the guest after migration ${from} failed: ${(error as Error).message}`);
      },
    );
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
    const driver = this.driverOf(hosted.proc);
    setTimeout(() => {
      void (driver?.stop(hosted.proc, this.options.stopGraceMs) ?? Promise.resolve())
        .catch((error: unknown) => this.options.log.warn({ err: error, instance: id }, 'stop failed'))
        .finally(() => {
          hosted.phase = 'stopped';
          hosted.healthy = false;
          this.persist();
          this.options.log.info({ instance: id, pid: hosted.proc.pid }, 'stopped instance');
          this.options.onChange();
        });
    }, delay);
  }

  /** Stops everything hosted, at once (no drain delay): the owner of this fleet is gone. */
  async stopAll(): Promise<void> {
    this.desired = [];
    await Promise.all(
      [...this.hosted.values()].map(async (hosted) => {
        if (hosted.phase === 'stopped') return;
        hosted.phase = 'stopping';
        await this.driverOf(hosted.proc)
          ?.stop(hosted.proc, this.options.stopGraceMs)
          .catch((error: unknown) => this.options.log.warn({ err: error, instance: hosted.proc.id }, 'stop failed'));
        hosted.phase = 'stopped';
      }),
    );
    this.persist();
  }

  /** Once a second: notice exits of adopted instances, restart crashed ones, probe health. */
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
      const driver = this.driverOf(hosted.proc);
      if (!driver) continue;
      if (!hosted.exited && !driver.isAlive(hosted.proc)) {
        if (hosted.outgoing) continue; // quit at the switchover: the migration's outcome decides
        this.crashed(hosted, 'exited');
        continue;
      }
      if (driver.readWorkloadStatus) probes.push(this.readWorkloadStatus(hosted, driver.readWorkloadStatus.bind(driver)));
      const sentAt = performance.now();
      probes.push(
        driver.probe(hosted.proc, 900).then((healthy) => {
          if (hosted.phase !== 'running' && hosted.phase !== 'starting') return;
          // A probe sent while an incoming guest was still paused can answer after the fast
          // arrival probe saw it serve: the newer answer stands.
          if (sentAt < (hosted.probedAt ?? 0)) return;
          hosted.probedAt = sentAt;
          hosted.failedProbes = healthy ? 0 : (hosted.failedProbes ?? 0) + 1;
          // A serving instance stays serving until enough probes in a row failed.
          if (!healthy && hosted.healthy && hosted.failedProbes < (this.options.probeFailureThreshold ?? 3)) return;
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

  /**
   * Reads every running instance's workload status once. The agent calls it before its first
   * heartbeat, so a restarted agent does not report adopted instances without the volume and
   * activity they reported before (which would clear them until the next tick).
   */
  async readWorkloadStatuses(): Promise<void> {
    const reads: Promise<void>[] = [];
    for (const hosted of this.hosted.values()) {
      const driver = this.driverOf(hosted.proc);
      if ((hosted.phase === 'running' || hosted.phase === 'starting') && driver?.readWorkloadStatus) {
        reads.push(this.readWorkloadStatus(hosted, driver.readWorkloadStatus.bind(driver)));
      }
    }
    await Promise.all(reads);
  }

  /**
   * The workload's report of its volume and activity, for the heartbeat. A status that cannot be
   * used (not JSON, too large, out of shape) is ignored with one warning and the last good report
   * stands: a workload caught mid-write must not look, for one tick, as if its backup had ended.
   */
  private async readWorkloadStatus(hosted: Hosted, read: NonNullable<InstanceDriver['readWorkloadStatus']>): Promise<void> {
    const status = await read(hosted.proc).catch((error: unknown) => ({ ok: false as const, problem: (error as Error).message }));
    if (!status || (hosted.phase !== 'running' && hosted.phase !== 'starting')) return;
    if (!status.ok) {
      if (status.problem !== hosted.statusProblem) {
        this.options.log.warn({ instance: hosted.proc.id, problem: status.problem }, 'ignored the workload status (volume, activity): it cannot be used; the last good one stands');
      }
      hosted.statusProblem = status.problem;
      return;
    }
    hosted.statusProblem = undefined;
    if (sameWorkloadReport(hosted.workload, status.report)) return;
    hosted.workload = status.report;
    this.options.onChange();
  }

  /** Until the first desired state arrives, adopted instances are assumed wanted. */
  private isWanted(id: string): boolean {
    if (!this.desired) return true;
    return this.desired.some((d) => d.id === id && d.desired === 'running');
  }

  /**
   * A source that handed its guest over is `starting` while its QEMU holds the guest paused (it
   * may yet resume it: a drain must not count the node empty), `stopped` once that QEMU is gone.
   */
  private migratedStatus(h: Hosted): 'starting' | 'stopped' {
    return this.driverOf(h.proc)?.isAlive(h.proc) ? 'starting' : 'stopped';
  }

  /** What the heartbeat reports; a desired-stopped instance this node no longer has is `stopped`. */
  actual(): ActualInstance[] {
    const report: ActualInstance[] = [];
    for (const [id, h] of this.hosted) {
      report.push({
        id,
        status: h.phase === 'backoff' ? 'failed' : h.phase === 'migrated' ? this.migratedStatus(h) : h.phase,
        healthy: h.phase === 'running' && h.healthy,
        pid: h.proc.pid || null,
        port: h.proc.port || null,
        ...(h.message && h.phase === 'backoff' ? { message: h.message } : {}),
        ...(h.proc.migration ? { migration: h.proc.migration } : {}),
        ...(h.phase === 'running' || h.phase === 'starting' ? h.workload : {}),
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
