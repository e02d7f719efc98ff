// An artifact is addressed by its id or as `component@version` (`node-agent@2.0.0`): the
// second form is what people type and what `node show` prints.
import { isSemver } from './semver.js';

export interface ComponentVersion {
  component: string;
  version: string;
}

/** `component@version` split in two, or undefined when `ref` is not of that form (an id). */
export function parseComponentRef(ref: string): ComponentVersion | undefined {
  const at = ref.lastIndexOf('@');
  if (at <= 0 || at === ref.length - 1) return undefined;
  const component = ref.slice(0, at);
  const version = ref.slice(at + 1);
  if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(component) || !isSemver(version)) return undefined;
  return { component, version };
}
