import type { CellValue, ColumnSpec, ColumnType, Row } from '../column-spec';
import type { CaseRecord, CaseState, Directory, ProfileKeyDef } from '../records';
import { activeProfileKeys, profileColumnKey, profileColumnType, profileValue, toProfileCell, type ProfileKeyList } from './profile-values';

/** Sheet name of the case export (S8). */
export const CASES_SHEET_NAME = 'UserChatCase data';

/** Before this day the medium columns were called contactMediumType / appMessenger (S8). */
export const MEDIUM_RENAME_DATE = '2025-07-17';
/**
 * MEDIUM_RENAME_DATE's first instant in Asia/Seoul (the product's zone): chats created from then
 * on hold the medium's own account in mediumSenderName (none for email); older chats hold the
 * internal id Channel Talk gave them, whatever the medium (S8).
 */
export const MEDIUM_RENAME_MS = Date.UTC(2025, 6, 16, 15, 0, 0);

/** A case stays "inProgress" for this long after closing: its data may still change (S8). */
export const CASE_FREEZE_MS = 3_600_000;

/** Chat-profile keys with fixed columns (S8); custom keys of the same name are not repeated. */
const FIXED_CHAT_PROFILE_KEYS = new Set(['csat', 'csatComment']);

type Def = readonly [key: string, type: ColumnType, width?: number];

/** S8, in the document's order. Keys are the file's column keys and the record's keys. */
const CASE_COLUMN_DEFS: readonly Def[] = [
  ['userChatCaseCreatedAt', 'date', 20],
  ['userChatCase', 'number', 8],
  ['userChatCaseId', 'string', 26],
  ['userChatCaseState', 'string', 12],
  ['userChatCaseUpdatedAt', 'date', 20],
  ['userChatId', 'string', 26],
  ['direction', 'string', 10],
  ['userChatState', 'string', 10],
  // Wide enough for the whole link (~66-77 characters, mostly narrow letters): at 40 every row
  // showed the same prefix and hid the chat id, the one part that tells the links apart.
  ['userChatUrl', 'string', 72],
  ['teamId', 'string', 12],
  ['teamName', 'string', 16],
  ['assigneeId', 'string', 12],
  ['assigneeName', 'string', 16],
  ['managerIds', 'string', 20],
  ['managerNames', 'string', 24],
  ['userId', 'string', 26],
  ['userName', 'string', 16],
  ['createdAt', 'date', 20],
  ['firstQueuedAt', 'date', 20],
  ['firstOpenedAt', 'date', 20],
  ['firstAskedAt', 'date', 20],
  ['firstRepliedAt', 'date', 20],
  ['closedAt', 'date', 20],
  ['waitingTime', 'duration', 12],
  ['totalReplyTime', 'duration', 12],
  ['replyCount', 'number', 10],
  ['avgReplyTime', 'duration', 12],
  ['resolutionTime', 'duration', 12],
  ['totalSnoozedTime', 'duration', 12],
  ['leadTime', 'duration', 12],
  ['snoozedCount', 'number', 10],
  ['missedCount', 'number', 10],
  ['description', 'string', 30],
  ['summarizedMessage', 'string', 40],
  ['tags', 'string', 20],
  ['mediumName', 'string', 20],
  ['mediumSenderName', 'string', 20],
  ['marketingType', 'string', 12],
  ['marketingId', 'string', 16],
  ['workflowId', 'string', 16],
  ['page', 'string', 30],
  ['priority', 'string', 10],
  ['profile.csat', 'number', 8],
  ['profile.csatComment', 'string', 30],
];

export const CASE_COLUMN_KEYS: readonly string[] = CASE_COLUMN_DEFS.map((d) => d[0]);

export interface CaseColumnsOptions {
  /** The request's `from` (calendar date, YYYY-MM-DD). */
  rangeStart: string;
  /** The workspace's custom chat-profile keys; archived ones are left out, order is respected. */
  profileKeys?: ProfileKeyList;
  /** Override of the rename day, for tests of other deployments. */
  mediumRenameDate?: string;
}

/**
 * S8 columns: every documented column in order, with the pre-2025-07-17 headers when the range
 * starts before that day (keys stay the same so rows need not know), then custom chat-profile keys.
 */
export function caseColumns(options: CaseColumnsOptions): ColumnSpec[] {
  const legacy = options.rangeStart < (options.mediumRenameDate ?? MEDIUM_RENAME_DATE);
  const columns: ColumnSpec[] = CASE_COLUMN_DEFS.map(([key, type, width]) => {
    let header = key;
    if (legacy && key === 'mediumName') header = 'contactMediumType';
    if (legacy && key === 'mediumSenderName') header = 'appMessenger';
    return width === undefined ? { key, header, type } : { key, header, type, width };
  });
  for (const def of activeProfileKeys(options.profileKeys ?? [])) {
    if (FIXED_CHAT_PROFILE_KEYS.has(def.key)) continue;
    const key = profileColumnKey(def.key);
    columns.push({ key, header: key, type: profileColumnType(def.type), width: 16 });
  }
  return columns;
}

// ---------------------------------------------------------------------------------------------
// Derived values (S8). Timestamps are epoch ms; results are seconds. A formula with a missing
// operand gives an empty cell (null), never NaN or a made-up zero.

type Ts = number | null | undefined;

/** userChatCaseCreatedAt = min(firstQueuedAt, firstOpenedAt), over the ones present. */
export function caseCreatedAt(r: { firstQueuedAt?: Ts; firstOpenedAt?: Ts }): number | null {
  return minPresent(r.firstQueuedAt, r.firstOpenedAt);
}

/** The instant a case is filed under for range reads: its creation, else the chat's creation. */
export function caseStartedAt(r: { firstQueuedAt?: Ts; firstOpenedAt?: Ts; createdAt: number }): number {
  return minPresent(r.firstQueuedAt, r.firstOpenedAt) ?? r.createdAt;
}

/** waitingTime = firstRepliedAt - min(firstOpenedAt, firstQueuedAt, firstAskedAt), seconds. */
export function waitingTimeSeconds(r: { firstRepliedAt?: Ts; firstOpenedAt?: Ts; firstQueuedAt?: Ts; firstAskedAt?: Ts }): number | null {
  if (r.firstRepliedAt == null) return null;
  const start = minPresent(minPresent(r.firstOpenedAt, r.firstQueuedAt), r.firstAskedAt);
  return start === null ? null : (r.firstRepliedAt - start) / 1000;
}

/** avgReplyTime = totalReplyTime / replyCount; no replies -> empty (not a division by zero). */
export function avgReplyTimeSeconds(r: { totalReplyTime?: number | null; replyCount?: number | null }): number | null {
  if (!r.replyCount || r.totalReplyTime == null) return null;
  return r.totalReplyTime / r.replyCount;
}

/** resolutionTime = closedAt - firstOpenedAt, seconds. */
export function resolutionTimeSeconds(r: { closedAt?: Ts; firstOpenedAt?: Ts }): number | null {
  if (r.closedAt == null || r.firstOpenedAt == null) return null;
  return (r.closedAt - r.firstOpenedAt) / 1000;
}

/**
 * leadTime = resolutionTime - totalSnoozedTime, seconds. An absent totalSnoozedTime is 0 (the
 * schema's default: never snoozed); null is unknown (a salvaged record's unreadable value), and
 * subtracting 0 for it would invent a lead time.
 */
export function leadTimeSeconds(r: { closedAt?: Ts; firstOpenedAt?: Ts; totalSnoozedTime?: number | null }): number | null {
  return leadTime(resolutionTimeSeconds(r), r.totalSnoozedTime);
}

function leadTime(resolution: number | null, totalSnoozedTime: number | null | undefined): number | null {
  if (resolution === null || totalSnoozedTime === null) return null;
  return resolution - (totalSnoozedTime ?? 0);
}

/**
 * S8: mediumSenderName is empty for an email case of a chat created from 2025-07-17 on ("email:
 * there is no value", whatever was stored). The article states that only for the new format: an
 * older chat's value is the internal id Channel Talk assigned, for every medium, so it is kept.
 * The chat's creation decides, as it decided which value the chat was given.
 */
export function mediumSenderNameOf<T>(mediumName: string | null | undefined, mediumSenderName: T, chatCreatedAt: number): T | null {
  return mediumName === 'email' && chatCreatedAt >= MEDIUM_RENAME_MS ? null : mediumSenderName;
}

/**
 * S8: `completed` once the next case started, or closed one hour ago or more; `inProgress` while
 * the chat is not closed or was closed less than an hour ago. `now` is injected.
 */
export function caseState(r: { closedAt?: Ts; nextCaseStartedAt?: Ts }, nowMs: number): CaseState {
  if (r.nextCaseStartedAt != null && r.nextCaseStartedAt <= nowMs) return 'completed';
  if (r.closedAt != null && nowMs - r.closedAt >= CASE_FREEZE_MS) return 'completed';
  return 'inProgress';
}

function minPresent(a: Ts, b: Ts): number | null {
  if (a == null) return b ?? null;
  if (b == null) return a;
  return a < b ? a : b;
}

// ---------------------------------------------------------------------------------------------
// Rows

export interface CaseRowContext {
  now: number | Date;
  channelId: string;
  directory?: Directory;
  /** Base of the managers' desk app; the chat link is `${base}/channels/{channelId}/user_chats/{chatId}`. */
  deskBaseUrl?: string;
  /** Custom chat-profile keys, as passed to `caseColumns`. */
  profileKeys?: ProfileKeyList;
  /** The export's zone: a `date` profile value held as date-only or offset-less text is read in it. Default UTC. */
  timeZone?: string;
}

export const DEFAULT_DESK_BASE_URL = 'https://desk.channel.io/#';

interface PreparedCaseContext {
  nowMs: number;
  urlPrefix: string;
  teams: Map<string, string>;
  managers: Map<string, string>;
  profile: { column: string; key: string; type: ProfileKeyDef['type'] }[];
  timeZone: string;
}

export type CaseRowMapper = (record: CaseRecord) => Row;

/**
 * Prepares the context once (directory maps, URL prefix, profile columns) and returns a mapper
 * that does only per-record work: the chunk Lambda calls it up to 1,000,000 times.
 */
export function createCaseRowMapper(ctx: CaseRowContext): CaseRowMapper {
  const p = prepare(ctx);
  return (record) => buildCaseRow(record, p);
}

const preparedByCtx = new WeakMap<CaseRowContext, PreparedCaseContext>();

/** Convenience form; reuse the same ctx object (or use createCaseRowMapper) for speed. */
export function toCaseRow(record: CaseRecord, ctx: CaseRowContext): Row {
  let p = preparedByCtx.get(ctx);
  if (!p) {
    p = prepare(ctx);
    preparedByCtx.set(ctx, p);
  }
  return buildCaseRow(record, p);
}

function prepare(ctx: CaseRowContext): PreparedCaseContext {
  const base = (ctx.deskBaseUrl ?? DEFAULT_DESK_BASE_URL).replace(/\/+$/, '');
  return {
    nowMs: typeof ctx.now === 'number' ? ctx.now : ctx.now.getTime(),
    urlPrefix: `${base}/channels/${encodeURIComponent(ctx.channelId)}/user_chats/`,
    teams: new Map((ctx.directory?.teams ?? []).map((t) => [t.id, t.name])),
    managers: new Map((ctx.directory?.managers ?? []).map((m) => [m.id, m.name])),
    profile: activeProfileKeys(ctx.profileKeys ?? [])
      .filter((d) => !FIXED_CHAT_PROFILE_KEYS.has(d.key))
      .map((d) => ({ column: profileColumnKey(d.key), key: d.key, type: d.type })),
    timeZone: ctx.timeZone ?? 'UTC',
  };
}

function joinNames(ids: readonly string[], names: Map<string, string>): string | null {
  if (ids.length === 0) return null;
  let out = '';
  for (const id of ids) {
    // A deleted manager has no name: leave them out of the names, the ids column still has them.
    const name = names.get(id);
    if (name === undefined) continue;
    out = out === '' ? name : `${out}, ${name}`;
  }
  return out === '' ? null : out;
}

function joinList(list: readonly string[] | undefined): string | null {
  return list && list.length > 0 ? list.join(', ') : null;
}

function buildCaseRow(r: CaseRecord, p: PreparedCaseContext): Row {
  // Records arrive in many shapes (optional keys absent or present, any key order), so every
  // property read is megamorphic; each field is read exactly once into a local and the derived
  // values are computed from the locals rather than by re-reading the record.
  const firstQueuedAt = r.firstQueuedAt;
  const firstOpenedAt = r.firstOpenedAt;
  const firstAskedAt = r.firstAskedAt;
  const firstRepliedAt = r.firstRepliedAt;
  const closedAt = r.closedAt;
  const nextCaseStartedAt = r.nextCaseStartedAt;
  const totalReplyTime = r.totalReplyTime;
  const replyCount = r.replyCount;
  const totalSnoozedTime = r.totalSnoozedTime;
  const teamId = r.teamId;
  const assigneeId = r.assigneeId;
  const managerIds = r.managerIds;
  const userChatId = r.userChatId;
  const mediumName = r.mediumName;
  const profile = r.profile;

  const createdAtOfCase = minPresent(firstQueuedAt, firstOpenedAt);
  const waitStart = minPresent(createdAtOfCase, firstAskedAt);
  const resolution = closedAt == null || firstOpenedAt == null ? null : (closedAt - firstOpenedAt) / 1000;
  const nowMs = p.nowMs;
  const completed =
    (nextCaseStartedAt != null && nextCaseStartedAt <= nowMs) || (closedAt != null && nowMs - closedAt >= CASE_FREEZE_MS);

  const row: Record<string, CellValue> = {
    userChatCaseCreatedAt: createdAtOfCase,
    userChatCase: r.userChatCase,
    userChatCaseId: r.userChatCaseId,
    userChatCaseState: completed ? 'completed' : 'inProgress',
    userChatCaseUpdatedAt: r.userChatCaseUpdatedAt,
    userChatId,
    direction: r.direction,
    userChatState: r.userChatState,
    userChatUrl: userChatId == null ? null : p.urlPrefix + encodeURIComponent(userChatId),
    teamId,
    teamName: teamId == null ? null : (p.teams.get(teamId) ?? null),
    assigneeId,
    assigneeName: assigneeId == null ? null : (p.managers.get(assigneeId) ?? null),
    managerIds: joinList(managerIds),
    managerNames: managerIds ? joinNames(managerIds, p.managers) : null,
    userId: r.userId,
    userName: r.userName,
    createdAt: r.createdAt,
    firstQueuedAt,
    firstOpenedAt,
    firstAskedAt,
    firstRepliedAt,
    closedAt,
    waitingTime: firstRepliedAt == null || waitStart === null ? null : (firstRepliedAt - waitStart) / 1000,
    totalReplyTime,
    replyCount,
    avgReplyTime: !replyCount || totalReplyTime == null ? null : totalReplyTime / replyCount,
    resolutionTime: resolution,
    totalSnoozedTime,
    leadTime: leadTime(resolution, totalSnoozedTime),
    snoozedCount: r.snoozedCount,
    missedCount: r.missedCount,
    description: r.description,
    summarizedMessage: r.summarizedMessage,
    tags: joinList(r.tags),
    mediumName,
    mediumSenderName: mediumSenderNameOf(mediumName, r.mediumSenderName, r.createdAt),
    marketingType: r.marketingType,
    marketingId: r.marketingId,
    workflowId: r.workflowId,
    page: r.page,
    priority: r.priority,
    'profile.csat': profile ? toProfileCell(profile.csat, 'number') : null,
    'profile.csatComment': profile ? toProfileCell(profile.csatComment, 'string') : null,
  };
  if (profile) {
    const defs = p.profile;
    for (let i = 0; i < defs.length; i++) {
      const d = defs[i]!;
      row[d.column] = toProfileCell(profileValue(profile, d.key), d.type, p.timeZone);
    }
  }
  return row;
}
