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
 * First instant of a calendar day in a time zone. Not simply "midnight minus the offset": a DST
 * change at midnight (America/Santiago, Asia/Beirut) means 00:00 may not exist, and the day
 * then starts at the transition itself. Cached per zone and day (see zoneTable).
 */
export function startOfDayInZone(d: CalendarDate, timeZone: string): number {
  const day = daysFromCivil(d.year, d.month, d.day);
  const table = zoneTable(timeZone);
  if ((day | 0) !== day) return searchDayStart(day, table.offsetAt);
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
/** Past any UTC offset a zone has had (LMT offsets reached about ±15:56 before 1900). */
const MAX_OFFSET_MS = 17 * HOUR_MS;


/**
 * Per zone, the start of each day looked up so far, in a direct-mapped table: slot = day number
 * mod 2^15 (~89 years, so a birthday column of every day over decades fits without evicting
 * itself). Two days 2^15 apart share a slot and evict each other, which only costs a fresh
 * lookup; nothing is ever cleared wholesale, unlike a Map that must be emptied when full.
 * Intl costs about a microsecond a call: a miss makes 2-3 calls on an ordinary day, a DST day ~20.
 */
interface ZoneTable {
  offsetAt: (epochMs: number) => number;
  /** Day number (days since 1970-01-01) each slot holds; EMPTY_DAY when none. */
  days: Int32Array;
  /** First instant of that day. */
  starts: Float64Array;
  /** The one UTC offset in force through the whole day, or NaN when it changes during the day. */
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
    const offsetAt = table.offsetAt;
    const wall = day * DAY_MS;
    // Offsets change at most once a day, so the same offset just before the day's midnight and
    // at its last millisecond means none changes in between: the day is [start, start + 24 h).
    // The day before usually has the same offset: trying it first saves one Intl call.
    const before = (day - 1) & DAY_SLOT_MASK;
    let offset = table.days[before] === day - 1 ? table.offsets[before]! : Number.NaN;
    let uniform = !Number.isNaN(offset) && offsetAt(wall - offset - 1) === offset && offsetAt(wall - offset + DAY_MS - 1) === offset;
    if (!uniform) {
      offset = offsetAt(wall);
      uniform = offsetAt(wall - offset - 1) === offset && offsetAt(wall - offset + DAY_MS - 1) === offset;
    }
    table.starts[slot] = uniform ? wall - offset : searchDayStart(day, offsetAt);
    table.offsets[slot] = uniform ? offset : Number.NaN;
    table.days[slot] = day;
  }
  return slot;
}

/** First instant whose local day is `day`: a binary search over seconds, for days with a transition. */
function searchDayStart(day: number, offsetAt: (epochMs: number) => number): number {
  const wall = day * DAY_MS;
  let lo = (wall - MAX_OFFSET_MS) / 1000; // local day here is < day
  let hi = (wall + MAX_OFFSET_MS) / 1000; // local day here is >= day
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    const t = mid * 1000;
    if (Math.floor((t + offsetAt(t)) / DAY_MS) >= day) hi = mid;
    else lo = mid;
  }
  return hi * 1000;
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
  const offsetAt = table.offsetAt;
  const wall = day * DAY_MS + msOfDay;
  const before = offsetAt(wall - DAY_MS);
  const guess = wall - before;
  const after = offsetAt(guess);
  if (after === before) return guess;
  const shifted = wall - after;
  // Valid under the later offset: a plain offset change between the day before and now.
  if (offsetAt(shifted) === after) return shifted;
  return guess;
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
