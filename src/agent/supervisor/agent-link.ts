import type { Logger } from 'pino';
import type { SupervisorLink } from '../agent.js';
import { AGENT_VERSION_DIR_ENV, DEADLINE_ENV, EXIT_RESTART, SUPERVISOR_PID_ENV } from './switch-record.js';

/** Exit code of an agent whose supervisor died: the next supervisor starts a fresh one. */
export const EXIT_SUPERVISOR_GONE = 70;

/**
 * The agent's side of the supervisor link, from the environment the supervisor set. Returns
 * undefined when this agent runs unsupervised. A supervised agent exits when its supervisor
 * is gone (its parent changed): a restarted supervisor starts its own agent, and two agents
 * on one data dir would fight over the same instances.
 */
export function supervisorLinkFromEnv(log: Logger): SupervisorLink | undefined {
  const supervisorPid = Number(process.env[SUPERVISOR_PID_ENV]);
  const versionDir = process.env[AGENT_VERSION_DIR_ENV];
  if (!Number.isInteger(supervisorPid) || supervisorPid <= 0 || !versionDir) return undefined;
  if (process.ppid !== supervisorPid) {
    log.warn({ supervisor_pid: supervisorPid }, `${SUPERVISOR_PID_ENV} is set but that process is not this agent's parent: running unsupervised`);
    return undefined;
  }
  const watch = setInterval(() => {
    if (process.ppid === supervisorPid) return;
    log.error({ supervisor_pid: supervisorPid }, 'supervisor is gone; agent exits (instances keep running)');
    process.exit(EXIT_SUPERVISOR_GONE);
  }, 500);
  watch.unref();
  const deadlineMs = Number(process.env[DEADLINE_ENV]);
  return {
    versionDir,
    deadlineMs: Number.isFinite(deadlineMs) && deadlineMs > 0 ? deadlineMs : 60_000,
    restart(reason) {
      // Everything that matters is journaled already; leaving at once is what a crash would do.
      log.info({ reason, exit_code: EXIT_RESTART }, 'agent hands over to its supervisor; instances keep running');
      process.exit(EXIT_RESTART);
    },
  };
}
