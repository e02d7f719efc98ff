import { accessSync, constants, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ArtifactKind } from '../../domain/protocol.js';
import type { ComponentLayout } from './layout.js';
import { describeFailure, runStep } from './run-step.js';

export interface InstallContext {
  layout: ComponentLayout;
  component: string;
  version: string;
  previous: string | null;
  nodeId: string;
  /** Deadline of a `health` check (default 30 s). */
  healthDeadlineMs: number;
  /** Deadline of a script's `install` or `rollback` (default 10 min). */
  scriptDeadlineMs: number;
  /** Blue-green: the running version keeps running beside the new one (only the operator installer does this). */
  keepPrevious: boolean;
  /** The artifact's digest (what a pre-staged image is matched by). */
  sha256?: string;
}

/**
 * What one artifact kind does once its archive is unpacked. Each method returns the reason
 * it failed, or undefined. `revert` must be safe to run twice (a crash may interrupt it).
 */
export interface Installer {
  /** Puts the downloaded artifact into the version dir (default: unpack the .tar.gz). */
  place?(ctx: InstallContext, downloaded: string): Promise<void>;
  /**
   * The artifact is placed already (pre-staged, DESIGN.md §12): the install goes straight to
   * `activate`, without downloading it again. Absent: never.
   */
  isStaged?(ctx: InstallContext): boolean;
  activate(ctx: InstallContext): Promise<string | undefined>;
  assess(ctx: InstallContext): Promise<string | undefined>;
  revert(ctx: InstallContext): Promise<string | undefined>;
  /** Runs after `done` or `reverted` is journaled (a crash before it is harmless: it is cleanup). */
  settled?(ctx: InstallContext): Promise<void>;
}

function executable(ctx: InstallContext, name: string): string | undefined {
  const path = join(ctx.layout.versionDir(ctx.component, ctx.version), name);
  if (!existsSync(path)) return undefined;
  try {
    accessSync(path, constants.X_OK);
  } catch {
    return undefined;
  }
  return path;
}

async function runNamed(ctx: InstallContext, name: string, deadlineMs: number): Promise<string | undefined> {
  const path = executable(ctx, name);
  if (!path) return undefined;
  const result = await runStep(path, {
    cwd: ctx.layout.versionDir(ctx.component, ctx.version),
    deadlineMs,
    logFile: ctx.layout.logFile(ctx.component, ctx.version),
    pidFile: ctx.layout.stepPidFile(ctx.component),
    env: {
      DRYDOCK_COMPONENT: ctx.component,
      DRYDOCK_VERSION: ctx.version,
      DRYDOCK_PREVIOUS_VERSION: ctx.previous ?? '',
      DRYDOCK_NODE_ID: ctx.nodeId,
      DRYDOCK_COMPONENT_DIR: ctx.layout.versionDir(ctx.component, ctx.version),
    },
  });
  return result.ok ? undefined : describeFailure(name, result);
}

/** `binary`: the version dir is the install; `current` switches to it, an optional `health` proves it. */
export const binaryInstaller: Installer = {
  async activate(ctx) {
    ctx.layout.switchCurrent(ctx.component, ctx.version);
    return undefined;
  },
  assess: (ctx) => runNamed(ctx, 'health', ctx.healthDeadlineMs),
  async revert(ctx) {
    ctx.layout.switchCurrent(ctx.component, ctx.previous);
    return undefined;
  },
};

/** `script`: the archive's `install` does the work, `health` proves it, optional `rollback` undoes it. */
export const scriptInstaller: Installer = {
  async activate(ctx) {
    if (!executable(ctx, 'install')) return 'script artifact has no executable `install`';
    const failed = await runNamed(ctx, 'install', ctx.scriptDeadlineMs);
    if (failed) return failed;
    ctx.layout.switchCurrent(ctx.component, ctx.version);
    return undefined;
  },
  assess: (ctx) => runNamed(ctx, 'health', ctx.healthDeadlineMs),
  async revert(ctx) {
    // The new version's own `rollback` knows how to undo what its `install` did.
    const failed = await runNamed(ctx, 'rollback', ctx.scriptDeadlineMs);
    ctx.layout.switchCurrent(ctx.component, ctx.previous);
    return failed;
  },
};

/** The installer of a file-based kind; `agent` is made per process (agent-installer.ts), supervised only. */
export function installerFor(kind: ArtifactKind): Installer | undefined {
  if (kind === 'binary') return binaryInstaller;
  if (kind === 'script') return scriptInstaller;
  return undefined;
}
