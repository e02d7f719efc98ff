import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  arm,
  assessStep,
  boot,
  type BootSlotsState,
  checked,
  clearFallback,
  DEFAULT_BOOT_TRIES,
  disarm,
  initialBootSlots,
  isBlessed,
  isStaged,
  otherSlot,
  requestReboot,
  slotsReport,
  stage,
  trialInProgress,
} from '../../src/domain/boot-slots.js';

const image = (version: string) => ({ version, sha256: version.replaceAll('.', '').padEnd(64, '0') });

function mustStage(state: BootSlotsState, version: string): BootSlotsState {
  const r = stage(state, image(version));
  if (!r.ok) throw new Error(r.reason);
  return r.state;
}

function mustArm(state: BootSlotsState, version: string, tries = DEFAULT_BOOT_TRIES): BootSlotsState {
  const r = arm(state, version, tries);
  if (!r.ok) throw new Error(r.reason);
  return r.state;
}

/** Stages, arms, reboots into `version`, with every check outcome given, until it settles. */
function installWith(start: BootSlotsState, version: string, outcomes: boolean[], tries = DEFAULT_BOOT_TRIES): { state: BootSlotsState; boots: number } {
  let state = requestReboot(mustArm(mustStage(start, version), version, tries), 'install');
  let boots = 0;
  for (const ok of outcomes) {
    state = boot(state);
    boots++;
    const step = assessStep(state, version);
    if (step.kind !== 'check') break;
    state = checked(state, ok ? { ok: true } : { ok: false, reason: 'required.d/10-boot failed (exit code 1)' });
    if (state.reboot === null) break;
  }
  if (state.reboot !== null) {
    state = boot(state);
    boots++;
  }
  return { state, boots };
}

describe('boot slots', () => {
  it('stages into the inactive slot, arms it with the tries, and a passing boot blesses it', () => {
    const staged = mustStage(initialBootSlots(), '2.0.0');
    expect(staged.slots.b).toEqual({ ...image('2.0.0'), blessed: false });
    expect(isStaged(staged, image('2.0.0'))).toBe(true);
    expect(isStaged(staged, image('2.0.1'))).toBe(false);
    expect(staged.next).toBe('a'); // staging alone changes no boot
    const armed = mustArm(staged, '2.0.0');
    expect(armed).toMatchObject({ active: 'a', next: 'b', tries_left: 3 });
    expect(assessStep(armed, '2.0.0')).toEqual({ kind: 'reboot' });
    const booted = boot(requestReboot(armed, 'install'));
    expect(booted).toMatchObject({ active: 'b', next: 'b', tries_left: 2, reboot: null });
    expect(assessStep(booted, '2.0.0')).toEqual({ kind: 'check' });
    const blessed = checked(booted, { ok: true });
    expect(blessed.slots.b?.blessed).toBe(true);
    expect(assessStep(blessed, '2.0.0')).toEqual({ kind: 'blessed' });
    expect(slotsReport(blessed)).toEqual({ a: { version: null }, b: { version: '2.0.0' }, active: 'b', next: 'b', tries_left: 0 });
  });

  it('a broken image is booted exactly `tries` times, then the node boots the previous slot and the install reads the reason', () => {
    const { state, boots } = installWith(initialBootSlots(), '2.0.0', [false, false, false, false, false]);
    expect(boots).toBe(4); // three tries and the fallback boot
    expect(state).toMatchObject({ active: 'a', next: 'a', tries_left: 0, reboot: null });
    const step = assessStep(state, '2.0.0');
    expect(step.kind).toBe('fell-back');
    expect(step.kind === 'fell-back' && step.reason).toContain('required.d/10-boot failed');
    expect(clearFallback(state).fallback).toBeNull();
  });

  it('a restart of the agent without a requested reboot boots nothing (the checks simply run again)', () => {
    const booted = boot(requestReboot(mustArm(mustStage(initialBootSlots(), '2.0.0'), '2.0.0'), 'install'));
    expect(boot(booted)).toBe(booted);
  });

  it('refuses to stage while a trial is under way: the inactive slot is then the one to fall back to', () => {
    const booted = boot(requestReboot(mustArm(mustStage(initialBootSlots(), '2.0.0'), '2.0.0'), 'install'));
    expect(trialInProgress(booted)).toBe(true);
    expect(stage(booted, image('3.0.0')).ok).toBe(false);
  });

  it('disarm before the reboot keeps the node on its slot', () => {
    const armed = mustArm(mustStage(initialBootSlots(), '2.0.0'), '2.0.0');
    expect(disarm(armed)).toMatchObject({ active: 'a', next: 'a', tries_left: 0 });
  });

  // Any sequence of operations the agent may perform, in any order, including kill -9 style repeats.
  const op = fc.oneof(
    fc.record({ kind: fc.constant('stage' as const), version: fc.constantFrom('1.0.0', '2.0.0', '3.0.0') }),
    fc.record({ kind: fc.constant('arm' as const), tries: fc.integer({ min: 0, max: 5 }) }),
    fc.record({ kind: fc.constant('reboot' as const) }),
    fc.record({ kind: fc.constant('boot' as const) }),
    fc.record({ kind: fc.constant('check' as const), ok: fc.boolean() }),
    fc.record({ kind: fc.constant('disarm' as const) }),
    fc.record({ kind: fc.constant('clear' as const) }),
  );

  type Op = typeof op extends fc.Arbitrary<infer T> ? T : never;

  function apply(state: BootSlotsState, o: Op): BootSlotsState {
    switch (o.kind) {
      case 'stage': {
        const r = stage(state, image(o.version));
        return r.ok ? r.state : state;
      }
      case 'arm': {
        const version = state.slots[otherSlot(state.active)]?.version;
        if (version === undefined || trialInProgress(state)) return state;
        const r = arm(state, version, o.tries);
        return r.ok ? r.state : state;
      }
      case 'reboot':
        return requestReboot(state, 'test');
      case 'boot':
        return boot(state);
      case 'check':
        return checked(state, o.ok ? { ok: true } : { ok: false, reason: 'no' });
      case 'disarm':
        return disarm(state);
      case 'clear':
        return clearFallback(state);
    }
  }

  it('tries are never negative, some slot is always blessed, and every boot that falls back lands on a blessed slot', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        let state = initialBootSlots();
        for (const o of ops) {
          const before = state;
          state = apply(state, o);
          expect(state.tries_left).toBeGreaterThanOrEqual(0);
          expect(isBlessed(state, 'a') || isBlessed(state, 'b')).toBe(true);
          // A trial never stages over the slot it would fall back to.
          if (trialInProgress(before) && o.kind === 'stage') expect(state.slots).toEqual(before.slots);
          if (o.kind === 'boot' && before.reboot !== null && before.tries_left === 0 && !isBlessed(before, before.next)) {
            expect(isBlessed(state, state.active)).toBe(true);
            expect(state.active).toBe(otherSlot(before.next));
          }
          // The node only ever runs a slot it staged, or the image it came with.
          if (state.fallback !== null) expect(isBlessed(state, state.next)).toBe(true);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('with any check outcomes an install settles within tries + 1 boots: blessed, or back on the previous (blessed) slot', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }), (tries, outcomes) => {
        const base = installWith(initialBootSlots(), '1.0.0', [true]).state;
        const { state, boots } = installWith(base, '2.0.0', outcomes, tries);
        expect(boots).toBeLessThanOrEqual(tries + 1);
        expect(state.reboot).toBeNull();
        const step = assessStep(state, '2.0.0');
        const firstPass = outcomes.slice(0, tries).indexOf(true);
        if (firstPass >= 0) {
          expect(step.kind).toBe('blessed');
          expect(boots).toBe(firstPass + 1);
        } else {
          expect(step.kind).toBe('fell-back');
          expect(state.slots[state.active]).toMatchObject({ version: '1.0.0', blessed: true });
          expect(boots).toBe(tries + 1);
        }
      }),
    );
  });
});
