import { z } from 'zod';
import { caseCreatedAt, caseState, avgReplyTimeSeconds, leadTimeSeconds, mediumSenderNameOf, resolutionTimeSeconds, waitingTimeSeconds } from './columns/cases';
import { addDays, isValidTimeZone, parseCalendarDate, startOfDayInZone } from './calendar';
import { decimalTextValue, profileValue, toProfileCell } from './columns/profile-values';
import { userFixedTextReader, type UserFixedTextKey, type UserTextFields } from './columns/users';
import { INPUT_ERRORS, NotFoundError, REQUIRED_MESSAGE, ValidationError, toValidationError } from './errors';
import { parseIsoWithOffset } from '../iso-datetime';
import { refuseDisplayControl } from '../text-rules';
import { E164_PATTERN, type ProfileKeyDef, type ProfileSchema, type Segment } from './records';

/**
 * The filter language (C1-C4, S6): a root joins groups with `and`/`or`; a group joins its
 * conditions and, optionally, sub-groups (two levels of nesting below the root). The depth is
 * fixed rather than recursive on purpose: the JSON Schema then needs no `$ref`, which keeps the
 * API Gateway model self-contained.
 */

export type FilterTarget = 'cases' | 'users';

const DAY_MS = 86_400_000;

type FieldKind = 'string' | 'email' | 'phone' | 'number' | 'boolean' | 'date' | 'list' | 'any';
type Getter = (record: any) => unknown;

interface FieldDef {
  kind: FieldKind;
  /** Set for derived fields; raw fields are read by key. */
  get?: (record: any, nowMs: number) => unknown;
  /** A fixed text cell of the users sheet, read as the file shows it (userFixedTextReader). */
  fixedText?: UserFixedTextKey;
}

const CASE_FIELDS: Record<string, FieldDef> = {
  userChatCaseCreatedAt: { kind: 'date', get: (r) => caseCreatedAt(r) },
  userChatCase: { kind: 'number' },
  userChatCaseId: { kind: 'string' },
  userChatCaseState: { kind: 'string', get: (r, now) => caseState(r, now) },
  userChatCaseUpdatedAt: { kind: 'date' },
  userChatId: { kind: 'string' },
  direction: { kind: 'string' },
  userChatState: { kind: 'string' },
  teamId: { kind: 'string' },
  assigneeId: { kind: 'string' },
  managerIds: { kind: 'list' },
  userId: { kind: 'string' },
  userName: { kind: 'string' },
  createdAt: { kind: 'date' },
  firstQueuedAt: { kind: 'date' },
  firstOpenedAt: { kind: 'date' },
  firstAskedAt: { kind: 'date' },
  firstRepliedAt: { kind: 'date' },
  closedAt: { kind: 'date' },
  waitingTime: { kind: 'number', get: (r) => waitingTimeSeconds(r) },
  totalReplyTime: { kind: 'number' },
  replyCount: { kind: 'number' },
  avgReplyTime: { kind: 'number', get: (r) => avgReplyTimeSeconds(r) },
  resolutionTime: { kind: 'number', get: (r) => resolutionTimeSeconds(r) },
  totalSnoozedTime: { kind: 'number' },
  leadTime: { kind: 'number', get: (r) => leadTimeSeconds(r) },
  snoozedCount: { kind: 'number' },
  missedCount: { kind: 'number' },
  description: { kind: 'string' },
  summarizedMessage: { kind: 'string' },
  tags: { kind: 'list' },
  mediumName: { kind: 'string' },
  // As the file shows it: empty for email cases of chats created from 2025-07-17 on, whatever was stored.
  mediumSenderName: { kind: 'string', get: (r) => mediumSenderNameOf(r.mediumName, r.mediumSenderName, r.createdAt) },
  marketingType: { kind: 'string' },
  marketingId: { kind: 'string' },
  workflowId: { kind: 'string' },
  page: { kind: 'string' },
  priority: { kind: 'string' },
};

const USER_FIELDS: Record<string, FieldDef> = {
  id: { kind: 'string' },
  memberId: { kind: 'string' },
  // As the file shows them: the record's own value, else the profile value of the same name
  // when that key is active in the workspace's profile schema (resolved in resolveField).
  name: { kind: 'string', fixedText: 'name' },
  mobileNumber: { kind: 'phone', fixedText: 'mobileNumber' },
  email: { kind: 'email', fixedText: 'email' },
  member: { kind: 'boolean' },
  tags: { kind: 'list' },
  lastSeenAt: { kind: 'date' },
  sessionCount: { kind: 'number' },
  createdAt: { kind: 'date' },
  marketingConsentEmail: { kind: 'boolean' },
  marketingConsentTexting: { kind: 'boolean' },
  blocked: { kind: 'boolean' },
};

/** Chat-profile keys with a known type on every case. */
const CASE_PROFILE_KINDS: Record<string, FieldKind> = { csat: 'number', csatComment: 'string' };

export const CASE_FILTER_FIELDS: readonly string[] = Object.keys(CASE_FIELDS);
export const USER_FILTER_FIELDS: readonly string[] = Object.keys(USER_FIELDS);

const PROFILE_FIELD_SOURCE = 'profile\\.[A-Za-z][A-Za-z0-9_]{0,63}';

function fieldSchema(fields: readonly string[]) {
  // One pattern instead of enum|pattern: a single clear message, and the same rule in JSON Schema.
  return z
    .string()
    .regex(
      new RegExp(`^(?:${fields.join('|')}|${PROFILE_FIELD_SOURCE})$`),
      `unknown field: must be one of ${fields.join(', ')} or profile.<key>`,
    );
}

/**
 * A number a filter may hold. The filter is stored with the job in DynamoDB, whose client
 * refuses integers beyond 2^53 - 1 (they would lose digits) and whose numbers cannot be smaller
 * than 1e-130 in size: either failed the request with a 500 while saving the job.
 */
const filterNumber = z
  .number()
  .finite()
  .min(-Number.MAX_SAFE_INTEGER, 'numbers in a filter must be between -9007199254740991 and 9007199254740991')
  .max(Number.MAX_SAFE_INTEGER, 'numbers in a filter must be between -9007199254740991 and 9007199254740991')
  .refine((v) => v === 0 || Math.abs(v) >= 1e-130, { message: 'numbers in a filter must be 0 or at least 1e-130 in size', params: { rule: 'minimum-magnitude' } });

/**
 * Which filters a schema reads. A request's filter (`request`) is kept in the audit trail and
 * shown to auditors as sent, so its texts are held to the rule of the request's query: no
 * control characters, bidi overrides or hiding characters (display-control, the `matching` rule
 * of text-rules.ts; a U+202E shows the value reversed), but the soft hyphens and zero-width
 * spaces customer data holds may be matched. A filter already stored (`stored`: a job's definition the pipeline
 * compiles again, a workspace's saved segment) is read as it is: refusing it now would fail an
 * export accepted before, or a segment the manager did not write.
 */
type FilterSource = 'request' | 'stored';

/** A text operand of a filter: as given, or for a request's filter with the display-control rule. */
function text(schema: z.ZodString, source: FilterSource): z.ZodString {
  return source === 'request' ? refuseDisplayControl(schema, '', 'matching') : schema;
}

// The unions name what they take: zod's own message for a value no branch accepts is "Invalid input".
// A value left out is "is required" (rule `required`), as a missing field elsewhere in a request.
const unionError = (message: string) => (issue: { input?: unknown }) => (issue.input === undefined ? REQUIRED_MESSAGE : message);
/** The original product times out above ~1,000 values (C3); 100,000 is evaluated in linear time. */
export const MAX_IN_VALUES = 100_000;
const MAX_CONDITIONS = 100;
const MAX_GROUPS = 50;
/** Across the whole filter (see filterSchemaFor). */
export const MAX_TOTAL_CONDITIONS = 200;
export const MAX_TOTAL_TEXT_CHARS = 2_000;

function conditionSchema(fields: readonly string[], source: FilterSource) {
  const field = fieldSchema(fields);
  const scalar = z.union([text(z.string().max(10_000), source), filterNumber, z.boolean()]);
  const bound = z.union([filterNumber, text(z.string().min(1).max(64), source)], {
    error: unionError('must be a number, or a date or date-time as text (1-64 characters)'),
  });
  return z.discriminatedUnion('op', [
    z.strictObject({
      field,
      op: z.literal(['eq', 'neq']),
      value: z.union([scalar, z.null()], { error: unionError('must be text (at most 10,000 characters), a number, a boolean or null') }),
    }),
    z.strictObject({
      field,
      op: z.literal('in'),
      /** A list, or the raw "split input" text (values separated by commas, spaces or newlines). */
      values: z.union(
        [
          z.array(z.union([text(z.string().max(1_000), source), filterNumber])).min(1).max(MAX_IN_VALUES),
          text(z.string().min(1).max(4_000_000), source),
        ],
        { error: unionError(`must be a list of 1 to ${MAX_IN_VALUES.toLocaleString('en-US')} values (texts or numbers), or one text of values separated by commas, spaces or line breaks (rule C3)`) },
      ),
    }),
    z.strictObject({ field, op: z.literal(['contains', 'startsWith']), value: text(z.string().min(1).max(1_000), source) }),
    z.strictObject({ field, op: z.literal(['exists', 'notExists']) }),
    z.strictObject({ field, op: z.literal(['gt', 'gte', 'lt', 'lte']), value: bound }),
    z.strictObject({ field, op: z.literal('between'), from: bound, to: bound }),
    z.strictObject({ field, op: z.literal(['withinLastDays', 'beforeDaysAgo']), days: z.int().min(0).max(36_500) }),
  ]);
}

const joinSchema = z.enum(['and', 'or']);

function filterSchemaFor(fields: readonly string[], source: FilterSource) {
  const condition = conditionSchema(fields, source);
  const leafGroup = z.strictObject({ join: joinSchema, conditions: z.array(condition).max(MAX_CONDITIONS) });
  const group = z.strictObject({
    join: joinSchema,
    conditions: z.array(condition).max(MAX_CONDITIONS),
    groups: z.array(leafGroup).max(MAX_GROUPS).optional(),
  });
  return z.strictObject({ join: joinSchema, groups: z.array(group).max(MAX_GROUPS) }).superRefine((filter, ctx) => {
    // The per-list limits alone allow 50 x (100 + 50 x 100) conditions, each evaluated on up to
    // 1,000,000 rows: a single request could keep chunk workers busy for minutes of CPU a chunk.
    // A dashboard filter has a handful of conditions; these bounds leave room for many more.
    let conditions = 0;
    let textChars = 0;
    const count = (list: readonly { op: string; value?: unknown }[]) => {
      conditions += list.length;
      for (const c of list) if ((c.op === 'contains' || c.op === 'startsWith') && typeof c.value === 'string') textChars += c.value.length;
    };
    // An empty "or" has no alternative that could hold, so it matches nothing: an empty file for
    // a filter the user most likely left unfinished. Refused instead, naming the group.
    const emptyOr = (path: (string | number)[]) =>
      ctx.addIssue({
        code: 'custom',
        path,
        message: 'an "or" group needs at least one condition or group (an empty "or" matches nothing; an empty "and" matches everything)',
        params: { rule: 'non-empty-or' },
      });
    if (filter.join === 'or' && filter.groups.length === 0) emptyOr(['groups']);
    for (const [gi, g] of filter.groups.entries()) {
      count(g.conditions);
      if (g.join === 'or' && g.conditions.length === 0 && (g.groups ?? []).length === 0) emptyOr(['groups', gi]);
      for (const [ii, inner] of (g.groups ?? []).entries()) {
        count(inner.conditions);
        if (inner.join === 'or' && inner.conditions.length === 0) emptyOr(['groups', gi, 'groups', ii]);
      }
    }
    if (conditions > MAX_TOTAL_CONDITIONS) {
      ctx.addIssue({
        code: 'custom',
        path: ['groups'],
        message: `at most ${MAX_TOTAL_CONDITIONS} conditions in a filter (this one has ${conditions})`,
        params: { rule: 'max-conditions' },
      });
    }
    if (textChars > MAX_TOTAL_TEXT_CHARS) {
      ctx.addIssue({
        code: 'custom',
        path: ['groups'],
        message: `contains/startsWith texts may total at most ${MAX_TOTAL_TEXT_CHARS} characters in a filter (these total ${textChars})`,
        params: { rule: 'max-text' },
      });
    }
  });
}

/** Filters already stored (a job's definition, a saved segment): see FilterSource. */
export const casesFilterSchema = filterSchemaFor(CASE_FILTER_FIELDS, 'stored');
export const usersFilterSchema = filterSchemaFor(USER_FILTER_FIELDS, 'stored');
/** A request's filter (POST /v1/exports), whose texts the audit trail shows: see FilterSource. */
export const casesRequestFilterSchema = filterSchemaFor(CASE_FILTER_FIELDS, 'request');
export const usersRequestFilterSchema = filterSchemaFor(USER_FILTER_FIELDS, 'request');

export type CasesFilter = z.infer<typeof casesFilterSchema>;
export type UsersFilter = z.infer<typeof usersFilterSchema>;
export type Filter = CasesFilter | UsersFilter;
export type FilterGroup = Filter['groups'][number];
export type FilterCondition = FilterGroup['conditions'][number];
export type FilterOperator = FilterCondition['op'];

export const FILTER_OPERATORS: readonly FilterOperator[] = [
  'eq', 'neq', 'in', 'contains', 'startsWith', 'exists', 'notExists',
  'gt', 'gte', 'lt', 'lte', 'between', 'withinLastDays', 'beforeDaysAgo',
];

// ---------------------------------------------------------------------------------------------
// Split input and phone numbers

/** C3: values separated by commas, whitespace or newlines; empties dropped, duplicates removed. */
export function splitInput(text: string): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const part of text.split(/[\s,]+/)) {
    if (part === '' || seen.has(part)) continue;
    seen.add(part);
    out.push(part);
  }
  return out;
}

const PHONE_CHARS = /^[+\d\s\-().]+$/;

const DEFAULT_COUNTRY = '82';

/**
 * "+82 010-..." is a common way to write Korean numbers: the trunk 0 does not belong after the
 * country code. One rule for full numbers (normalizePhone) and partial ones (phoneNeedles).
 */
function withoutTrunkZero(digits: string, countryCode: string): string {
  return digits.startsWith(`${countryCode}0`) ? countryCode + digits.slice(countryCode.length + 1) : digits;
}

/**
 * To E.164 with +82 (Korea) as the default country: `010-1234-5678` -> `+821012345678`,
 * `+82 10 1234 5678` -> same, `0082...` -> `+82...`. Returns undefined when it is not a phone
 * number (letters, too few or too many digits).
 */
export function normalizePhone(input: string, defaultCountryCode = DEFAULT_COUNTRY): string | undefined {
  const text = input.trim();
  if (text === '' || !PHONE_CHARS.test(text)) return undefined;
  const plus = text.startsWith('+');
  let digits = text.replace(/\D/g, '');
  if (plus) {
    // as written
  } else if (digits.startsWith('00')) {
    digits = digits.slice(2);
  } else if (digits.startsWith('0')) {
    digits = defaultCountryCode + digits.slice(1);
  } else if (!digits.startsWith(defaultCountryCode) || digits.length < 11) {
    digits = defaultCountryCode + digits;
  }
  digits = withoutTrunkZero(digits, defaultCountryCode);
  if (digits.length < 8 || digits.length > 15 || digits.startsWith('0')) return undefined;
  return `+${digits}`;
}

/**
 * A stored number in E.164 form for comparisons. Sources hold E.164, but a number kept as
 * text in another form (the chunk loop keeps such a record rather than dropping the customer)
 * must still be found: it is normalised here, which costs only for those odd records.
 */
function comparablePhone(v: unknown): unknown {
  if (typeof v !== 'string' || isCanonicalE164(v)) return v;
  return normalizePhone(v) ?? v;
}

/**
 * E.164 as normalizePhone writes it. `+8201012345678` passes E164_PATTERN (and the import), but
 * keeps the Korean trunk 0 that the typed side always drops (`010-1234-5678` -> `+821012345678`),
 * so such a stored number was found by no `eq`, `in`, `startsWith` or quick search of its own
 * text: it is normalised like any other odd form.
 */
function isCanonicalE164(v: string): boolean {
  return E164_PATTERN.test(v) && !v.startsWith(TRUNK_ZERO_PREFIX);
}
const TRUNK_ZERO_PREFIX = `+${DEFAULT_COUNTRY}0`;

/**
 * A partial number as digit needles against a stored number's international digits
 * (`+821012345678` -> `821012345678`):
 * - `anywhere`: the digits as typed, found anywhere (`1234-5678`, `98765`).
 * - `atStart`: digits that name the start of the number, found only there. A `+…`/`00…` needle
 *   is an international prefix (`+82 010` and `0082 10` -> `8210`; `+1` is not in `+4401…`).
 *   A leading 0 is the Korean trunk prefix, so `010-1234` also names `+8210 1234…` at the start:
 *   together with `anywhere` that matches the national form (`01012345678`) without finding
 *   `8210` in the middle of `+82212348210`.
 * `startsWith` reads the typed digits at the start too (`8210`), a leading 0 as +82.
 * Undefined when the text is no partial number (letters) or has no digits beyond an
 * international prefix (`+`, `00`): compared as text instead (see compileText).
 */
interface PhoneNeedles {
  anywhere: string[];
  atStart: string[];
}

function phoneNeedles(text: string, op: 'contains' | 'startsWith'): PhoneNeedles | undefined {
  const t = text.trim();
  if (!PHONE_CHARS.test(t)) return undefined;
  let digits = t.replace(/\D/g, '');
  const plus = t.startsWith('+');
  if (!plus && digits === '00') return undefined;
  const international = plus || digits.startsWith('00');
  if (international) {
    if (!plus) digits = digits.slice(2);
    digits = withoutTrunkZero(digits, DEFAULT_COUNTRY);
    return digits === '' ? undefined : { anywhere: [], atStart: [digits] };
  }
  if (digits === '') return undefined;
  const national = digits.startsWith('0') ? DEFAULT_COUNTRY + digits.slice(1) : undefined;
  if (op === 'startsWith') return { anywhere: [], atStart: [national ?? digits] };
  return { anywhere: [digits], atStart: national === undefined ? [] : [national] };
}

/** International digits of a stored number: E.164 without the `+` (its digits as text otherwise). */
function storedPhoneDigits(v: string): string {
  const p = comparablePhone(v) as string;
  return E164_PATTERN.test(p) ? p.slice(1) : p.replace(/\D/g, '');
}

function phoneTextMatcher(needles: PhoneNeedles): (v: string) => boolean {
  const { anywhere, atStart } = needles;
  return (v) => {
    // E.164 text is `+` then the digits: the digits start at index 1 and, the needles being
    // digits only, a substring of the text is a substring of the digits. No copy needed.
    const e164 = isCanonicalE164(v);
    const s = e164 ? v : storedPhoneDigits(v);
    const from = e164 ? 1 : 0;
    for (const n of atStart) if (s.startsWith(n, from)) return true;
    for (const n of anywhere) if (s.includes(n)) return true;
    return false;
  };
}

// ---------------------------------------------------------------------------------------------
// Compilation

export type Predicate<T = any> = (record: T) => boolean;

export interface CompileContext {
  now: number | Date;
  /** C1/C2: a quick search applied together with the filter (users only). */
  query?: string | undefined;
  /**
   * Users: the workspace's profile schema. With it, `profile.*` fields get their declared types
   * and unknown or archived keys are rejected; without it they are compared loosely.
   */
  profileSchema?: ProfileSchema | readonly ProfileKeyDef[] | undefined;
  /**
   * IANA zone in which a date-only bound (`2025-07-01`) is a whole calendar day: `gt` means after
   * that day, `lte` through its end, `eq` during it. Default UTC. Pass the export's zone.
   */
  timeZone?: string | undefined;
}

interface Env {
  nowMs: number;
  timeZone: string;
  /** The fixed text fields fall back to a profile value only for keys active in it. */
  profileSchema: CompileContext['profileSchema'];
}

// Case-insensitive `T`/`Z`, as parseIsoWithOffset (date cells, the import) reads them.
const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2}))?$/i;

function bad(path: string, message: string, code = 'FILTER_INVALID', rule = 'C2'): ValidationError {
  return new ValidationError(`${path}: ${message}`, { code, field: path, rule });
}

const TRUE_ALL: Predicate = () => true;

/**
 * Validates a filter for a target and compiles it into a predicate. The predicate allocates
 * nothing per record except lower-casing for `contains`/`startsWith`; `in` is a Set lookup, so
 * 100,000 values cost the same per record as one.
 */
export function compileFilter(filter: unknown, target: FilterTarget, ctx: CompileContext): Predicate {
  const nowMs = typeof ctx.now === 'number' ? ctx.now : ctx.now.getTime();
  const timeZone = ctx.timeZone ?? 'UTC';
  if (!isValidTimeZone(timeZone)) {
    throw new ValidationError('timezone must be a known IANA time zone', { code: 'INVALID_TIME_ZONE', field: 'timezone' });
  }
  const env: Env = { nowMs, timeZone, profileSchema: ctx.profileSchema };
  let predicate: Predicate = TRUE_ALL;
  if (filter !== undefined && filter !== null) {
    const schema = target === 'cases' ? casesFilterSchema : usersFilterSchema;
    const parsed = schema.safeParse(filter, INPUT_ERRORS);
    if (!parsed.success) throw toValidationError(parsed.error, { prefix: 'filter', code: 'FILTER_INVALID', rule: 'C2' });
    const profileKinds = profileKindsFor(target, ctx.profileSchema);
    const root = parsed.data as Filter;
    const groups = root.groups.map((g, gi) => compileGroup(g, `filter.groups[${gi}]`, target, profileKinds, env));
    predicate = combine(root.join, groups);
  }
  if (ctx.query !== undefined && ctx.query.trim() !== '') {
    if (target !== 'users') throw bad('query', 'quick search applies to contacts only (rule C1)');
    const search = compileQuickSearch(ctx.query, ctx.profileSchema);
    const base = predicate;
    predicate = base === TRUE_ALL ? search : (r) => base(r) && search(r);
  }
  return predicate;
}

type ProfileKinds = { strict: boolean; kinds: Map<string, FieldKind>; archived: Set<string> };

function profileKindsFor(target: FilterTarget, schema: CompileContext['profileSchema']): ProfileKinds {
  const kinds = new Map<string, FieldKind>();
  const archived = new Set<string>();
  if (target === 'cases') {
    for (const [k, v] of Object.entries(CASE_PROFILE_KINDS)) kinds.set(k, v);
  }
  const keys = schema ? (Array.isArray(schema) ? schema : (schema as ProfileSchema).keys) : undefined;
  for (const def of keys ?? []) {
    // csat/csatComment are fixed case columns: their type does not come from the workspace.
    if (target === 'cases' && Object.hasOwn(CASE_PROFILE_KINDS, def.key)) continue;
    if (def.archived) archived.add(def.key);
    else kinds.set(def.key, def.type === 'list' ? 'list' : def.type);
  }
  return { strict: keys !== undefined, kinds, archived };
}

function combine(join: 'and' | 'or', parts: Predicate[]): Predicate {
  const n = parts.length;
  // An empty group constrains nothing under `and`; an empty `or` is refused by the schema, but
  // would match nothing (no alternative holds).
  if (n === 0) return join === 'and' ? TRUE_ALL : () => false;
  if (n === 1) return parts[0]!;
  if (n === 2) {
    const a = parts[0]!;
    const b = parts[1]!;
    return join === 'and' ? (r) => a(r) && b(r) : (r) => a(r) || b(r);
  }
  if (join === 'and') {
    return (r) => {
      for (let i = 0; i < n; i++) if (!parts[i]!(r)) return false;
      return true;
    };
  }
  return (r) => {
    for (let i = 0; i < n; i++) if (parts[i]!(r)) return true;
    return false;
  };
}

function compileGroup(
  group: { join: 'and' | 'or'; conditions: FilterCondition[]; groups?: { join: 'and' | 'or'; conditions: FilterCondition[] }[] | undefined },
  path: string,
  target: FilterTarget,
  profileKinds: ProfileKinds,
  env: Env,
): Predicate {
  const parts = group.conditions.map((c, ci) => compileCondition(c, `${path}.conditions[${ci}]`, target, profileKinds, env));
  (group.groups ?? []).forEach((sub, si) => parts.push(compileGroup(sub, `${path}.groups[${si}]`, target, profileKinds, env)));
  return combine(group.join, parts);
}

function resolveField(field: string, path: string, target: FilterTarget, profileKinds: ProfileKinds, env: Env): { kind: FieldKind; get: Getter } {
  const nowMs = env.nowMs;
  if (field.startsWith('profile.')) {
    const key = field.slice('profile.'.length);
    if (profileKinds.archived.has(key)) {
      // C5 is the rule that hides archived keys, so the error's `rule` says C5 as its message does.
      throw bad(`${path}.field`, 'profile key is archived and no longer collected (rule C5)', 'FILTER_UNKNOWN_FIELD', 'C5');
    }
    const known = profileKinds.kinds.get(key);
    if (profileKinds.strict && known === undefined && !(target === 'cases' && Object.hasOwn(CASE_PROFILE_KINDS, key))) {
      throw bad(`${path}.field`, 'unknown profile key for this workspace', 'FILTER_UNKNOWN_FIELD');
    }
    if (known === 'date' || known === 'number' || known === 'boolean' || known === 'string') {
      // Read the value as the file's cell shows it (toProfileCell, the same function): `"5000"`
      // is the number 5000, `"true"` is true, a date held as text is read in the export's zone,
      // and whatever the cell leaves empty (`"abc"` as a number, `"yes"` as a boolean, a date no
      // cell can show) is missing here too. Comparing raw values instead missed customers whose
      // cells show exactly the value filtered on. Likewise a number under a `string` key is the
      // text the cell shows (`5` is `"5"`).
      const zone = env.timeZone;
      return { kind: known, get: (r) => (r.profile ? toProfileCell(profileValue(r.profile, key), known, zone) : null) };
    }
    if (known === 'list') {
      // A list key holding one plain value (an import, a manager's edit) shows it as the cell's
      // text: it is that one-item list here, so `eq`/`in` match what the cell shows, as
      // `contains` already did.
      return { kind: known, get: (r) => (r.profile ? asList(profileValue(r.profile, key)) : undefined) };
    }
    return { kind: known ?? 'any', get: (r) => (r.profile ? profileValue(r.profile, key) : undefined) };
  }
  const def = (target === 'cases' ? CASE_FIELDS : USER_FIELDS)[field];
  if (!def) throw bad(`${path}.field`, `unknown ${target === 'cases' ? 'case' : 'user'} field`, 'FILTER_UNKNOWN_FIELD');
  if (def.fixedText) return { kind: def.kind, get: userFixedTextReader(def.fixedText, env.profileSchema) };
  const derived = def.get;
  return { kind: def.kind, get: derived ? (r) => derived(r, nowMs) : (r) => r[field] };
}

const APPLICABLE: Record<FilterOperator, readonly FieldKind[]> = {
  eq: ['string', 'email', 'phone', 'number', 'boolean', 'date', 'list', 'any'],
  neq: ['string', 'email', 'phone', 'number', 'boolean', 'date', 'list', 'any'],
  in: ['string', 'email', 'phone', 'number', 'date', 'list', 'any'],
  contains: ['string', 'email', 'phone', 'list', 'any'],
  startsWith: ['string', 'email', 'phone', 'list', 'any'],
  exists: ['string', 'email', 'phone', 'number', 'boolean', 'date', 'list', 'any'],
  notExists: ['string', 'email', 'phone', 'number', 'boolean', 'date', 'list', 'any'],
  gt: ['number', 'date', 'any'],
  gte: ['number', 'date', 'any'],
  lt: ['number', 'date', 'any'],
  lte: ['number', 'date', 'any'],
  between: ['number', 'date', 'any'],
  withinLastDays: ['date', 'any'],
  beforeDaysAgo: ['date', 'any'],
};

function compileCondition(c: FilterCondition, path: string, target: FilterTarget, profileKinds: ProfileKinds, env: Env): Predicate {
  const nowMs = env.nowMs;
  const { kind, get } = resolveField(c.field, path, target, profileKinds, env);
  if (!APPLICABLE[c.op].includes(kind)) {
    throw bad(`${path}.op`, `operator ${c.op} does not apply to ${kind} field ${c.field}`, 'FILTER_OPERATOR_NOT_APPLICABLE');
  }
  switch (c.op) {
    case 'eq':
    case 'neq': {
      const eq = compileEquals(kind, c.value, `${path}.value`, get, env);
      return c.op === 'eq' ? eq : (r) => !eq(r);
    }
    case 'in':
      return compileIn(kind, typeof c.values === 'string' ? splitInput(c.values) : c.values, `${path}.values`, get, env);
    case 'contains':
    case 'startsWith':
      return compileText(kind, c.op, c.value, get);
    case 'exists':
    case 'notExists': {
      const exists: Predicate = (r) => isPresent(get(r));
      return c.op === 'exists' ? exists : (r) => !exists(r);
    }
    case 'gt':
    case 'gte':
    case 'lt':
    case 'lte': {
      const b = toBound(kind, c.value, `${path}.value`, env);
      const lo = b.lo;
      const hi = b.hi;
      if (c.op === 'gte') return (r) => { const v = get(r); return typeof v === 'number' && v >= lo; };
      if (c.op === 'lt') return (r) => { const v = get(r); return typeof v === 'number' && v < lo; };
      if (c.op === 'gt') {
        return b.hiInclusive
          ? (r) => { const v = get(r); return typeof v === 'number' && v > hi; }
          : (r) => { const v = get(r); return typeof v === 'number' && v >= hi; };
      }
      return b.hiInclusive
        ? (r) => { const v = get(r); return typeof v === 'number' && v <= hi; }
        : (r) => { const v = get(r); return typeof v === 'number' && v < hi; };
    }
    case 'between': {
      const from = toBound(kind, c.from, `${path}.from`, env);
      const to = toBound(kind, c.to, `${path}.to`, env);
      // A date-only `to` ends where its next day starts (exclusive): equal to `from`'s start, it
      // is the day before `from`, and the range would silently match nothing.
      if (to.hiInclusive ? to.hi < from.lo : to.hi <= from.lo) throw bad(`${path}.to`, 'must not be below from');
      const lo = from.lo;
      const hi = to.hi;
      return to.hiInclusive
        ? (r) => { const v = get(r); return typeof v === 'number' && v >= lo && v <= hi; }
        : (r) => { const v = get(r); return typeof v === 'number' && v >= lo && v < hi; };
    }
    case 'withinLastDays': {
      const cutoff = nowMs - c.days * DAY_MS;
      return (r) => { const v = get(r); return typeof v === 'number' && v >= cutoff && v <= nowMs; };
    }
    case 'beforeDaysAgo': {
      const cutoff = nowMs - c.days * DAY_MS;
      return (r) => { const v = get(r); return typeof v === 'number' && v < cutoff; };
    }
  }
}

function asList(v: unknown): unknown {
  if (v === null || v === undefined || v === '' || Array.isArray(v)) return v;
  return typeof v === 'object' ? undefined : [String(v)];
}

function isPresent(v: unknown): boolean {
  if (v === null || v === undefined || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  return true;
}

/** Date bounds may be epoch ms or ISO-8601 text; converted once here, not per record. */
function toComparable(kind: FieldKind, value: string | number, path: string): number {
  if (typeof value === 'number') return value;
  if (kind === 'number') {
    const n = decimalTextValue(value);
    if (n !== undefined) return n;
    throw bad(path, 'must be a number');
  }
  if (ISO_DATE_TIME.test(value)) {
    // Checked field by field: Date.parse alone reads 2023-02-29T… as March 1 and would filter
    // from the wrong day without a word. (A date-only value here is an instant: UTC midnight.)
    const t = DATE_ONLY.test(value) ? (parseCalendarDate(value) ? Date.parse(value) : Number.NaN) : (parseIsoWithOffset(value) ?? Number.NaN);
    if (Number.isFinite(t)) return t;
    throw bad(path, 'must name a date and time that exist (no February 30, hour 25, minute 60, leap second or offset beyond ±23:59)');
  }
  if (kind === 'any') {
    // Decimal text only, as a typed number key reads it: Number() took `0x1A` as 26 and `0b11` as 3.
    const n = decimalTextValue(value);
    if (n !== undefined) return n;
  }
  // A date-time without an offset names no instant (it was read nowhere): say what is missing.
  const hint = !/^\d{4}-\d{2}-\d{2}T/i.test(value)
    ? ''
    : /(?:[zZ]|[+-]\d{2}:?\d{2})$/.test(value)
      ? ' (write the offset as Z or as +09:00, right after the time)'
      : ' (this one has no offset: add Z or one such as +09:00)';
  throw bad(path, `must be epoch milliseconds, a date (YYYY-MM-DD) or an ISO-8601 date-time with an offset${hint}`);
}

const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/;

/**
 * A comparison bound: an exact instant or number (`lo = hi`, inclusive), or for a date-only value
 * on a date field the whole calendar day in the filter's zone, [start of day, start of next day).
 */
function toBound(kind: FieldKind, value: string | number, path: string, env: Env): { lo: number; hi: number; hiInclusive: boolean } {
  if (typeof value === 'string' && (kind === 'date' || kind === 'any') && DATE_ONLY.test(value)) {
    const day = parseCalendarDate(value);
    if (!day) throw bad(path, 'must be a real calendar date (YYYY-MM-DD)');
    return { lo: startOfDayInZone(day, env.timeZone), hi: startOfDayInZone(addDays(day, 1), env.timeZone), hiInclusive: false };
  }
  const n = toComparable(kind, value, path);
  return { lo: n, hi: n, hiInclusive: true };
}

function compileEquals(kind: FieldKind, value: string | number | boolean | null, path: string, get: Getter, env: Env): Predicate {
  if (value === null) return (r) => !isPresent(get(r));
  switch (kind) {
    case 'boolean': {
      const b = value === true || value === 'true' ? true : value === false || value === 'false' ? false : undefined;
      if (b === undefined) throw bad(path, 'must be true or false');
      return (r) => get(r) === b;
    }
    case 'number': {
      const n = toComparable(kind, typeof value === 'boolean' ? String(value) : value, path);
      return (r) => get(r) === n;
    }
    case 'date': {
      const b = toBound(kind, typeof value === 'boolean' ? String(value) : value, path, env);
      if (b.hiInclusive) return (r) => get(r) === b.lo;
      const lo = b.lo;
      const hi = b.hi;
      return (r) => { const v = get(r); return typeof v === 'number' && v >= lo && v < hi; };
    }
    case 'phone': {
      const p = normalizePhone(String(value)) ?? String(value);
      return (r) => {
        const v = get(r);
        return v === p || comparablePhone(v) === p;
      };
    }
    case 'email': {
      // Addresses are compared case-insensitively, with the quick search's folding (foldEmail).
      const s = foldEmail(String(value));
      return (r) => {
        const v = get(r);
        return typeof v === 'string' && (v === s || foldEmail(v) === s);
      };
    }
    case 'list': {
      const s = String(value);
      return (r) => {
        const v = get(r);
        return Array.isArray(v) && v.includes(s);
      };
    }
    case 'string': {
      const s = String(value);
      return (r) => get(r) === s;
    }
    case 'any': {
      const s = String(value);
      return (r) => {
        const v = get(r);
        if (v === value) return true;
        if (Array.isArray(v)) return v.includes(s);
        return v !== null && v !== undefined && typeof v !== 'object' && String(v) === s;
      };
    }
  }
}

function compileIn(kind: FieldKind, values: readonly (string | number)[], path: string, get: Getter, env: Env): Predicate {
  if (values.length > MAX_IN_VALUES) throw bad(path, `at most ${MAX_IN_VALUES} values (rule C3)`);
  // Split-input text of only commas and spaces (" , ,") passes the schema's non-empty check but
  // holds no value: it would match nothing and give an empty file, the unfinished-filter trap
  // an empty group is refused for.
  if (values.length === 0) throw bad(path, 'must hold at least one value (this text has only commas, spaces or line breaks)');
  if (kind === 'number') {
    const set = new Set<number>();
    values.forEach((v, i) => set.add(toComparable(kind, v, `${path}[${i}]`)));
    return (r) => set.has(get(r) as number);
  }
  if (kind === 'date') return compileDateIn(values, path, get, env);
  const set = new Set<string>();
  for (const v of values) {
    const s = String(v);
    set.add(kind === 'phone' ? (normalizePhone(s) ?? s) : kind === 'email' ? foldEmail(s) : s);
  }
  if (kind === 'phone') {
    return (r) => {
      const v = get(r);
      return typeof v === 'string' && (set.has(v) || set.has(comparablePhone(v) as string));
    };
  }
  if (kind === 'email') {
    return (r) => {
      const v = get(r);
      return typeof v === 'string' && set.has(foldEmail(v));
    };
  }
  if (kind === 'list') {
    return (r) => {
      const v = get(r);
      if (!Array.isArray(v)) return false;
      for (const x of v) if (set.has(x)) return true;
      return false;
    };
  }
  if (kind === 'any') {
    return (r) => {
      const v = get(r);
      if (typeof v === 'string') return set.has(v);
      if (typeof v === 'number' || typeof v === 'boolean') return set.has(String(v));
      if (Array.isArray(v)) {
        for (const x of v) if (set.has(String(x))) return true;
      }
      return false;
    };
  }
  return (r) => set.has(get(r) as string);
}

/**
 * `in` on a date field, with the same meaning of each value as `eq`: a date-only value is that
 * whole calendar day in the export's zone, epoch ms or a full date-time an exact instant. Days
 * become sorted, merged intervals searched by bisection, so the cost per record stays logarithmic.
 */
function compileDateIn(values: readonly (string | number)[], path: string, get: Getter, env: Env): Predicate {
  const exact = new Set<number>();
  const days: [number, number][] = [];
  const seenDays = new Set<string>();
  values.forEach((v, i) => {
    if (typeof v === 'string' && seenDays.has(v)) return;
    const b = toBound('date', v, `${path}[${i}]`, env);
    if (b.hiInclusive) exact.add(b.lo);
    else {
      seenDays.add(v as string);
      days.push([b.lo, b.hi]);
    }
  });
  if (days.length === 0) return (r) => exact.has(get(r) as number);
  days.sort((a, b) => a[0] - b[0]);
  const starts: number[] = [];
  const ends: number[] = [];
  for (const [lo, hi] of days) {
    const last = ends.length - 1;
    if (last >= 0 && lo <= ends[last]!) ends[last] = Math.max(ends[last]!, hi);
    else {
      starts.push(lo);
      ends.push(hi);
    }
  }
  return (r) => {
    const v = get(r);
    if (typeof v !== 'number') return false;
    if (exact.has(v)) return true;
    // Last interval starting at or before v; v is in it when before its (exclusive) end.
    let lo = 0;
    let hi = starts.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (starts[mid]! <= v) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found >= 0 && v < ends[found]!;
  };
}

function compileText(kind: FieldKind, op: 'contains' | 'startsWith', value: string, get: Getter): Predicate {
  if (kind === 'phone') {
    // Stored numbers are E.164 while people type local forms (`010-1234`): compare digits, as
    // the quick search does. Text that is no partial number (letters) is compared as text.
    const needles = phoneNeedles(value, op);
    if (needles) {
      const match = phoneTextMatcher(needles);
      return (r) => {
        const v = get(r);
        return typeof v === 'string' && match(v);
      };
    }
    // An international prefix alone names no digits: at the start it means "written in
    // international form" (every E.164 number), whichever of the two prefixes was typed.
    const bare = value.replace(/[^\d+]/g, '');
    if (op === 'startsWith' && PHONE_CHARS.test(value.trim()) && (bare === '+' || bare === '00')) {
      return (r) => {
        const v = get(r);
        return typeof v === 'string' && (v.startsWith('+') || v.startsWith('00'));
      };
    }
  }
  if (kind === 'email') {
    // Folded as eq, in and the quick search fold addresses (foldEmail): a `/iu` regex also takes
    // `ſ` for `s` and the Kelvin sign for `k`, so `contains "stu"` found `ſtu@x.com`, which
    // `eq "stu@x.com"` and the quick search did not.
    const needle = foldEmail(value);
    const found = op === 'contains' ? (s: string) => s.includes(needle) : (s: string) => s.startsWith(needle);
    return (r) => {
      const v = get(r);
      return typeof v === 'string' && found(foldEmail(v));
    };
  }
  // Case-insensitive, like the product's search box. A compiled regex instead of lower-casing
  // each record's text: no per-record string allocation.
  const re = new RegExp(op === 'contains' ? escapeRegExp(value) : `^${escapeRegExp(value)}`, 'iu');
  const test = (s: string) => re.test(s);
  if (kind === 'list' || kind === 'any') {
    return (r) => {
      const v = get(r);
      if (typeof v === 'string') return test(v);
      if (Array.isArray(v)) {
        for (const x of v) if (typeof x === 'string' && test(x)) return true;
      }
      return false;
    };
  }
  return (r) => {
    const v = get(r);
    return typeof v === 'string' && test(v);
  };
}

/** Escapes the syntax characters only: in `u` mode escaping anything else (e.g. `-`) is an error. */
function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// ---------------------------------------------------------------------------------------------
// Quick search (C1)

/**
 * E-mail addresses compare case-insensitively, in eq, in and the quick search alike: lower case,
 * and the final sigma as σ (`ΣΑΣ` lower-cases to `σας`, which must still equal `σασ`). One
 * folding for all three, so an address the quick search finds is one `eq` finds. (A `/iu`
 * regex folds differently: it also equates `ſ` with `s` and `K` (Kelvin) with `k`, and a Set of
 * `in` values cannot use it.)
 */
export function foldEmail(text: string): string {
  const lower = text.toLowerCase();
  return lower.includes('ς') ? lower.replace(/ς/g, 'σ') : lower;
}

/**
 * Name (case-insensitive substring), e-mail (substring, folded as foldEmail) or mobile number,
 * each as the file shows it (userFixedTextReader with the same profile schema as the row mapper: an
 * archived or undeclared profile key does not fill them). A query that reads as a phone number
 * is normalised to E.164 (`010-1234-5678` finds `+821012345678`); a partial number matches as
 * `contains` on `mobileNumber` does (phoneNeedles).
 */
export function compileQuickSearch(query: string, profileSchema?: CompileContext['profileSchema']): Predicate<UserTextFields> {
  const q = query.trim();
  if (q === '') return TRUE_ALL;
  const re = new RegExp(escapeRegExp(q), 'iu');
  const folded = foldEmail(q);
  let phone: ((v: string) => boolean) | undefined;
  if (PHONE_CHARS.test(q) && q.replace(/\D/g, '').length >= 3) {
    const needles = phoneNeedles(q, 'contains');
    const full = normalizePhone(q);
    if (needles) {
      // A whole number matches however it was written (`+82 010-...`, `0082...`).
      if (full) needles.atStart.push(full.slice(1));
      phone = phoneTextMatcher(needles);
    }
  }
  const nameOf = userFixedTextReader('name', profileSchema);
  const emailOf = userFixedTextReader('email', profileSchema);
  const mobileOf = userFixedTextReader('mobileNumber', profileSchema);
  return (u) => {
    const name = nameOf(u);
    if (name && re.test(name)) return true;
    const email = emailOf(u);
    if (email && foldEmail(email).includes(folded)) return true;
    const mobile = mobileOf(u);
    return phone !== undefined && typeof mobile === 'string' && mobile !== '' && phone(mobile);
  };
}

// ---------------------------------------------------------------------------------------------
// Segments (C4)

/**
 * A segment is a saved filter, not a saved result: return its filter, validated against the
 * users target now, so the export re-evaluates it on the current data.
 */
export function resolveSegment(segment: Segment | undefined, segmentId?: string): UsersFilter {
  if (!segment) {
    throw new NotFoundError(`segmentId: no segment with this id (rule C4)`, { code: 'SEGMENT_NOT_FOUND', field: 'segmentId', rule: 'C4' });
  }
  if (segmentId !== undefined && segment.id !== segmentId) {
    throw new NotFoundError(`segmentId: no segment with this id (rule C4)`, { code: 'SEGMENT_NOT_FOUND', field: 'segmentId', rule: 'C4' });
  }
  const parsed = usersFilterSchema.safeParse(segment.filter, INPUT_ERRORS);
  if (!parsed.success) throw toValidationError(parsed.error, { prefix: 'segment.filter', code: 'SEGMENT_INVALID', rule: 'C4' });
  return parsed.data;
}
