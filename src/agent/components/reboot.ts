import { spawn } from 'node:child_process';
import type { Logger } from 'pino';
import { EXIT_REBOOT } from '../supervisor/switch-record.js';

/** `--reboot-command` default on a real host. */
export const DEFAULT_REBOOT_COMMAND = 'systemctl reboot';
/** `--reboot-command exit`: the simulated reboot of the local fleet (the supervisor starts the agent again). */
export const SIMULATED_REBOOT = 'exit';

/**
 * Reboots the node with `command` (split on whitespace, run without a shell). Resolves with the
 * reason when the command could not run or failed; after a successful one it never resolves:
 * the host is going down. `exit` ends this process with EXIT_REBOOT instead: its supervisor
 * starts it again, as if the node came back; what a reboot would end goes first
 * (`beforeSimulatedReboot`: the node's instances, none after a drain).
 */
export function rebooter(
  command: string,
  log: Logger,
  options: { beforeSimulatedReboot?: () => Promise<void>; exit?: (code: number) => never } = {},
): (reason: string) => Promise<string> {
  const argv = command.trim().split(/\s+/).filter(Boolean);
  const exit = options.exit ?? ((code: number) => process.exit(code));
  return async (reason) => {
    if (argv.length === 1 && argv[0] === SIMULATED_REBOOT) {
      log.warn({ reason, exit_code: EXIT_REBOOT }, 'simulated reboot: the node-local instances stop, the agent exits and its supervisor starts it again');
      await options.beforeSimulatedReboot?.().catch((error: unknown) => log.error({ err: error }, 'stopping the instances before the simulated reboot failed'));
      exit(EXIT_REBOOT);
    }
    if (argv.length === 0) return '--reboot-command is empty';
    log.warn({ reason, command }, 'rebooting the node');
    return new Promise<string>((resolve) => {
      const child = spawn(argv[0] as string, argv.slice(1), { stdio: 'ignore' });
      child.once('error', (error) => resolve(`${command} could not run: ${error.message}`));
      child.once('close', (code, signal) => {
        if (code !== 0) resolve(`${command} ended with ${code === null ? `signal ${signal}` : `exit code ${code}`}`);
        // Exit 0: the shutdown is under way; this process ends with the host.
      });
    });
  };
}
