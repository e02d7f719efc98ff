// Semantic versions (semver.org 2.0.0), the one place the project reads them. Parsing, ordering
// and ranges come from the `semver` package (STYLE.md 13: not written by hand); this module only
// narrows it to what drydock accepts and gives callers plain data.
import semver from 'semver';

/** A parsed version as plain data. Build metadata is kept but never ordered on, as the spec says. */
export interface SemVer {
  major: number;
  minor: number;
  patch: number;
  prerelease: (string | number)[];
  build: string[];
}

/**
 * The parsed version, or undefined when `text` is not a semantic version like 1.2.3 or 2.0.0-rc.1.
 * Stricter than `semver.parse`: it also accepts "v1.2.3" and surrounding spaces, but a version is
 * used as a directory name and compared as text elsewhere, so only the canonical spelling passes.
 */
export function parseSemver(text: string): SemVer | undefined {
  const parsed = semver.parse(text);
  if (!parsed) return undefined;
  const build = [...parsed.build];
  if (parsed.version + (build.length > 0 ? `+${build.join('.')}` : '') !== text) return undefined;
  return { major: parsed.major, minor: parsed.minor, patch: parsed.patch, prerelease: [...parsed.prerelease], build };
}

export function isSemver(text: string): boolean {
  return parseSemver(text) !== undefined;
}

function format(version: SemVer): string {
  return `${version.major}.${version.minor}.${version.patch}${version.prerelease.length > 0 ? `-${version.prerelease.join('.')}` : ''}`;
}

/** -1, 0 or 1. A pre-release sorts before its release: 1.0.0-rc.1 < 1.0.0. */
export function compareSemver(a: SemVer, b: SemVer): number {
  return semver.compare(format(a), format(b));
}

/** Compares two version strings; throws on text that is not a semantic version. */
export function compareVersions(a: string, b: string): number {
  const x = parseSemver(a);
  const y = parseSemver(b);
  if (!x || !y) throw new Error(`not a semantic version: ${x ? b : a}`);
  return compareSemver(x, y);
}

/** `range` is a semver range like ">=2.0.0" or "^1.4". */
export function isValidRange(range: string): boolean {
  return semver.validRange(range) !== null;
}

/** `version` is in `range`; a version that is not semver is in no range. */
export function satisfiesRange(version: string, range: string): boolean {
  return semver.satisfies(version, range);
}
