import type { RolloutSpec, Weekday } from './spec.js';

export type MaintenanceWindow = NonNullable<RolloutSpec['window']>;

const DAY_INDEX: Record<string, Weekday> = { Sun: 'sun', Mon: 'mon', Tue: 'tue', Wed: 'wed', Thu: 'thu', Fri: 'fri', Sat: 'sat' };
const ORDER: Weekday[] = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

// Building an Intl.DateTimeFormat costs ~100 µs, formatting with one ~5 µs: keep one per zone.
const formatters = new Map<string, Intl.DateTimeFormat>();

function localClock(now: Date, timeZone: string): { day: Weekday; minutes: number } {
  let format = formatters.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', { timeZone, weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    formatters.set(timeZone, format);
  }
  const parts = format.formatToParts(now);
  const get = (type: string) => parts.find((p) => p.type === type)?.value ?? '0';
  return { day: DAY_INDEX[get('weekday')] ?? 'sun', minutes: Number(get('hour')) * 60 + Number(get('minute')) };
}

const toMinutes = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

/**
 * Is `now` inside the maintenance window? `days` name the day a window opens on; a window
 * whose end is before its start runs past midnight into the next day.
 */
export function isWithinWindow(window: MaintenanceWindow | undefined, now: Date): boolean {
  if (!window) return true;
  const { day, minutes } = localClock(now, window.timezone);
  const start = toMinutes(window.start);
  const end = toMinutes(window.end);
  if (start === end) return window.days.includes(day);
  if (start < end) return window.days.includes(day) && minutes >= start && minutes < end;
  const previous = ORDER[(ORDER.indexOf(day) + 6) % 7] as Weekday;
  return (window.days.includes(day) && minutes >= start) || (window.days.includes(previous) && minutes < end);
}

/**
 * When the window next opens (now if it is open), to the minute; null if it never does within 8
 * days. Samples the clock every 15 minutes, or every `length` minutes for a shorter window, so
 * no window fits between two samples; then finds the exact minute. Where a daylight-saving jump
 * moves the local clock between two samples, every minute in between is looked at.
 */
export function nextWindowOpen(window: MaintenanceWindow | undefined, now: Date): Date | null {
  if (!window || isWithinWindow(window, now)) return now;
  const minute = 60_000;
  const open = (t: number) => isWithinWindow(window, new Date(t));
  const offset = (t: number) => (localClock(new Date(t), window.timezone).minutes - (Math.floor(t / minute) % 1440) + 1440) % 1440;
  const length = (toMinutes(window.end) - toMinutes(window.start) + 1440) % 1440 || 1440;
  const step = Math.min(15, length) * minute;
  const first = Math.ceil(now.getTime() / minute) * minute;
  if (open(first)) return new Date(first);
  for (let previous = first, t = first + step; t <= first + 8 * 86_400_000; previous = t, t += step) {
    if (!open(t) && offset(t) === offset(previous)) continue;
    for (let u = previous + minute; u <= t; u += minute) if (open(u)) return new Date(u);
  }
  return null;
}
