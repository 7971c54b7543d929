import { ValidationError } from './errors';

/**
 * Calendar-date and time-zone arithmetic. Calendar dates are `YYYY-MM-DD` strings: a day as the
 * user sees it, without an instant. Converting one to an instant needs a time zone, and that is
 * the only place Intl is used (once per request, never per record).
 */

const DAY_MS = 86_400_000;

export interface CalendarDate {
  year: number;
  month: number; // 1..12
  day: number; // 1..31
}

const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})$/;

export function isLeapYear(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

export function daysInMonth(year: number, month: number): number {
  if (month === 2) return isLeapYear(year) ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** Parses `YYYY-MM-DD`; returns undefined for anything that is not a real calendar day. */
export function parseCalendarDate(text: string): CalendarDate | undefined {
  const m = DATE_RE.exec(text);
  if (!m) return undefined;
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined;
  return { year, month, day };
}

export function formatCalendarDate(d: CalendarDate): string {
  return `${String(d.year).padStart(4, '0')}-${String(d.month).padStart(2, '0')}-${String(d.day).padStart(2, '0')}`;
}

/**
 * Adds calendar months, clamping to the last day of the target month (S3: from 2025-08-31 plus
 * 6 months is 2026-02-28, not an overflow into March).
 */
export function addMonthsClamped(d: CalendarDate, months: number): CalendarDate {
  const index = d.year * 12 + (d.month - 1) + months;
  const year = Math.floor(index / 12);
  const month = index - year * 12 + 1;
  return { year, month, day: Math.min(d.day, daysInMonth(year, month)) };
}

export function addDays(d: CalendarDate, days: number): CalendarDate {
  const t = Date.UTC(d.year, d.month - 1, d.day) + days * DAY_MS;
  const x = new Date(t);
  return { year: x.getUTCFullYear(), month: x.getUTCMonth() + 1, day: x.getUTCDate() };
}

/** Negative, zero or positive like a comparator. */
export function compareCalendarDates(a: CalendarDate, b: CalendarDate): number {
  return a.year - b.year || a.month - b.month || a.day - b.day;
}

const formatterCache = new Map<string, Intl.DateTimeFormat>();
/** Far more zones than any workspace uses; past it, a spelling pays the construction each time. */
const MAX_CACHED_ZONES = 512;

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let f = formatterCache.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      hourCycle: 'h23',
    });
    // Bounded: Intl accepts any letter case (`aSiA/sEoUl`), and a warm Lambda must not grow an
    // entry per spelling clients send. (Not keyed by the canonical name: ICU's canonical names are
    // the old ones, `Asia/Calcutta` for `Asia/Kolkata`, so common spellings would always miss.)
    if (formatterCache.size < MAX_CACHED_ZONES) formatterCache.set(timeZone, f);
  }
  return f;
}

/** True for any IANA zone name (or alias such as `UTC`) the runtime knows. */
export function isValidTimeZone(timeZone: string): boolean {
  if (typeof timeZone !== 'string' || timeZone === '') return false;
  try {
    formatterFor(timeZone);
    return true;
  } catch {
    return false;
  }
}

/** The calendar day an instant falls on in a time zone. */
export function calendarDateAt(epochMs: number, timeZone: string): CalendarDate {
  let year = 0;
  let month = 0;
  let day = 0;
  for (const part of formatterFor(timeZone).formatToParts(new Date(epochMs))) {
    if (part.type === 'year') year = Number(part.value);
    else if (part.type === 'month') month = Number(part.value);
    else if (part.type === 'day') day = Number(part.value);
  }
  return { year, month, day };
}

/**
 * First instant of a calendar day in a time zone. A binary search over minutes rather than
 * "subtract the offset", because a DST change at midnight (e.g. America/Santiago, Asia/Beirut)
 * means 00:00 may not exist; the first instant of the day is then the transition itself.
 * Offsets are within -12h..+14h, so the day starts within [UTC midnight - 14h, + 12h].
 */
export function startOfDayInZone(d: CalendarDate, timeZone: string): number {
  const utcMidnight = Date.UTC(d.year, d.month - 1, d.day);
  let lo = (utcMidnight - 15 * 3_600_000) / 60_000; // in minutes; local date here is < d
  let hi = (utcMidnight + 13 * 3_600_000) / 60_000; // local date here is >= d
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (compareCalendarDates(calendarDateAt(mid * 60_000, timeZone), d) >= 0) hi = mid;
    else lo = mid;
  }
  return hi * 60_000;
}

/**
 * Converts an inclusive calendar range [from, to] in a time zone to the half-open instant range
 * [startMs, endMsExclusive): the pipeline reads cases whose start instant is in it.
 */
export function calendarRangeToInstants(
  from: string,
  to: string,
  timeZone: string,
): { startMs: number; endMsExclusive: number } {
  const f = parseCalendarDate(from);
  const t = parseCalendarDate(to);
  if (!f) throw new ValidationError('from must be a calendar date (YYYY-MM-DD)', { code: 'INVALID_DATE', field: 'from' });
  if (!t) throw new ValidationError('to must be a calendar date (YYYY-MM-DD)', { code: 'INVALID_DATE', field: 'to' });
  if (!isValidTimeZone(timeZone)) {
    throw new ValidationError('timezone must be a known IANA time zone', { code: 'INVALID_TIME_ZONE', field: 'timezone' });
  }
  return {
    startMs: startOfDayInZone(f, timeZone),
    endMsExclusive: startOfDayInZone(addDays(t, 1), timeZone),
  };
}

/** Offset of a zone from UTC at an instant, in ms (whole minutes: the formatter's resolution). */
function offsetAt(epochMs: number, timeZone: string): number {
  const minute = Math.floor(epochMs / 60_000) * 60_000;
  let year = 0;
  let month = 0;
  let day = 0;
  let hour = 0;
  let min = 0;
  for (const part of formatterFor(timeZone).formatToParts(new Date(minute))) {
    if (part.type === 'year') year = Number(part.value);
    else if (part.type === 'month') month = Number(part.value);
    else if (part.type === 'day') day = Number(part.value);
    else if (part.type === 'hour') hour = Number(part.value);
    else if (part.type === 'minute') min = Number(part.value);
  }
  return Date.UTC(year, month - 1, day, hour, min) - minute;
}

/**
 * The instant a wall-clock time names in a zone (`2025-07-01 10:00` in Asia/Seoul is 01:00 UTC).
 * Like Temporal's "compatible" disambiguation: a repeated time (the hour a DST end replays) is
 * the earlier instant, and a time in a DST gap is moved forward by the gap (02:30 on a
 * spring-forward night in New York is 03:30 EDT).
 */
export function wallTimeToInstant(d: CalendarDate, hour: number, minute: number, second: number, ms: number, timeZone: string): number {
  const wall = Date.UTC(d.year, d.month - 1, d.day, hour, minute, second, ms);
  const before = offsetAt(wall - 86_400_000, timeZone);
  const guess = wall - before;
  const after = offsetAt(guess, timeZone);
  if (after === before) return guess;
  const shifted = wall - after;
  // Valid under the later offset: a plain offset change between the day before and now.
  if (offsetAt(shifted, timeZone) === after) return shifted;
  return guess;
}
