import type { CellValue, ColumnType } from '../column-spec';
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
export function toProfileCell(value: ProfileValue | undefined, type: ProfileValueType): CellValue {
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
      if (typeof value === 'string') {
        const t = Date.parse(value);
        return Number.isFinite(t) ? t : null;
      }
      return null;
  }
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
