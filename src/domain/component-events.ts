// Which events an install report causes, compared with the report stored before it. An event
// is recorded only when the install's state changes, never on a repeated heartbeat.
import type { InstallPhase } from './protocol.js';
import { EVENT } from './events.js';

export type InstallEventKind = (typeof EVENT.node)['install_started' | 'install_completed' | 'install_failed' | 'reverted'];

const TERMINAL: Partial<Record<InstallPhase, InstallEventKind>> = {
  done: EVENT.node.install_completed,
  failed: EVENT.node.install_failed,
  reverted: EVENT.node.reverted,
};

export function isTerminalPhase(phase: InstallPhase): boolean {
  return phase in TERMINAL;
}

/**
 * The event for a report, or undefined when it changes nothing worth one. `before` is the
 * stored report of the same node and component (undefined when there was none).
 */
export function installEventFor(
  before: { version: string; phase: InstallPhase } | undefined,
  after: { version: string; phase: InstallPhase },
): InstallEventKind | undefined {
  const sameInstall = before !== undefined && before.version === after.version;
  if (sameInstall && before.phase === after.phase) return undefined;
  const terminal = TERMINAL[after.phase];
  if (terminal) return terminal;
  // A non-terminal phase: the install started unless this same install was already under way
  // (downloading → verifying → … are progress of one install, not new ones).
  if (sameInstall && !isTerminalPhase(before.phase)) return undefined;
  return EVENT.node.install_started;
}
