import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type ComponentAction, type InstallRecord, isTerminal, MAX_INTERRUPTED_ATTEMPTS, planComponentInstalls } from '../../src/domain/install-plan.js';
import { type DesiredComponent, INSTALL_PHASES, type InstallPhase } from '../../src/domain/protocol.js';
import { compareSemver, parseSemver } from '../../src/domain/semver.js';
import { NOW } from './fixtures.js';

function want(version: string, over: Partial<DesiredComponent> = {}): DesiredComponent {
  return {
    version,
    artifact_id: `art-${version}`,
    kind: 'binary',
    sha256: `sha-${version}`,
    size: 100,
    signature: 'sig',
    url: `/api/v1/artifacts/art-${version}/blob`,
    rollback: false,
    disruptive: false,
    ...over,
  };
}

function record(version: string, phase: InstallPhase, over: Partial<InstallRecord> = {}): InstallRecord {
  return {
    component: 'web',
    version,
    previous_version: '1.0.0',
    kind: 'binary',
    artifact_id: `art-${version}`,
    sha256: `sha-${version}`,
    rollback: false,
    phase,
    interrupted: 0,
    updated_at: NOW.toISOString(),
    ...over,
  };
}

function plan(desired: Record<string, DesiredComponent> | undefined, installed: Record<string, string>, records: Record<string, InstallRecord> = {}) {
  return planComponentInstalls({ desired, installed, records, now: NOW });
}

describe('planComponentInstalls: new desired versions', () => {
  it('does nothing when the node runs the desired version', () => {
    expect(plan({ web: want('1.0.0') }, { web: '1.0.0' })).toEqual([]);
  });

  it('starts an upgrade and a first install', () => {
    expect(plan({ web: want('2.0.0'), db: want('1.0.0') }, { web: '1.0.0' })).toEqual([
      { kind: 'install', component: 'db', desired: want('1.0.0'), previous: null, interrupted: 0 },
      { kind: 'install', component: 'web', desired: want('2.0.0'), previous: '1.0.0', interrupted: 0 },
    ]);
  });

  it('refuses a downgrade that is not an explicit rollback, installs one that is', () => {
    const [refused] = plan({ web: want('1.0.0') }, { web: '2.0.0' });
    expect(refused).toMatchObject({ kind: 'refuse', component: 'web', previous: '2.0.0' });
    expect((refused as { reason: string }).reason).toContain('downgrade from 2.0.0 to 1.0.0');
    expect(plan({ web: want('1.0.0', { rollback: true }) }, { web: '2.0.0' })).toMatchObject([{ kind: 'install', previous: '2.0.0' }]);
  });

  it('does not retry a refused, failed or reverted request until the desired state changes', () => {
    for (const phase of ['failed', 'reverted'] as const) {
      const records = { web: record('2.0.0', phase) };
      expect(plan({ web: want('2.0.0') }, { web: '1.0.0' }, records)).toEqual([]);
      expect(plan({ web: want('2.0.1') }, { web: '1.0.0' }, records)).toMatchObject([{ kind: 'install', desired: { version: '2.0.1' } }]);
      expect(plan({ web: want('2.0.0', { sha256: 'rebuilt' }) }, { web: '1.0.0' }, records)).toMatchObject([{ kind: 'install' }]);
    }
    const refused = { web: record('1.0.0', 'failed', { previous_version: '2.0.0' }) };
    expect(plan({ web: want('1.0.0') }, { web: '2.0.0' }, refused)).toEqual([]);
    expect(plan({ web: want('1.0.0', { rollback: true }) }, { web: '2.0.0' }, refused)).toMatchObject([{ kind: 'install' }]);
  });

  it('retries a transient failure once its retry time has come', () => {
    const later = { web: record('2.0.0', 'failed', { retry_at: '2024-05-01T12:00:30.000Z' }) };
    const due = { web: record('2.0.0', 'failed', { retry_at: '2024-05-01T11:59:30.000Z' }) };
    expect(plan({ web: want('2.0.0') }, { web: '1.0.0' }, later)).toEqual([]);
    expect(plan({ web: want('2.0.0') }, { web: '1.0.0' }, due)).toMatchObject([{ kind: 'install' }]);
  });

  it('refuses names that cannot be directory names', () => {
    expect(plan({ '../etc': want('1.0.0') }, {})).toMatchObject([{ kind: 'refuse' }]);
    expect(plan({ web: want('../../1') }, {})).toMatchObject([{ kind: 'refuse' }]);
  });
});

describe('planComponentInstalls: an install the previous agent process left unfinished', () => {
  it('reverts an install interrupted while installing, even before any desired state', () => {
    const [action] = plan(undefined, { web: '1.0.0' }, { web: record('2.0.0', 'installing') });
    expect(action).toMatchObject({ kind: 'revert', component: 'web' });
    expect((action as { reason: string }).reason).toContain('restarted while installing 2.0.0');
  });

  it('assesses again after an interrupted assessment, and reverts at the third interruption', () => {
    expect(plan(undefined, { web: '1.0.0' }, { web: record('2.0.0', 'assessing') })).toMatchObject([{ kind: 'assess', record: { interrupted: 1 } }]);
    expect(plan(undefined, { web: '1.0.0' }, { web: record('2.0.0', 'assessing', { interrupted: 1 }) })).toMatchObject([{ kind: 'assess', record: { interrupted: 2 } }]);
    const [third] = plan(undefined, { web: '1.0.0' }, { web: record('2.0.0', 'assessing', { interrupted: MAX_INTERRUPTED_ATTEMPTS - 1 }) });
    expect(third).toMatchObject({ kind: 'revert', reason: '2.0.0 crashed 3 times in a row during assessment' });
  });

  it('finishes a revert that was itself interrupted', () => {
    expect(plan({ web: want('2.0.0') }, { web: '1.0.0' }, { web: record('2.0.0', 'assessing', { reverting: 'health failed' }) })).toMatchObject([
      { kind: 'revert', reason: 'health failed' },
    ]);
  });

  it('starts a download or verification again cleanly while the same artifact is desired', () => {
    for (const phase of ['downloading', 'verifying'] as const) {
      const records = { web: record('2.0.0', phase) };
      expect(plan(undefined, { web: '1.0.0' }, records)).toEqual([]);
      expect(plan({ web: want('2.0.0') }, { web: '1.0.0' }, records)).toMatchObject([{ kind: 'install', previous: '1.0.0', interrupted: 1 }]);
      expect(plan({ web: want('3.0.0') }, { web: '1.0.0' }, records)).toMatchObject([{ kind: 'install', desired: { version: '3.0.0' }, interrupted: 0 }]);
      expect(plan({ web: want('1.0.0') }, { web: '1.0.0' }, records)).toMatchObject([{ kind: 'fail' }]);
      expect(plan({}, { web: '1.0.0' }, records)).toMatchObject([{ kind: 'fail' }]);
      expect(plan({ web: want('2.0.0') }, { web: '1.0.0' }, { web: record('2.0.0', phase, { interrupted: 2 }) })).toMatchObject([{ kind: 'fail' }]);
    }
  });
});

// ---- properties ------------------------------------------------------------------------------

const VERSIONS = ['1.0.0', '1.1.0', '2.0.0', '2.0.0-rc.1', '3.0.0'];
const COMPONENTS = ['web', 'db'];

const arbDesired = fc.dictionary(
  fc.constantFrom(...COMPONENTS),
  fc.record({ version: fc.constantFrom(...VERSIONS), rollback: fc.boolean() }).map(({ version, rollback }) => want(version, { rollback })),
);
const arbInstalled = fc.dictionary(fc.constantFrom(...COMPONENTS), fc.constantFrom(...VERSIONS));
const arbRecords = fc
  .array(
    fc.record({
      component: fc.constantFrom(...COMPONENTS),
      version: fc.constantFrom(...VERSIONS),
      previous: fc.option(fc.constantFrom(...VERSIONS)),
      phase: fc.constantFrom(...INSTALL_PHASES),
      interrupted: fc.nat(MAX_INTERRUPTED_ATTEMPTS - 1),
      rollback: fc.boolean(),
      reverting: fc.option(fc.constant('health failed'), { nil: undefined }),
    }),
  )
  .map((list) =>
    Object.fromEntries(
      list.map((r) => [
        r.component,
        record(r.version, r.phase, {
          component: r.component,
          previous_version: r.previous,
          interrupted: r.interrupted,
          rollback: r.rollback,
          ...(r.reverting ? { reverting: r.reverting } : {}),
        }),
      ]),
    ),
  );

/**
 * A model of the agent's shell: executing an action walks the phases, persisting each one
 * first; `crashes` decides, at each persisted phase, whether the process dies right there.
 */
interface World {
  installed: Record<string, string>;
  /** What `current` points at: must equal `installed` whenever nothing is in flight. */
  active: Record<string, string | null>;
  records: Record<string, InstallRecord>;
}

class Crash extends Error {}

function execute(world: World, action: ComponentAction, healthy: (version: string) => boolean, crashNow: () => boolean): void {
  const save = (r: InstallRecord) => {
    world.records[r.component] = r;
    if (crashNow()) throw new Crash();
  };
  const setActive = (c: string, v: string | null) => {
    world.active[c] = v;
  };
  const revert = (r: InstallRecord, reason: string) => {
    save({ ...r, reverting: reason });
    setActive(r.component, r.previous_version);
    if (r.previous_version === null) delete world.installed[r.component];
    else world.installed[r.component] = r.previous_version;
    const { reverting: _, ...rest } = r;
    save({ ...rest, phase: 'reverted', reason });
  };
  const assess = (r: InstallRecord) => {
    const assessing = { ...r, phase: 'assessing' as const };
    save(assessing);
    if (!healthy(r.version)) {
      revert(assessing, 'health failed');
      return;
    }
    world.installed[r.component] = r.version;
    save({ ...assessing, phase: 'done', interrupted: 0 });
  };
  switch (action.kind) {
    case 'install': {
      const d = action.desired;
      const r = record(d.version, 'downloading', { component: action.component, previous_version: action.previous, sha256: d.sha256, rollback: d.rollback, interrupted: action.interrupted });
      save(r);
      save({ ...r, phase: 'verifying' });
      save({ ...r, phase: 'installing' });
      setActive(action.component, d.version);
      assess({ ...r, interrupted: 0 });
      return;
    }
    case 'refuse':
      save(record(action.desired.version, 'failed', { component: action.component, previous_version: action.previous, reason: action.reason }));
      return;
    case 'assess':
      assess(action.record);
      return;
    case 'revert':
      revert(action.record, action.reason);
      return;
    case 'fail':
      save({ ...action.record, phase: 'failed', reason: action.reason });
      return;
  }
}

describe('planComponentInstalls properties', () => {
  it('never installs a downgrade unless the desired state marks it as a rollback', () => {
    fc.assert(
      fc.property(arbDesired, arbInstalled, arbRecords, (desired, installed, records) => {
        for (const action of plan(desired, installed, records)) {
          if (action.kind !== 'install') continue;
          const current = installed[action.component];
          if (current !== undefined && compareSemver(parseSemver(action.desired.version)!, parseSemver(current)!) < 0) expect(action.desired.rollback).toBe(true);
        }
      }),
    );
  });

  it('acts on every install found in installing or assessing, whatever the desired state', () => {
    fc.assert(
      fc.property(fc.option(arbDesired, { nil: undefined }), arbInstalled, arbRecords, (desired, installed, records) => {
        const acted = new Set(plan(desired, installed, records).map((a) => a.component));
        for (const r of Object.values(records)) {
          if (r.phase === 'installing' || r.phase === 'assessing') expect(acted.has(r.component)).toBe(true);
        }
      }),
    );
  });

  it('with crashes at any phase, every install ends done, failed or reverted, and the node runs what it proved', () => {
    fc.assert(
      fc.property(
        arbDesired,
        arbInstalled,
        fc.array(fc.boolean(), { maxLength: 40 }),
        fc.subarray(VERSIONS),
        (desired, installed, crashes, unhealthy) => {
          const world: World = { installed: { ...installed }, active: { ...installed }, records: {} };
          let tick = 0;
          const crashNow = () => crashes[tick++] === true;
          const healthy = (v: string) => !unhealthy.includes(v);
          let restarts = 0;
          for (;;) {
            // A restarted agent first recovers without a desired state, then gets one.
            let acted = 0;
            try {
              for (const known of [undefined, desired]) {
                for (const action of plan(known, world.installed, world.records)) {
                  acted++;
                  execute(world, action, healthy, crashNow);
                }
              }
            } catch (error) {
              if (!(error instanceof Crash)) throw error;
            }
            if (acted === 0) break;
            restarts++;
            expect(restarts).toBeLessThan(60);
          }
          for (const c of COMPONENTS) {
            const r = world.records[c];
            if (r) expect(isTerminal(r.phase)).toBe(true);
            if (r?.phase === 'done') expect(world.installed[c]).toBe(r.version);
            if (r?.phase === 'reverted') expect(world.installed[c] ?? null).toBe(r.previous_version);
            expect(world.active[c] ?? null).toBe(world.installed[c] ?? null);
          }
        },
      ),
    );
  });
});
