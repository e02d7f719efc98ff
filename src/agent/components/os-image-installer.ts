import { basename } from 'node:path';
import type { Logger } from 'pino';
import { arm, assessStep, checked, clearFallback, disarm, isStaged, requestReboot, stage } from '../../domain/boot-slots.js';
import type { Installer } from './installers.js';
import type { OsImageSlots } from './os-image-slots.js';
import { describeFailure, runStep } from './run-step.js';

export interface OsImageInstallerOptions {
  slots: OsImageSlots;
  /** Boots a new slot gets before the node falls back (`--boot-tries`, default 3). */
  bootTries: number;
  /**
   * Reboots the node (`--reboot-command`). Resolves with the reason when the command failed;
   * otherwise it does not resolve: the node (or, simulated, the agent process) is going down.
   */
  reboot(reason: string): Promise<string>;
  log: Logger;
}

/**
 * `os-image` (reboot: true): the image goes into the inactive A/B slot (pre-staged while the
 * node serves, or at the install), `activate` makes it the next boot with a try counter,
 * `assess` reboots into it and, on the boot after, runs its `required.d` checks: success
 * blesses the slot; a failure reboots it again while tries are left, then boots the previous
 * slot and the install is reverted with the reason. Every decision is domain/boot-slots.ts and
 * its state is written before the agent acts, so none of it needs the operator.
 */
export function osImageInstaller(options: OsImageInstallerOptions): Installer {
  const { slots, log } = options;

  const rebootNow = async (reason: string): Promise<string> => {
    slots.write(requestReboot(slots.read(), reason));
    log.warn({ reason }, 'rebooting');
    const failed = await options.reboot(reason);
    // The command failed: no reboot happened, the node still runs the active slot.
    const state = slots.read();
    slots.write({ ...state, reboot: null });
    return failed;
  };

  return {
    isStaged(ctx) {
      const state = slots.read();
      if (ctx.sha256 === undefined || !isStaged(state, { version: ctx.version, sha256: ctx.sha256 })) return false;
      const slot = state.active === 'a' ? 'b' : 'a';
      return slots.versionOnDisk(slot) === ctx.version;
    },

    async place(ctx, downloaded) {
      slots.removeStaging();
      const staged = stage(slots.read(), { version: ctx.version, sha256: ctx.sha256 ?? '' });
      if (!staged.ok) throw new Error(staged.reason);
      // Journaled first: a kill mid-write leaves a slot that says the new version but holds no
      // complete image, which `isStaged` (files) and the install's revert both handle.
      slots.write(staged.state);
      await slots.writeSlot(staged.slot, ctx.version, downloaded);
      log.info({ slot: staged.slot, version: ctx.version, image: basename(downloaded) }, 'os image staged into the inactive slot');
    },

    async activate(ctx) {
      const armed = arm(slots.read(), ctx.version, options.bootTries);
      if (!armed.ok) return armed.reason;
      slots.write(armed.state);
      return undefined;
    },

    async assess(ctx) {
      for (;;) {
        const state = slots.read();
        const step = assessStep(state, ctx.version);
        switch (step.kind) {
          case 'blessed':
            return undefined;
          case 'fell-back':
          case 'lost':
            return step.reason;
          case 'reboot': {
            const failed = await rebootNow(`booting ${ctx.version} from slot ${state.next}`);
            const back = disarm(slots.read());
            slots.write(back);
            return `reboot into ${ctx.version} failed: ${failed}`;
          }
          case 'check': {
            const failure = await runChecks(slots, state.active, ctx);
            const after = checked(slots.read(), failure === undefined ? { ok: true } : { ok: false, reason: failure });
            slots.write(after);
            if (failure === undefined) {
              log.info({ slot: state.active, version: ctx.version }, 'boot checks passed; slot blessed');
              return undefined;
            }
            log.warn({ slot: state.active, version: ctx.version, tries_left: after.tries_left, failure }, 'boot checks failed');
            const failed = await rebootNow(after.reboot?.reason ?? 'boot checks failed');
            // The reboot command itself failed: the node stays on this unproven slot; go back.
            return `${failure}; and the reboot failed: ${failed}`;
          }
        }
      }
    },

    async revert() {
      const state = slots.read();
      // Before its reboot: the node never left the active slot; after a fallback: it is back on it.
      slots.write(clearFallback(disarm(state)));
      const now = slots.read();
      if (now.active !== now.next || now.reboot !== null) return `the node is still set to boot slot ${now.next}`;
      return undefined;
    },
  };

  async function runChecks(s: OsImageSlots, slot: 'a' | 'b', ctx: { component: string; version: string; nodeId: string; healthDeadlineMs: number; layout: { logFile(c: string, v: string): string; stepPidFile(c: string): string } }): Promise<string | undefined> {
    for (const check of s.requiredChecks(slot)) {
      const result = await runStep(check, {
        cwd: s.rootDir(slot),
        deadlineMs: ctx.healthDeadlineMs,
        logFile: ctx.layout.logFile(ctx.component, ctx.version),
        pidFile: ctx.layout.stepPidFile(ctx.component),
        env: { DRYDOCK_COMPONENT: ctx.component, DRYDOCK_VERSION: ctx.version, DRYDOCK_NODE_ID: ctx.nodeId, DRYDOCK_SLOT: slot, DRYDOCK_SLOT_DIR: s.rootDir(slot) },
      });
      if (!result.ok) return describeFailure(`required.d/${basename(check)}`, result);
    }
    return undefined;
  }
}
