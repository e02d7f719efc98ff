import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { deploymentHealth } from '../../src/domain/deployment-health.js';

describe('deploymentHealth', () => {
  it.each([
    [3, 2, 3, 'healthy'],
    [3, 2, 4, 'healthy'],
    [3, 2, 2, 'degraded'],
    [3, 2, 1, 'down'],
    [3, 0, 1, 'degraded'],
    // A budget of zero still needs one serving replica to count as up.
    [3, 0, 0, 'down'],
    [0, 0, 0, 'healthy'],
    [1, 1, 0, 'down'],
  ] as const)('replicas %d, min_available %d, healthy %d → %s', (replicas, minAvailable, healthy, expected) => {
    expect(deploymentHealth(replicas, minAvailable, healthy)).toBe(expected);
  });

  it('never gets worse when more instances are healthy', () => {
    const rank = { down: 0, degraded: 1, healthy: 2 } as const;
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: 60 }), (replicas, budget, healthy) => {
        const minAvailable = Math.min(budget, replicas);
        const now = deploymentHealth(replicas, minAvailable, healthy);
        const more = deploymentHealth(replicas, minAvailable, healthy + 1);
        expect(rank[more]).toBeGreaterThanOrEqual(rank[now]);
        expect(now === 'healthy').toBe(healthy >= replicas);
        if (replicas > 0 && healthy === 0) expect(now).toBe('down');
      }),
      { numRuns: 200 },
    );
  });
});
