import { createZoneOffsetLookup } from '../zone-offset';
import { WorkbookPlanError } from './errors';

const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;
/** Days from Excel's 1900 epoch (with its phantom 1900-02-29) to 1970-01-01. */
export const EXCEL_UNIX_EPOCH_DAYS = 25_569;
const MIXED = Number.NaN;
/** Hours remembered per zone: a direct-mapped table of 2^16 slots (~23 years of hours). */
const CACHE_BITS = 16;
const CACHE_MASK = (1 << CACHE_BITS) - 1;

export type ExcelDateConverter = (epochMs: number) => number;
/** Maps an instant (epoch ms) to the same wall-clock reading expressed as if it were UTC. */
export type LocalTimeConverter = (epochMs: number) => number;

/**
 * Builds a converter from an instant (epoch ms) to local wall-clock ms in `timeZone`. Intl is
 * slow (microseconds per call), so offsets are cached per UTC hour: an hour is looked up once,
 * at its first and last millisecond; if both agree the whole hour shares that offset (zones
 * change offset at most once an hour), otherwise the hour holds a transition (e.g. Lord Howe's
 * half-hour DST at :30) and values in it are computed exactly.
 */
export function createLocalTimeConverter(timeZone: string): LocalTimeConverter {
  let converter = converters.get(timeZone);
  if (!converter) {
    converter = buildLocalTimeConverter(timeZone);
    // Shared per zone: every part encoder in a process reuses the hours already looked up.
    converters.set(timeZone, converter);
  }
  return converter;
}
const converters = new Map<string, LocalTimeConverter>();

function buildLocalTimeConverter(timeZone: string): LocalTimeConverter {
  const offsetAt = createOffsetLookup(timeZone);
  // The hour cache is direct-mapped: slot = hour mod 2^16, holding that hour and its offset
  // (or MIXED). A typed-array load and compare costs a fraction of a Map lookup on a number
  // key, and the table's size is fixed. Two hours 2^16 apart share a slot and evict each other,
  // which only costs a fresh lookup. Hours are stored whole (as doubles, beyond int32), so a
  // slot never answers for another hour; NaN (empty slot) equals no hour.
  const cachedHours = new Float64Array(CACHE_MASK + 1).fill(Number.NaN);
  const cachedOffsets = new Float64Array(CACHE_MASK + 1);
  // Dates in one row are usually hours apart at most: remember the last hour before the table.
  let lastHour = Number.NaN;
  let lastOffset = 0;
  return (epochMs: number): number => {
    const hour = Math.floor(epochMs / HOUR_MS);
    if (hour === lastHour) return epochMs + lastOffset;
    const slot = hour & CACHE_MASK;
    let offset: number;
    if (cachedHours[slot] === hour) offset = cachedOffsets[slot]!;
    else {
      const start = hour * HOUR_MS;
      const a = offsetAt(start);
      const b = offsetAt(start + HOUR_MS - 1);
      offset = a === b ? a : MIXED;
      cachedHours[slot] = hour;
      cachedOffsets[slot] = offset;
    }
    if (Number.isNaN(offset)) return epochMs + offsetAt(epochMs);
    lastHour = hour;
    lastOffset = offset;
    return epochMs + offset;
  };
}

/** Instant (epoch ms) to an Excel serial date showing the wall-clock time in `timeZone`. */
export function createExcelDateConverter(timeZone: string): ExcelDateConverter {
  const toLocal = createLocalTimeConverter(timeZone);
  return (epochMs: number): number => toLocal(epochMs) / DAY_MS + EXCEL_UNIX_EPOCH_DAYS;
}

/** Excel serial day of a local wall-clock time (ms as if UTC), and the ms into that day. */
export function splitExcelSerial(localMs: number): { day: number; msOfDay: number } {
  const d = Math.floor(localMs / DAY_MS);
  return { day: d + EXCEL_UNIX_EPOCH_DAYS, msOfDay: localMs - d * DAY_MS };
}

/** Decimal places written for the time of day: 1e-10 day is 8.64 microseconds, so ms survive. */
export const SERIAL_FRACTION_DIGITS = 10;
export const FRACTION_SCALE = 1e10;

/**
 * The fraction of the day as a 10-digit integer (rounded), or FRACTION_SCALE when rounding
 * reaches the next day. Fixed decimals from integer arithmetic are exact and far cheaper than
 * printing the shortest round-trip form of a double.
 */
export function dayFraction(msOfDay: number): number {
  return Math.round((msOfDay * FRACTION_SCALE) / DAY_MS);
}

/** Text of an Excel serial date for a local time, e.g. `45839.3958333333`. */
export function formatExcelSerial(localMs: number): string {
  let { day, msOfDay } = splitExcelSerial(localMs);
  let f = dayFraction(msOfDay);
  if (f >= FRACTION_SCALE) {
    day += 1;
    f = 0;
  }
  if (f === 0) return String(day);
  return String(day) + '.' + String(f).padStart(SERIAL_FRACTION_DIGITS, '0').replace(/0+$/, '');
}

/** Offset of `timeZone` from UTC, in ms, at an instant; exact to the second (shared/zone-offset.ts). */
export function createOffsetLookup(timeZone: string): (epochMs: number) => number {
  try {
    return createZoneOffsetLookup(timeZone);
  } catch {
    throw new WorkbookPlanError(`timeZone "${timeZone}" is not a known IANA time zone`, 'timeZone', 'iana');
  }
}

/** Checks a time zone name up front so a bad one fails before any row is rendered. */
export function assertTimeZone(timeZone: string): void {
  createOffsetLookup(timeZone);
}
