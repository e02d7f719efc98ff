// What `drydock deploy -f` (PUT /api/v1/deployments/:name) does to a deployment that exists:
// which fields of the applied spec differ from the stored one, and whether those may change in
// place. Pure: the route loads the stored deployment, asks here, and writes what this allows.
import type { NodeSelector, Workload } from './types.js';

/** The fields a deployment spec sets (the API's snake_case names, as they are stored). */
export interface AppliedDeployment {
  replicas: number;
  min_available: number;
  workload: Workload;
  node_selector: NodeSelector | null;
}

export type ApplyResult = 'created' | 'configured' | 'unchanged';

/**
 * Fields that change only while the deployment runs nothing. Running instances were started
 * with the old workload and placed by the old selector; neither is rolled out to them in place
 * (no rolling replacement exists yet), so accepting the change would report "configured" while
 * the fleet keeps running the old spec. Refused instead, like kubectl's "field is immutable":
 * scale to 0 (or delete) first, or apply under a new name.
 */
export const FIELDS_FIXED_WHILE_RUNNING = ['workload', 'node_selector'] as const;

export interface DeploymentDiff {
  /** Each field whose applied value differs from the stored one. */
  changes: Record<string, { from: unknown; to: unknown }>;
  /** Changed fields that may not change now (FIELDS_FIXED_WHILE_RUNNING while instances exist). */
  fixed: string[];
}

/**
 * Compares an applied spec with the stored one. `instances`: instance rows the deployment still
 * has (running, stopping or parked); with none, every field may change.
 */
export function diffDeployment(stored: AppliedDeployment, applied: AppliedDeployment, instances: number): DeploymentDiff {
  const changes: Record<string, { from: unknown; to: unknown }> = {};
  const fields: (keyof AppliedDeployment)[] = ['replicas', 'min_available', 'workload', 'node_selector'];
  for (const field of fields) {
    const from = normalized(field, stored[field]);
    const to = normalized(field, applied[field]);
    if (canonical(from) !== canonical(to)) changes[field] = { from: stored[field], to: applied[field] };
  }
  const fixed = instances > 0 ? FIELDS_FIXED_WHILE_RUNNING.filter((f) => f in changes) : [];
  return { changes, fixed };
}

/** Spellings that mean the same thing: `driver: process` is the default, an empty selector selects everything. */
function normalized(field: keyof AppliedDeployment, value: unknown): unknown {
  if (field === 'workload' && typeof value === 'object' && value !== null) {
    const { driver, ...rest } = value as Record<string, unknown>;
    return driver === undefined || driver === 'process' ? rest : value;
  }
  if (field === 'node_selector' && value !== null && typeof value === 'object' && Object.keys(value).length === 0) return null;
  return value ?? null;
}

/** JSON with object keys sorted at every level (jsonb does not keep the order a client sent). */
export function canonical(value: unknown): string {
  return JSON.stringify(sortDeep(value));
}

function sortDeep(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortDeep);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(
    Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => [k, sortDeep(v)]),
  );
}
