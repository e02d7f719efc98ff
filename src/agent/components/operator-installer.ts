import { existsSync } from 'node:fs';
import type { Installer } from './installers.js';
import type { OperatorReplica } from './operator-replica.js';

/** Installs of `operator` refused by an agent that runs no operator replica. */
export const NO_OPERATOR_REPLICA_REASON =
  'this agent runs no operator replica: start it on a control-plane node with --operator-listen HOST:PORT (and --operator-env-file for DATABASE_URL)';

export interface OperatorInstallerOptions {
  replica: OperatorReplica;
  /** How long a new version has to become ready and registered (default 60 s). */
  deadlineMs: number;
  /** True once the agent is stopping: an assessment in progress is left for the next process. */
  stopping: () => boolean;
}

/**
 * `operator`: the artifact is an operator build (drydock.mjs, optional operator.env) and
 * installing it replaces the replica this node runs (DESIGN.md §11). Blue-green (the desired
 * state keeps the previous version): the new one starts beside the old one on the second
 * address, and the old one keeps running until it is retired or takes over again. Otherwise the old replica stops
 * first — it leaves the registry and hands the lease over if it led — then `current` switches
 * and the new one starts; it is proven when its /health says ready, registered and at the new
 * version before the deadline. Otherwise `current` returns to the previous version (its own env
 * file with it, since each version dir holds its own) and that replica is started again.
 */
export function operatorInstaller(options: OperatorInstallerOptions): Installer {
  const { replica } = options;
  return {
    async place(ctx, downloaded) {
      // Blue-green, back: the version's directory is in use by its replica, still running; the
      // verified download is the same build, so the directory stays as it is.
      if (replica.previousVersion === ctx.version && existsSync(ctx.layout.versionDir(ctx.component, ctx.version))) return;
      await ctx.layout.unpack(ctx.component, ctx.version, downloaded);
    },

    async activate(ctx) {
      try {
        // Blue-green, back: the version asked for still runs beside the current one.
        if (replica.previousVersion === ctx.version) await replica.swapBack();
        else if (ctx.keepPrevious) await replica.startBeside(ctx.version);
        else await replica.switchTo(ctx.version);
      } catch (error) {
        return `operator ${ctx.version} could not be started: ${(error as Error).message}`;
      }
      return undefined;
    },

    async assess(ctx) {
      // After an agent restart mid-assessment, the replica may have died or never started.
      if (replica.runningVersion !== ctx.version) {
        if (ctx.layout.currentVersion(ctx.component) !== ctx.version) return `operator ${ctx.version} is not the current version on this node`;
        await replica.ensureRunning().catch(() => {});
      }
      const failed = await replica.waitProven(ctx.version, Date.now() + options.deadlineMs, options.stopping);
      return failed ? `operator ${ctx.version} was not ready and registered within ${Math.round(options.deadlineMs / 1000)} s: ${failed}` : undefined;
    },

    async revert(ctx) {
      try {
        // A blue-green install keeps the previous replica running: it takes over again untouched.
        if (ctx.previous !== null && replica.previousVersion === ctx.previous) await replica.swapBack();
        else await replica.switchTo(ctx.previous);
      } catch (error) {
        return `operator ${ctx.previous} could not be started again: ${(error as Error).message}`;
      }
      return undefined;
    },
  };
}
