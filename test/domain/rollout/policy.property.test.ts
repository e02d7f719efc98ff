import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Policy, policyCovers, strengthenSpec } from '../../../src/domain/rollout/policy.js';
import { type RolloutSpec, WEEKDAYS } from '../../../src/domain/rollout/spec.js';
import { isWithinWindow, type MaintenanceWindow } from '../../../src/domain/rollout/window.js';
import { spec as baseSpec } from './fixtures.js';

// Few distinct clock times and zones, so windows often contain each other and the merge is
// exercised on both its success and refusal paths.
const clock = fc.tuple(fc.constantFrom(0, 1, 2, 3, 4, 6, 12, 22, 23), fc.constantFrom(0, 30)).map(([h, m]) => `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}`);
const windowArb: fc.Arbitrary<MaintenanceWindow> = fc.record({
  days: fc.subarray([...WEEKDAYS], { minLength: 1 }),
  start: clock,
  end: clock,
  timezone: fc.constantFrom('UTC', 'UTC', 'UTC', 'Europe/Berlin'),
});
const policyArb: fc.Arbitrary<Policy> = fc.record({
  name: fc.constantFrom('a', 'b', 'c', 'd'),
  match: fc.oneof(
    fc.record({ component: fc.constantFrom('web', 'db') }),
    fc.record({ selector: fc.record({ regions: fc.constant(['us-east']) }) }),
    fc.record({ component: fc.constantFrom('web', 'db'), selector: fc.record({ role: fc.constantFrom('worker' as const, 'control-plane' as const) }) }),
  ),
  approval: fc.option(fc.record({ required: fc.boolean(), distinctApprover: fc.boolean() }), { nil: undefined }),
  windows: fc.option(fc.array(windowArb, { minLength: 1, maxLength: 3 }), { nil: undefined }),
}).map((p) => Object.fromEntries(Object.entries(p).filter(([, v]) => v !== undefined)) as Policy);
const specArb: fc.Arbitrary<RolloutSpec> = fc
  .record({ required: fc.boolean(), distinctApprover: fc.boolean(), window: fc.option(windowArb, { nil: undefined }) })
  .map(({ required, distinctApprover, window }) => {
    const s = baseSpec({}, { approval: { required, distinctApprover } });
    return window ? { ...s, window } : s;
  });
const targetArb = fc.record({
  component: fc.constantFrom('web', 'db'),
  nodes: fc.array(fc.record({ role: fc.constantFrom('worker', 'control-plane'), region: fc.constantFrom('us-east', 'eu-west'), labels: fc.constant({}) }), { maxLength: 3 }),
});
// Instants over two weeks of 2024, at minute resolution, DST change in Europe included.
const instant = fc.integer({ min: Date.UTC(2024, 2, 25), max: Date.UTC(2024, 3, 8) }).map((ms) => new Date(Math.floor(ms / 60_000) * 60_000));

describe('strengthenSpec (property)', () => {
  it('the policy-merged spec is at least as strict as the spec and as every covering policy', () => {
    let mergedWindows = 0;
    fc.assert(
      fc.property(specArb, fc.array(policyArb, { maxLength: 4 }), targetArb, fc.array(instant, { minLength: 10, maxLength: 10 }), (spec, policies, target, instants) => {
        const result = strengthenSpec(spec, policies, target);
        if (!result.ok) return;
        const merged = result.spec;
        if (merged.window && policies.some((p) => p.windows && policyCovers(p, target))) mergedWindows++;
        const covering = policies.filter((p) => policyCovers(p, target));
        expect(result.applied.map((a) => a.name).sort()).toEqual(covering.map((p) => p.name).sort());
        // Approval: never dropped, and every policy's demand holds.
        if (spec.approval.required) expect(merged.approval.required).toBe(true);
        if (spec.approval.distinctApprover) expect(merged.approval.distinctApprover).toBe(true);
        for (const p of covering) {
          if (p.approval?.required || p.approval?.distinctApprover) expect(merged.approval.required).toBe(true);
          if (p.approval?.distinctApprover) expect(merged.approval.distinctApprover).toBe(true);
        }
        // Windows: whenever the merged window is open, the spec's and one of each policy's are.
        for (const t of instants) {
          if (!isWithinWindow(merged.window, t)) continue;
          expect(isWithinWindow(spec.window, t)).toBe(true);
          for (const p of covering) if (p.windows) expect(p.windows.some((w) => isWithinWindow(w, t))).toBe(true);
        }
        // Nothing else changes.
        const { approval: _a, window: _w, ...rest } = merged;
        const { approval: _sa, window: _sw, ...specRest } = spec;
        expect(rest).toEqual(specRest);
      }),
      { numRuns: 200, seed: 8_010 },
    );
    // Not vacuous: a good share of the runs merged a policy window and checked it.
    expect(mergedWindows).toBeGreaterThan(20);
  });

  it('refuses only when the window constraints cannot all hold in one candidate window, and never with no window rule at all', () => {
    fc.assert(
      fc.property(specArb, fc.array(policyArb, { maxLength: 4 }), targetArb, (spec, policies, target) => {
        const result = strengthenSpec(spec, policies, target);
        const windowRules = policies.filter((p) => policyCovers(p, target) && p.windows).length;
        if (windowRules === 0) expect(result.ok).toBe(true);
        if (!result.ok) expect(result.issues.map((i) => i.path)).toEqual(['window']);
        // Policies that do not cover the rollout change nothing.
        expect(strengthenSpec(spec, policies.filter((p) => policyCovers(p, target)), target)).toEqual(result);
      }),
      { numRuns: 200 },
    );
  });
});
