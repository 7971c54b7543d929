import type { CellValue, ColumnSpec, ColumnType, Row } from '../column-spec';
import type { ProfileKeyDef, ProfileSchema, UserRecord } from '../records';
import { activeProfileKeys, profileColumnKey, profileColumnType, profileValue, toProfileCell } from './profile-values';

/** Sheet name of the contacts export (S9). */
export const USERS_SHEET_NAME = 'User data';

type Def = readonly [key: string, type: ColumnType, width?: number, header?: string];

/**
 * S9 / C5 fixed columns, in order; the workspace's profile keys follow. Name, mobile number and
 * e-mail are profile values in the product and its help articles point readers to the
 * "profile.email" column (S9), so those headers say `profile.*`; the row keys stay short (they
 * are also the filter's field names and the import format's keys).
 */
const USER_COLUMN_DEFS: readonly Def[] = [
  ['id', 'string', 26],
  ['memberId', 'string', 16],
  ['name', 'string', 16, 'profile.name'],
  ['mobileNumber', 'string', 16, 'profile.mobileNumber'],
  ['email', 'string', 26, 'profile.email'],
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

export type UserFixedTextKey = 'name' | 'mobileNumber' | 'email';

/**
 * Workspace profile keys the fixed columns already show (`profile.name` ...): a custom column of
 * the same name would repeat the header. Their stored value fills the fixed cell when the
 * record's own field is empty and the key is active in the workspace (fixedTextFallback).
 */
const FIXED_PROFILE_KEYS: ReadonlySet<string> = new Set<UserFixedTextKey>(['name', 'mobileNumber', 'email']);

/** Which fixed text cells a profile value may fill (fixedTextFallback). */
type FixedTextFallback = Readonly<Record<UserFixedTextKey, boolean>>;
const FALLBACK_ALL: FixedTextFallback = { name: true, mobileNumber: true, email: true };

/**
 * The fixed text cells a profile value may fill. With a profile schema, only keys it declares
 * and has not archived: an archived key is no longer collected and hidden everywhere (C5), so
 * its stored value must not surface through the fixed cell either, and a key the workspace
 * does not declare is no workspace profile key at all (the file shows no undeclared value).
 * Without a schema (previews, tests) nothing is known to be archived and every profile value is
 * written as found (toUserRow), so all three may fill. Callers work it out once per schema.
 */
function fixedTextFallback(profileSchema: ProfileSchema | readonly ProfileKeyDef[] | undefined): FixedTextFallback {
  if (!profileSchema) return FALLBACK_ALL;
  const active = new Set(activeProfileKeys(profileKeysOf(profileSchema)).map((d) => d.key));
  return { name: active.has('name'), mobileNumber: active.has('mobileNumber'), email: active.has('email') };
}

/** Fixed columns, then `profile.*` in the configured order with archived keys left out (C5). */
export function userColumns(profileSchema: ProfileSchema | readonly ProfileKeyDef[] | undefined): ColumnSpec[] {
  const columns: ColumnSpec[] = USER_COLUMN_DEFS.map(([key, type, width, header = key]) =>
    width === undefined ? { key, header, type } : { key, header, type, width },
  );
  for (const def of activeProfileKeys(profileKeysOf(profileSchema))) {
    if (FIXED_PROFILE_KEYS.has(def.key)) continue;
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

export interface UserRowOptions {
  /** The export's zone: a `date` profile value held as date-only or offset-less text is read in it. Default UTC. */
  timeZone?: string;
}

/** Prepares the profile columns once; the returned mapper does per-record work only. */
export function createUserRowMapper(profileSchema: ProfileSchema | readonly ProfileKeyDef[] | undefined, options: UserRowOptions = {}): UserRowMapper {
  const timeZone = options.timeZone ?? 'UTC';
  const profile = activeProfileKeys(profileKeysOf(profileSchema))
    .filter((d) => !FIXED_PROFILE_KEYS.has(d.key))
    .map((d) => ({
      column: profileColumnKey(d.key),
      key: d.key,
      type: d.type,
    }));
  const fallback = fixedTextFallback(profileSchema);
  return (user) => {
    const row = baseRow(user, fallback);
    const values = user.profile;
    if (values) for (const d of profile) row[d.column] = toProfileCell(profileValue(values, d.key), d.type, timeZone);
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
  const row = baseRow(user, FALLBACK_ALL);
  const values = user.profile;
  if (values) {
    for (const key in values) {
      if (FIXED_PROFILE_KEYS.has(key)) continue;
      const v = values[key];
      row[profileColumnKey(key)] = Array.isArray(v) ? v.join(', ') : (v as CellValue);
    }
  }
  return row;
}

/** The fields a fixed text cell is made of (the quick search also takes partial records). */
export interface UserTextFields {
  name?: string | null | undefined;
  mobileNumber?: string | null | undefined;
  email?: string | null | undefined;
  profile?: UserRecord['profile'] | undefined;
}

/**
 * What the file shows in the `name`, `mobileNumber` or `email` cell: the record's own field, else
 * a text value of the same name in its profile when the workspace's profile schema has that key
 * active (fixedTextFallback; pass the schema the row mapper gets). Filters and the quick search
 * read the same, so a value a manager sees in the file is one they can find, and one the file
 * hides is not. The schema check is done once here: the returned reader runs per record.
 */
export function userFixedTextReader(
  key: UserFixedTextKey,
  profileSchema: ProfileSchema | readonly ProfileKeyDef[] | undefined,
): (user: UserTextFields) => string | null | undefined {
  const fallback = fixedTextFallback(profileSchema)[key];
  return (user) => fixedText(user[key], user.profile, key, fallback);
}

function fixedText(own: string | null | undefined, profile: UserRecord['profile'] | undefined, key: string, fallback: boolean): string | null | undefined {
  if (own !== null && own !== undefined && own !== '') return own;
  if (!fallback) return own;
  const v = profile ? profile[key] : undefined;
  return typeof v === 'string' && v !== '' ? v : own;
}

function baseRow(u: UserRecord, fallback: FixedTextFallback): Record<string, CellValue> {
  const profile = u.profile;
  return {
    id: u.id,
    memberId: u.memberId,
    name: fixedText(u.name, profile, 'name', fallback.name),
    mobileNumber: fixedText(u.mobileNumber, profile, 'mobileNumber', fallback.mobileNumber),
    email: fixedText(u.email, profile, 'email', fallback.email),
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
