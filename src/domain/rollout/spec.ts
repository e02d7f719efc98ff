// The rollout spec (DESIGN.md §5): validated once, with defaults made explicit, so every later
// decision reads a complete object. zod is pure computation, so it may live in the domain.
// Nested objects use prefault({}): the empty object is parsed, so the inner defaults apply.
import { z } from 'zod';
import { parseDuration } from '../duration.js';
import { isSemver } from '../semver.js';
import { NODE_ROLES } from '../types.js';
import { HooksSchema } from './hooks.js';

/**
 * Bounds on every number of a spec. Durations become deadlines (now + ms): past ~30 days a
 * value is a typo, and an unbounded one overflows a Date. Counts land in `integer` columns
 * and loops; no fleet this is built for has more than 100,000 nodes.
 */
export const MAX_SPEC_DURATION_MS = 30 * 86_400_000;
const MAX_NODES = 100_000;
const count = (min: number) => z.number().int().min(min).max(MAX_NODES);
const text = (max = 253) => z.string().min(1).max(max);

const duration = (fallback: string) =>
  z
    .union([z.string().max(100), z.number()])
    .default(fallback)
    .refine((v) => parseDuration(v) !== null, 'a duration like "30s", "10m" or a number of seconds')
    .transform((v) => parseDuration(v) as number)
    .refine((ms) => ms <= MAX_SPEC_DURATION_MS, 'at most 30d');

export const WEEKDAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
export type Weekday = (typeof WEEKDAYS)[number];
const clock = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'a time of day like "02:00"');

const TargetSchema = z
  .object({
    component: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'a component name like node-agent'),
    version: z.string().max(100).refine(isSemver, 'a semantic version like 2.0.0'),
  })
  .strict();
export type RolloutTarget = z.output<typeof TargetSchema>;
/** At most this many components in one rollout (one drain per node for all of them). */
export const MAX_TARGETS = 8;

/** The first (or only) target of a spec as given, before it is normalized. */
const firstTarget = (s: { target?: RolloutTarget | undefined; targets?: RolloutTarget[] | undefined }): RolloutTarget | undefined => s.target ?? s.targets?.[0];

export const RolloutSpecObject = z
  .object({
    name: z.string().regex(/^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/, 'lowercase letters, digits, . and -, at most 63'),
    // One component, or several (`targets`) installed in order inside one drain per node
    // (DESIGN.md §12): e.g. os-image, then hypervisor, then node-agent. Rollback returns them in
    // reverse order. After parsing, both are set: `target` is the first of `targets`.
    target: TargetSchema.optional(),
    targets: z
      .array(TargetSchema)
      .min(1)
      .max(MAX_TARGETS)
      .refine((list) => new Set(list.map((t) => t.component)).size === list.length, 'each component at most once')
      .optional(),
    selector: z
      .object({
        role: z.enum(NODE_ROLES).optional(),
        regions: z.array(text(63)).min(1).max(1000).optional(),
        labels: z.record(z.string().max(63), z.string().max(253)).optional(),
        hostnames: z.array(text()).min(1).max(MAX_NODES).optional(),
      })
      .strict()
      .prefault({}),
    strategy: z
      .object({
        // blue-green (operator only, DESIGN.md §11): the new replicas start beside the old ones,
        // the load balancer moves to them once all are ready, the old ones stop after retireAfter.
        order: z.enum(['rolling', 'region-by-region', 'parallel-regions', 'blue-green']).default('rolling'),
        blueGreen: z
          .object({
            // How long the old replicas keep running after the switch: a rollback until then moves
            // the traffic back to them at once (Argo Rollouts' scaleDownDelay).
            retireAfter: duration('30s'),
          })
          .strict()
          .optional(),
        canary: z.object({ nodes: count(1).default(1), soak: duration('0s') }).strict().optional(),
        batch: z
          .union(
            [z.object({ percent: z.number().gt(0).max(100) }).strict(), z.object({ size: count(1) }).strict()],
            // zod's own union message is a bare "Invalid input"; say which two shapes are accepted.
            { error: 'either { percent: a number over 0 and at most 100 } or { size: a whole number of nodes, at least 1 }' },
          )
          .default({ size: 1 }),
        maxUnavailablePerRegion: count(1).optional(),
        minAvailablePerRegion: count(0).optional(),
        pauseBetweenBatches: duration('0s'),
        // The runbooks' "monitor the region, then continue? y/n": when a batch would start a
        // region, the rollout waits in awaiting_approval for a person (default false).
        gateBetweenRegions: z.boolean().default(false),
        drain: z
          .object({
            mode: z.enum(['migrate', 'restart', 'none']).optional(),
            timeout: duration('10m'),
            nonMigratable: z.enum(['block', 'stop']).default('block'),
          })
          .strict()
          .prefault({}),
        health: z
          .object({
            timeout: duration('5m'),
            minHealthyTime: duration('30s'),
            checks: z.array(z.enum(['version', 'heartbeat', 'instances'])).default(['version', 'heartbeat', 'instances']),
          })
          .strict()
          .prefault({}),
        circuitBreaker: z
          .object({
            maxConsecutiveFailures: count(1).default(2),
            maxFailurePercent: z.number().gt(0).max(100).optional(),
          })
          .strict()
          .prefault({}),
        onNodeFailure: z.enum(['rollback-node', 'leave']).default('rollback-node'),
      })
      .strict()
      .prefault({})
      .refine((s) => !(s.maxUnavailablePerRegion !== undefined && s.minAvailablePerRegion !== undefined), {
        message: 'set maxUnavailablePerRegion or minAvailablePerRegion, not both',
      })
      .refine((s) => s.blueGreen === undefined || s.order === 'blue-green', { message: 'blueGreen settings apply to order: blue-green only', path: ['blueGreen'] }),
    approval: z.object({ required: z.boolean().default(false), distinctApprover: z.boolean().default(false) }).strict().prefault({}),
    window: z
      .object({
        days: z.array(z.enum(WEEKDAYS)).min(1).default([...WEEKDAYS]),
        start: clock,
        end: clock,
        timezone: z.string().max(100).default('UTC'),
      })
      .strict()
      .refine((w) => isTimeZone(w.timezone), { message: 'an IANA time zone like UTC or Europe/Berlin', path: ['timezone'] })
      .optional(),
    // Hooks (hooks.ts): preRollout/postRollout on the operator leader, preNode/postNode on the
    // node by its agent. Every hook given runs; an unknown shape or key is refused (400).
    hooks: HooksSchema,
    // Default false: a target older than a node's version fails preflight (check `downgrade`),
    // since agents refuse a lower version unless told it is an explicit rollback. true installs
    // it as an explicit downgrade on those nodes (recorded in events).
    allowDowngrade: z.boolean().default(false),
    // Control-plane rollouts (DESIGN.md §11): `auto` applies the target build's expand
    // migrations before the first node and its contract migrations after the last. Default:
    // auto for the `operator` component; any other component has no migrations to apply.
    migrations: z.enum(['auto', 'manual']).optional(),
  })
  .strict()
  .refine((s) => (s.target === undefined) !== (s.targets === undefined), { message: 'give target (one component) or targets (several), exactly one of them', path: ['target'] })
  .refine((s) => (s.targets?.length ?? 1) === 1 || !s.targets?.some((t) => t.component === 'operator'), {
    message: 'the operator component is rolled out alone (its rollouts migrate the schema and move the control plane)',
    path: ['targets'],
  })
  .refine((s) => s.strategy.order !== 'blue-green' || (firstTarget(s)?.component === 'operator' && (s.targets?.length ?? 1) === 1), {
    message: 'order: blue-green applies to rollouts of the operator component only (its replicas can run two versions side by side)',
    path: ['strategy', 'order'],
  })
  .refine((s) => s.migrations !== 'auto' || firstTarget(s)?.component === 'operator', {
    message: 'migrations: auto applies to rollouts of the operator component only (its builds carry the schema migrations)',
    path: ['migrations'],
  });

/** The spec with `target` and `targets` both set (a spec stored before `targets` existed has only `target`: see rolloutTargets). */
export const RolloutSpecSchema = RolloutSpecObject.transform((s) => {
  const targets = s.targets ?? [s.target as RolloutTarget];
  return { ...s, target: targets[0] as RolloutTarget, targets };
});

export type RolloutSpec = Omit<z.output<typeof RolloutSpecSchema>, 'targets'> & { targets?: RolloutTarget[] };

/** Every component the rollout installs, in install order (specs stored before `targets` have `target` only). */
export function rolloutTargets(spec: Pick<RolloutSpec, 'target' | 'targets'>): RolloutTarget[] {
  return spec.targets ?? [spec.target];
}
export type RolloutSpecInput = z.input<typeof RolloutSpecSchema>;

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

export interface SpecIssue {
  path: string;
  message: string;
}

/** Validates a spec (from YAML, JSON or the API) and fills in every default. */
export function parseRolloutSpec(input: unknown): { ok: true; spec: RolloutSpec } | { ok: false; issues: SpecIssue[] } {
  const parsed = RolloutSpecSchema.safeParse(input);
  if (parsed.success) return { ok: true, spec: parsed.data };
  return { ok: false, issues: parsed.error.issues.map((i) => ({ path: i.path.join('.') || '(root)', message: i.message })) };
}

/** Drain mode actually used: explicit, else migrate for disruptive components and none otherwise. */
export function effectiveDrainMode(spec: RolloutSpec, disruptive: boolean): 'migrate' | 'restart' | 'none' {
  return spec.strategy.drain.mode ?? (disruptive ? 'migrate' : 'none');
}

const FORBIDDEN_KEYS = new Set(['__proto__', 'prototype', 'constructor']);

/**
 * Applies `--set path=value` edits (an approver's changes) to a spec input: values are JSON
 * when they parse as JSON, strings otherwise. Returns the edited copy; the caller re-validates.
 */
export function applySpecEdits(input: unknown, edits: readonly string[]): unknown {
  const copy = structuredClone(input) as Record<string, unknown>;
  for (const edit of edits) {
    const eq = edit.indexOf('=');
    if (eq <= 0) throw new Error(`edit "${edit}" is not path=value`);
    const path = edit.slice(0, eq).split('.');
    // The edit comes from an approver over the API: a path through __proto__ or constructor would
    // write to Object.prototype of the operator process instead of the spec.
    if (path.some((key) => key === '' || FORBIDDEN_KEYS.has(key))) throw new Error(`edit "${edit}" has an invalid path`);
    const raw = edit.slice(eq + 1);
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      // Not JSON: keep it as a string (durations like 30s, names).
    }
    let cursor: Record<string, unknown> = copy;
    for (const key of path.slice(0, -1)) {
      if (typeof cursor[key] !== 'object' || cursor[key] === null) cursor[key] = {};
      cursor = cursor[key] as Record<string, unknown>;
    }
    const last = path.at(-1) as string;
    // Switching batch between percent and size replaces the other key.
    if (path.length >= 2 && path.at(-2) === 'batch') for (const k of ['percent', 'size']) if (k !== last) delete cursor[k];
    cursor[last] = value;
  }
  return copy;
}
