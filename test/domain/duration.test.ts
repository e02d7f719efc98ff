import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from '../../src/domain/duration.js';

describe('parseDuration', () => {
  it.each([
    ['30s', 30_000],
    ['10m', 600_000],
    ['1h30m', 5_400_000],
    ['250ms', 250],
    ['1m30s', 90_000],
    ['2d', 172_800_000],
    ['1.5h', 5_400_000],
    ['0s', 0],
    ['90', 90_000],
    ['  45s  ', 45_000],
  ])('parses %j as %d ms', (input, expected) => {
    expect(parseDuration(input)).toBe(expected);
  });

  it('reads a bare number as seconds', () => {
    expect(parseDuration(90)).toBe(90_000);
    expect(parseDuration(0)).toBe(0);
    expect(parseDuration(0.25)).toBe(250);
  });

  it.each(['abc', '', '   ', '10 m', '30S', '-5s', '1h 30m', 's', '5x', '1e3', 'ms30'])('rejects %j', (input) => {
    expect(parseDuration(input)).toBeNull();
  });

  it.each([-1, Number.NaN, Number.POSITIVE_INFINITY])('rejects the number %d', (input) => {
    expect(parseDuration(input)).toBeNull();
  });

  it('sums any sequence of hour, minute, second and millisecond parts', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 48 }),
        fc.integer({ min: 0, max: 59 }),
        fc.integer({ min: 0, max: 59 }),
        fc.integer({ min: 0, max: 999 }),
        (h, m, s, ms) => {
          expect(parseDuration(`${h}h${m}m${s}s${ms}ms`)).toBe(((h * 60 + m) * 60 + s) * 1000 + ms);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('treats a number and its decimal string the same', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10_000_000 }), (seconds) => {
        expect(parseDuration(seconds)).toBe(seconds * 1000);
        expect(parseDuration(String(seconds))).toBe(seconds * 1000);
      }),
      { numRuns: 200 },
    );
  });
});

describe('formatDuration', () => {
  it.each([
    [250, '250ms'],
    [30_000, '30s'],
    [90_000, '1m30s'],
    [600_000, '10m'],
    [3_600_000, '1h'],
    [5_400_000, '1h30m'],
  ])('formats %d ms as %j', (ms, expected) => {
    expect(formatDuration(ms)).toBe(expected);
  });

  it('round-trips through parseDuration for whole seconds under an hour and whole minutes beyond', () => {
    const wholeSeconds = fc.integer({ min: 1, max: 3599 }).map((s) => s * 1000);
    const wholeMinutes = fc.integer({ min: 1, max: 10_000 }).map((m) => m * 60_000);
    const subSecond = fc.integer({ min: 0, max: 999 });
    fc.assert(
      fc.property(fc.oneof(wholeSeconds, wholeMinutes, subSecond), (ms) => {
        expect(parseDuration(formatDuration(ms))).toBe(ms);
      }),
      { numRuns: 200 },
    );
  });
});
