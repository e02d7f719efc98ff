import { existsSync, lstatSync, mkdirSync, readdirSync, readlinkSync, renameSync, rmSync, symlinkSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { x as untar } from 'tar';

/**
 * Where components live on disk, under `<data-dir>/components/`:
 * `<name>/<version>/` holds an unpacked artifact, `<name>/current` links to the running one,
 * `.downloads/` holds artifacts being fetched, `logs/` the output of installer steps and
 * `steps/` the process group of the step running now.
 */
export class ComponentLayout {
  constructor(readonly root: string) {}

  get journalFile(): string {
    return join(this.root, 'journal.json');
  }

  versionDir(component: string, version: string): string {
    return join(this.root, component, version);
  }

  currentLink(component: string): string {
    return join(this.root, component, 'current');
  }

  downloadFile(component: string, version: string): string {
    return join(this.root, '.downloads', `${component}-${version}.tar.gz.part`);
  }

  logFile(component: string, version: string): string {
    return join(this.root, 'logs', `${component}-${version}.log`);
  }

  /** While an installer step (`install`, `health`, `rollback`) of `component` runs: its process group. */
  stepPidFile(component: string): string {
    return join(this.root, 'steps', `${component}.pid`);
  }

  /** Pid files of steps that may still run (left by a killed agent when read at start). */
  stepPidFiles(): string[] {
    const dir = join(this.root, 'steps');
    if (!existsSync(dir)) return [];
    return readdirSync(dir)
      .filter((entry) => entry.endsWith('.pid'))
      .map((entry) => join(dir, entry));
  }

  /** The version `current` points at, or null when there is no link. */
  currentVersion(component: string): string | null {
    try {
      return readlinkSync(this.currentLink(component));
    } catch {
      return null;
    }
  }

  /**
   * Points `current` at `version` (null removes it) atomically: a new link is made beside it
   * and renamed over, so a reader sees the old target or the new one, never no link. The
   * target is relative, so the data dir can move.
   */
  switchCurrent(component: string, version: string | null): void {
    const link = this.currentLink(component);
    if (version === null) {
      if (this.currentVersion(component) !== null) unlinkSync(link);
      return;
    }
    mkdirSync(join(this.root, component), { recursive: true });
    const tmp = `${link}.${process.pid}.tmp`;
    rmSync(tmp, { force: true });
    symlinkSync(version, tmp);
    renameSync(tmp, link);
  }

  /**
   * Unpacks a .tar.gz into `<name>/<version>/` through a staging dir, so the version dir
   * either holds the whole archive or does not exist. tar refuses absolute paths and `..`.
   */
  async unpack(component: string, version: string, archive: string): Promise<void> {
    const target = this.versionDir(component, version);
    const staging = join(this.root, component, `.staging-${version}-${process.pid}`);
    this.removeStaging(component, version);
    mkdirSync(staging, { recursive: true });
    try {
      await untar({ file: archive, cwd: staging, strict: true });
    } catch (error) {
      rmSync(staging, { recursive: true, force: true });
      throw error;
    }
    rmSync(target, { recursive: true, force: true });
    renameSync(staging, target);
  }

  /** Unpacked versions of `component` on disk: its directories, without `current`, staging or hidden entries. */
  versionsOnDisk(component: string): string[] {
    const dir = join(this.root, component);
    if (!existsSync(dir)) return [];
    return readdirSync(dir).filter((entry) => entry !== 'current' && !entry.startsWith('.') && lstatSync(join(dir, entry)).isDirectory());
  }

  /** Removes one unpacked version (never the one `current` points at: the caller checked). */
  removeVersion(component: string, version: string): void {
    rmSync(this.versionDir(component, version), { recursive: true, force: true });
  }

  /** Drops staging dirs of `version` that a killed process left behind. */
  removeStaging(component: string, version: string): void {
    const dir = join(this.root, component);
    if (!existsSync(dir)) return;
    for (const entry of readdirSync(dir)) {
      if (entry.startsWith(`.staging-${version}-`)) rmSync(join(dir, entry), { recursive: true, force: true });
    }
  }
}
