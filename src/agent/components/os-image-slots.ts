import { accessSync, closeSync, constants, copyFileSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { x as untar } from 'tar';
import { type BootSlotsState, initialBootSlots, type SlotName } from '../../domain/boot-slots.js';

/**
 * The node's A/B slots of its `os-image` component (DESIGN.md §12), under `<data-dir>/slots/`:
 * `a/` and `b/` each hold the image file as published (`image`) and its unpacked content
 * (`root/`: the `version` file and the `required.d/` checks), and `state.json` the slot state of
 * domain/boot-slots.ts. The state is written (fsynced, then renamed) before the agent acts on it,
 * so a kill -9 anywhere leaves a state the next process continues from.
 *
 * The image format: a .tar.gz holding a `version` file (the artifact's version) and optionally
 * `required.d/*` executables, the boot checks that must exit 0 before the slot is blessed.
 * One slot pair per node: a node runs one `os-image` component.
 */
export class OsImageSlots {
  readonly root: string;

  constructor(dataDir: string) {
    this.root = join(dataDir, 'slots');
  }

  get stateFile(): string {
    return join(this.root, 'state.json');
  }

  /** Whether the node ever staged an image (only then do heartbeats report slots). */
  exists(): boolean {
    return existsSync(this.stateFile);
  }

  read(): BootSlotsState {
    try {
      return { ...initialBootSlots(), ...(JSON.parse(readFileSync(this.stateFile, 'utf8')) as Partial<BootSlotsState>) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return initialBootSlots();
      throw new Error(`boot slot state ${this.stateFile} is unreadable (${(error as Error).message})`);
    }
  }

  write(state: BootSlotsState): BootSlotsState {
    mkdirSync(this.root, { recursive: true });
    const tmp = `${this.stateFile}.${process.pid}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, JSON.stringify(state, null, 2));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.stateFile);
    return state;
  }

  slotDir(slot: SlotName): string {
    return join(this.root, slot);
  }

  /** The unpacked image of a slot (its `version` and `required.d/`). */
  rootDir(slot: SlotName): string {
    return join(this.slotDir(slot), 'root');
  }

  /** The version the slot's files say, or null when the slot holds no complete image. */
  versionOnDisk(slot: SlotName): string | null {
    try {
      return readFileSync(join(this.rootDir(slot), 'version'), 'utf8').trim() || null;
    } catch {
      return null;
    }
  }

  /**
   * Writes `image` into `slot` through a staging dir renamed into place, so the slot holds the
   * whole image or none. Refuses an image whose `version` file does not say `version`.
   */
  async writeSlot(slot: SlotName, version: string, image: string): Promise<void> {
    const staging = join(this.root, `.staging-${slot}-${process.pid}`);
    rmSync(staging, { recursive: true, force: true });
    mkdirSync(join(staging, 'root'), { recursive: true });
    try {
      await untar({ file: image, cwd: join(staging, 'root'), strict: true });
      let says: string;
      try {
        says = readFileSync(join(staging, 'root', 'version'), 'utf8').trim();
      } catch {
        throw new Error('the os image has no `version` file (an os-image is a .tar.gz holding `version` and `required.d/`)');
      }
      if (says !== version) throw new Error(`the os image published as ${version} says it is ${says}`);
      copyFileSync(image, join(staging, 'image'));
    } catch (error) {
      rmSync(staging, { recursive: true, force: true });
      throw error;
    }
    rmSync(this.slotDir(slot), { recursive: true, force: true });
    renameSync(staging, this.slotDir(slot));
  }

  /** Drops staging dirs a killed process left behind. */
  removeStaging(): void {
    if (!existsSync(this.root)) return;
    for (const entry of readdirSync(this.root)) {
      if (entry.startsWith('.staging-')) rmSync(join(this.root, entry), { recursive: true, force: true });
    }
  }

  /** The slot's boot checks, in name order (executables in `required.d/`). */
  requiredChecks(slot: SlotName): string[] {
    const dir = join(this.rootDir(slot), 'required.d');
    if (!existsSync(dir)) return [];
    return readdirSync(dir)
      .sort()
      .map((name) => join(dir, name))
      .filter((path) => {
        if (!statSync(path).isFile()) return false;
        try {
          accessSync(path, constants.X_OK);
          return true;
        } catch {
          return false;
        }
      });
  }
}
