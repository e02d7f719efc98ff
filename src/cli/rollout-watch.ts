import cliProgress from 'cli-progress';
import type { ApiClient } from '../api-client.js';
import { Reconnector } from './reconnect.js';
import { TERMINAL_ROLLOUT_STATUSES } from '../domain/rollout/model.js';

interface WatchedRollout {
  id: string;
  name: string;
  status: string;
  current_batch: number;
  batch_count: number;
  next_window_open: string | null;
  batches: { index: number; canary: boolean; nodes: { hostname: string; state: string; direction: string; last_error: string | null }[] }[];
}

// awaiting_decision stops the watch too: nothing moves until a human decides, and a script
// waiting on `watch` must learn that instead of hanging.
const FINAL = new Set<string>([...TERMINAL_ROLLOUT_STATUSES, 'awaiting_decision']);
const TERMINAL_TASK = new Set(['done', 'failed', 'rolled_back', 'skipped']);
const IN_FLIGHT = new Set(['staging', 'cordoned', 'draining', 'pre_node_hooks', 'installing', 'verifying', 'post_node_hooks']);

export interface WatchOptions {
  tty: boolean;
  intervalMs?: number;
  json?: boolean;
  /** Waits out an operator restart (notices on stderr); without it the first failed read ends the watch. */
  reconnect?: Reconnector;
}

/**
 * Follows a rollout until it ends: a progress bar per batch and a line per node in flight on a
 * terminal, plain lines for each change otherwise. Resolves with the final status. The rollout
 * runs on the operator, not here: when the operator restarts, the watch reconnects and goes on
 * from the rollout's current state (every poll reads all of it, so nothing is lost meanwhile).
 */
export async function watchRollout(client: ApiClient, id: string, options: WatchOptions): Promise<string> {
  const interval = options.intervalMs ?? 500;
  const reconnect = options.reconnect ?? new Reconnector({ timeoutMs: 0, timeoutText: '0' });
  const read = () => reconnect.call(() => client.get<WatchedRollout>(`/api/v1/rollouts/${encodeURIComponent(id)}`));
  let rollout = await read();
  if (options.tty && !options.json) return watchWithBars(read, rollout, interval, reconnect);
  const seen = new Map<string, string>();
  let lastStatus = '';
  for (;;) {
    if (rollout.status !== lastStatus) {
      if (!options.json) process.stdout.write(`${new Date().toISOString()} rollout ${rollout.name}: ${rollout.status}${rollout.next_window_open ? ` (window opens ${rollout.next_window_open})` : ''}\n`);
      lastStatus = rollout.status;
    }
    for (const batch of rollout.batches) {
      for (const node of batch.nodes) {
        const key = `${node.hostname}`;
        const line = `${node.state}${node.direction === 'rollback' ? ' (rollback)' : ''}${node.last_error ? ` — ${node.last_error}` : ''}`;
        if (seen.get(key) !== line && (seen.has(key) || node.state !== 'pending')) {
          if (!options.json) process.stdout.write(`${new Date().toISOString()}   batch ${batch.index}${batch.canary ? ' (canary)' : ''} ${node.hostname}: ${line}\n`);
        }
        seen.set(key, line);
      }
    }
    if (FINAL.has(rollout.status)) return rollout.status;
    await new Promise((r) => setTimeout(r, interval));
    rollout = await read();
  }
}

async function watchWithBars(read: () => Promise<WatchedRollout>, first: WatchedRollout, interval: number, reconnect: Reconnector): Promise<string> {
  const bars = new cliProgress.MultiBar(
    { format: ' {label} [{bar}] {value}/{total} {info}', barCompleteChar: '█', barIncompleteChar: '░', hideCursor: true, clearOnComplete: false, stopOnComplete: false },
    cliProgress.Presets.shades_classic,
  );
  const status = bars.create(0, 0, { label: `${first.name}`.padEnd(18), info: first.status }, { format: ' {label} {info}' });
  const batchBars = first.batches.map((b) =>
    bars.create(b.nodes.length, 0, { label: `batch ${b.index}${b.canary ? ' canary' : ''}`.padEnd(18), info: '' }),
  );
  const nodeLines = new Map<string, cliProgress.SingleBar>();
  // Notices go above the bars instead of through them.
  reconnect.notice = (line) => bars.log(`${line}\n`);
  let rollout = first;
  try {
    for (;;) {
      status.update(0, { info: `${rollout.status}${rollout.next_window_open ? ` — window opens ${rollout.next_window_open}` : ''}` });
      rollout.batches.forEach((b, i) => {
        const done = b.nodes.filter((n) => TERMINAL_TASK.has(n.state)).length;
        const failed = b.nodes.filter((n) => n.state === 'failed').length;
        batchBars[i]?.update(done, { info: failed > 0 ? `${failed} failed` : '' });
      });
      const inFlight = rollout.batches.flatMap((b) => b.nodes.filter((n) => IN_FLIGHT.has(n.state)));
      for (const [host, line] of nodeLines) {
        if (!inFlight.some((n) => n.hostname === host)) {
          bars.remove(line);
          nodeLines.delete(host);
        }
      }
      for (const node of inFlight) {
        const info = `${node.state}${node.direction === 'rollback' ? ' (rollback)' : ''}`;
        const line = nodeLines.get(node.hostname) ?? bars.create(0, 0, { label: `  ${node.hostname}`.padEnd(18), info }, { format: ' {label} {info}' });
        nodeLines.set(node.hostname, line);
        line.update(0, { info });
      }
      if (FINAL.has(rollout.status)) return rollout.status;
      await new Promise((r) => setTimeout(r, interval));
      rollout = await read();
    }
  } finally {
    bars.stop();
  }
}
