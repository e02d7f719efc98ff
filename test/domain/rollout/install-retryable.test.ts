import { describe, expect, it } from 'vitest';
import { advanceTask } from '../../../src/domain/rollout/task-machine.js';
import { at, facts, rollout, spec, T0, task } from './fixtures.js';

// health.timeout 5m: how long a task waits for the agent's own retry of a failed install.
const r = rollout(spec({ drain: { timeout: '10m', nonMigratable: 'block' }, health: { timeout: '5m', minHealthyTime: '30s' } }));
const installing = task('a', { state: 'installing', stateSince: T0 });
const failedInstall = (reason: string, retryable?: boolean) => facts('a', { install: { version: '2.0.0', phase: 'failed', reason, ...(retryable === undefined ? {} : { retryable }), at: at(1) } });

describe('a failed install the agent retries by itself', () => {
  it('waits when the report says retryable, whatever its wording, and fails only after health.timeout', () => {
    expect(advanceTask(r, installing, failedInstall('connection reset by peer', true), at(1_000)).changes).toEqual({});
    expect(advanceTask(r, installing, failedInstall('connection reset by peer', true), at(5 * 60_000 + 1)).changes).toMatchObject({
      state: 'failed',
      lastError: expect.stringContaining('no successful retry within 300 s'),
    });
  });

  it('fails at once when the report says not retryable, even with the old wording', () => {
    expect(advanceTask(r, installing, failedInstall('download failed: looks transient', false), at(1_000)).changes).toMatchObject({
      state: 'failed',
      lastError: 'install failed: download failed: looks transient',
    });
  });

  it('falls back to the wording for reports without the flag (agents older than it)', () => {
    expect(advanceTask(r, installing, failedInstall('download failed: HTTP 503'), at(1_000)).changes).toEqual({});
    expect(advanceTask(r, installing, failedInstall('bad signature'), at(1_000)).changes).toMatchObject({ state: 'failed' });
  });
});
