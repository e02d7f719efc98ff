import { isValidRange, satisfiesRange } from '../semver.js';

// Routes validate ranges through here, next to the rules that use them.
export { isValidRange };

/** "component versions in `range` require `requires_component` in `requires_range`". */
export interface CompatRule {
  component: string;
  range: string;
  requires_component: string;
  requires_range: string;
}

/**
 * Rules the fleet would break if `component` moved to `version`, given every version of every
 * component running now. Both directions count: the new version may need something newer,
 * and something already running may need this component to stay in a range.
 */
export function compatViolations(
  rules: readonly CompatRule[],
  component: string,
  version: string,
  running: ReadonlyMap<string, readonly string[]>,
): { rule: CompatRule; offending: string[] }[] {
  const violations: { rule: CompatRule; offending: string[] }[] = [];
  for (const rule of rules) {
    if (rule.component === component && satisfiesRange(version, rule.range)) {
      const offending = (running.get(rule.requires_component) ?? []).filter((v) => !satisfiesRange(v, rule.requires_range));
      if (offending.length > 0) violations.push({ rule, offending: offending.map((v) => `${rule.requires_component} ${v}`) });
    }
    if (rule.requires_component === component && !satisfiesRange(version, rule.requires_range)) {
      const offending = (running.get(rule.component) ?? []).filter((v) => satisfiesRange(v, rule.range));
      if (offending.length > 0) violations.push({ rule, offending: offending.map((v) => `${rule.component} ${v}`) });
    }
  }
  return violations;
}
