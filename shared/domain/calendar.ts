import { ValidationError } from './errors';
import { createZoneOffsetLookup, daysFromCivil, daysInMonth, isLeapYear } from '../zone-offset';

/**
 * Calendar-date and time-zone arithmetic. Calendar dates are `YYYY-MM-DD` strings: a day as the
 * user sees it, without an instant. Converting one to an instant needs a time zone, and that is
 * the only place Intl is used: it costs microseconds a call, so results are cached per zone and
 * day, and a loop over records (profile dates held as text) pays it once per distinct day.
 */

const DAY_MS = 86_400_000;

export interface CalendarDate {
  year: number;
  month: number; // 1..12
  day: number; // 1..31
}

const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})$/;

export { daysInMonth, isLeapYear };

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

/** The calendar day `instant` falls on in `timeZone` (a valid IANA zone). */
export function dayInZone(instant: Date, timeZone: string): CalendarDate {
  const parts = new Intl.DateTimeFormat('en-US', { timeZone, year: 'numeric', month: 'numeric', day: 'numeric' }).formatToParts(instant);
  const part = (type: string) => Number(parts.find((p) => p.type === type)?.value);
  return { year: part('year'), month: part('month'), day: part('day') };
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
  return civilFromDays(daysFromCivil(d.year, d.month, d.day) + days);
}

function civilFromDays(days: number): CalendarDate {
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  return { year: era * 400 + yoe + (month <= 2 ? 1 : 0), month, day };
}

/** Negative, zero or positive like a comparator. */
export function compareCalendarDates(a: CalendarDate, b: CalendarDate): number {
  return a.year - b.year || a.month - b.month || a.day - b.day;
}

/** True for any IANA zone name (or alias such as `UTC`) the runtime knows. Once per request, not per row. */
export function isValidTimeZone(timeZone: string): boolean {
  if (typeof timeZone !== 'string' || timeZone === '') return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone });
    return true;
  } catch {
    return false;
  }
}

/**
 * First instant of a calendar day in a time zone: the earliest instant whose local date is that
 * day. Not simply "midnight minus the offset": a DST change at midnight (America/Santiago,
 * Asia/Beirut) means 00:00 may not exist, and the day then starts at the change itself; a clock
 * turned back from just after midnight into the day before (America/St_Johns at 00:01 each
 * autumn 1987-2010, Antarctica/Casey 2010-03-05) shows midnight twice, and the day starts at the
 * first. A day no instant shows (Pacific/Apia 2011-12-30) starts where the next day does, so its
 * range is empty. Cached per zone and day (see zoneTable).
 */
export function startOfDayInZone(d: CalendarDate, timeZone: string): number {
  const day = daysFromCivil(d.year, d.month, d.day);
  const table = zoneTable(timeZone);
  if ((day | 0) !== day) return dayShape(day, table.offsetAt, Number.NaN).start;
  return table.starts[daySlot(table, day)]!;
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

const HOUR_MS = 3_600_000;
/**
 * Past any UTC offset a zone has had (LMT offsets reached about ±15:56 before 1900): every
 * instant that shows a given local day or wall time lies within this of it.
 */
const MAX_OFFSET_MS = 17 * HOUR_MS;

/*
 * Intl tells a zone's offset at an instant, not where it changes. So the functions below read the
 * offset at both ends of the stretch of instants that can show a local day (the day and 17 h
 * either side: 58 h) or a wall time (34 h), and rely on the offset changing at most once in such
 * a stretch: the same offset at both ends means one offset throughout, different ones one change.
 * Changes are at least 95 h apart in tzdata 1900-2060 (Africa/Freetown 1939), 167 h in the ICU
 * data Node ships (Brazil's one-week summer time of 2000). Reading the offset only from the day's
 * midnight on is not enough: it misses a change that turns the clock back from just after
 * midnight into the day before, and with it the day's first midnight
 * (test/domain/calendar-transitions.test.ts).
 */

/**
 * Per zone, the start of each day looked up so far, in a direct-mapped table: slot = day number
 * mod 2^15 (~89 years, so a birthday column of every day over decades fits without evicting
 * itself). Two days 2^15 apart share a slot and evict each other, which only costs a fresh
 * lookup; nothing is ever cleared wholesale, unlike a Map that must be emptied when full.
 * Intl costs about a microsecond a call: a miss makes 1-2 calls on an ordinary day, 3-4 within
 * 17 h of an offset change, 6 on a day with one (~18 when it skips midnight).
 */
interface ZoneTable {
  offsetAt: (epochMs: number) => number;
  /** Day number (days since 1970-01-01) each slot holds; EMPTY_DAY when none. */
  days: Int32Array;
  /** First instant of that day. */
  starts: Float64Array;
  /**
   * The one UTC offset in force through the whole day when no instant outside
   * [start, start + 24 h) shows it, or NaN (an offset change during the day).
   */
  offsets: Float64Array;
}

const DAY_SLOT_BITS = 15;
const DAY_SLOT_MASK = (1 << DAY_SLOT_BITS) - 1;
/** No calendar date of years -5,000,000..5,000,000 has this day number. */
const EMPTY_DAY = -0x80000000;
/** Each table is 640 kB; a process serves one or two zones, the bound is for odd spellings. */
const MAX_ZONE_TABLES = 8;
const zoneTables = new Map<string, ZoneTable>();
let lastZone = '';
let lastTable: ZoneTable | undefined;

function zoneTable(timeZone: string): ZoneTable {
  if (timeZone === lastZone && lastTable) return lastTable;
  let table = zoneTables.get(timeZone);
  if (!table) {
    table = {
      offsetAt: createZoneOffsetLookup(timeZone),
      days: new Int32Array(DAY_SLOT_MASK + 1).fill(EMPTY_DAY),
      starts: new Float64Array(DAY_SLOT_MASK + 1),
      offsets: new Float64Array(DAY_SLOT_MASK + 1),
    };
    if (zoneTables.size >= MAX_ZONE_TABLES) zoneTables.delete(zoneTables.keys().next().value!);
    zoneTables.set(timeZone, table);
  }
  lastZone = timeZone;
  lastTable = table;
  return table;
}

/** The slot of `day` (an int32 day number), filled first if it holds another day. */
function daySlot(table: ZoneTable, day: number): number {
  const slot = day & DAY_SLOT_MASK;
  if (table.days[slot] !== day) {
    const before = (day - 1) & DAY_SLOT_MASK;
    const shape = dayShape(day, table.offsetAt, table.days[before] === day - 1 ? table.offsets[before]! : Number.NaN);
    table.starts[slot] = shape.start;
    table.offsets[slot] = shape.offset;
    table.days[slot] = day;
  }
  return slot;
}

/**
 * The first instant of `day` (the earliest whose local date is that day; for a day no instant
 * shows, the first of the next) and the day's one offset as ZoneTable.offsets holds it.
 * `offsetBefore`: the previous day's one offset, or NaN when unknown or none.
 */
function dayShape(day: number, offsetAt: (epochMs: number) => number, offsetBefore: number): { start: number; offset: number } {
  const wall = day * DAY_MS;
  const last = offsetAt(wall + DAY_MS + MAX_OFFSET_MS);
  // A day before with one offset ends at wall - offsetBefore with it still in force, and no
  // instant before that shows this day: the same offset 17 h after this day means no change in
  // between. Saves an Intl call on consecutive days.
  if (last === offsetBefore) return { start: wall - last, offset: last };
  const first = offsetAt(wall - MAX_OFFSET_MS);
  if (first === last) return { start: wall - first, offset: first };
  // One change between. At or before both candidate midnights: the day is all after it, and
  // every instant before it shows an earlier day.
  if (offsetAt(wall - Math.max(first, last)) === last) return { start: wall - last, offset: last };
  // At or after the day's end under both offsets: the day is all before it, and every instant
  // after it shows a later day.
  if (offsetAt(wall + DAY_MS - Math.min(first, last) - 1) === first) return { start: wall - first, offset: first };
  // Within the day: it starts at its earliest midnight (a clock turned back from 00:01 shows
  // midnight twice), or at the change itself when that skips midnight (forward, so first < last).
  let start = Number.POSITIVE_INFINITY;
  for (const offset of [first, last]) {
    if (wall - offset < start && offsetAt(wall - offset) === offset) start = wall - offset;
  }
  if (start === Number.POSITIVE_INFINITY) start = changeAfter(wall - last, wall - first, offsetAt);
  return { start, offset: Number.NaN };
}

/**
 * The instant (whole seconds, as offsets change) of the one offset change in (lo, hi], given as
 * whole-second instants with different offsets: a binary search over seconds.
 */
function changeAfter(lo: number, hi: number, offsetAt: (epochMs: number) => number): number {
  const before = offsetAt(lo);
  let a = lo / 1000;
  let b = hi / 1000;
  while (b - a > 1) {
    const mid = Math.floor((a + b) / 2);
    if (offsetAt(mid * 1000) === before) a = mid;
    else b = mid;
  }
  return b * 1000;
}

/**
 * The instant a wall-clock time names in a zone (`2025-07-01 10:00` in Asia/Seoul is 01:00 UTC).
 * Like Temporal's "compatible" disambiguation: a repeated time (the hour a DST end replays) is
 * the earlier instant, and a time in a DST gap is moved forward by the gap (02:30 on a
 * spring-forward night in New York is 03:30 EDT).
 */
export function wallTimeToInstant(d: CalendarDate, hour: number, minute: number, second: number, ms: number, timeZone: string): number {
  const day = daysFromCivil(d.year, d.month, d.day);
  const msOfDay = ((hour * 60 + minute) * 60 + second) * 1000 + ms;
  const table = zoneTable(timeZone);
  if ((day | 0) === day && msOfDay >= 0 && msOfDay < DAY_MS) {
    const slot = daySlot(table, day);
    if (!Number.isNaN(table.offsets[slot]!)) return table.starts[slot]! + msOfDay;
  }
  // An instant showing this time is `wall - offset` under the offset in force at it: the one
  // 17 h before, or after the one change in between.
  const offsetAt = table.offsetAt;
  const wall = day * DAY_MS + msOfDay;
  const before = offsetAt(wall - MAX_OFFSET_MS);
  const after = offsetAt(wall + MAX_OFFSET_MS);
  if (before === after) return wall - before;
  // The larger offset gives the earlier instant: tried first, so a repeated time is the earlier.
  const larger = Math.max(before, after);
  const smaller = Math.min(before, after);
  if (offsetAt(wall - larger) === larger) return wall - larger;
  if (offsetAt(wall - smaller) === smaller) return wall - smaller;
  // Neither: the time is in a gap, and the offset before it moves it forward by the gap.
  return wall - before;
}

/** Local wall-clock ms (as if UTC) of 1900-03-01 and 10000-01-01: the days a date cell can show. */
const EXCEL_FIRST_LOCAL_MS = daysFromCivil(1900, 3, 1) * DAY_MS;
const EXCEL_END_LOCAL_MS = daysFromCivil(10000, 1, 1) * DAY_MS;

/**
 * True when an instant falls on a day from 1900-03-01 to 9999-12-31 in the zone: the xlsx
 * engine refuses any other date cell (before 1900-03-01 Excel's phantom 1900-02-29 shifts
 * dates), and a refused cell fails the whole part. Decided in the zone, as the engine does, but
 * Intl is only asked within a day of either end.
 */
export function isExcelDateInZone(epochMs: number, timeZone: string): boolean {
  if (!(epochMs >= EXCEL_FIRST_LOCAL_MS - MAX_OFFSET_MS && epochMs < EXCEL_END_LOCAL_MS + MAX_OFFSET_MS)) return false;
  if (epochMs >= EXCEL_FIRST_LOCAL_MS + MAX_OFFSET_MS && epochMs < EXCEL_END_LOCAL_MS - MAX_OFFSET_MS) return true;
  const local = epochMs + zoneTable(timeZone).offsetAt(epochMs);
  return local >= EXCEL_FIRST_LOCAL_MS && local < EXCEL_END_LOCAL_MS;
}
