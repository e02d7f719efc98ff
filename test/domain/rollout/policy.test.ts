import { describe, expect, it } from 'vitest';
import { parsePolicy, type Policy, policyCovers, strengthenSpec, windowWithin } from '../../../src/domain/rollout/policy.js';
import { WEEKDAYS } from '../../../src/domain/rollout/spec.js';
import type { MaintenanceWindow } from '../../../src/domain/rollout/window.js';
import { spec } from './fixtures.js';

const win = (over: Partial<MaintenanceWindow> = {}): MaintenanceWindow => ({ days: [...WEEKDAYS], start: '02:00', end: '06:00', timezone: 'UTC', ...over });
const policy = (input: Record<string, unknown>): Policy => {
  const parsed = parsePolicy(input);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
  return parsed.policy;
};
const worker: { role: string; region: string; labels: Record<string, string> } = { role: 'worker', region: 'us-east', labels: { tier: 'gold' } };
const target = (component = 'web', nodes = [worker]) => ({ component, nodes });

describe('parsePolicy', () => {
  it('fills defaults and accepts windows in the spec window shape', () => {
    const p = policy({ name: 'web-night', match: { component: 'web' }, approval: { required: true }, windows: [{ start: '22:00', end: '04:00' }] });
    expect(p.approval).toEqual({ required: true, distinctApprover: false });
    expect(p.windows).toEqual([{ days: [...WEEKDAYS], start: '22:00', end: '04:00', timezone: 'UTC' }]);
  });

  it('refuses unknown fields, empty matches, no-op policies and bad windows, naming each path', () => {
    const issues = (input: unknown) => {
      const parsed = parsePolicy(input);
      return parsed.ok ? [] : parsed.issues.map((i) => i.path);
    };
    expect(issues({ name: 'p', match: { component: 'web' }, approval: { required: true }, extra: 1 })).toEqual(['(root)']);
    expect(issues({ name: 'p', match: { component: 'web', hostnames: ['a'] }, approval: { required: true } })).toEqual(['match']);
    expect(issues({ name: 'p', match: {}, approval: { required: true } })).toEqual(['match']);
    expect(issues({ name: 'p', match: { component: 'web' } })).toEqual(['(root)']);
    expect(issues({ name: 'p', match: { component: 'web' }, approval: { required: false } })).toEqual(['(root)']);
    expect(issues({ name: 'p', match: { component: 'web' }, approval: { required: true, requried: true } })).toEqual(['approval']);
    expect(issues({ name: 'p', match: { component: 'web' }, windows: [{ start: '25:00', end: '04:00' }] })).toEqual(['windows.0.start']);
    expect(issues({ name: 'p', match: { component: 'web' }, windows: [{ start: '01:00', end: '04:00', timezone: 'Mars/Base' }] })).toEqual(['windows.0.timezone']);
    expect(issues({ name: 'Bad Name', match: { component: 'web' }, approval: { required: true } })).toEqual(['name']);
  });
});

describe('policyCovers', () => {
  it('matches by component, by node selector (any selected node), or both', () => {
    expect(policyCovers(policy({ name: 'a', match: { component: 'web' }, approval: { required: true } }), target())).toBe(true);
    expect(policyCovers(policy({ name: 'a', match: { component: 'web' }, approval: { required: true } }), target('db'))).toBe(false);
    const gold = policy({ name: 'b', match: { selector: { labels: { tier: 'gold' } } }, approval: { required: true } });
    expect(policyCovers(gold, target('db'))).toBe(true);
    expect(policyCovers(gold, target('db', [{ ...worker, labels: {} }]))).toBe(false);
    expect(policyCovers(gold, target('db', [{ ...worker, labels: {} }, worker]))).toBe(true);
    expect(policyCovers(gold, target('db', []))).toBe(false);
    const both = policy({ name: 'c', match: { component: 'web', selector: { role: 'control-plane', regions: ['us-east'] } }, approval: { required: true } });
    expect(policyCovers(both, target())).toBe(false);
    expect(policyCovers(both, target('web', [{ ...worker, role: 'control-plane' }]))).toBe(true);
    expect(policyCovers(both, target('web', [{ ...worker, role: 'control-plane', region: 'eu-west' }]))).toBe(false);
  });
});

describe('windowWithin', () => {
  it('compares on the local clock, past midnight too; other zones never contain each other', () => {
    expect(windowWithin(win({ start: '03:00', end: '05:00' }), win())).toBe(true);
    expect(windowWithin(win(), win({ start: '03:00', end: '05:00' }))).toBe(false);
    expect(windowWithin(win({ days: ['tue'] }), win({ days: ['mon', 'tue'] }))).toBe(true);
    expect(windowWithin(win({ days: ['fri'], start: '23:00', end: '01:00' }), win({ days: ['fri'], start: '22:00', end: '02:00' }))).toBe(true);
    // Friday 23:00 → Saturday 01:00 is not inside Saturday's 00:00-02:00 alone.
    expect(windowWithin(win({ days: ['fri'], start: '23:00', end: '01:00' }), win({ days: ['sat'], start: '00:00', end: '02:00' }))).toBe(false);
    expect(windowWithin(win({ days: ['sun'], start: '00:00', end: '00:00' }), win({ days: ['sun'], start: '00:00', end: '00:00' }))).toBe(true);
    expect(windowWithin(win({ timezone: 'Europe/Berlin' }), win())).toBe(false);
  });
});

describe('strengthenSpec', () => {
  const approval = policy({ name: 'web-approval', match: { component: 'web' }, approval: { distinctApprover: true } });
  const night = policy({ name: 'web-night', match: { component: 'web' }, windows: [win({ start: '01:00', end: '05:00' })] });

  it('leaves a spec no policy covers exactly as it is', () => {
    const s = spec();
    expect(strengthenSpec(s, [policy({ name: 'db', match: { component: 'db' }, approval: { required: true } })], target())).toEqual({ ok: true, spec: s, applied: [] });
  });

  it('ORs approval; a distinct approver implies approval; names what each policy required', () => {
    const result = strengthenSpec(spec(), [night, approval], target());
    expect(result).toMatchObject({
      ok: true,
      spec: { approval: { required: true, distinctApprover: true }, window: win({ start: '01:00', end: '05:00' }) },
      applied: [
        { name: 'web-approval', requires: ['approval', 'distinct approver'] },
        { name: 'web-night', requires: ['window daily 01:00-05:00 UTC'] },
      ],
    });
    // A spec that asks for more keeps it: a policy never relaxes anything.
    const strict = spec({}, { approval: { required: true, distinctApprover: true } });
    // parsePolicy refuses a policy that requires nothing; built directly, it still relaxes nothing.
    const weak: Policy = { name: 'weak', match: { component: 'web' }, approval: { required: false, distinctApprover: false } };
    expect(strengthenSpec(strict, [weak], target())).toMatchObject({ ok: true, spec: { approval: { required: true, distinctApprover: true } } });
  });

  it('keeps a spec window inside the policy window, applies the policy window when the spec has none, refuses one outside', () => {
    const inside = spec({}, { window: { start: '02:00', end: '04:00' } });
    expect(strengthenSpec(inside, [night], target())).toMatchObject({ ok: true, spec: { window: inside.window } });
    expect(strengthenSpec(spec(), [night], target())).toMatchObject({ ok: true, spec: { window: night.windows?.[0] } });
    const outside = spec({}, { window: { start: '12:00', end: '14:00' } });
    const refused = strengthenSpec(outside, [night], target());
    expect(refused.ok).toBe(false);
    if (!refused.ok) expect(refused.issues).toEqual([{ path: 'window', message: expect.stringMatching(/web-night allows daily 01:00-05:00 UTC/) }]);
  });

  it('takes the policy window when it lies inside the spec window, and picks among a policy’s allowed windows', () => {
    const wide = spec({}, { window: { start: '00:00', end: '08:00' } });
    expect(strengthenSpec(wide, [night], target())).toMatchObject({ ok: true, spec: { window: night.windows?.[0] } });
    const either = policy({ name: 'either', match: { component: 'web' }, windows: [win({ start: '10:00', end: '12:00' }), win({ start: '02:00', end: '03:00' })] });
    expect(strengthenSpec(spec(), [night, either], target())).toMatchObject({ ok: true, spec: { window: win({ start: '02:00', end: '03:00' }) } });
    const disjoint = policy({ name: 'noon', match: { component: 'web' }, windows: [win({ start: '11:00', end: '13:00' })] });
    expect(strengthenSpec(spec(), [night, disjoint], target()).ok).toBe(false);
  });
});
