import type { DesiredInstance } from './protocol.js';

/**
 * What the agent knows about an instance it hosts. `migrated`: its guest was live-migrated to
 * another node; its QEMU holds it paused as handed over (or has quit). It is never started here
 * again: it stops when withdrawn, or resumes when its target died before taking over.
 */
export type LocalPhase = 'starting' | 'running' | 'stopping' | 'backoff' | 'stopped' | 'migrated';

export interface ConvergencePlan {
  /** Desired running, not hosted here yet. */
  start: DesiredInstance[];
  /** Hosted here but desired stopped, or no longer desired at all. */
  stop: string[];
  /**
   * Handed over by a live migration, still wanted here and no longer told to move: the move
   * failed after the transfer (its target died before taking over), so the guest resumes here.
   */
  resume: string[];
}

/**
 * The agent's decision (DESIGN.md §3: `decide(desired, actual) → actions`). Level-triggered:
 * the whole desired set is compared with what runs, so a lost message changes nothing.
 */
export function planConvergence(
  desired: readonly DesiredInstance[],
  local: ReadonlyMap<string, LocalPhase>,
  /** Of the `migrated` instances, the migration each handed its guest over in. */
  handedOver: ReadonlyMap<string, string> = new Map(),
): ConvergencePlan {
  const plan: ConvergencePlan = { start: [], stop: [], resume: [] };
  const wanted = new Map(desired.map((d) => [d.id, d]));
  for (const instance of desired) {
    const phase = local.get(instance.id);
    if (instance.desired === 'running' && (phase === undefined || phase === 'stopped')) plan.start.push(instance);
  }
  for (const [id, phase] of local) {
    if (phase === 'stopping' || phase === 'stopped') continue;
    const want = wanted.get(id);
    if (!want || want.desired === 'stopped') plan.stop.push(id);
    else if (phase === 'migrated' && handedOver.has(id) && want.migration?.id !== handedOver.get(id)) plan.resume.push(id);
  }
  plan.stop.sort();
  plan.resume.sort();
  return plan;
}
