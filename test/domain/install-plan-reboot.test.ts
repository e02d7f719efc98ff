import { describe, expect, it } from 'vitest';
import { type InstallRecord, MAX_INTERRUPTED_ATTEMPTS, planComponentInstalls } from '../../src/domain/install-plan.js';
import type { DesiredComponent, InstallPhase } from '../../src/domain/protocol.js';
import { NOW } from './fixtures.js';

function want(version: string, over: Partial<DesiredComponent> = {}): DesiredComponent {
  return {
    version,
    artifact_id: `art-${version}`,
    kind: 'os-image',
    sha256: `sha-${version}`,
    size: 100,
    signature: 'sig',
    url: `/api/v1/artifacts/art-${version}/blob`,
    rollback: false,
    disruptive: true,
    ...over,
  };
}

function record(version: string, phase: InstallPhase, over: Partial<InstallRecord> = {}): InstallRecord {
  return {
    component: 'os',
    version,
    previous_version: '1.0.0',
    kind: 'os-image',
    artifact_id: `art-${version}`,
    sha256: `sha-${version}`,
    rollback: false,
    phase,
    interrupted: 0,
    updated_at: NOW.toISOString(),
    ...over,
  };
}

const plan = (desired: Record<string, DesiredComponent> | undefined, records: Record<string, InstallRecord> = {}) =>
  planComponentInstalls({ desired, installed: { os: '1.0.0' }, records, now: NOW });

describe('install plan of reboot-class components', () => {
  it('pre-staging installs (stages) once; a staged record of the same image waits for the install request', () => {
    expect(plan({ os: want('2.0.0', { prestage: true }) })).toMatchObject([{ kind: 'install', component: 'os' }]);
    expect(plan({ os: want('2.0.0', { prestage: true }) }, { os: record('2.0.0', 'staged') })).toEqual([]);
    // Another image under the same version (republished bytes) is staged again.
    expect(plan({ os: want('2.0.0', { prestage: true, sha256: 'other' }) }, { os: record('2.0.0', 'staged') })).toMatchObject([{ kind: 'install' }]);
  });

  it('the install request after pre-staging installs; a restart while staged recovers nothing', () => {
    expect(plan({ os: want('2.0.0') }, { os: record('2.0.0', 'staged') })).toMatchObject([{ kind: 'install', component: 'os' }]);
    expect(plan(undefined, { os: record('2.0.0', 'staged') })).toEqual([]);
  });

  it('an os-image being assessed is assessed again after any number of restarts (its reboots): the boot slots bound the tries', () => {
    const assessing = record('2.0.0', 'assessing', { interrupted: MAX_INTERRUPTED_ATTEMPTS + 5 });
    expect(plan(undefined, { os: assessing })).toEqual([{ kind: 'assess', component: 'os', record: assessing }]);
    // Other kinds still give up after MAX_INTERRUPTED_ATTEMPTS.
    const binary = { ...assessing, kind: 'binary' as const, interrupted: MAX_INTERRUPTED_ATTEMPTS - 1 };
    expect(plan(undefined, { os: binary })).toMatchObject([{ kind: 'revert' }]);
  });
});
