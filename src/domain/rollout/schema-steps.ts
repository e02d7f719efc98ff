// Schema changes ride a control-plane rollout (DESIGN.md §11): with `migrations: auto` the
// target build's `pre` (expand) migrations are applied before the first node and its `post`
// (contract) migrations after the last one. Each step is recorded on the rollout once, so a new
// leader resumes where the previous one stopped instead of repeating or skipping it.
import type { Rollout } from './model.js';
import type { RolloutSpec } from './spec.js';

export type SchemaPhase = 'pre' | 'post';

/** The component whose builds are operator replicas: its rollouts migrate by default. */
export const OPERATOR_COMPONENT = 'operator';

/** `auto` for the operator component unless the spec says otherwise; other components never migrate. */
export function rolloutMigrations(spec: Pick<RolloutSpec, 'target' | 'migrations'>): 'auto' | 'manual' {
  return spec.migrations ?? (spec.target.component === OPERATOR_COMPONENT ? 'auto' : 'manual');
}

/** Whether the rollout still has to apply `phase` before it may go on. */
export function schemaStepDue(rollout: Pick<Rollout, 'spec' | 'schemaPreAppliedAt' | 'schemaPostAppliedAt'>, phase: SchemaPhase): boolean {
  if (rolloutMigrations(rollout.spec) !== 'auto') return false;
  return (phase === 'pre' ? rollout.schemaPreAppliedAt : rollout.schemaPostAppliedAt) === null;
}

/**
 * Why a rollback is refused, or undefined when it may go on: after the contract the previous
 * builds could no longer serve (the schema no longer has what they use).
 */
export function rollbackRefusal(rollout: Pick<Rollout, 'spec' | 'schemaPostAppliedAt'>): string | undefined {
  if (rollout.schemaPostAppliedAt === null) return undefined;
  const { component, version } = rollout.spec.target;
  return `the contract (post) migrations of ${component} ${version} were applied at ${rollout.schemaPostAppliedAt.toISOString()}: the previous builds cannot serve this schema any more, so the rollout cannot be rolled back; roll forward with a fixed build`;
}
