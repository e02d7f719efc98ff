import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chooseVersionsToPrune, DEFAULT_KEEP_VERSIONS } from '../../src/domain/component-prune.js';

describe('chooseVersionsToPrune', () => {
  it('keeps the current and the previous version by default, pruning the older ones oldest first', () => {
    expect(DEFAULT_KEEP_VERSIONS).toBe(2);
    expect(chooseVersionsToPrune({ onDisk: ['1.0.0', '2.0.0', '1.10.0', '0.9.0', '3.0.0'], current: '3.0.0', protect: ['2.0.0'], keep: 2 })).toEqual({
      prune: ['0.9.0', '1.0.0', '1.10.0'],
      keep: ['3.0.0', '2.0.0'],
    });
  });

  it('never prunes the version a rollback would return to, even when it is older than others and keep is small', () => {
    // The node went 1.0.0 → 2.0.0 → 2.1.0 and the rollout that installed 2.1.0 came from 1.0.0 (desired previous_version).
    expect(chooseVersionsToPrune({ onDisk: ['1.0.0', '2.0.0', '2.1.0'], current: '2.1.0', protect: ['2.0.0', '1.0.0'], keep: 2 })).toEqual({
      prune: [],
      keep: ['2.1.0', '2.0.0', '1.0.0'],
    });
    expect(chooseVersionsToPrune({ onDisk: ['1.0.0', '2.0.0', '2.1.0'], current: '2.1.0', protect: ['1.0.0'], keep: 1 })).toEqual({
      prune: ['2.0.0'],
      keep: ['2.1.0', '1.0.0'],
    });
  });

  it('keeps current after a rollback to an older version, and the newer one it came from', () => {
    expect(chooseVersionsToPrune({ onDisk: ['1.0.0', '2.0.0', '0.5.0'], current: '1.0.0', protect: ['2.0.0', null], keep: 2 })).toEqual({
      prune: ['0.5.0'],
      keep: ['2.0.0', '1.0.0'],
    });
  });

  it('fills up to keep with the newest others; keep below 1 still keeps current', () => {
    expect(chooseVersionsToPrune({ onDisk: ['1.0.0', '1.1.0', '1.2.0', '1.3.0'], current: '1.3.0', protect: [undefined], keep: 3 }).keep).toEqual(['1.3.0', '1.2.0', '1.1.0']);
    expect(chooseVersionsToPrune({ onDisk: ['1.0.0', '1.1.0'], current: '1.1.0', protect: [], keep: 0 })).toEqual({ prune: ['1.0.0'], keep: ['1.1.0'] });
  });

  it('prunes directories that are not semantic versions first', () => {
    expect(chooseVersionsToPrune({ onDisk: ['junk', '1.0.0', '2.0.0'], current: '2.0.0', protect: [], keep: 2 })).toEqual({ prune: ['junk'], keep: ['2.0.0', '1.0.0'] });
  });

  it('property: never prunes current or a protected version, keeps at most max(keep, protected), prunes only what is on disk and only beyond keep', () => {
    const version = fc.tuple(fc.nat(3), fc.nat(3), fc.nat(3)).map(([a, b, c]) => `${a}.${b}.${c}`);
    fc.assert(
      fc.property(fc.uniqueArray(version, { minLength: 1, maxLength: 12 }), fc.array(fc.option(version), { maxLength: 3 }), fc.integer({ min: -1, max: 6 }), fc.nat(), (onDisk, protect, keep, pick) => {
        const current = onDisk[pick % onDisk.length] as string;
        const choice = chooseVersionsToPrune({ onDisk, current, protect, keep });
        expect(choice.prune).not.toContain(current);
        for (const p of protect) if (p !== null) expect(choice.prune).not.toContain(p);
        expect([...choice.prune, ...choice.keep].sort()).toEqual([...onDisk].sort());
        const protectedOnDisk = new Set([current, ...protect.filter((p): p is string => p !== null && onDisk.includes(p))]);
        expect(choice.keep.length).toBeLessThanOrEqual(Math.max(keep, 1, protectedOnDisk.size));
        // Nothing is pruned while fewer than `keep` versions stay.
        if (choice.prune.length > 0) expect(choice.keep.length).toBeGreaterThanOrEqual(Math.max(1, keep));
      }),
    );
  });
});
