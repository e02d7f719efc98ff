import { describe, expect, it } from 'vitest';
import { ARTIFACT_LIFECYCLES, LIFECYCLE_ACTIONS, lifecycleStep } from '../../src/domain/artifact-lifecycle.js';
import { installEventFor } from '../../src/domain/component-events.js';

describe('artifact lifecycle', () => {
  it('moves draft → blessed → live → archived and nothing else', () => {
    const table = ARTIFACT_LIFECYCLES.map((from) => [from, ...LIFECYCLE_ACTIONS.map((action) => lifecycleStep(from, action).kind)]);
    expect(table).toEqual([
      ['draft', 'change', 'invalid', 'change'],
      ['blessed', 'unchanged', 'change', 'change'],
      ['live', 'invalid', 'unchanged', 'change'],
      ['archived', 'invalid', 'invalid', 'unchanged'],
    ]);
    expect(lifecycleStep('blessed', 'promote')).toEqual({ kind: 'change', from: 'blessed', to: 'live' });
    expect(lifecycleStep('archived', 'promote')).toMatchObject({ kind: 'invalid', allowedFrom: ['blessed'] });
  });
});

describe('install events', () => {
  it('records each change of an install once', () => {
    expect(installEventFor(undefined, { version: '2.0.0', phase: 'downloading' })).toBe('node.install_started');
    expect(installEventFor({ version: '2.0.0', phase: 'downloading' }, { version: '2.0.0', phase: 'downloading' })).toBeUndefined();
    expect(installEventFor({ version: '2.0.0', phase: 'downloading' }, { version: '2.0.0', phase: 'assessing' })).toBeUndefined();
    expect(installEventFor({ version: '2.0.0', phase: 'assessing' }, { version: '2.0.0', phase: 'done' })).toBe('node.install_completed');
    expect(installEventFor({ version: '2.0.0', phase: 'done' }, { version: '2.0.0', phase: 'done' })).toBeUndefined();
    expect(installEventFor({ version: '2.0.0', phase: 'installing' }, { version: '2.0.0', phase: 'failed' })).toBe('node.install_failed');
    expect(installEventFor({ version: '2.0.0', phase: 'assessing' }, { version: '2.0.0', phase: 'reverted' })).toBe('node.reverted');
    // A retry of a failed install, and a new version after a finished one, start again.
    expect(installEventFor({ version: '2.0.0', phase: 'failed' }, { version: '2.0.0', phase: 'downloading' })).toBe('node.install_started');
    expect(installEventFor({ version: '2.0.0', phase: 'done' }, { version: '2.1.0', phase: 'verifying' })).toBe('node.install_started');
    expect(installEventFor({ version: '2.0.0', phase: 'installing' }, { version: '2.1.0', phase: 'downloading' })).toBe('node.install_started');
  });
});
