// An artifact's lifecycle: draft → blessed → live → archived. Pure rules, no I/O.

export const ARTIFACT_LIFECYCLES = ['draft', 'blessed', 'live', 'archived'] as const;
export type ArtifactLifecycle = (typeof ARTIFACT_LIFECYCLES)[number];

export const LIFECYCLE_ACTIONS = ['bless', 'promote', 'archive'] as const;
export type LifecycleAction = (typeof LIFECYCLE_ACTIONS)[number];

const TARGET: Record<LifecycleAction, ArtifactLifecycle> = { bless: 'blessed', promote: 'live', archive: 'archived' };
const ALLOWED_FROM: Record<LifecycleAction, readonly ArtifactLifecycle[]> = {
  bless: ['draft'],
  promote: ['blessed'],
  // A bad draft or a blessed build nobody will ship may be archived too, not only a live one.
  archive: ['draft', 'blessed', 'live'],
};

export type LifecycleStep =
  | { kind: 'change'; from: ArtifactLifecycle; to: ArtifactLifecycle }
  /** Already there: repeating an action is harmless, so scripts may retry it. */
  | { kind: 'unchanged'; to: ArtifactLifecycle }
  | { kind: 'invalid'; from: ArtifactLifecycle; action: LifecycleAction; allowedFrom: readonly ArtifactLifecycle[] };

export function lifecycleStep(current: ArtifactLifecycle, action: LifecycleAction): LifecycleStep {
  const to = TARGET[action];
  if (current === to) return { kind: 'unchanged', to };
  if (!ALLOWED_FROM[action].includes(current)) return { kind: 'invalid', from: current, action, allowedFrom: ALLOWED_FROM[action] };
  return { kind: 'change', from: current, to };
}
