import type { DesiredInstance } from './protocol.js';

/**
 * What the agent knows about an instance it hosts. `migrated`: its guest was live-migrated to
 * another node and its QEMU quit; it is never started here again, and stops when withdrawn.
 */
export type LocalPhase = 'starting' | 'running' | 'stopping' | 'backoff' | 'stopped' | 'migrated';

export interface ConvergencePlan {
  /** Desired running, not hosted here yet. */
  start: DesiredInstance[];
  /** Hosted here but desired stopped, or no longer desired at all. */
  stop: string[];
}

/**
 * The agent's decision (DESIGN.md §3: `decide(desired, actual) → actions`). Level-triggered:
 * the whole desired set is compared with what runs, so a lost message changes nothing.
 */
export function planConvergence(desired: readonly DesiredInstance[], local: ReadonlyMap<string, LocalPhase>): ConvergencePlan {
  const plan: ConvergencePlan = { start: [], stop: [] };
  const wanted = new Map(desired.map((d) => [d.id, d]));
  for (const instance of desired) {
    const phase = local.get(instance.id);
    if (instance.desired === 'running' && (phase === undefined || phase === 'stopped')) plan.start.push(instance);
  }
  for (const [id, phase] of local) {
    if (phase === 'stopping' || phase === 'stopped') continue;
    const want = wanted.get(id);
    if (!want || want.desired === 'stopped') plan.stop.push(id);
  }
  plan.stop.sort();
  return plan;
}
