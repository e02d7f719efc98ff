import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';

// The contract between the supervisor and the agents it runs, all in files under the agent's
// data dir so that either process can be killed -9 at any moment:
//
//   components/node-agent/<version>/drydock.mjs   one agent bundle per version
//   components/node-agent/current                 symlink to the version the supervisor starts
//   components/node-agent/switch.json             the pending switch (below)
//
// Hand-over: the old agent writes switch.json (pending), journals `assessing`, points `current`
// at the new version and exits with EXIT_RESTART. The supervisor starts `current`, stamps a
// deadline into switch.json and watches. The new agent, once the operator acknowledged one of
// its heartbeats, writes `proven` (before it journals `done`, so a proven version is never
// reverted). When the new version keeps exiting or is not proven by the deadline, the supervisor
// writes `reverted` with the reason (before it switches `current` back, so a killed supervisor
// finishes the switch back), and the previous agent reports the install `reverted`.

/** The node agent's component name: its versions live in `components/node-agent/`. */
export const AGENT_COMPONENT = 'node-agent';

/** Exit code of an agent asking its supervisor to start `current` now (EX_TEMPFAIL, no backoff). */
export const EXIT_RESTART = 75;

/**
 * Exit code of an agent performing a simulated reboot (`--reboot-command exit`, the local fleet):
 * the supervisor starts the agent again at once, like a node coming back from a reboot.
 */
export const EXIT_REBOOT = 76;

/** Set by the supervisor in the agent's environment: the supervisor's PID. */
export const SUPERVISOR_PID_ENV = 'DRYDOCK_SUPERVISOR_PID';
/** Set by the supervisor: the version dir the agent was started from (`components/node-agent/<dir>`). */
export const AGENT_VERSION_DIR_ENV = 'DRYDOCK_AGENT_VERSION_DIR';
/** Set by the supervisor: its assessment deadline in ms, a fallback for the agent's own wait. */
export const DEADLINE_ENV = 'DRYDOCK_SUPERVISOR_DEADLINE_MS';

export interface PendingSwitch {
  /** The version dir being assessed. */
  version: string;
  /** The version dir to return to. */
  previous: string | null;
  state: 'pending' | 'proven' | 'reverted';
  /** Why the supervisor reverted (state `reverted`). */
  reason?: string;
  /** Stamped by the supervisor when it first starts `version`; kept across supervisor restarts. */
  deadline_at?: string;
  updated_at: string;
}

export function agentComponentDir(dataDir: string): string {
  return join(dataDir, 'components', AGENT_COMPONENT);
}

export function agentBundle(dataDir: string, version: string): string {
  return join(agentComponentDir(dataDir), version, 'drydock.mjs');
}

export function switchFile(dataDir: string): string {
  return join(agentComponentDir(dataDir), 'switch.json');
}

export function readSwitch(dataDir: string): PendingSwitch | undefined {
  try {
    return JSON.parse(readFileSync(switchFile(dataDir), 'utf8')) as PendingSwitch;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    // Never torn (write-then-rename); unreadable means someone edited it: nothing is pending.
    return undefined;
  }
}

/** Write-then-rename with fsync, like the install journal. */
export function writeSwitch(dataDir: string, record: Omit<PendingSwitch, 'updated_at'>): PendingSwitch {
  const path = switchFile(dataDir);
  const saved = { ...record, updated_at: new Date().toISOString() };
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, JSON.stringify(saved, null, 2));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  return saved;
}

export function clearSwitch(dataDir: string): void {
  rmSync(switchFile(dataDir), { force: true });
}

export function hasBundle(dataDir: string, version: string | null): version is string {
  return version !== null && existsSync(agentBundle(dataDir, version));
}
