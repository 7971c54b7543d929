import type { CellValue, ColumnSpec, ColumnType, Row } from '../column-spec';
import type { ProfileKeyDef, ProfileSchema, UserRecord } from '../records';
import { activeProfileKeys, profileColumnKey, profileColumnType, toProfileCell } from './profile-values';

/** Sheet name of the contacts export (S9). */
export const USERS_SHEET_NAME = 'User data';

type Def = readonly [key: string, type: ColumnType, width?: number];

/** S9 / C5 fixed columns, in order; the workspace's profile keys follow. */
const USER_COLUMN_DEFS: readonly Def[] = [
  ['id', 'string', 26],
  ['memberId', 'string', 16],
  ['name', 'string', 16],
  ['mobileNumber', 'string', 16],
  ['email', 'string', 26],
  ['member', 'boolean', 8],
  ['tags', 'string', 20],
  ['lastSeenAt', 'date', 20],
  ['sessionCount', 'number', 10],
  ['createdAt', 'date', 20],
  ['marketingConsentEmail', 'boolean', 10],
  ['marketingConsentTexting', 'boolean', 10],
  ['blocked', 'boolean', 8],
];

export const USER_COLUMN_KEYS: readonly string[] = USER_COLUMN_DEFS.map((d) => d[0]);

/** Fixed columns, then `profile.*` in the configured order with archived keys left out (C5). */
export function userColumns(profileSchema: ProfileSchema | readonly ProfileKeyDef[] | undefined): ColumnSpec[] {
  const columns: ColumnSpec[] = USER_COLUMN_DEFS.map(([key, type, width]) =>
    width === undefined ? { key, header: key, type } : { key, header: key, type, width },
  );
  for (const def of activeProfileKeys(profileKeysOf(profileSchema))) {
    const key = profileColumnKey(def.key);
    columns.push({ key, header: key, type: profileColumnType(def.type), width: 16 });
  }
  return columns;
}

function profileKeysOf(schema: ProfileSchema | readonly ProfileKeyDef[] | undefined): readonly ProfileKeyDef[] {
  if (!schema) return [];
  return Array.isArray(schema) ? schema : (schema as ProfileSchema).keys;
}

export type UserRowMapper = (user: UserRecord) => Row;

/** Prepares the profile columns once; the returned mapper does per-record work only. */
export function createUserRowMapper(profileSchema: ProfileSchema | readonly ProfileKeyDef[] | undefined): UserRowMapper {
  const profile = activeProfileKeys(profileKeysOf(profileSchema)).map((d) => ({
    column: profileColumnKey(d.key),
    key: d.key,
    type: d.type,
  }));
  return (user) => {
    const row = baseRow(user);
    const values = user.profile;
    if (values) for (const d of profile) row[d.column] = toProfileCell(values[d.key], d.type);
    return row;
  };
}

/**
 * Without a profile schema every profile value is written as found (the engine only reads keys
 * that are columns, so archived values are dropped by `userColumns`). With one, values are
 * converted to the declared type.
 */
const mapperBySchema = new WeakMap<object, UserRowMapper>();

export function toUserRow(user: UserRecord, profileSchema?: ProfileSchema | readonly ProfileKeyDef[]): Row {
  if (profileSchema) {
    // Cached per schema object so a loop over a million users prepares the columns once.
    let mapper = mapperBySchema.get(profileSchema);
    if (!mapper) {
      mapper = createUserRowMapper(profileSchema);
      mapperBySchema.set(profileSchema, mapper);
    }
    return mapper(user);
  }
  const row = baseRow(user);
  const values = user.profile;
  if (values) {
    for (const key in values) {
      const v = values[key];
      row[profileColumnKey(key)] = Array.isArray(v) ? v.join(', ') : (v as CellValue);
    }
  }
  return row;
}

function baseRow(u: UserRecord): Record<string, CellValue> {
  return {
    id: u.id,
    memberId: u.memberId,
    name: u.name,
    mobileNumber: u.mobileNumber,
    email: u.email,
    member: u.member,
    tags: u.tags && u.tags.length > 0 ? u.tags.join(', ') : null,
    lastSeenAt: u.lastSeenAt,
    sessionCount: u.sessionCount,
    createdAt: u.createdAt,
    marketingConsentEmail: u.marketingConsentEmail,
    marketingConsentTexting: u.marketingConsentTexting,
    blocked: u.blocked,
  };
}
