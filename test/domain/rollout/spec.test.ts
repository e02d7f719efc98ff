import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { applySpecEdits, effectiveDrainMode, parseRolloutSpec, type RolloutSpec } from '../../../src/domain/rollout/spec.js';

const minimal = { name: 'agent-2', target: { component: 'node-agent', version: '2.0.0' } };

function ok(input: unknown): RolloutSpec {
  const parsed = parseRolloutSpec(input);
  if (!parsed.ok) throw new Error(`expected a valid spec, got ${JSON.stringify(parsed.issues)}`);
  return parsed.spec;
}

function issues(input: unknown): { path: string; message: string }[] {
  const parsed = parseRolloutSpec(input);
  if (parsed.ok) throw new Error('expected the spec to be rejected');
  return parsed.issues;
}

describe('parseRolloutSpec', () => {
  it('fills every default of a minimal spec', () => {
    const spec = ok(minimal);
    expect(spec.selector).toEqual({});
    expect(spec.strategy).toEqual({
      order: 'rolling',
      batch: { size: 1 },
      pauseBetweenBatches: 0,
      gateBetweenRegions: false,
      drain: { timeout: 600_000, nonMigratable: 'block' },
      health: { timeout: 300_000, minHealthyTime: 30_000, checks: ['version', 'heartbeat', 'instances'] },
      circuitBreaker: { maxConsecutiveFailures: 2 },
      onNodeFailure: 'rollback-node',
    });
    expect(spec.approval).toEqual({ required: false, distinctApprover: false });
    expect(spec.window).toBeUndefined();
    expect(spec.strategy.canary).toBeUndefined();
    expect(spec.strategy.maxUnavailablePerRegion).toBeUndefined();
  });

  it('parses the DESIGN.md §5 example, durations to milliseconds', () => {
    const spec = ok({
      name: 'node-agent-2.0.0',
      target: { component: 'node-agent', version: '2.0.0' },
      selector: { role: 'worker', regions: ['us-east', 'eu-west', 'ap-south'], labels: {} },
      strategy: {
        order: 'region-by-region',
        canary: { nodes: 1, soak: '10m' },
        batch: { percent: 20 },
        maxUnavailablePerRegion: 1,
        pauseBetweenBatches: '60s',
        drain: { mode: 'migrate', timeout: '10m', nonMigratable: 'block' },
        health: { timeout: '5m', minHealthyTime: '30s', checks: ['version', 'heartbeat', 'instances'] },
        circuitBreaker: { maxConsecutiveFailures: 2, maxFailurePercent: 10 },
        onNodeFailure: 'rollback-node',
      },
      approval: { required: true, distinctApprover: true },
      window: { days: ['tue', 'wed', 'thu'], start: '02:00', end: '06:00', timezone: 'UTC' },
      hooks: { preNode: [], postNode: [] },
    });
    expect(spec.strategy.canary).toEqual({ nodes: 1, soak: 600_000 });
    expect(spec.strategy.batch).toEqual({ percent: 20 });
    expect(spec.strategy.pauseBetweenBatches).toBe(60_000);
    expect(spec.strategy.drain).toEqual({ mode: 'migrate', timeout: 600_000, nonMigratable: 'block' });
    expect(spec.strategy.health.minHealthyTime).toBe(30_000);
    expect(spec.window).toEqual({ days: ['tue', 'wed', 'thu'], start: '02:00', end: '06:00', timezone: 'UTC' });
  });

  it('fills nested defaults: canary nodes and soak, window days and time zone, bare seconds', () => {
    const spec = ok({ ...minimal, strategy: { canary: {}, pauseBetweenBatches: 90 }, window: { start: '22:00', end: '04:00' } });
    expect(spec.strategy.canary).toEqual({ nodes: 1, soak: 0 });
    expect(spec.strategy.pauseBetweenBatches).toBe(90_000);
    expect(spec.window).toEqual({ days: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'], start: '22:00', end: '04:00', timezone: 'UTC' });
  });

  it('names each bad field with a message that says what is expected', () => {
    const found = issues({
      name: 'Agent Upgrade',
      target: { component: 'node-agent', version: 'two' },
      strategy: { order: 'random', pauseBetweenBatches: 'soon', circuitBreaker: { maxConsecutiveFailures: 0 } },
      window: { start: '25:00', end: '06:00', timezone: 'Mars/Olympus_Mons' },
    });
    const byPath = Object.fromEntries(found.map((i) => [i.path, i.message]));
    expect(byPath.name).toMatch(/lowercase/);
    expect(byPath['target.version']).toMatch(/semantic version/);
    expect(byPath['strategy.order']).toMatch(/rolling|region-by-region|parallel-regions/);
    expect(byPath['strategy.pauseBetweenBatches']).toMatch(/duration like "30s"/);
    expect(byPath['strategy.circuitBreaker.maxConsecutiveFailures']).toBeDefined();
    expect(byPath['window.start']).toMatch(/time of day/);
    expect(byPath['window.timezone']).toMatch(/IANA time zone/);
  });

  it('accepts hooks of both shapes with their defaults, and refuses an unknown shape or key', () => {
    const parsed = ok({
      ...minimal,
      hooks: {
        preRollout: [{ webhook: 'https://tickets.internal/open', timeout: '30s' }],
        preNode: [{ run: ['/usr/local/bin/stop-services', '--now'], timeout: '2m', env: { SERVICE: 'web' } }],
        postNode: [{ run: ['/usr/local/bin/uncordon-hv'], continueOnError: true }],
      },
    });
    expect(parsed.hooks).toEqual({
      preRollout: [{ webhook: 'https://tickets.internal/open', timeout: 30_000, continueOnError: false, env: {} }],
      preNode: [{ run: ['/usr/local/bin/stop-services', '--now'], timeout: 120_000, continueOnError: false, env: { SERVICE: 'web' } }],
      postNode: [{ run: ['/usr/local/bin/uncordon-hv'], timeout: 60_000, continueOnError: true, env: {} }],
      postRollout: [],
    });
    expect(ok(minimal).hooks).toEqual({ preRollout: [], preNode: [], postNode: [], postRollout: [] });
    expect(issues({ ...minimal, hooks: { preNode: ['echo hi'] } })[0]?.path).toMatch(/^hooks\.preNode\.0/);
    expect(issues({ ...minimal, hooks: { preNode: [{ run: ['echo'], retries: 3 }] } })[0]?.path).toMatch(/^hooks\.preNode\.0/);
    expect(issues({ ...minimal, hooks: { preNode: [{ run: ['echo'], webhook: 'http://x' }] } })[0]?.path).toMatch(/^hooks\.preNode\.0/);
    expect(issues({ ...minimal, hooks: { preNode: [{ run: [] }] } })[0]?.path).toMatch(/^hooks\.preNode\.0/);
    expect(issues({ ...minimal, hooks: { duringNode: [] } })[0]?.path).toBe('hooks');
    expect(issues({ ...minimal, hooks: { postRollout: [{ webhook: 'ftp://x/y' }] } })[0]?.path).toMatch(/^hooks\.postRollout\.0/);
    expect(issues({ ...minimal, hooks: { preNode: [{ run: ['echo'], timeout: '7h' }] } })[0]?.path).toMatch(/^hooks\.preNode\.0/);
    expect(issues({ ...minimal, hooks: { preNode: [{ run: ['echo'], env: { DRYDOCK_NODE: 'x' } }] } })[0]?.path).toMatch(/^hooks\.preNode\.0/);
  });

  it('rejects maxUnavailablePerRegion together with minAvailablePerRegion', () => {
    expect(issues({ ...minimal, strategy: { maxUnavailablePerRegion: 1, minAvailablePerRegion: 2 } })).toEqual([
      { path: 'strategy', message: 'set maxUnavailablePerRegion or minAvailablePerRegion, not both' },
    ]);
    expect(ok({ ...minimal, strategy: { maxUnavailablePerRegion: 1 } }).strategy.maxUnavailablePerRegion).toBe(1);
    expect(ok({ ...minimal, strategy: { minAvailablePerRegion: 2 } }).strategy.minAvailablePerRegion).toBe(2);
  });

  it('takes a batch as percent or size, never both, with a message naming both shapes', () => {
    expect(ok({ ...minimal, strategy: { batch: { percent: 12.5 } } }).strategy.batch).toEqual({ percent: 12.5 });
    expect(ok({ ...minimal, strategy: { batch: { size: 3 } } }).strategy.batch).toEqual({ size: 3 });
    for (const batch of [{ percent: 10, size: 2 }, { size: 1.5 }, {}, 5]) {
      const found = issues({ ...minimal, strategy: { batch } });
      expect(found.map((i) => i.path)).toEqual(['strategy.batch']);
      expect(found[0]?.message).toMatch(/percent/);
      expect(found[0]?.message).toMatch(/size/);
    }
    // With the shape right, the field in range is named.
    expect(issues({ ...minimal, strategy: { batch: { percent: 0 } } })).toEqual([{ path: 'strategy.batch.percent', message: expect.stringMatching(/>0/) }]);
    expect(issues({ ...minimal, strategy: { batch: { percent: 101 } } })).toEqual([{ path: 'strategy.batch.percent', message: expect.stringMatching(/<=100/) }]);
    expect(issues({ ...minimal, strategy: { batch: { size: 0 } } })).toEqual([{ path: 'strategy.batch.size', message: expect.stringMatching(/>=1/) }]);
  });

  it('refuses unknown keys instead of ignoring a typo', () => {
    expect(issues({ ...minimal, strategy: { maxUnavailable: 1 } })).toEqual([{ path: 'strategy', message: expect.stringMatching(/maxUnavailable/) }]);
    expect(issues({ ...minimal, extra: true })[0]?.path).toBe('(root)');
  });

  it('reports a non-object at the root', () => {
    for (const input of ['hello', 42, null, undefined, []]) expect(issues(input)[0]?.path).toBe('(root)');
  });

  it('never throws on arbitrary input', () => {
    fc.assert(
      fc.property(fc.anything(), (input) => {
        const parsed = parseRolloutSpec(input);
        if (!parsed.ok) for (const issue of parsed.issues) expect(issue.message.length).toBeGreaterThan(0);
      }),
      { numRuns: 200 },
    );
  });
});

describe('effectiveDrainMode', () => {
  it('drains disruptive components by migration and leaves the rest alone unless the spec says otherwise', () => {
    expect(effectiveDrainMode(ok(minimal), true)).toBe('migrate');
    expect(effectiveDrainMode(ok(minimal), false)).toBe('none');
    expect(effectiveDrainMode(ok({ ...minimal, strategy: { drain: { mode: 'restart' } } }), false)).toBe('restart');
    expect(effectiveDrainMode(ok({ ...minimal, strategy: { drain: { mode: 'none' } } }), true)).toBe('none');
  });
});

describe('applySpecEdits', () => {
  const input = { ...minimal, strategy: { batch: { percent: 20 }, pauseBetweenBatches: '60s' } };

  it('sets values by dotted path, JSON when it parses and a string otherwise, without touching the input', () => {
    const before = structuredClone(input);
    const edited = applySpecEdits(input, ['strategy.pauseBetweenBatches=30s', 'strategy.maxUnavailablePerRegion=2', 'approval.required=true']);
    expect(input).toEqual(before);
    const spec = ok(edited);
    expect(spec.strategy.pauseBetweenBatches).toBe(30_000);
    expect(spec.strategy.maxUnavailablePerRegion).toBe(2);
    expect(spec.approval.required).toBe(true);
  });

  it('keeps the value after the first = (values may contain =)', () => {
    expect(applySpecEdits(minimal, ['selector.labels={"tier":"a=b"}'])).toMatchObject({ selector: { labels: { tier: 'a=b' } } });
  });

  it('switches a batch from percent to size and back', () => {
    const bySize = applySpecEdits(input, ['strategy.batch.size=2']);
    expect(bySize).toMatchObject({ strategy: { batch: { size: 2 } } });
    expect(ok(bySize).strategy.batch).toEqual({ size: 2 });
    const byPercent = applySpecEdits(bySize, ['strategy.batch.percent=10']);
    expect(ok(byPercent).strategy.batch).toEqual({ percent: 10 });
  });

  it('creates missing objects along the path', () => {
    const edited = applySpecEdits(minimal, ['strategy.canary.nodes=2', 'strategy.canary.soak=5m']);
    expect(ok(edited).strategy.canary).toEqual({ nodes: 2, soak: 300_000 });
  });

  it('leaves validation to the parser: an edit that sets both budgets is caught there', () => {
    const edited = applySpecEdits({ ...minimal, strategy: { maxUnavailablePerRegion: 1 } }, ['strategy.minAvailablePerRegion=2']);
    expect(parseRolloutSpec(edited).ok).toBe(false);
  });

  it('rejects an edit that is not path=value', () => {
    expect(() => applySpecEdits(minimal, ['strategy.batch.size'])).toThrow(/path=value/);
    expect(() => applySpecEdits(minimal, ['=3'])).toThrow(/path=value/);
  });

  it('refuses paths that would reach the object prototype (an approver edit must not change the process)', () => {
    for (const edit of ['__proto__.polluted=1', 'strategy.__proto__.polluted=1', 'constructor.prototype.polluted=1', 'strategy..batch=1']) {
      expect(() => applySpecEdits(minimal, [edit])).toThrow(/path/);
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});
