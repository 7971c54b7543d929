import { parseIsoWithOffset } from '../iso-datetime';
import { decimalTextValue } from './columns/profile-values';
import { MAX_TIMESTAMP_MS, type CaseRecord, type ProfileValue, type UserRecord } from './records';

/**
 * What the chunk loop does with a source record the strict parsers (`safeParseCaseRecord`,
 * `safeParseUserRecord`) reject. One odd field must not take the whole customer or case out of
 * the file (C6 "all customers", S1): the record is kept and only the odd values change.
 *
 * - text fields (ids, names, e-mail, enums such as mediumName): a number or boolean becomes its
 *   text (`memberId: 12345` -> `"12345"`); a string outside the enum is written as found;
 *   anything else (object, array) leaves the cell empty.
 * - mobileNumber: any text is written as found, even when not E.164 (`010-2222-3333` is still the
 *   customer's number; rewriting it would guess a country). Filters normalise it when comparing.
 * - timestamps: epoch ms, ISO-8601 text with an offset, or digits-only text (epoch seconds below
 *   1e11, else ms); else empty, and empty after 9999-12-31 (no date cell can show it).
 * - counts, durations: a non-negative number or its text; else empty (not an invented 0).
 * - booleans: `true`/`false` or their text; else empty (unknown is not `false`).
 * - lists: array elements that are text (numbers, booleans as text; the rest dropped), or
 *   comma-separated text.
 * - profile values: objects and non-finite numbers become empty cells (an object has no cell
 *   form the column's type could hold); lists keep their text elements.
 *
 * Only a record without its identity (a user's `id`, a case's `userChatCaseId`) or one that is
 * not an object is skipped: a row nobody can name helps no one. The caller counts those and
 * reports the count on the job (`skippedRecords`). Types are the strict records' for the row
 * mappers, which write `null`/`undefined` as empty cells and take any text in text columns.
 */

/**
 * Digits-only text below this is epoch seconds: 1e11 ms is March 1973, before any record here,
 * while 1e11 s is the year 5138. Sources that write text write Unix seconds (`"1751328000"`),
 * which read as ms would be January 1970. Numbers stay ms, as in the strict records.
 */
const SECONDS_TEXT_BELOW = 1e11;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function text(v: unknown): string | null | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'string') return v;
  if ((typeof v === 'number' && Number.isFinite(v)) || typeof v === 'boolean') return String(v);
  return null;
}

function identity(v: unknown): string | undefined {
  const t = text(v);
  return typeof t === 'string' && t.trim() !== '' && typeof v !== 'boolean' ? t : undefined;
}

function timestamp(v: unknown): number | null | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 && v <= MAX_TIMESTAMP_MS ? Math.trunc(v) : null;
  if (typeof v !== 'string') return null;
  const s = v.trim();
  if (/^\d{1,16}$/.test(s)) {
    const n = Number(s);
    return timestamp(n < SECONDS_TEXT_BELOW ? n * 1000 : n);
  }
  const t = parseIsoWithOffset(s);
  return t !== undefined && Number.isFinite(t) && t >= 0 && t <= MAX_TIMESTAMP_MS ? t : null;
}

function nonNegative(v: unknown, integer: boolean): number | null | undefined {
  if (v === undefined) return undefined;
  // Decimal text only, as profile values are read: Number() would take "0x1A" as 26, "0b11" as 3.
  const n = typeof v === 'number' ? v : typeof v === 'string' ? (decimalTextValue(v) ?? Number.NaN) : Number.NaN;
  if (!Number.isFinite(n) || n < 0) return null;
  if (integer && !Number.isSafeInteger(n)) return null;
  return n;
}

function bool(v: unknown): boolean | null | undefined {
  if (v === undefined || typeof v === 'boolean') return v;
  if (v === 'true') return true;
  if (v === 'false') return false;
  return null;
}

function list(v: unknown): string[] {
  if (typeof v === 'string') return v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (!Array.isArray(v)) return [];
  const out: string[] = [];
  for (const x of v) {
    const t = text(x);
    if (typeof t === 'string') out.push(t);
  }
  return out;
}

function profile(v: unknown): Record<string, ProfileValue> {
  if (!isPlainObject(v)) return {};
  const out: Record<string, ProfileValue> = {};
  for (const key of Object.keys(v)) {
    // An own "__proto__" (JSON.parse makes one) would set `out`'s prototype, not a value; no
    // profile key may have that name anyway.
    if (key === '__proto__') continue;
    const x = v[key];
    if (x === null || typeof x === 'string' || typeof x === 'boolean') out[key] = x;
    else if (typeof x === 'number') out[key] = Number.isFinite(x) ? x : null;
    else if (Array.isArray(x)) out[key] = list(x);
    else out[key] = null;
  }
  return out;
}

const orDefault = <T>(v: T | null | undefined, fallback: T): T | null => (v === undefined ? fallback : v);

/** A user record the strict parser rejected, kept with only its odd values changed; undefined without an id. */
export function salvageUserRecord(raw: unknown): UserRecord | undefined {
  if (!isPlainObject(raw)) return undefined;
  const id = identity(raw.id);
  if (id === undefined) return undefined;
  const mobile = raw.mobileNumber;
  const record = {
    id,
    memberId: text(raw.memberId),
    name: text(raw.name),
    mobileNumber: typeof mobile === 'string' ? mobile.trim() : text(mobile),
    email: text(raw.email),
    member: orDefault(bool(raw.member), false),
    tags: list(raw.tags),
    lastSeenAt: timestamp(raw.lastSeenAt),
    sessionCount: orDefault(nonNegative(raw.sessionCount, true), 0),
    createdAt: timestamp(raw.createdAt) ?? null,
    marketingConsentEmail: orDefault(bool(raw.marketingConsentEmail), false),
    marketingConsentTexting: orDefault(bool(raw.marketingConsentTexting), false),
    blocked: orDefault(bool(raw.blocked), false),
    profile: profile(raw.profile),
  };
  return record as UserRecord;
}

/** A case record the strict parser rejected, kept with only its odd values changed; undefined without a case id. */
export function salvageCaseRecord(raw: unknown): CaseRecord | undefined {
  if (!isPlainObject(raw)) return undefined;
  const userChatCaseId = identity(raw.userChatCaseId);
  if (userChatCaseId === undefined) return undefined;
  const ordinal = nonNegative(raw.userChatCase, true);
  const record = {
    userChatCaseId,
    userChatCase: ordinal === 0 ? null : (ordinal ?? null),
    userChatCaseUpdatedAt: timestamp(raw.userChatCaseUpdatedAt),
    userChatId: text(raw.userChatId) ?? null,
    direction: text(raw.direction) ?? null,
    userChatState: text(raw.userChatState) ?? null,
    teamId: text(raw.teamId),
    assigneeId: text(raw.assigneeId),
    managerIds: list(raw.managerIds),
    userId: text(raw.userId) ?? null,
    userName: text(raw.userName),
    createdAt: timestamp(raw.createdAt) ?? null,
    firstQueuedAt: timestamp(raw.firstQueuedAt),
    firstOpenedAt: timestamp(raw.firstOpenedAt),
    firstAskedAt: timestamp(raw.firstAskedAt),
    firstRepliedAt: timestamp(raw.firstRepliedAt),
    closedAt: timestamp(raw.closedAt),
    totalReplyTime: orDefault(nonNegative(raw.totalReplyTime, false), 0),
    replyCount: orDefault(nonNegative(raw.replyCount, true), 0),
    totalSnoozedTime: orDefault(nonNegative(raw.totalSnoozedTime, false), 0),
    snoozedCount: orDefault(nonNegative(raw.snoozedCount, true), 0),
    missedCount: orDefault(nonNegative(raw.missedCount, true), 0),
    description: text(raw.description),
    summarizedMessage: text(raw.summarizedMessage),
    tags: list(raw.tags),
    mediumName: text(raw.mediumName) ?? null,
    mediumSenderName: text(raw.mediumSenderName),
    marketingType: text(raw.marketingType),
    marketingId: text(raw.marketingId),
    workflowId: text(raw.workflowId),
    page: text(raw.page),
    priority: text(raw.priority),
    profile: profile(raw.profile),
    nextCaseStartedAt: timestamp(raw.nextCaseStartedAt),
  };
  return record as unknown as CaseRecord;
}
