import type { DesiredInstance } from '../../domain/protocol.js';
import type { ParsedWorkloadStatus } from '../../domain/workload-report.js';
import type { HostedProcess } from '../state-file.js';

/** What a driver started: enough to find it again (persisted in the agent's state file) and to notice its end. */
export interface StartedInstance {
  pid: number;
  /** The loopback port the instance serves on (for a VM: the host side of its port forward). */
  port: number;
  procStart: string | null;
  /** Driver-specific state a restarted agent needs to adopt the instance (the VM's QMP socket…). */
  vm?: HostedProcess['vm'];
  /** The path health is probed at, when the driver knows better than the workload (a VM image's). */
  healthPath?: string;
  /** Where the workload answers its status JSON (volume, activity), when it has one (a VM image's status path). */
  statusPath?: string;
  /** Resolves when the instance's process is gone. */
  exited: Promise<string>;
}

/** The numbers of a completed live migration, as QMP measured them. */
export interface LiveMigrationStats {
  total_ms: number;
  downtime_ms: number;
  transferred_bytes: number;
}

/**
 * How the agent hosts an instance (DESIGN.md §10). `process` runs a child process group; `vm`
 * a QEMU virtual machine. Instances outlive the agent: a restarted agent adopts them from the
 * records in its state file, never starting a second copy.
 */
export interface InstanceDriver {
  readonly name: 'process' | 'vm';
  start(instance: DesiredInstance): Promise<StartedInstance>;
  /** Is the recorded instance still the one we started (same pid and start time)? */
  isAlive(proc: HostedProcess): boolean;
  /** Graceful stop, forced after `graceMs`; resolves when it is gone. */
  stop(proc: HostedProcess, graceMs: number): Promise<void>;
  /** One health probe: true only on an HTTP 2xx within the timeout. */
  probe(proc: HostedProcess, timeoutMs: number): Promise<boolean>;
  /**
   * The workload's own report of its data (volume, activity; domain/workload-report.ts), read at
   * the supervision tick. Undefined: it could not be read just now (keep the last one). A
   * workload that writes none reports `{ ok: true, report: {} }`.
   */
  readWorkloadStatus?(proc: HostedProcess): Promise<ParsedWorkloadStatus | undefined>;
  /** Live migration, for drivers that can (the `vm` driver); absent otherwise. */
  readonly live?: LiveMigrationDriver;
}

export interface LiveMigrationDriver {
  /** Start the instance waiting for an incoming migration; `address` is where the source sends it. */
  startIncoming(instance: DesiredInstance): Promise<StartedInstance & { address: string }>;
  /**
   * Transfer the running instance to `address`. On success the stats are returned and the source
   * holds the guest paused as handed over, refusing new connections, until it is stopped (the
   * target took over) or resumed (the target died first); on failure it keeps running.
   */
  migrateOut(proc: HostedProcess, address: string, options: { downtimeLimitMs: number; deadlineMs: number }): Promise<LiveMigrationStats>;
  /** Resume a guest handed over by `migrateOut` whose target died before taking over; throws when it cannot. */
  resume(proc: HostedProcess): Promise<void>;
  /**
   * A transfer a previous agent started and nobody watched since (found on adoption): when it
   * completed, the stats are returned and the source holds the guest paused as `migrateOut`
   * leaves it; when it is still in flight it is cancelled and the source keeps running (null).
   */
  settleUnwatched(proc: HostedProcess): Promise<LiveMigrationStats | null>;
}
