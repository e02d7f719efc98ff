// The people around a simulated rollout: after a circuit-breaker trip someone decides
// (continue, rollback or abort) a fixed delay later, and scheduled operator actions (pause,
// resume, abort, rollback) land at their times, the way the API would change the rollout.
import type { Rollout } from '../domain/rollout/model.js';

export type HumanChoice = 'continue' | 'rollback' | 'abort';

export interface OperatorAction {
  /** Milliseconds after the start. */
  atMs: number;
  kind: 'pause' | 'resume' | 'abort' | 'rollback';
}

export interface HumanPolicyOptions {
  startMs: number;
  /** After the breaker trips, a person decides this long later. */
  decisionDelayMs: number;
  /** The choice made on the n-th trip (0-based). */
  choose: (tripIndex: number) => HumanChoice;
  actions?: readonly OperatorAction[];
}

const ABORTABLE = ['running', 'paused', 'waiting_for_window', 'awaiting_decision'];
const ROLLBACKABLE = [...ABORTABLE, 'aborting'];

export class HumanPolicy {
  /** A trip no person has answered yet: nothing may start meanwhile (DESIGN.md §8.5). */
  tripUndecided = false;
  /** When the person answers the last trip (null: no answer pending). */
  decisionAt: number | null = null;
  private readonly actions: OperatorAction[];
  private trips = 0;

  constructor(private readonly options: HumanPolicyOptions) {
    this.actions = [...(options.actions ?? [])].sort((a, b) => a.atMs - b.atMs);
  }

  /** The breaker tripped at `t`: a decision is due `decisionDelayMs` later. */
  tripped(t: number): void {
    this.tripUndecided = true;
    this.decisionAt = t + this.options.decisionDelayMs;
    this.trips++;
  }

  /** Applies what people do by `t` to the rollout's status; returns the choice made on the last trip, if one was made now. */
  act(rollout: Rollout, t: number): HumanChoice | null {
    let made: HumanChoice | null = null;
    if (this.decisionAt !== null && t >= this.decisionAt) {
      if (rollout.status === 'awaiting_decision') {
        made = this.options.choose(this.trips - 1);
        if (made === 'continue') {
          rollout.status = 'running';
          rollout.breakerResetAt = new Date(t);
        } else rollout.status = made === 'rollback' ? 'rolling_back' : 'aborting';
        this.tripUndecided = false;
      }
      this.decisionAt = null;
    }
    while (this.actions.length > 0 && this.options.startMs + (this.actions[0] as OperatorAction).atMs <= t) {
      const action = this.actions.shift() as OperatorAction;
      const s = rollout.status;
      if (action.kind === 'pause' && (s === 'running' || s === 'waiting_for_window')) rollout.status = 'paused';
      else if (action.kind === 'resume' && s === 'paused') rollout.status = 'running';
      else if (action.kind === 'abort' && ABORTABLE.includes(s)) rollout.status = 'aborting';
      else if (action.kind === 'rollback' && ROLLBACKABLE.includes(s)) rollout.status = 'rolling_back';
      else continue;
      // A person acting on a tripped breaker is the decision it waits for.
      if (rollout.status !== 'paused' && rollout.status !== 'running') this.tripUndecided = false;
      if (rollout.status === 'aborting' || rollout.status === 'rolling_back') this.decisionAt = null;
    }
    return made;
  }

  /** When the next scheduled operator action lands, if any is left. */
  nextScheduledAt(): number | null {
    const next = this.actions[0];
    return next ? this.options.startMs + next.atMs : null;
  }
}
