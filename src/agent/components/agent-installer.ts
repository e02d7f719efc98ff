import { copyFileSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { clearSwitch, hasBundle, readSwitch, writeSwitch } from '../supervisor/switch-record.js';
import type { Installer } from './installers.js';

export interface AgentInstallerOptions {
  dataDir: string;
  /** The version dir this process was started from (the supervisor says which). */
  runningDir: string;
  /** DRYDOCK_VERSION baked into this process's bundle. */
  runningVersion: string;
  /** Resolves true once the operator acknowledged a heartbeat of this process, false at `untilMs`. */
  heartbeatAcknowledged(untilMs: number): Promise<boolean>;
  /** Ends this process so that the supervisor starts `current` (exit code EXIT_RESTART). */
  restart(reason: string): void;
  /** Used when switch.json carries no deadline yet (the supervisor's --deadline). */
  deadlineMs: number;
}

/**
 * `agent`: the artifact is the single-file bundle. Installing it hands the node over to a new
 * agent process through the supervisor (see supervisor/switch-record.ts for the protocol):
 * the old process switches `current` and exits, the new one proves itself by a heartbeat the
 * operator acknowledges. Only a supervised agent gets this installer.
 */
export function agentInstaller(options: AgentInstallerOptions): Installer {
  const { dataDir } = options;
  return {
    async place(ctx, downloaded) {
      const target = ctx.layout.versionDir(ctx.component, ctx.version);
      const staging = join(ctx.layout.root, ctx.component, `.staging-${ctx.version}-${process.pid}`);
      ctx.layout.removeStaging(ctx.component, ctx.version);
      mkdirSync(staging, { recursive: true });
      copyFileSync(downloaded, join(staging, 'drydock.mjs'));
      rmSync(target, { recursive: true, force: true });
      renameSync(staging, target);
    },

    async activate(ctx) {
      writeSwitch(dataDir, { version: ctx.version, previous: ctx.layout.currentVersion(ctx.component) ?? options.runningDir, state: 'pending' });
      return undefined;
    },

    async assess(ctx) {
      const pending = readSwitch(dataDir);
      if (pending?.version !== ctx.version) return `the pending switch to ${ctx.version} was lost; staying on ${options.runningDir}`;
      if (pending.state === 'reverted') return pending.reason ?? `the supervisor returned to ${pending.previous ?? 'the previous version'}`;
      if (options.runningDir !== ctx.version) {
        // The old agent: hand over. `assessing` is journaled already, so whatever happens from
        // here the next agent process assesses (or the supervisor reverts).
        ctx.layout.switchCurrent(ctx.component, ctx.version);
        options.restart(`switching to agent ${ctx.version}`);
        return new Promise<never>(() => {}); // the process is ending
      }
      if (options.runningVersion !== ctx.version) {
        return `the bundle published as ${ctx.version} is drydock ${options.runningVersion}`;
      }
      if (pending.state === 'proven') return undefined;
      const until = pending.deadline_at ? Date.parse(pending.deadline_at) : Date.now() + options.deadlineMs;
      if (!(await options.heartbeatAcknowledged(until))) {
        return `agent ${ctx.version} was not proven healthy within its deadline (no heartbeat acknowledged by the operator)`;
      }
      // `proven` before the journal says done: from here on the supervisor never reverts.
      writeSwitch(dataDir, { ...pending, state: 'proven' });
      return undefined;
    },

    async revert(ctx) {
      const pending = readSwitch(dataDir);
      const back = pending?.version === ctx.version ? pending.previous : ctx.previous;
      if (!hasBundle(dataDir, back)) return `cannot return to agent ${back ?? '(none)'}: its bundle is not on this node`;
      ctx.layout.switchCurrent(ctx.component, back);
      if (pending?.version === ctx.version && pending.state !== 'reverted') writeSwitch(dataDir, { ...pending, state: 'reverted' });
      return undefined;
    },

    async settled(ctx) {
      if (readSwitch(dataDir)?.version === ctx.version) clearSwitch(dataDir);
      const current = ctx.layout.currentVersion(ctx.component);
      // A new agent that reverted itself hands the node back to the previous one.
      if (current !== null && current !== options.runningDir) options.restart(`returning to agent ${current}`);
    },
  };
}

/** Installs of the agent itself refused by an agent nobody supervises. */
export const UNSUPERVISED_REASON =
  'agent self-upgrade needs the supervisor: this agent runs unsupervised; start it as `drydock supervisor --data-dir DIR -- agent ...`';
