import { readdirSync, readFileSync } from 'node:fs';
import { isAlive } from './local-fleet.js';

/**
 * Live processes (zombies aside) whose command line mentions `needle`, other than this one. The
 * demo's run directory is a fresh timestamped path that every process it starts names (data
 * dirs, QEMU's kernel and QMP socket), so after a stop this lists whatever escaped it: a QEMU
 * started after the last PID was recorded, an agent's KVM probe cut short. Linux only (/proc);
 * elsewhere it finds nothing.
 */
export function processesMentioning(needle: string): number[] {
  const pids: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return pids;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (cmdline.includes(needle) && !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) pids.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return pids;
}

/** SIGTERM each pid, SIGKILL what is still there after `graceMs`; resolves when all are gone or after the kill. */
export async function endProcesses(pids: readonly number[], graceMs = 5000): Promise<void> {
  const send = (pid: number, signal: NodeJS.Signals) => {
    try {
      process.kill(pid, signal);
    } catch {
      // Already gone.
    }
  };
  for (const pid of pids) send(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (pids.some(isAlive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  for (const pid of pids.filter(isAlive)) send(pid, 'SIGKILL');
  const killDeadline = Date.now() + 5000;
  while (pids.some(isAlive) && Date.now() < killDeadline) await new Promise((r) => setTimeout(r, 50));
}
