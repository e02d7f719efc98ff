// RolloutTaskIndex kept across changes answers what one built afresh from the same tasks does:
// the simulator keeps one for a whole run, decideRollout builds one per call from an array.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TASK_STATES, type RolloutTask } from '../../../src/domain/rollout/model.js';
import { RolloutTaskIndex } from '../../../src/domain/rollout/task-index.js';
import { at, task } from './fixtures.js';

const answers = (index: RolloutTaskIndex, batches: number) => ({
  inFlight: [...index.inFlightPositions()],
  pending: [...index.pendingPositions()],
  failedForward: [...index.failedForwardPositions()],
  batches: Array.from({ length: batches }, (_, b) => [index.batchPositions(b).length, index.openForwardIn(b)]),
  newestDone: index.newestBatchWithDone(),
  latestDone: index.latestDone(),
  forwardDone: index.forwardDoneCount,
  targeted: index.targetedCount,
});

const changeArb = fc.record({
  task: fc.nat(),
  state: fc.constantFrom(...TASK_STATES),
  direction: fc.constantFrom('forward' as const, 'rollback' as const),
  // A few distinct finish times, so several tasks share the latest one and rollbacks empty it.
  finishedAt: fc.option(fc.integer({ min: 0, max: 3 }), { nil: null }),
});

describe('RolloutTaskIndex', () => {
  it('kept up to date through assign, answers as one built afresh (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 12 }), fc.array(changeArb, { maxLength: 60 }), (count, changes) => {
        const tasks: RolloutTask[] = Array.from({ length: count }, (_, k) => task(`n${k}`, { batch: k % 3 }));
        const kept = new RolloutTaskIndex(tasks);
        for (const change of changes) {
          const position = change.task % count;
          kept.assign(position, { state: change.state, direction: change.direction, finishedAt: change.finishedAt === null ? null : at(change.finishedAt * 1000) });
          expect(answers(kept, 3)).toEqual(answers(new RolloutTaskIndex(tasks.map((t) => ({ ...t }))), 3));
        }
        expect(kept.positionOf((tasks[count - 1] as RolloutTask).id)).toBe(count - 1);
        expect(kept.positionOf('nope')).toBe(-1);
      }),
      { numRuns: 200 },
    );
  });
});
