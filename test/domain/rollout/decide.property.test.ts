// DESIGN.md §8 as properties of decideRollout: random fleets, specs, failures and human actions,
// driven in virtual time against a fleet model that obeys the commands (src/sim/). Every
// tick is checked: region budgets (in-flight tasks and unavailable nodes), no start after a
// breaker trip until a decision, no start while paused, batches in order, forward-only task
// states; every other tick, the same (cloned) snapshot decides deep-equal. At the end every
// task is finished, every failed node is back on its version, and the end status tells the
// truth: completed only when every task is done or skipped with a reason (§8.8).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { planBatches } from '../../../src/domain/rollout/batches.js';
import type { RolloutSpecInput } from '../../../src/domain/rollout/spec.js';
import type { FleetNode } from '../../../src/domain/types.js';
import { fleetNode, rollout, spec, T0, tasksFromPlan } from './fixtures.js';
import { effectiveDrainMode } from '../../../src/domain/rollout/spec.js';
import { driveRollout } from '../../../src/sim/drive.js';
import { FleetModel, type InstallOutcome } from '../../../src/sim/fleet-model.js';
import type { HumanChoice, OperatorAction } from '../../../src/sim/human.js';
import { seededRandom } from '../../../src/sim/random.js';
import { simulateUpgrade } from '../../../src/sim/upgrade.js';
import { buildWorld } from '../../../src/sim/world.js';

type StrategyInput = NonNullable<RolloutSpecInput['strategy']>;

const strategyArb: fc.Arbitrary<StrategyInput> = fc.record({
  order: fc.constantFrom('rolling' as const, 'region-by-region' as const, 'parallel-regions' as const),
  batch: fc.oneof(fc.record({ size: fc.integer({ min: 1, max: 4 }) }), fc.record({ percent: fc.integer({ min: 5, max: 60 }) })),
  canary: fc.option(fc.record({ nodes: fc.integer({ min: 1, max: 2 }), soak: fc.integer({ min: 0, max: 120 }) }), { nil: undefined }),
  budget: fc.oneof(
    fc.record({ maxUnavailablePerRegion: fc.integer({ min: 1, max: 3 }) }),
    fc.record({ minAvailablePerRegion: fc.integer({ min: 0, max: 3 }) }),
    fc.constant({}),
  ),
  pauseBetweenBatches: fc.integer({ min: 0, max: 30 }),
  drain: fc.record({ mode: fc.constantFrom('migrate' as const, 'restart' as const, 'none' as const) }),
  health: fc.record({
    timeout: fc.integer({ min: 20, max: 60 }),
    minHealthyTime: fc.integer({ min: 0, max: 8 }),
    checks: fc.constantFrom(['version', 'heartbeat', 'instances'] as const, ['version', 'heartbeat'] as const, ['version'] as const),
  }),
  circuitBreaker: fc.record(
    { maxConsecutiveFailures: fc.integer({ min: 1, max: 4 }), maxFailurePercent: fc.integer({ min: 10, max: 60 }) },
    { requiredKeys: ['maxConsecutiveFailures'] },
  ),
  onNodeFailure: fc.constantFrom('rollback-node' as const, 'leave' as const),
}).map(({ budget, health, ...rest }) => ({ ...rest, ...budget, health: { ...health, checks: [...health.checks] } }));

interface NodeFate {
  upgraded: boolean;
  instances: number;
  forward: InstallOutcome;
  rollback: InstallOutcome;
  drainFails: boolean;
  installSeconds: number;
}

const nodeArb: fc.Arbitrary<NodeFate> = fc.record({
  upgraded: fc.integer({ min: 0, max: 9 }).map((n) => n < 2),
  instances: fc.integer({ min: 0, max: 3 }),
  forward: fc.constantFrom<InstallOutcome>('ok', 'ok', 'ok', 'ok', 'fails', 'unhealthy'),
  rollback: fc.constantFrom<InstallOutcome>('ok', 'ok', 'ok', 'ok', 'ok', 'fails'),
  drainFails: fc.integer({ min: 0, max: 15 }).map((n) => n === 0),
  installSeconds: fc.integer({ min: 2, max: 8 }),
});

const scenarioArb = fc.record({
  regions: fc.array(fc.array(nodeArb, { minLength: 1, maxLength: 7 }), { minLength: 1, maxLength: 4 }),
  strategy: strategyArb,
  window: fc.option(fc.constantFrom({ start: '02:00', end: '04:00' }, { start: '03:00', end: '03:05' }, { start: '22:00', end: '03:30' }), { nil: undefined }),
  choices: fc.array(fc.constantFrom<HumanChoice>('continue', 'continue', 'rollback', 'abort'), { minLength: 1, maxLength: 6 }),
  decisionDelay: fc.integer({ min: 0, max: 600_000 }),
  // A pause always ends in a resume; abort and rollback are final.
  actions: fc
    .array(
      fc.record({
        atMs: fc.integer({ min: 0, max: 900_000 }),
        kind: fc.constantFrom('pause' as const, 'pause' as const, 'abort' as const, 'rollback' as const),
        forMs: fc.integer({ min: 0, max: 600_000 }),
      }),
      { maxLength: 3 },
    )
    .map((list) =>
      list.flatMap(({ atMs, kind, forMs }): OperatorAction[] =>
        kind === 'pause' ? [{ atMs, kind }, { atMs: atMs + forMs, kind: 'resume' }] : [{ atMs, kind }],
      ),
    ),
  extraWakeMs: fc.constantFrom(0, 0, 700, 2_500),
});

describe('decideRollout keeps DESIGN.md §8 (property)', () => {
  it('across random fleets, specs, failures and human actions', () => {
    fc.assert(
      fc.property(scenarioArb, ({ regions, strategy, window, choices, decisionDelay, actions, extraWakeMs }) => {
        const nodes: FleetNode[] = [];
        const fates = new Map<string, NodeFate>();
        regions.forEach((list, r) =>
          list.forEach((n, k) => {
            const node = fleetNode(`r${r}-n${k}`, { region: `region-${r}` });
            nodes.push(node);
            fates.set(node.id, n);
          }),
        );
        const s = spec(strategy, window ? { window: { ...window, timezone: 'UTC' } } : {});
        const versionOf = (id: string) => (fates.get(id)?.upgraded ? '2.0.0' : '1.0.0');
        const plan = planBatches(s, nodes, (n) => versionOf(n.id));
        const drainMode = s.strategy.drain.mode ?? 'migrate';
        const fleet = new FleetModel(
          nodes.map((n) => ({ id: n.id, region: n.region, version: versionOf(n.id), instances: fates.get(n.id)?.instances ?? 0 })),
          {
            drainBaseMs: 1_000,
            drainMsPerInstance: 1_000,
            installMs: (id) => (fates.get(id)?.installSeconds ?? 5) * 1_000,
            outcome: (id, _version, rollback) => (rollback ? fates.get(id)?.rollback : fates.get(id)?.forward) ?? 'ok',
            drainFails: (id) => fates.get(id)?.drainFails ?? false,
          },
        );
        const result = driveRollout({
          rollout: rollout(s, { drainMode, batchCount: plan.batches.length }),
          tasks: tasksFromPlan(plan),
          fleet,
          regionCaps: plan.regionCaps,
          start: T0,
          decisionDelayMs: decisionDelay,
          choose: (i) => choices[i % choices.length] as HumanChoice,
          actions,
          maxVirtualMs: 10 * 86_400_000,
          determinismEvery: 2,
          extraWakeMs,
        });
        expect(result.violations).toEqual({});
        expect(['completed', 'aborted', 'rolled_back', 'failed']).toContain(result.rollout.status);
        // §8.8: a skipped task always says why, and a rollout ends completed only when every
        // task is done or skipped on purpose; a rollout with a failed node never reports success.
        const unexplained = result.tasks.filter((t) => t.state === 'skipped' && !t.lastError).map((t) => t.id);
        expect(unexplained).toEqual([]);
        if (result.rollout.status === 'completed') expect(result.tasks.filter((t) => t.state !== 'done' && t.state !== 'skipped').map((t) => [t.id, t.state])).toEqual([]);
        const anyFailed = result.tasks.some((t) => t.state === 'failed');
        if (anyFailed) expect(result.rollout.status).not.toBe('completed');
        // Without a person stepping in and with the breaker never tripped, a rollout runs to its
        // end: completed when no node failed, failed when one did.
        if (result.trips.length === 0 && actions.length === 0) expect(result.rollout.status).toBe(anyFailed ? 'failed' : 'completed');
      }),
      { numRuns: 120 },
    );
  });
});

// The same checks on the fleet size the simulator is for (issue 9: 10,000 nodes, 20 instances
// each), once, seeded: the per-tick budgets and the end state must hold at scale too, where a
// batch has hundreds of nodes and the breaker trips on failures that cluster in one batch.
// Install times come in 5 s steps so the nodes of a batch finish together (a few thousand ticks
// instead of one per node); every check still runs on every tick.
describe('the simulator keeps DESIGN.md §8 at 10,000 nodes', () => {
  const world = buildWorld({ nodes: 10_000, regions: 3, instancesPerNode: 20, spare: 0.2, replicas: 3, at: T0 });
  const s = spec({
    order: 'parallel-regions',
    canary: { nodes: 1, soak: '5m' },
    batch: { percent: 10 },
    maxUnavailablePerRegion: 334,
    pauseBetweenBatches: '30s',
    drain: { mode: 'migrate' },
    health: { timeout: '5m', minHealthyTime: '10s' },
    circuitBreaker: { maxConsecutiveFailures: 3, maxFailurePercent: 5 },
  });
  const plan = planBatches(s, world.nodes, () => '1.0.0');
  const run = (name: string, failureRate: number, decision: HumanChoice) =>
    simulateUpgrade({
      name,
      spec: s,
      world,
      plan,
      drainMode: effectiveDrainMode(s, true),
      start: T0,
      random: seededRandom(9 + Math.round(failureRate * 1e6)),
      failureRate,
      unhealthyRate: failureRate / 2,
      installMs: 60_000,
      installStepMs: 5_000,
      drainBaseMs: 1_000,
      drainMsPerInstance: 2_000,
      decision,
      decisionDelayMs: 120_000,
      determinismEvery: 1_000,
    });

  it('upgrades every node through breaker trips a person answers with continue', () => {
    const result = run('continue', 0.01, 'continue');
    expect(result.violations).toEqual({});
    expect(result.tasks).toHaveLength(10_000);
    const states = new Map<string, number>();
    for (const t of result.tasks) states.set(t.state, (states.get(t.state) ?? 0) + 1);
    // Every node ended done or failed (nothing skipped, nothing left in flight), and a rollout
    // with failed nodes says failed (§8.8).
    expect([...states.keys()].sort()).toEqual(['done', 'failed']);
    expect((states.get('done') ?? 0) + (states.get('failed') ?? 0)).toBe(10_000);
    expect(result.rollout.status).toBe('failed');
    expect(result.trips.length).toBeGreaterThan(0);
    expect(result.trips.every((t) => t.choice === 'continue')).toBe(true);
    // The region budget held in the fleet itself, and was used (hundreds of nodes at a time).
    for (const region of Object.keys(plan.regionCaps)) {
      expect(result.peakUnavailablePerRegion[region]).toBeLessThanOrEqual(plan.regionCaps[region] as number);
      expect(result.peakUnavailablePerRegion[region]).toBeGreaterThan(100);
    }
  });

  it('stops a bad version at the breaker and returns every touched node when a person says rollback', () => {
    const result = run('drill', 0.3, 'rollback');
    expect(result.violations).toEqual({});
    expect(result.trips).toHaveLength(1);
    expect(['rolled_back', 'failed']).toContain(result.rollout.status);
    // Nothing is left on the bad version unless its rollback failed, and the nodes never started say why.
    expect(result.tasks.filter((t) => t.state === 'done')).toEqual([]);
    // The breaker stops it within the first full batch (1,000 nodes): the rest never start.
    const skipped = result.tasks.filter((t) => t.state === 'skipped');
    expect(skipped.length).toBeGreaterThan(8_000);
    expect(skipped.every((t) => t.lastError !== null)).toBe(true);
    expect(result.tasks.filter((t) => t.state !== 'skipped' && t.state !== 'rolled_back' && t.state !== 'failed')).toEqual([]);
  });

  it('stops a bad version at the breaker and lets the nodes under way finish when a person says abort', () => {
    const result = run('abort', 0.3, 'abort');
    expect(result.violations).toEqual({});
    expect(result.trips).toHaveLength(1);
    expect(result.rollout.status).toBe('aborted');
    // Nothing is left pending or in flight; the nodes never started say why, and nothing else was skipped.
    const skipped = result.tasks.filter((t) => t.state === 'skipped');
    expect(skipped.length).toBeGreaterThan(8_000);
    expect(skipped.every((t) => t.lastError === 'the rollout was aborted before this node started')).toBe(true);
    expect(result.tasks.filter((t) => t.state !== 'skipped' && t.state !== 'done' && t.state !== 'failed')).toEqual([]);
  });
});
