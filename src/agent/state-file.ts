import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Workload } from '../domain/types.js';

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
