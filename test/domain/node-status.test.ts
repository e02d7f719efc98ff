import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_HEARTBEAT_GRACE_MS, deriveNodeStatus, isSchedulable } from '../../src/domain/node-status.js';
import { DRAIN_STATES, NODE_STATUSES } from '../../src/domain/types.js';
import { ago, NOW } from './fixtures.js';

const GRACE = 10_000;

describe('deriveNodeStatus', () => {
  it('is ready with a fresh heartbeat, no cordon and no drain', () => {
    expect(deriveNodeStatus({ cordoned: false, lastHeartbeatAt: ago(1000) }, undefined, NOW, GRACE)).toBe('ready');
  });

  it('is down without any heartbeat, or once the grace period has passed', () => {
    expect(deriveNodeStatus({ cordoned: false, lastHeartbeatAt: null }, undefined, NOW, GRACE)).toBe('down');
    expect(deriveNodeStatus({ cordoned: false, lastHeartbeatAt: ago(GRACE + 1) }, undefined, NOW, GRACE)).toBe('down');
  });

  it('is still up at exactly the grace period', () => {
    expect(deriveNodeStatus({ cordoned: false, lastHeartbeatAt: ago(GRACE) }, undefined, NOW, GRACE)).toBe('ready');
  });

  it('is draining while a drain runs or is blocked, and not after it ends', () => {
    const fresh = { cordoned: true, lastHeartbeatAt: ago(0) };
    expect(deriveNodeStatus(fresh, { state: 'running' }, NOW, GRACE)).toBe('draining');
    expect(deriveNodeStatus(fresh, { state: 'blocked' }, NOW, GRACE)).toBe('draining');
    expect(deriveNodeStatus(fresh, { state: 'completed' }, NOW, GRACE)).toBe('cordoned');
    expect(deriveNodeStatus(fresh, { state: 'failed' }, NOW, GRACE)).toBe('cordoned');
    expect(deriveNodeStatus({ ...fresh, cordoned: false }, { state: 'completed' }, NOW, GRACE)).toBe('ready');
  });

  it('lets down win over draining and cordoned', () => {
    expect(deriveNodeStatus({ cordoned: true, lastHeartbeatAt: ago(GRACE * 3) }, { state: 'running' }, NOW, GRACE)).toBe('down');
  });

  it('follows the precedence down > draining > cordoned > ready for any facts', () => {
    fc.assert(
      fc.property(
        fc.option(fc.integer({ min: -5_000, max: 3 * GRACE }), { nil: null }),
        fc.boolean(),
        fc.option(fc.constantFrom(...DRAIN_STATES), { nil: undefined }),
        (ageMs, cordoned, drainState) => {
          const status = deriveNodeStatus(
            { cordoned, lastHeartbeatAt: ageMs === null ? null : ago(ageMs) },
            drainState === undefined ? undefined : { state: drainState },
            NOW,
            GRACE,
          );
          const expected =
            ageMs === null || ageMs > GRACE
              ? 'down'
              : drainState === 'running' || drainState === 'blocked'
                ? 'draining'
                : cordoned
                  ? 'cordoned'
                  : 'ready';
          expect(status).toBe(expected);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('uses a ten second default grace period (DESIGN.md §7)', () => {
    expect(DEFAULT_HEARTBEAT_GRACE_MS).toBe(10_000);
  });
});

describe('isSchedulable', () => {
  it('takes new instances only on ready nodes', () => {
    for (const status of NODE_STATUSES) expect(isSchedulable({ status })).toBe(status === 'ready');
  });
});
