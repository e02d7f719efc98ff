import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { parseListen } from '../listen-address.js';
import { endProcesses, processesMentioning } from './leftovers.js';
import type { LocalFleet } from './local-fleet.js';

// What every `drydock demo` scenario on a LocalFleet shares: the port check before anything
// starts, the specs it writes for the CLI, and the stop that leaves no process behind.

/** Fails early and clearly when the operator's address is taken (a second demo, another service). */
export async function assertPortFree(listen: string): Promise<void> {
  const { host, port } = parseListen(listen, 8080);
  await new Promise<void>((resolvePromise, reject) => {
    const probe = createServer();
    probe.once('error', () => reject(new Error(`${host}:${port} is in use; pick another address with --listen (npm start -- --listen 127.0.0.1:18080)`)));
    probe.listen(port, host, () => probe.close(() => resolvePromise()));
  });
}

/** A rollout spec as a YAML file in the run dir (`<dir>/<name>.yaml`), for `drydock rollout plan|create -f`. */
export function writeSpec(dir: string, name: string, body: Record<string, unknown>): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, stringify({ name, ...body }));
  return file;
}

/**
 * The demo's stop, once however often it is asked for: `before` (traffic, timers), the fleet
 * (edge, agents, instances, operator), then whatever process still names the run dir `dir` —
 * every process a demo starts does (data dirs, QEMU's kernel and socket), so this finds what
 * escaped the recorded PIDs. Resolves to the PIDs still running after all that (none, normally).
 * SIGINT and SIGTERM stop the demo the same way and exit 130.
 */
export function demoStopper(
  fleet: LocalFleet,
  dir: string,
  say: (line?: string) => void,
  before: () => Promise<void> = async () => {},
  what = 'edge, agents, instances, operator',
): () => Promise<number[]> {
  let stopping: Promise<number[]> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      await before();
      say(`\nstopping the demo fleet (${what})...`);
      await fleet.stop();
      const left = processesMentioning(dir);
      if (left.length > 0) {
        say(`! ${left.length} demo process(es) outlived the stop (pids ${left.join(', ')}); ending them`);
        await endProcesses(left);
      }
      const stillThere = processesMentioning(dir);
      say(stillThere.length === 0 ? 'all demo processes stopped.' : `! demo processes still running after the stop: pids ${stillThere.join(', ')}`);
      return stillThere;
    })();
    return stopping;
  };
  const onSignal = () => void stop().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return stop;
}

/**
 * The end of a demo run: the report written where `--report` asked, and with `--exit` every demo
 * process stopped (an error naming any still running). True when the demo ended here; false when
 * the fleet keeps running for the person to try things.
 */
export async function finishDemo(
  report: unknown,
  options: { reportFile?: string | undefined; exit?: boolean | undefined },
  shutdown: () => Promise<number[]>,
  dir: string,
  say: (line: string) => void,
): Promise<boolean> {
  if (options.reportFile) {
    writeFileSync(options.reportFile, `${JSON.stringify(report, null, 2)}\n`);
    say(`report written to ${options.reportFile}`);
  }
  if (!options.exit) return false;
  const left = await shutdown();
  if (left.length > 0) throw new Error(`demo processes still running after the stop: pids ${left.join(', ')}; see ${dir}`);
  return true;
}

