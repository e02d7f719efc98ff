// Which old version directories of a component an agent removes once an install has settled
// (issue 12, item 6). Pure: the agent lists `<data-dir>/components/<name>/` and passes it in.
import { compareSemver, parseSemver } from './semver.js';

/** Versions of each component a node keeps on disk by default: the current one and the one before it. */
export const DEFAULT_KEEP_VERSIONS = 2;

export interface PruneInput {
  /** Version directories on disk (no `current` link, no staging or hidden entries). */
  onDisk: readonly string[];
  /** The version the node runs now (what `current` points at); never pruned. */
  current: string;
  /**
   * Versions a rollback could return to, never pruned whatever `keep` says: the version this
   * install replaced (the journal's previous_version) and the desired state's previous_version
   * (what the rollout would send the node back to). null / undefined entries are ignored.
   */
  protect: readonly (string | null | undefined)[];
  /** Most versions to keep in all, counting current and the protected ones (at least 1). */
  keep: number;
}

export interface PruneChoice {
  /** Version directories to remove, oldest first. */
  prune: string[];
  /** Version directories that stay, newest first. */
  keep: string[];
}

/**
 * Newest first by semver; a directory whose name is not a semantic version (which no artifact
 * version check lets through) sorts after every semver one, by name, so it goes first.
 */
function newestFirst(a: string, b: string): number {
  const x = parseSemver(a);
  const y = parseSemver(b);
  if (x && y) return compareSemver(y, x);
  if (x) return -1;
  if (y) return 1;
  return a < b ? 1 : a > b ? -1 : 0;
}

/**
 * Keeps current and every protected version that is on disk, then the newest others until
 * `keep` versions stay; the rest are pruned. With the default (2) a node that went 1.0.0 → 2.0.0
 * keeps exactly those two, and the rollback to 1.0.0 never needs a download.
 */
export function chooseVersionsToPrune(input: PruneInput): PruneChoice {
  const onDisk = [...new Set(input.onDisk)].sort(newestFirst);
  const kept = new Set<string>([input.current]);
  for (const v of input.protect) if (v !== null && v !== undefined && onDisk.includes(v)) kept.add(v);
  const limit = Math.max(1, Math.floor(input.keep));
  for (const v of onDisk) {
    if (kept.size >= limit) break;
    kept.add(v);
  }
  return {
    prune: onDisk.filter((v) => !kept.has(v)).reverse(),
    keep: onDisk.filter((v) => kept.has(v)),
  };
}
