import type { CellValue, ColumnType } from '../column-spec';
import { parseIsoWithOffset } from '../../iso-datetime';
import { parseCalendarDate, startOfDayInZone, wallTimeToInstant } from '../calendar';
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
      if (typeof value === 'string' && value.trim() !== '') {
        const n = Number(value);
        return Number.isFinite(n) ? n : null;
      }
      return null;
    case 'boolean':
      if (typeof value === 'boolean') return value;
      if (value === 'true') return true;
      if (value === 'false') return false;
      return null;
    case 'date':
      if (typeof value === 'number') return Number.isFinite(value) ? value : null;
      if (typeof value === 'string') return profileDateText(value, timeZone) ?? null;
      return null;
  }
}

const WALL_DATE_TIME = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?$/;
const dateTextCache = new Map<string, number | undefined>();
/** Profiles repeat the same few dates; bounded so a warm Lambda does not grow without end. */
const MAX_CACHED_DATE_TEXTS = 10_000;

/**
 * Epoch ms of a date held as text in a `date` profile value, read as the workspace means it:
 * a date-only value (`2025-07-01`) is the start of that day in the export's zone, an offset-less
 * date-time (`2025-07-01T10:00`) is wall time there, and text with an offset is that instant.
 * Not the server's zone (Date.parse reads offset-less text in it, and date-only text as UTC),
 * and days that do not exist (2023-02-29) are refused rather than rolled into the next month.
 * Undefined for anything else (the cell stays empty). Shared with the filter, so a condition on
 * the field and the cell agree.
 */
export function profileDateText(text: string, timeZone: string): number | undefined {
  const cacheKey = `${timeZone}\u0000${text}`;
  if (dateTextCache.has(cacheKey)) return dateTextCache.get(cacheKey);
  const t = parseProfileDateText(text.trim(), timeZone);
  if (dateTextCache.size >= MAX_CACHED_DATE_TEXTS) dateTextCache.clear();
  dateTextCache.set(cacheKey, t);
  return t;
}

function parseProfileDateText(text: string, timeZone: string): number | undefined {
  const day = parseCalendarDate(text);
  if (day) return startOfDayInZone(day, timeZone);
  const m = WALL_DATE_TIME.exec(text);
  if (m) {
    const date = parseCalendarDate(m[1]!);
    const hour = Number(m[2]);
    const minute = Number(m[3]);
    const second = m[4] === undefined ? 0 : Number(m[4]);
    if (!date || hour > 23 || minute > 59 || second > 59) return undefined;
    const ms = m[5] === undefined ? 0 : Math.floor(Number(`0.${m[5]}`) * 1000);
    return wallTimeToInstant(date, hour, minute, second, ms, timeZone);
  }
  const withOffset = parseIsoWithOffset(text.length > 10 && text[10] === ' ' ? `${text.slice(0, 10)}T${text.slice(11)}` : text);
  return withOffset !== undefined && Number.isFinite(withOffset) ? withOffset : undefined;
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
