// Operator-side policies (DESIGN.md §4, §9): rules an admin sets that every rollout of the
// components or nodes they cover must obey, whatever its spec says. The spec can only be made
// stricter by them, never weaker. Pure: the caller passes the policies and the rollout's nodes.
import { z } from 'zod';
import { NODE_ROLES } from '../types.js';
import { type RolloutSpec, RolloutSpecObject, WEEKDAYS } from './spec.js';
import type { MaintenanceWindow } from './window.js';

// The spec's own window schema (days, start, end, timezone), so a policy window reads the same.
const WindowSchema = RolloutSpecObject.shape.window.unwrap();

export const PolicySchema = z
  .object({
    name: z.string().regex(/^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/, 'lowercase letters, digits, . and -, at most 63'),
    description: z.string().max(500).optional(),
    match: z
      .object({
        component: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'a component name like node-agent').optional(),
        selector: z
          .object({
            role: z.enum(NODE_ROLES).optional(),
            regions: z.array(z.string().min(1)).min(1).optional(),
            labels: z.record(z.string(), z.string()).optional(),
          })
          .strict()
          .optional(),
      })
      .strict()
      .refine((m) => m.component !== undefined || m.selector !== undefined, 'match needs a component, a node selector, or both'),
    approval: z.object({ required: z.boolean().default(false), distinctApprover: z.boolean().default(false) }).strict().optional(),
    windows: z.array(WindowSchema).min(1).optional(),
  })
  .strict()
  .refine((p) => p.approval?.required === true || p.approval?.distinctApprover === true || p.windows !== undefined, {
    message: 'a policy must require something: approval (required or distinctApprover true), windows, or both',
  });

export type Policy = z.output<typeof PolicySchema>;

export interface PolicyIssue {
  path: string;
  message: string;
}

/** Validates a policy document strictly (unknown fields are refused) and fills in defaults. */
export function parsePolicy(input: unknown): { ok: true; policy: Policy } | { ok: false; issues: PolicyIssue[] } {
  const parsed = PolicySchema.safeParse(input);
  if (parsed.success) return { ok: true, policy: parsed.data };
  return { ok: false, issues: parsed.error.issues.map((i) => ({ path: i.path.join('.') || '(root)', message: i.message })) };
}

/** What a policy is matched against: the rollout's component and the nodes its selector selected. */
export interface PolicyTarget {
  component: string;
  nodes: readonly { role: string; region: string; labels: Readonly<Record<string, string>> }[];
}

/**
 * A policy covers a rollout when its component matches (if it names one) and, if it has a node
 * selector, when at least one node the rollout selected matches it: touching one covered node is
 * enough to be bound by the policy.
 */
export function policyCovers(policy: Policy, target: PolicyTarget): boolean {
  const { component, selector } = policy.match;
  if (component !== undefined && component !== target.component) return false;
  if (selector === undefined) return true;
  return target.nodes.some(
    (n) =>
      (selector.role === undefined || selector.role === n.role) &&
      (selector.regions === undefined || selector.regions.includes(n.region)) &&
      Object.entries(selector.labels ?? {}).every(([k, v]) => n.labels[k] === v),
  );
}

export interface AppliedPolicy {
  name: string;
  /** What the policy required of this rollout, for people (events, plan, rollout detail). */
  requires: string[];
}

export type Strengthened = { ok: true; spec: RolloutSpec; applied: AppliedPolicy[] } | { ok: false; issues: PolicyIssue[] };

/**
 * The effective spec: `spec` strengthened by every policy that covers the rollout.
 *
 * - approval: `required` and `distinctApprover` are each the OR of the spec and the policies; a
 *   policy's `distinctApprover: true` also makes approval required (a distinct approver of an
 *   approval nobody asks for would be no rule at all).
 * - windows: the spec's `window` and every covering policy's `windows` (a list of allowed
 *   windows, any one of which may be open) are constraints that must all hold. The effective
 *   window is the first candidate — the spec's own window first, then each policy's windows in
 *   policy-name order — that lies inside the spec's window (if any) and inside one allowed window
 *   of every policy. So a spec window inside the policy's stays as it is, a spec without one gets
 *   the policy's, and when no single window satisfies all of them the rollout is refused with the
 *   reason (the spec author then picks a window inside the policy's). Containment is judged on
 *   the local clock, so only windows in the same time zone can contain each other.
 *
 * Everything else in the spec is left as it is. Never weaker than the spec or any policy.
 */
export function strengthenSpec(spec: RolloutSpec, policies: readonly Policy[], target: PolicyTarget): Strengthened {
  const covering = policies.filter((p) => policyCovers(p, target)).sort((a, b) => a.name.localeCompare(b.name));
  if (covering.length === 0) return { ok: true, spec, applied: [] };
  const approval = { ...spec.approval };
  const applied: AppliedPolicy[] = [];
  for (const p of covering) {
    const requires: string[] = [];
    if (p.approval?.required || p.approval?.distinctApprover) {
      approval.required = true;
      requires.push('approval');
    }
    if (p.approval?.distinctApprover) {
      approval.distinctApprover = true;
      requires.push('distinct approver');
    }
    if (p.windows) requires.push(`window ${p.windows.map(describeWindow).join(' or ')}`);
    applied.push({ name: p.name, requires });
  }
  const allowedSets = [...(spec.window ? [[spec.window]] : []), ...covering.filter((p) => p.windows).map((p) => p.windows as MaintenanceWindow[])];
  const candidates = allowedSets.flat();
  const window = candidates.find((c) => allowedSets.every((set) => set.some((allowed) => windowWithin(c, allowed))));
  if (allowedSets.length > 0 && window === undefined) {
    const rules = covering.filter((p) => p.windows).map((p) => `policy ${p.name} allows ${p.windows?.map(describeWindow).join(' or ')}`);
    return {
      ok: false,
      issues: [
        {
          path: 'window',
          message: `${spec.window ? `the spec's window ${describeWindow(spec.window)} is not inside what ` : 'no single window satisfies '}${rules.join(' and ')}; set a window inside ${rules.length > 1 ? 'all of them' : 'it'}`,
        },
      ],
    };
  }
  const strengthened: RolloutSpec = { ...spec, approval };
  if (window !== undefined) strengthened.window = window;
  return { ok: true, spec: strengthened, applied };
}

export function describeWindow(w: MaintenanceWindow): string {
  const days = w.days.length === WEEKDAYS.length ? 'daily' : w.days.join(',');
  return `${days} ${w.start}-${w.end} ${w.timezone}`;
}

const minutesOf = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

/** Is the window open at local weekday `day` (0 = sun) and minute of day? The same rule as isWithinWindow. */
function openAtLocal(w: MaintenanceWindow, day: number, minute: number): boolean {
  const start = minutesOf(w.start);
  const end = minutesOf(w.end);
  const on = (d: number) => w.days.includes(WEEKDAYS[(d + 7) % 7] as (typeof WEEKDAYS)[number]);
  if (start === end) return on(day);
  if (start < end) return on(day) && minute >= start && minute < end;
  return (on(day) && minute >= start) || (on(day - 1) && minute < end);
}

/**
 * Is every minute in which `inner` is open also open in `outer`? Checked minute by minute over
 * the local week (10,080 minutes; well under a millisecond). Both read the same local clock when
 * they share a time zone, so containment on that clock holds at every real instant, across
 * daylight-saving jumps too. Different zones are never taken as containing each other.
 */
export function windowWithin(inner: MaintenanceWindow, outer: MaintenanceWindow): boolean {
  if (inner.timezone !== outer.timezone) return false;
  for (let day = 0; day < 7; day++) {
    for (let minute = 0; minute < 1440; minute++) if (openAtLocal(inner, day, minute) && !openAtLocal(outer, day, minute)) return false;
  }
  return true;
}
