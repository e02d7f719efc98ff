import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  chooseMigrationMode,
  decideMigration,
  desiredMigrationFor,
  type InstanceMigration,
  isOpenMigration,
  MIGRATION_STATES,
  type MigrationReport,
  type MigrationSide,
  migrationModeFor,
} from '../../src/domain/instance-migration.js';

const now = new Date('2026-12-02T10:00:00Z');

function migration(overrides: Partial<InstanceMigration> = {}): InstanceMigration {
  return {
    id: 'm1',
    instanceId: 'src',
    deploymentId: 'web',
    sourceNodeId: 'n1',
    targetNodeId: 'n2',
    targetInstanceId: 'tgt',
    mode: 'live',
    trigger: 'drain',
    state: 'preparing',
    reason: null,
    targetAddress: null,
    downtimeLimitMs: 300,
    deadlineAt: new Date(now.getTime() + 600_000),
    startedAt: new Date(now.getTime() - 1000),
    endedAt: null,
    stats: null,
    ...overrides,
  };
}

function side(overrides: Partial<MigrationSide> = {}): MigrationSide {
  return { desired: 'running', status: 'running', healthy: true, published: true, nodeStatus: 'ready', report: null, ...overrides };
}

const target = (overrides: Partial<MigrationSide> = {}) => side({ status: 'starting', healthy: false, published: false, ...overrides });
const ready: MigrationReport = { migration_id: 'm1', role: 'target', state: 'ready', address: 'tcp:127.0.0.1:4444' };
const completed: MigrationReport = { migration_id: 'm1', role: 'source', state: 'completed', total_ms: 600, downtime_ms: 60, transferred_bytes: 9e7 };

describe('decideMigration: a live move', () => {
  it('waits in preparing until the target listens, then tells the source where to send the guest', () => {
    expect(decideMigration(migration(), { source: side(), target: target() }, now)).toBeNull();
    const d = decideMigration(migration(), { source: side(), target: target({ report: ready }) }, now);
    expect(d).toMatchObject({ state: 'target_ready', targetAddress: 'tcp:127.0.0.1:4444', stopTarget: false, wake: ['n1'] });
    expect(d?.event?.kind).toBe('migration.target_ready');
  });

  it('moves to transferring on the source report, to switching with the stats on completion, to completed once the target took over', () => {
    const m = migration({ state: 'target_ready', targetAddress: ready.address as string });
    const transferring = { migration_id: 'm1', role: 'source', state: 'transferring' } as const;
    expect(decideMigration(m, { source: side({ report: transferring }), target: target({ report: ready }) }, now)).toMatchObject({ state: 'transferring' });
    const switching = decideMigration({ ...m, state: 'transferring' }, { source: side({ status: 'stopped', report: completed }), target: target({ report: ready }) }, now);
    expect(switching).toMatchObject({ state: 'switching', stats: { total_ms: 600, downtime_ms: 60, transferred_bytes: 9e7 } });
    const done = decideMigration(
      { ...m, state: 'switching', stats: switching?.stats ?? null },
      { source: side({ desired: 'stopped', status: 'stopped', report: completed }), target: side({ report: ready }) },
      now,
    );
    expect(done).toMatchObject({ state: 'completed', stopTarget: false, event: { kind: 'migration.completed', data: { downtime_ms: 60 } } });
  });

  it('fails and withdraws the target when the transfer fails, the target dies, a side goes down, or the deadline passes', () => {
    const m = migration({ state: 'transferring', targetAddress: 'tcp:127.0.0.1:4444' });
    const cases: [string, Parameters<typeof decideMigration>[1], Date, RegExp][] = [
      ['transfer', { source: side({ report: { migration_id: 'm1', role: 'source', state: 'failed', reason: 'boom' } }), target: target() }, now, /transfer failed: boom/],
      ['target died', { source: side(), target: target({ status: 'failed' }) }, now, /target instance failed/],
      ['target refused', { source: side(), target: target({ report: { migration_id: 'm1', role: 'target', state: 'failed', reason: 'no qemu' } }) }, now, /could not receive: no qemu/],
      ['target node down', { source: side(), target: target({ nodeStatus: 'down' }) }, now, /target node went down/],
      ['source node down', { source: side({ nodeStatus: 'down' }), target: target() }, now, /source node went down/],
      ['deadline', { source: side(), target: target() }, new Date(m.deadlineAt.getTime() + 1), /deadline/],
    ];
    for (const [name, facts, at, reason] of cases) {
      const d = decideMigration(m, facts, at);
      expect(d?.state, name).toBe('failed');
      expect(d?.reason, name).toMatch(reason);
      expect(d?.stopTarget, name).toBe(true);
      expect(d?.event?.kind, name).toBe('migration.failed');
    }
  });

  it('never withdraws a target that holds the transferred guest: no deadline after the transfer', () => {
    const late = new Date(now.getTime() + 3_600_000);
    const m = migration({ state: 'switching', targetAddress: 'a' });
    const facts = { source: side({ status: 'stopped', healthy: false, published: false, report: completed }), target: target({ report: ready }) };
    expect(decideMigration(m, facts, late)).toBeNull();
    // Nor before the row knew of it: the source's report of a completed transfer comes first.
    expect(decideMigration({ ...m, state: 'transferring' }, facts, late)).toMatchObject({ state: 'switching', stopTarget: false });
  });

  it('after the transfer, a target that dies or whose node goes down loses the guest: both sides are withdrawn', () => {
    // The source quit at the switchover: retrying the move from it would wait for a guest that
    // no longer runs anywhere, and its endpoint would stay published.
    const facts = (t: MigrationSide) => ({ source: side({ status: 'stopped', healthy: false, report: completed }), target: t });
    for (const [state, t, why] of [
      ['transferring', target({ status: 'failed', report: { ...ready, state: 'failed', reason: 'QEMU exited' } }), /the target instance failed: QEMU exited/],
      ['switching', target({ status: 'failed' }), /the target instance failed/],
      ['switching', target({ nodeStatus: 'down' }), /the target node went down/],
    ] as const) {
      const d = decideMigration(migration({ state, targetAddress: 'a' }), facts(t), now);
      expect(d, state).toMatchObject({ state: 'failed', stopTarget: true, stopSource: true, event: { kind: 'migration.failed', data: { guest_lost: true } } });
      expect(d?.reason).toMatch(why);
      expect(d?.reason).toMatch(/^the guest was lost: .* after the transfer completed, and the source had quit at the switchover$/);
    }
    // Before the transfer the source still runs the guest: only the target goes.
    const before = decideMigration(migration({ state: 'transferring', targetAddress: 'a' }), { source: side(), target: target({ status: 'failed' }) }, now);
    expect(before).toMatchObject({ state: 'failed', stopTarget: true });
    expect(before).not.toHaveProperty('stopSource');
    expect(before?.event?.data).not.toHaveProperty('guest_lost');
  });

  it('after the transfer, a target that dies while the source holds the guest paused: the source resumes it', () => {
    // The source agent reports a handed-over guest it still holds as `starting`.
    const holding = side({ status: 'starting', healthy: false, report: completed });
    const d = decideMigration(migration({ state: 'switching', targetAddress: 'a' }), { source: holding, target: target({ status: 'failed' }) }, now);
    expect(d).toMatchObject({ state: 'failed', stopTarget: true, event: { kind: 'migration.failed', data: { source_resumes: true } } });
    expect(d).not.toHaveProperty('stopSource');
    expect(d?.reason).toBe('the target instance failed after the transfer completed: the guest resumes on the source, which held it paused');
    // Not from a source on a node that went down: nobody there to resume it.
    expect(decideMigration(migration({ state: 'switching' }), { source: { ...holding, nodeStatus: 'down' }, target: target({ status: 'failed' }) }, now)).toMatchObject({ stopSource: true });
  });

  it('ignores a report about another migration of the same instance', () => {
    const old: MigrationReport = { migration_id: 'm0', role: 'source', state: 'failed', reason: 'earlier' };
    expect(decideMigration(migration({ state: 'target_ready', targetAddress: 'a' }), { source: side({ report: old }), target: target() }, now)).toBeNull();
  });

  it('does not fail a move whose source stopped after handing the guest over', () => {
    const m = migration({ state: 'switching' });
    expect(decideMigration(m, { source: side({ desired: 'stopped', status: 'stopped', report: completed }), target: target({ report: ready }) }, now)).toBeNull();
  });
});

describe('decideMigration: a restart move', () => {
  it('completes when the replacement took over and fails when it was withdrawn; the fleet reconciler times it', () => {
    const m = migration({ mode: 'restart' });
    expect(decideMigration(m, { source: side(), target: target() }, new Date(now.getTime() + 3_600_000))).toBeNull();
    expect(decideMigration(m, { source: side(), target: side() }, now)?.state).toBe('completed');
    expect(decideMigration(m, { source: side(), target: target({ desired: 'stopped' }) }, now)).toMatchObject({ state: 'failed', stopTarget: false });
  });
});

describe('desiredMigrationFor', () => {
  it('tells the target from the start and the source only once the target listens', () => {
    const m = migration();
    expect(desiredMigrationFor(m, 'tgt')).toEqual({ id: 'm1', role: 'target' });
    expect(desiredMigrationFor(m, 'src')).toBeNull();
    expect(desiredMigrationFor({ ...m, state: 'target_ready', targetAddress: 'tcp:x:1' }, 'src')).toMatchObject({ role: 'source', address: 'tcp:x:1', downtime_limit_ms: 300 });
    expect(desiredMigrationFor({ ...m, state: 'failed' }, 'tgt')).toBeNull();
    expect(desiredMigrationFor({ ...m, mode: 'restart' }, 'tgt')).toBeNull();
  });

  it('chooses a manual move\'s mode: the workload\'s own by default, live refused for a process', () => {
    const vm = { driver: 'vm' as const, image: 'g@1.0.0', image_artifact_id: 'a', memory_mb: 128, vcpus: 1, guest_port: 8080 };
    expect(chooseMigrationMode(vm, undefined)).toEqual({ ok: true, mode: 'live' });
    expect(chooseMigrationMode(vm, 'restart')).toEqual({ ok: true, mode: 'restart' });
    expect(chooseMigrationMode({ command: 'x' }, undefined)).toEqual({ ok: true, mode: 'restart' });
    expect(chooseMigrationMode({ command: 'x' }, 'live')).toEqual({ ok: false });
  });

  it('derives the mode from the workload driver', () => {
    expect(migrationModeFor({ command: 'x' })).toBe('restart');
    expect(migrationModeFor({ driver: 'vm', image: 'g@1.0.0', image_artifact_id: 'a', memory_mb: 128, vcpus: 1, guest_port: 8080 })).toBe('live');
  });
});

// Invariants (DESIGN.md §8, §10): whatever the facts, a decision never leaves a terminal state,
// never moves backwards, fails by withdrawing the target (the source only once it handed its guest
// over, so that no copy of the guest runs anywhere), and completes only when the target serves.
const ORDER = new Map(MIGRATION_STATES.map((s, i) => [s, i]));
const reportArb = fc.option(
  fc.record({
    migration_id: fc.constantFrom('m1', 'm0'),
    role: fc.constantFrom('source', 'target'),
    state: fc.constantFrom('ready', 'transferring', 'completed', 'failed'),
    address: fc.option(fc.constant('tcp:127.0.0.1:1'), { nil: undefined }),
    total_ms: fc.option(fc.nat(5000), { nil: undefined }),
    downtime_ms: fc.option(fc.nat(500), { nil: undefined }),
    transferred_bytes: fc.option(fc.nat(), { nil: undefined }),
  }) as fc.Arbitrary<MigrationReport>,
  { nil: null },
);
const sideArb = fc.option(
  fc.record({
    desired: fc.constantFrom('running', 'stopped'),
    status: fc.constantFrom('pending', 'starting', 'running', 'stopped', 'failed'),
    healthy: fc.boolean(),
    published: fc.boolean(),
    nodeStatus: fc.constantFrom('ready', 'down', 'draining', 'cordoned'),
    report: reportArb,
  }) as fc.Arbitrary<MigrationSide>,
  { nil: undefined },
);

describe('decideMigration invariants', () => {
  it('moves forward only, fails by withdrawing the target (and the source only once it handed the guest over), completes only when the target serves', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...MIGRATION_STATES),
        fc.constantFrom('live', 'restart'),
        sideArb,
        sideArb,
        fc.integer({ min: -700_000, max: 700_000 }),
        (state, mode, source, target, offset) => {
          const m = migration({ state, mode, targetAddress: state === 'preparing' ? null : 'tcp:127.0.0.1:1' });
          const d = decideMigration(m, { source, target }, new Date(now.getTime() + offset));
          if (!isOpenMigration(state)) return d === null;
          if (d === null) return true;
          const forward = d.state === 'failed' || d.state === 'completed' || (ORDER.get(d.state) as number) > (ORDER.get(state) as number);
          const completesRightly = d.state !== 'completed' || (target?.desired === 'running' && target.published);
          const stopsRightly = !d.stopTarget || (d.state === 'failed' && target?.desired === 'running');
          // The source is withdrawn only when it no longer holds the guest: it handed it over.
          const handedOver = mode === 'live' && (state === 'switching' || (source?.report?.role === 'source' && source.report.migration_id === 'm1' && source.report.state === 'completed'));
          const keepsSource = d.stopSource === undefined || (d.state === 'failed' && handedOver);
          return forward && completesRightly && stopsRightly && keepsSource;
        },
      ),
      { numRuns: 2000 },
    );
  });
});
