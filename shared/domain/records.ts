import { z } from 'zod';
import { parseIsoWithOffset } from '../iso-datetime';
import { isValidTimeZone } from './calendar';
import { formatIssuePath, ValidationError } from './errors';

/**
 * Source record shapes: what the pipeline reads from the source tables and what the import
 * format (one JSON object per line) turns into. Timestamps are epoch milliseconds (numbers are
 * cheaper to store, compare and hand to the xlsx engine than strings); durations are seconds.
 * Record keys are the export file's column keys, so an import line, a record and a row agree.
 */

export const MEDIUM_NAMES = [
  'inAppChat',
  'phoneNumber',
  'email',
  'appNaverTalk',
  'appInstagramMessenger',
  'appLine',
  'appKakao',
] as const;
export const DIRECTIONS = ['inbound', 'outbound'] as const;
export const USER_CHAT_STATES = ['queued', 'open', 'missed', 'snoozed', 'closed'] as const;
export const MARKETING_TYPES = ['oneTimeMsg', 'campaign'] as const;
export const CASE_STATES = ['inProgress', 'completed'] as const;

export const mediumNameSchema = z.enum(MEDIUM_NAMES);
export const directionSchema = z.enum(DIRECTIONS);
export const userChatStateSchema = z.enum(USER_CHAT_STATES);
export const marketingTypeSchema = z.enum(MARKETING_TYPES);

export type MediumName = z.infer<typeof mediumNameSchema>;
export type Direction = z.infer<typeof directionSchema>;
export type UserChatState = z.infer<typeof userChatStateSchema>;
export type CaseState = (typeof CASE_STATES)[number];

/**
 * The latest timestamp a record may hold: 9999-12-31T00:00Z is still 9999-12-31 in every zone,
 * and an xlsx date cell can show nothing after that day. A later value (the Date limit is
 * 8.64e15) passed the parsers but failed the engine, and with it the whole export.
 */
export const MAX_TIMESTAMP_MS = Date.UTC(9999, 11, 31);

/** Epoch milliseconds. */
export const timestampSchema = z.number().int().min(0).max(MAX_TIMESTAMP_MS);
const optionalTimestamp = timestampSchema.nullish();
const seconds = z.number().finite().min(0);
const count = z.int().min(0);

export const profileValueSchema = z.union([z.string(), z.number().finite(), z.boolean(), z.array(z.string()), z.null()]);
export type ProfileValue = z.infer<typeof profileValueSchema>;

/** Profile key names: used inside column keys (`profile.<key>`) and filter fields. */
export const profileKeyNameSchema = z.string().regex(/^[A-Za-z][A-Za-z0-9_]{0,63}$/, 'must be a letter followed by letters, digits or _ (at most 64)');

export const profileSchema = z.record(z.string(), profileValueSchema);

// ---------------------------------------------------------------------------------------------
// Cases ("UserChatCase data", S8)

export const caseRecordSchema = z.object({
  userChatCaseId: z.string().min(1),
  /** Ordinal of this case within its chat, 1-based (each reopening starts a new case, S1). */
  userChatCase: z.int().min(1),
  userChatCaseUpdatedAt: optionalTimestamp,
  userChatId: z.string().min(1),
  direction: directionSchema,
  userChatState: userChatStateSchema,
  teamId: z.string().nullish(),
  assigneeId: z.string().nullish(),
  /** Followers. */
  managerIds: z.array(z.string()).default([]),
  userId: z.string().min(1),
  userName: z.string().nullish(),
  /** When the chat (not the case) was created. */
  createdAt: timestampSchema,
  firstQueuedAt: optionalTimestamp,
  firstOpenedAt: optionalTimestamp,
  firstAskedAt: optionalTimestamp,
  firstRepliedAt: optionalTimestamp,
  closedAt: optionalTimestamp,
  totalReplyTime: seconds.default(0),
  replyCount: count.default(0),
  totalSnoozedTime: seconds.default(0),
  snoozedCount: count.default(0),
  missedCount: count.default(0),
  description: z.string().nullish(),
  summarizedMessage: z.string().nullish(),
  tags: z.array(z.string()).default([]),
  mediumName: mediumNameSchema,
  mediumSenderName: z.string().nullish(),
  marketingType: marketingTypeSchema.nullish(),
  marketingId: z.string().nullish(),
  workflowId: z.string().nullish(),
  page: z.string().nullish(),
  priority: z.string().nullish(),
  /** Chat profile: `csat`, `csatComment` and the workspace's custom chat-profile keys. */
  profile: profileSchema.default({}),
  /**
   * Not a column: when the chat's next case started, if it has. It decides userChatCaseState
   * ("completed ... or the next case started", S8) without reading the other cases.
   */
  nextCaseStartedAt: optionalTimestamp,
});
export type CaseRecord = z.infer<typeof caseRecordSchema>;
export type CaseRecordInput = z.input<typeof caseRecordSchema>;

// ---------------------------------------------------------------------------------------------
// Users ("User data", S9, C5)

/** A phone number in E.164 form (`+` then 7 to 15 digits, no leading 0): how sources store them. */
export const E164_PATTERN = /^\+[1-9]\d{6,14}$/;

export const userRecordSchema = z.object({
  id: z.string().min(1),
  memberId: z.string().nullish(),
  name: z.string().nullish(),
  /** E.164, e.g. +821012345678. */
  mobileNumber: z.string().regex(E164_PATTERN, 'must be E.164, e.g. +821012345678').nullish(),
  email: z.string().nullish(),
  member: z.boolean().default(false),
  tags: z.array(z.string()).default([]),
  lastSeenAt: optionalTimestamp,
  sessionCount: count.default(0),
  createdAt: timestampSchema,
  marketingConsentEmail: z.boolean().default(false),
  marketingConsentTexting: z.boolean().default(false),
  blocked: z.boolean().default(false),
  profile: profileSchema.default({}),
});
export type UserRecord = z.infer<typeof userRecordSchema>;
export type UserRecordInput = z.input<typeof userRecordSchema>;

// ---------------------------------------------------------------------------------------------
// Workspace: channel settings, profile schemas, directory, segments

export const timeZoneSchema = z
  .string()
  // Each check stops the next (abort), so a zone has one message: "" is not also "unknown".
  .min(1, { message: 'must be an IANA time zone name, e.g. Asia/Seoul', abort: true })
  .max(64, { message: 'must be at most 64 characters (IANA time zone names are shorter)', abort: true })
  .regex(/^[A-Za-z][A-Za-z0-9_+\-]*(?:\/[A-Za-z0-9_+\-]+)*$/, { message: 'must be an IANA time zone name, e.g. Asia/Seoul', abort: true })
  .refine(isValidTimeZone, { message: 'must be a known IANA time zone, e.g. Asia/Seoul', params: { rule: 'known-zone' } })
  .transform(zoneSpelling);

/**
 * Intl takes any case ("asia/seoul"); the job and the audit entry keep the zone as IANA spells it.
 * Only the case is changed: Intl resolves some names to older aliases (Asia/Kolkata to
 * Asia/Calcutta, Europe/Kyiv to Europe/Kiev, Etc/UTC to UTC on Node 20), which is not what the
 * user chose and differs between ICU versions (Node 20 here, 22 on Lambda). A name whose
 * resolution differs by more than case is kept as typed.
 */
function zoneSpelling(zone: string): string {
  const resolved = new Intl.DateTimeFormat('en-US', { timeZone: zone }).resolvedOptions().timeZone;
  return resolved.toLowerCase() === zone.toLowerCase() ? resolved : zone;
}

export const channelSettingsSchema = z.object({
  channelId: z.string().min(1),
  name: z.string().default(''),
  timeZone: timeZoneSchema,
});
export type ChannelSettings = z.infer<typeof channelSettingsSchema>;

export const PROFILE_VALUE_TYPES = ['string', 'number', 'boolean', 'date', 'list'] as const;
export const profileValueTypeSchema = z.enum(PROFILE_VALUE_TYPES);
export type ProfileValueType = z.infer<typeof profileValueTypeSchema>;

export const profileKeyDefSchema = z.object({
  key: profileKeyNameSchema,
  label: z.string().optional(),
  type: profileValueTypeSchema,
  /** Display order (C5): columns follow it, ascending. */
  order: z.number().finite(),
  /** Archived keys are no longer collected and are hidden everywhere, exports included (C5). */
  archived: z.boolean().default(false),
});
export type ProfileKeyDef = z.infer<typeof profileKeyDefSchema>;

export const profileSchemaSchema = z
  .object({ keys: z.array(profileKeyDefSchema) })
  .superRefine((schema, ctx) => {
    const seen = new Set<string>();
    schema.keys.forEach((k, i) => {
      if (seen.has(k.key)) ctx.addIssue({ code: 'custom', path: ['keys', i, 'key'], message: 'duplicate profile key', params: { rule: 'duplicate-key' } });
      seen.add(k.key);
    });
  });
export type ProfileSchema = z.infer<typeof profileSchemaSchema>;

export const directorySchema = z.object({
  teams: z.array(z.object({ id: z.string().min(1), name: z.string() })).default([]),
  managers: z.array(z.object({ id: z.string().min(1), name: z.string() })).default([]),
});
export type Directory = z.infer<typeof directorySchema>;

/**
 * Segments save filter conditions, not results (C4): the filter is re-evaluated at export time.
 * The filter is kept as unknown here and validated by `resolveSegment`, so a segment saved with
 * an older field set fails with a named field instead of silently matching nothing.
 */
export const segmentSchema = z.object({
  id: z.string().min(1),
  name: z.string(),
  filter: z.unknown(),
  createdAt: timestampSchema.optional(),
});
export type Segment = z.infer<typeof segmentSchema>;

// ---------------------------------------------------------------------------------------------
// Import format: one JSON object per line, keys = the export file's column keys (derived columns
// left out), `profile.<key>` keys flat, timestamps as ISO-8601 with offset or epoch ms, lists as
// JSON arrays or comma-separated strings.

export type ImportKind = 'cases' | 'users' | 'contacts';

/** Columns computed at export time; an import line must leave them out. */
export const DERIVED_CASE_KEYS = [
  'userChatCaseCreatedAt',
  'userChatCaseState',
  'userChatUrl',
  'teamName',
  'assigneeName',
  'managerNames',
  'waitingTime',
  'avgReplyTime',
  'resolutionTime',
  'leadTime',
] as const;

const CASE_TIMESTAMP_KEYS = new Set([
  'userChatCaseUpdatedAt',
  'createdAt',
  'firstQueuedAt',
  'firstOpenedAt',
  'firstAskedAt',
  'firstRepliedAt',
  'closedAt',
  'nextCaseStartedAt',
]);
const USER_TIMESTAMP_KEYS = new Set(['lastSeenAt', 'createdAt']);
const CASE_LIST_KEYS = new Set(['managerIds', 'tags']);
const USER_LIST_KEYS = new Set(['tags']);
const CASE_KEYS = new Set(Object.keys(caseRecordSchema.shape).filter((k) => k !== 'profile'));
const USER_KEYS = new Set(Object.keys(userRecordSchema.shape).filter((k) => k !== 'profile'));
const DERIVED_CASE_KEY_SET = new Set<string>(DERIVED_CASE_KEYS);


function importError(lineNo: number, field: string | undefined, message: string): ValidationError {
  const where = field ? `line ${lineNo}, field ${field}` : `line ${lineNo}`;
  return new ValidationError(`Import ${where}: ${message}`, {
    code: 'IMPORT_INVALID_LINE',
    ...(field ? { field } : {}),
    issues: [{ path: field ? `line ${lineNo}.${field}` : `line ${lineNo}`, message }],
  });
}

function toEpochMs(value: unknown, lineNo: number, field: string): number | null | undefined {
  if (value === null || value === undefined || value === '') return value === '' ? null : (value as null | undefined);
  if (typeof value === 'number') return value;
  if (typeof value === 'string') {
    // Field by field: Date.parse alone reads 2023-02-29 as 2023-03-01.
    const t = parseIsoWithOffset(value);
    if (t !== undefined && Number.isFinite(t)) return t;
  }
  throw importError(lineNo, field, 'must be an ISO-8601 date-time with offset (e.g. 2025-07-01T09:30:00+09:00) or epoch milliseconds');
}

function toList(value: unknown): unknown {
  if (typeof value === 'string') return value.split(',').map((s) => s.trim()).filter((s) => s !== '');
  return value ?? undefined;
}

/**
 * Validates one import line and converts it into a record. Errors name the line and the field;
 * they never quote values (an import file may hold personal data).
 */
export interface ImportOptions {
  /**
   * The workspace's profile schema (user or chat profile, matching `kind`). With it, `date`
   * profile values may be ISO-8601 text (stored as epoch ms) and `list` values comma-separated
   * text; without it, profile values are stored as given.
   */
  profileSchema?: ProfileSchema | readonly ProfileKeyDef[] | undefined;
}

export function parseImportLine(kind: 'cases', line: string, lineNo: number, options?: ImportOptions): CaseRecord;
export function parseImportLine(kind: 'users' | 'contacts', line: string, lineNo: number, options?: ImportOptions): UserRecord;
export function parseImportLine(kind: ImportKind, line: string, lineNo: number, options?: ImportOptions): CaseRecord | UserRecord;
export function parseImportLine(kind: ImportKind, line: string, lineNo: number, options: ImportOptions = {}): CaseRecord | UserRecord {
  const profileTypes = profileTypesOf(options.profileSchema);
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    throw importError(lineNo, undefined, 'is not valid JSON (one JSON object per line)');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw importError(lineNo, undefined, 'must be a JSON object');
  }
  const isCases = kind === 'cases';
  const known = isCases ? CASE_KEYS : USER_KEYS;
  const timestamps = isCases ? CASE_TIMESTAMP_KEYS : USER_TIMESTAMP_KEYS;
  const lists = isCases ? CASE_LIST_KEYS : USER_LIST_KEYS;
  const out: Record<string, unknown> = {};
  const profile: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    if (key.startsWith('profile.')) {
      const name = key.slice('profile.'.length);
      if (!profileKeyNameSchema.safeParse(name).success) throw importError(lineNo, key, 'profile key must be a letter followed by letters, digits or _');
      const type = profileTypes?.get(name);
      if (type === 'date' && typeof value === 'string' && value !== '') profile[name] = toEpochMs(value, lineNo, key);
      else if (type === 'list' && typeof value === 'string') profile[name] = toList(value);
      else profile[name] = value;
    } else if (isCases && DERIVED_CASE_KEY_SET.has(key)) {
      throw importError(lineNo, key, 'is a derived column computed at export time; leave it out');
    } else if (!known.has(key)) {
      throw importError(lineNo, key, `is not a ${isCases ? 'case' : 'user'} import key`);
    } else if (timestamps.has(key)) {
      out[key] = toEpochMs(value, lineNo, key);
    } else if (lists.has(key)) {
      out[key] = toList(value);
    } else {
      out[key] = value === '' && key !== 'name' ? null : value;
    }
  }
  out.profile = profile;
  const parsed = (isCases ? caseRecordSchema : userRecordSchema).safeParse(out);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const path = issue.path[0] === 'profile' && issue.path.length > 1 ? `profile.${String(issue.path[1])}` : formatIssuePath(issue.path);
    throw importError(lineNo, path, issue.message);
  }
  return parsed.data;
}

/** The inverse of `parseImportLine`: one JSON line with ISO timestamps and flat profile keys. */
function profileTypesOf(schema: ImportOptions['profileSchema']): Map<string, ProfileValueType> | undefined {
  if (!schema) return undefined;
  const keys = Array.isArray(schema) ? schema : (schema as ProfileSchema).keys;
  return new Map(keys.map((k) => [k.key, k.type]));
}

export function toImportLine(kind: ImportKind, record: CaseRecord | UserRecord, options: ImportOptions = {}): string {
  const profileTypes = profileTypesOf(options.profileSchema);
  const timestamps = kind === 'cases' ? CASE_TIMESTAMP_KEYS : USER_TIMESTAMP_KEYS;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(record)) {
    if (key === 'profile' || value === undefined || value === null) continue;
    out[key] = timestamps.has(key) && typeof value === 'number' ? new Date(value).toISOString() : value;
  }
  for (const [key, value] of Object.entries(record.profile ?? {})) {
    if (value === undefined || value === null) continue;
    out[`profile.${key}`] = profileTypes?.get(key) === 'date' && typeof value === 'number' ? new Date(value).toISOString() : value;
  }
  return JSON.stringify(out);
}
