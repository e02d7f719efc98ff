import { compareSemver, parseSemver } from '../semver.js';

/**
 * `version` sorts before `than`. Versions that are not semantic versions cannot be ordered and
 * are never older, the same rule the agent applies before it refuses a downgrade
 * (install-plan.ts), so the operator and the agent agree on what a downgrade is.
 */
export function isOlderVersion(version: string, than: string): boolean {
  const a = parseSemver(version);
  const b = parseSemver(than);
  return a !== undefined && b !== undefined && compareSemver(a, b) < 0;
}
