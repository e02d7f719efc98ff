import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { WEEKDAYS } from '../../../src/domain/rollout/spec.js';
import { isWithinWindow, type MaintenanceWindow, nextWindowOpen } from '../../../src/domain/rollout/window.js';

// 2024-05-06 is a Monday.
const utc = (iso: string) => new Date(`${iso}Z`);
const win = (over: Partial<MaintenanceWindow>): MaintenanceWindow => ({ days: [...WEEKDAYS], start: '02:00', end: '06:00', timezone: 'UTC', ...over });

describe('isWithinWindow', () => {
  it('is always open without a window', () => {
    expect(isWithinWindow(undefined, utc('2024-05-06T12:00:00'))).toBe(true);
  });

  it('opens on the listed days between start (inclusive) and end (exclusive)', () => {
    const w = win({ days: ['tue', 'wed', 'thu'] });
    expect(isWithinWindow(w, utc('2024-05-07T02:00:00'))).toBe(true);
    expect(isWithinWindow(w, utc('2024-05-07T05:59:59'))).toBe(true);
    expect(isWithinWindow(w, utc('2024-05-07T06:00:00'))).toBe(false);
    expect(isWithinWindow(w, utc('2024-05-07T01:59:59'))).toBe(false);
    expect(isWithinWindow(w, utc('2024-05-06T03:00:00'))).toBe(false); // Monday
    expect(isWithinWindow(w, utc('2024-05-09T03:00:00'))).toBe(true); // Thursday
    expect(isWithinWindow(w, utc('2024-05-10T03:00:00'))).toBe(false); // Friday
  });

  it('runs a window that ends before it starts past midnight, counted on the day it opens', () => {
    const w = win({ days: ['fri'], start: '22:00', end: '04:00' });
    expect(isWithinWindow(w, utc('2024-05-10T21:59:00'))).toBe(false);
    expect(isWithinWindow(w, utc('2024-05-10T22:00:00'))).toBe(true); // Friday night
    expect(isWithinWindow(w, utc('2024-05-11T03:59:00'))).toBe(true); // Saturday morning, still Friday's window
    expect(isWithinWindow(w, utc('2024-05-11T04:00:00'))).toBe(false);
    expect(isWithinWindow(w, utc('2024-05-11T22:30:00'))).toBe(false); // Saturday night: not listed
    expect(isWithinWindow(w, utc('2024-05-10T03:00:00'))).toBe(false); // Friday morning belongs to Thursday
  });

  it('treats start equal to end as the whole listed day', () => {
    const w = win({ days: ['sun'], start: '00:00', end: '00:00' });
    expect(isWithinWindow(w, utc('2024-05-12T00:00:00'))).toBe(true);
    expect(isWithinWindow(w, utc('2024-05-12T23:59:00'))).toBe(true);
    expect(isWithinWindow(w, utc('2024-05-13T00:00:00'))).toBe(false);
  });

  it('reads the day and the time in the window time zone', () => {
    // Berlin is UTC+2 in May: 02:00-06:00 there is 00:00-04:00 UTC.
    const berlin = win({ days: ['tue'], timezone: 'Europe/Berlin' });
    expect(isWithinWindow(berlin, utc('2024-05-07T00:30:00'))).toBe(true);
    expect(isWithinWindow(berlin, utc('2024-05-07T04:30:00'))).toBe(false);
    expect(isWithinWindow(berlin, utc('2024-05-06T23:59:00'))).toBe(false);
    // New York is UTC-4 in May: Tuesday 22:00-23:00 there is Wednesday 02:00-03:00 UTC.
    const newYork = win({ days: ['tue'], start: '22:00', end: '23:00', timezone: 'America/New_York' });
    expect(isWithinWindow(newYork, utc('2024-05-08T02:30:00'))).toBe(true);
    expect(isWithinWindow(newYork, utc('2024-05-07T22:30:00'))).toBe(false);
    // Kolkata is UTC+5:30: half-hour offsets count.
    const kolkata = win({ days: ['mon'], start: '09:00', end: '10:00', timezone: 'Asia/Kolkata' });
    expect(isWithinWindow(kolkata, utc('2024-05-06T03:30:00'))).toBe(true);
    expect(isWithinWindow(kolkata, utc('2024-05-06T03:29:00'))).toBe(false);
  });
});

describe('nextWindowOpen', () => {
  it('is now when the window is open or there is none', () => {
    const now = utc('2024-05-07T03:17:42.123');
    expect(nextWindowOpen(undefined, now)).toEqual(now);
    expect(nextWindowOpen(win({}), now)).toEqual(now);
  });

  it('finds the exact minute the next window opens', () => {
    const w = win({ days: ['tue', 'wed', 'thu'] });
    expect(nextWindowOpen(w, utc('2024-05-06T12:00:00'))).toEqual(utc('2024-05-07T02:00:00'));
    expect(nextWindowOpen(w, utc('2024-05-07T06:00:00'))).toEqual(utc('2024-05-08T02:00:00'));
    expect(nextWindowOpen(w, utc('2024-05-07T01:59:30'))).toEqual(utc('2024-05-07T02:00:00'));
    expect(nextWindowOpen(w, utc('2024-05-09T07:00:00'))).toEqual(utc('2024-05-14T02:00:00'));
    expect(nextWindowOpen(win({ start: '02:07', end: '02:08' }), utc('2024-05-07T02:08:00'))).toEqual(utc('2024-05-08T02:07:00'));
  });

  it('finds windows past midnight and in other time zones', () => {
    expect(nextWindowOpen(win({ days: ['fri'], start: '22:00', end: '04:00' }), utc('2024-05-11T05:00:00'))).toEqual(utc('2024-05-17T22:00:00'));
    expect(nextWindowOpen(win({ days: ['tue'], timezone: 'Europe/Berlin' }), utc('2024-05-06T12:00:00'))).toEqual(utc('2024-05-07T00:00:00'));
    expect(nextWindowOpen(win({ days: ['mon'], start: '09:00', end: '10:00', timezone: 'Asia/Kolkata' }), utc('2024-05-06T00:00:00'))).toEqual(
      utc('2024-05-06T03:30:00'),
    );
  });

  it('opens at the first minute that exists when a daylight-saving jump skips the start', () => {
    // Berlin, Sunday 2024-03-31: 02:00 local does not exist (01:59 CET is followed by 03:00 CEST = 01:00 UTC).
    const w = win({ days: ['sun'], start: '02:00', end: '04:00', timezone: 'Europe/Berlin' });
    expect(nextWindowOpen(w, utc('2024-03-30T12:00:00'))).toEqual(utc('2024-03-31T01:00:00'));
  });

  it('returns a minute inside the window, after now, with the minute before still closed (property)', () => {
    const arb = fc.record({
      days: fc.subarray([...WEEKDAYS], { minLength: 1 }),
      start: fc.integer({ min: 0, max: 24 * 60 - 1 }),
      length: fc.integer({ min: 1, max: 24 * 60 - 1 }),
      timezone: fc.constantFrom('UTC', 'Europe/Berlin', 'America/New_York', 'Asia/Kolkata', 'Australia/Sydney'),
      now: fc.integer({ min: Date.UTC(2024, 0, 1), max: Date.UTC(2025, 0, 1) }),
    });
    const hhmm = (m: number) => `${String(Math.floor(m / 60) % 24).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;
    fc.assert(
      fc.property(arb, ({ days, start, length, timezone, now }) => {
        const w = win({ days, start: hhmm(start), end: hhmm((start + length) % (24 * 60)), timezone });
        const from = new Date(now);
        const next = nextWindowOpen(w, from);
        expect(next).not.toBeNull();
        const at = next as Date;
        expect(at.getTime()).toBeGreaterThanOrEqual(now);
        expect(at.getTime() - now).toBeLessThan(8 * 86_400_000);
        expect(isWithinWindow(w, at)).toBe(true);
        if (at.getTime() > now) {
          expect(at.getTime() % 60_000).toBe(0);
          expect(isWithinWindow(w, new Date(Math.max(now, at.getTime() - 60_000)))).toBe(false);
        }
      }),
      { numRuns: 100 },
    );
  });
});
