import { readFileSync } from 'node:fs';
import { EXIT_REBOOT } from '../agent/supervisor/switch-record.js';

/**
 * Simulated reboots of a local node so far: its `drydock supervisor` logs (JSON lines) every
 * agent exit with its code, and a reboot is an exit with EXIT_REBOOT (`--reboot-command exit`).
 * A missing log is no reboot.
 */
export function simulatedReboots(supervisorLog: string): number {
  let text: string;
  try {
    text = readFileSync(supervisorLog, 'utf8');
  } catch {
    return 0;
  }
  let count = 0;
  for (const line of text.split('\n')) {
    if (!line.includes('"agent exited"')) continue;
    try {
      const entry = JSON.parse(line) as { msg?: string; code?: number };
      if (entry.msg === 'agent exited' && entry.code === EXIT_REBOOT) count += 1;
    } catch {
      // A line cut short by a kill: not a whole entry.
    }
  }
  return count;
}
