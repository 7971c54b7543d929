import type { CellValue, ColumnType } from '../column-spec';
import { parseIsoWithOffset } from '../../iso-datetime';
import { daysInMonth, isExcelDateInZone, startOfDayInZone, wallTimeToInstant } from '../calendar';
import type { ProfileKeyDef, ProfileValue, ProfileValueType } from '../records';

/** `list` values are written as text; every other profile type is native in the engine. */
export function profileColumnType(type: ProfileValueType): ColumnType {
  return type === 'list' ? 'string' : type;
}

const keyCache = new Map<string, string>();

/** `x` -> `profile.x`, cached so the per-record loop does no string concatenation. */
export function profileColumnKey(key: string): string {
  let k = keyCache.get(key);
  if (k === undefined) {
    k = `profile.${key}`;
    keyCache.set(key, k);
  }
  return k;
}

/**
 * Profile values are loosely typed at the source (managers edit them, C11; imports bring text),
 * but the engine rejects a cell of the wrong type. Convert what has an obvious meaning and leave
 * the rest empty rather than failing a million-row export on one odd value.
 */
export function toProfileCell(value: ProfileValue | undefined, type: ProfileValueType, timeZone = 'UTC'): CellValue {
  if (value === null || value === undefined) return null;
  switch (type) {
    case 'string':
    case 'list':
      if (typeof value === 'string') return value;
      if (Array.isArray(value)) return value.join(', ');
      return String(value);
    case 'number':
      if (typeof value === 'number') return value;
      return typeof value === 'string' ? (decimalTextValue(value) ?? null) : null;
    case 'boolean':
      if (typeof value === 'boolean') return value;
      if (value === 'true') return true;
      if (value === 'false') return false;
      return null;
    case 'date':
      // A date the engine cannot write (before 1900-03-01 or after 9999-12-31 where the file is
      // read) would fail the whole part, and with it the export, over one odd value.
      if (typeof value === 'number') return isExcelDateInZone(value, timeZone) ? value : null;
      if (typeof value === 'string') return profileDateText(value, timeZone) ?? null;
      return null;
  }
}

const DECIMAL_TEXT = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

/**
 * A profile's value under `key`, read as an own property only. The key-name rule allows names
 * every object inherits (`constructor`, `toString`, `valueOf`, `hasOwnProperty`): read plainly,
 * a profile without that key gave the inherited function, which a cell showed as its source
 * text ("function Object() { [native code] }") and `exists` or `contains` filters matched.
 */
export function profileValue<V>(profile: Readonly<Record<string, V>>, key: string): V | undefined {
  return Object.hasOwn(profile, key) ? profile[key] : undefined;
}

/**
 * The number a text means when its meaning is obvious: decimal notation (`5000`, ` 12 `,
 * `-3.5`, `1e3`). Not `Number()`'s other readings, which no manager typing a value means:
 * `0x1A` (26), `0b11` (3), `0o7`, `Infinity`, or the empty string (0). Shared with the filter,
 * so a condition's number and a cell's number are read the same way.
 */
export function decimalTextValue(text: string): number | undefined {
  const t = text.trim();
  if (!DECIMAL_TEXT.test(t)) return undefined;
  const n = Number(t);
  return Number.isFinite(n) ? n : undefined;
}

/**
 * Epoch ms of a date held as text in a `date` profile value, read as the workspace means it:
 * a date-only value (`2025-07-01`) is the start of that day in the export's zone, an offset-less
 * date-time (`2025-07-01T10:00`) is wall time there, and text with an offset is that instant.
 * Not the server's zone (Date.parse reads offset-less text in it, and date-only text as UTC),
 * and days that do not exist (2023-02-29) are refused rather than rolled into the next month.
 * Undefined for anything else, and for a day outside 1900-03-01 .. 9999-12-31 in the zone (the
 * cell stays empty). Shared with the filter, so a condition on the field and the cell agree.
 */
export function profileDateText(text: string, timeZone: string): number | undefined {
  const t = parseProfileDateText(text.trim(), timeZone);
  return t !== undefined && isExcelDateInZone(t, timeZone) ? t : undefined;
}

/** Two ASCII digits at i as a number, or -1. */
function twoDigits(s: string, i: number): number {
  const a = s.charCodeAt(i) - 48;
  const b = s.charCodeAt(i + 1) - 48;
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 ? a * 10 + b : -1;
}

/**
 * `YYYY-MM-DD` and `YYYY-MM-DD[T ]HH:MM[:SS[.fraction]]` are read by position, not by regexes and
 * a match array: a birthday or last-purchase column repeats this up to a million times a chunk.
 */
function parseProfileDateText(text: string, timeZone: string): number | undefined {
  const len = text.length;
  if (len >= 10 && text.charCodeAt(4) === 45 && text.charCodeAt(7) === 45) {
    const hi = twoDigits(text, 0);
    const lo = twoDigits(text, 2);
    const month = twoDigits(text, 5);
    const day = twoDigits(text, 8);
    if (hi >= 0 && lo >= 0 && month >= 0 && day >= 0) {
      const year = hi * 100 + lo;
      // A day that does not exist is refused in every form, with or without a time or offset.
      if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined;
      const date = { year, month, day };
      if (len === 10) return startOfDayInZone(date, timeZone);
      const sep = text.charCodeAt(10);
      if ((sep === 84 || sep === 32) && len >= 16 && text.charCodeAt(13) === 58) {
        const wall = wallTime(text, len);
        if (wall === INVALID) return undefined;
        if (wall !== NOT_WALL) return wallTimeToInstant(date, 0, 0, 0, wall, timeZone);
      }
    }
  }
  const withOffset = parseIsoWithOffset(len > 10 && text[10] === ' ' ? `${text.slice(0, 10)}T${text.slice(11)}` : text);
  return withOffset !== undefined && Number.isFinite(withOffset) ? withOffset : undefined;
}

const NOT_WALL = -1;
const INVALID = -2;

/**
 * Milliseconds into the day of the `HH:MM[:SS[.fraction]]` from index 11; NOT_WALL when more
 * follows (an offset: parsed as ISO text), INVALID for a time that does not exist (25:00).
 */
function wallTime(text: string, len: number): number {
  const hour = twoDigits(text, 11);
  const minute = twoDigits(text, 14);
  if (hour < 0 || minute < 0) return NOT_WALL;
  let second = 0;
  let ms = 0;
  if (len > 16) {
    if (len < 19 || text.charCodeAt(16) !== 58) return NOT_WALL;
    second = twoDigits(text, 17);
    if (second < 0) return NOT_WALL;
    if (len > 19) {
      // A fraction of 1-9 digits; only milliseconds are kept (truncated, not rounded).
      if (text.charCodeAt(19) !== 46 || len === 20 || len > 29) return NOT_WALL;
      for (let i = 20; i < len; i++) {
        const d = text.charCodeAt(i) - 48;
        if (d < 0 || d > 9) return NOT_WALL;
        if (i < 23) ms += d * (i === 20 ? 100 : i === 21 ? 10 : 1);
      }
    }
  }
  if (hour > 23 || minute > 59 || second > 59) return INVALID;
  return ((hour * 60 + minute) * 60 + second) * 1000 + ms;
}

/** A key list as callers hold it: full definitions, or bare key names (text, in list order). */
export type ProfileKeyList = readonly (ProfileKeyDef | string)[];

/** Active (not archived) keys in their configured order (C5). Stable for equal orders. */
export function activeProfileKeys(keys: ProfileKeyList): ProfileKeyDef[] {
  return keys
    .map((k, i) => ({ k: typeof k === 'string' ? { key: k, type: 'string' as const, order: i, archived: false } : k, i }))
    .filter(({ k }) => !k.archived)
    .sort((a, b) => a.k.order - b.k.order || a.i - b.i)
    .map(({ k }) => k);
}
