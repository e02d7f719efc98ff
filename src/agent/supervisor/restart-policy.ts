// What the supervisor does when its agent process ended: a pure decision over the exit and
// the counters, so the numbers below are tested without processes.
import { EXIT_REBOOT, EXIT_RESTART } from './switch-record.js';

/** Exits in a row of a version being assessed before it is reverted (issue 3: "three times in a row"). */
export const MAX_PENDING_EXITS = 3;
/** First restart delay after a crash; doubles per crash in a row. */
export const BACKOFF_START_MS = 500;
/** Longest restart delay. */
export const BACKOFF_MAX_MS = 30_000;
/** An agent that ran this long before it crashed starts a fresh backoff series. */
export const STABLE_RUN_MS = 60_000;

export interface AgentExit {
  version: string;
  code: number | null;
  signal: string | null;
  ranMs: number;
  /** The supervisor killed it: its assessment deadline passed. */
  deadlineExpired: boolean;
  /** After the exit, `version` is still a pending, unproven switch. */
  stillPending: boolean;
  previous: string | null;
  deadlineMs: number;
}

export interface Counters {
  /** Crashes in a row (any version), for the backoff. */
  crashes: number;
  /** Exits in a row of the version being assessed. */
  pendingExits: number;
}

export type NextStep =
  | { kind: 'restart'; delayMs: number; counters: Counters; note: string }
  | { kind: 'revert'; reason: string; counters: Counters };

export function describeExit(exit: Pick<AgentExit, 'code' | 'signal'>): string {
  return exit.code === null ? `killed by ${exit.signal ?? 'a signal'}` : `exit code ${exit.code}`;
}

export function decideAfterExit(exit: AgentExit, counters: Counters): NextStep {
  const fresh: Counters = { crashes: 0, pendingExits: 0 };
  const back = exit.previous ?? 'the previous version';
  if (exit.deadlineExpired && exit.stillPending) {
    return { kind: 'revert', counters: fresh, reason: `agent ${exit.version} was not proven healthy within ${Math.round(exit.deadlineMs / 1000)} s (no heartbeat acknowledged by the operator); back on ${back}` };
  }
  // A simulated reboot is not a crash, not even of an agent version being assessed.
  if (exit.code === EXIT_REBOOT) return { kind: 'restart', delayMs: 0, counters: { crashes: 0, pendingExits: counters.pendingExits }, note: 'agent rebooted the node (simulated)' };
  if (exit.code === EXIT_RESTART) return { kind: 'restart', delayMs: 0, counters: fresh, note: 'agent asked to be restarted on `current`' };
  const pendingExits = exit.stillPending ? counters.pendingExits + 1 : 0;
  if (pendingExits >= MAX_PENDING_EXITS) {
    return { kind: 'revert', counters: fresh, reason: `agent ${exit.version} exited ${pendingExits} times in a row before it was proven (last: ${describeExit(exit)}); back on ${back}` };
  }
  const crashes = exit.ranMs >= STABLE_RUN_MS ? 1 : counters.crashes + 1;
  const delayMs = Math.min(BACKOFF_MAX_MS, BACKOFF_START_MS * 2 ** (crashes - 1));
  return { kind: 'restart', delayMs, counters: { crashes, pendingExits }, note: `agent ${exit.version} ${describeExit(exit)}` };
}
