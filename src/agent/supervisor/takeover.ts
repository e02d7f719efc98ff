import { copyFileSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { ComponentLayout } from '../components/layout.js';
import { isSameProcessAlive, processStartTime } from '../drivers/process-driver.js';
import { AGENT_COMPONENT, agentBundle, agentComponentDir, hasBundle, readSwitch } from './switch-record.js';

/** `<data-dir>/supervisor.json`: who supervises this data dir and which agent it runs. */
export interface SupervisorPidFile {
  pid: number;
  proc_start: string | null;
  agent_pid?: number;
  agent_proc_start?: string | null;
}

export function pidFilePath(dataDir: string): string {
  return join(dataDir, 'supervisor.json');
}

export function readPidFile(dataDir: string): SupervisorPidFile | undefined {
  try {
    return JSON.parse(readFileSync(pidFilePath(dataDir), 'utf8')) as SupervisorPidFile;
  } catch {
    return undefined;
  }
}

export function writePidFile(dataDir: string, file: SupervisorPidFile): void {
  const path = pidFilePath(dataDir);
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(file, null, 2));
  renameSync(tmp, path);
}

/**
 * Claims the data dir: refuses when another live supervisor holds it, and ends an agent a
 * killed supervisor left behind (it exits by itself within a second when it notices; this
 * makes sure, so two agents never share one data dir).
 */
export async function claimDataDir(dataDir: string, log: Logger): Promise<void> {
  mkdirSync(dataDir, { recursive: true });
  const before = readPidFile(dataDir);
  if (before && before.pid !== process.pid && isSameProcessAlive(before.pid, before.proc_start)) {
    throw new Error(`another supervisor (pid ${before.pid}) runs on ${dataDir}; stop it first`);
  }
  if (before?.agent_pid && isSameProcessAlive(before.agent_pid, before.agent_proc_start ?? null)) {
    log.warn({ agent_pid: before.agent_pid }, 'ending the agent a previous supervisor left running');
    await endProcess(before.agent_pid, before.agent_proc_start ?? null, 'SIGKILL', 0);
  }
  writePidFile(dataDir, { pid: process.pid, proc_start: processStartTime(process.pid) });
}

/** Sends `signal`, then SIGKILL after `graceMs`; resolves when the process is gone. */
export async function endProcess(pid: number, procStart: string | null, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  const send = (sig: NodeJS.Signals) => {
    try {
      process.kill(pid, sig);
    } catch {
      // Gone already.
    }
  };
  send(signal);
  const killAt = Date.now() + graceMs;
  while (isSameProcessAlive(pid, procStart)) {
    if (Date.now() >= killAt) send('SIGKILL');
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Makes sure `current` points at an agent bundle: when none is installed, the bundle this
 * supervisor was started from becomes the first version dir, so there is always a version to
 * return to. Also finishes a switch back that a killed supervisor had begun.
 */
export function prepareAgentVersions(dataDir: string, own: { bundle: string; version: string }, log: Logger): ComponentLayout {
  const layout = new ComponentLayout(join(dataDir, 'components'));
  if (!hasBundle(dataDir, layout.currentVersion(AGENT_COMPONENT))) {
    if (!hasBundle(dataDir, own.version)) {
      const staging = join(agentComponentDir(dataDir), `.staging-${own.version}-${process.pid}`);
      mkdirSync(staging, { recursive: true });
      copyFileSync(own.bundle, join(staging, 'drydock.mjs'));
      rmSync(join(agentComponentDir(dataDir), own.version), { recursive: true, force: true });
      renameSync(staging, join(agentComponentDir(dataDir), own.version));
    }
    layout.switchCurrent(AGENT_COMPONENT, own.version);
    log.info({ version: own.version, bundle: agentBundle(dataDir, own.version) }, 'recorded the initial agent version');
  }
  const record = readSwitch(dataDir);
  if (record?.state === 'reverted' && layout.currentVersion(AGENT_COMPONENT) === record.version && hasBundle(dataDir, record.previous)) {
    layout.switchCurrent(AGENT_COMPONENT, record.previous);
    log.warn({ version: record.version, back_to: record.previous }, 'finished switching back from a reverted agent version');
  }
  return layout;
}
