import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { MigrationReport } from '../domain/instance-migration.js';
import type { Workload } from '../domain/types.js';
import type { VmRecord } from './drivers/qemu-vm.js';

/** A process the agent started; enough to find it again after the agent restarts. */
export interface HostedProcess {
  id: string;
  deployment: string;
  pid: number;
  port: number;
  /** /proc/<pid>/stat start time, so a recycled pid is never mistaken for our instance. */
  procStart: string | null;
  startedAt: string;
  workload: Workload;
  desired: 'running' | 'stopped';
  /** The `vm` driver's record: the QEMU a restarted agent adopts through its QMP socket. */
  vm?: VmRecord;
  /** Where health is probed when the driver knows (a VM image's health path). */
  healthPath?: string;
  /** Where the workload's status JSON (volume, activity) is read, when the driver knows one (a VM image's status path). */
  statusPath?: string;
  /** This instance's side of a live migration, as last reported (kept across agent restarts). */
  migration?: MigrationReport;
}

export interface AgentState {
  nodeId?: string;
  hostname?: string;
  /** The credential the operator issued at registration (proves heartbeats are this node's). */
  nodeCredential?: string;
  processes: Record<string, HostedProcess>;
}

export function readAgentState(path: string): AgentState {
  try {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as AgentState;
    return { ...parsed, processes: parsed.processes ?? {} };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { processes: {} };
    throw new Error(`agent state file ${path} is unreadable (${(error as Error).message}); move it away to start fresh`);
  }
}

/** Write-then-rename, so a crash mid-write leaves the previous state, never half of one. */
export function writeAgentState(path: string, state: AgentState): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(state, null, 2));
  renameSync(tmp, path);
}
