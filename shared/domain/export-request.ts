import { z } from 'zod';
import { casesRequestFilterSchema, compileFilter, usersRequestFilterSchema } from './filter';
import { INPUT_ERRORS, REQUIRED_MESSAGE, toValidationError } from './errors';
import { PolicyViolationError } from './errors';
import { checkCaseRange, checkPassword, defaultPolicyConfig, type PolicyConfig } from './policies';
import { timeZoneSchema } from './records';
import { dayInZone } from './calendar';
import { displayControlMessage, HAS_LETTER_OR_DIGIT, hasDisplayControl, refuseDisplayControl } from '../text-rules';

/**
 * `POST /v1/exports` body. Structure lives here (and in the API Gateway model emitted from it);
 * product rules with stable codes (range S3, password S4/C7) live in policies.ts and run after
 * parsing, so one schema serves both the model and the handler.
 *
 * Custom messages never interpolate values; zod's own messages do not either.
 */

/**
 * S4/C7: required. Its length and character rules are policies (checkPassword), the empty
 * password included, so each is told by one code with its product rule: a schema cap here
 * answered a 300-character password VALIDATION_FAILED where a 65-character one got
 * PASSWORD_TOO_LONG (S4). The body's 3 MB cap bounds it before that.
 */
const passwordSchema = z
  .string()
  // The bounds, for readers of the generated model and docs/openapi.json (not checked here).
  .describe(
    'The file password, never stored. Checked by policy: cases (S4) 4-64 letters and digits; contacts (C7) 6-64 printable ASCII characters without spaces. Refused with PASSWORD_REQUIRED, PASSWORD_TOO_SHORT, PASSWORD_TOO_LONG or PASSWORD_INVALID_CHARACTERS.',
  );

/**
 * Kept for internal records (S4, C7) and read by auditors: required, trimmed, 1-500 characters,
 * not blank, with a letter or digit (a lone "..." is no reason), and nothing that changes how it
 * displays or hides in it (control characters, bidi overrides, invisible format characters such
 * as a zero-width space, which keeps `re\u200Bfund` from an auditor's search for "refund": see
 * text-rules.ts). Lone surrogates are refused for the whole body (functions/api/app.ts).
 */
const reasonSchema = z
  .string()
  // One rule for empty and blank alike (so a blank reason gets one message, not two); after the
  // trim the string is therefore at least one character long.
  .regex(/\S/, 'reason must not be blank')
  .trim()
  .max(500, 'reason must be at most 500 characters')
  // refine, not regex: these stay out of the API Gateway model (its regex dialect is not
  // JavaScript's), and the handler checks them. At most one message of its own (a reason that is
  // also too long has that one too), and none for a blank reason, which already has its own.
  .superRefine((reason, ctx) => {
    if (!/\S/.test(reason)) return;
    if (hasDisplayControl(reason)) {
      ctx.addIssue({
        code: 'custom',
        message: displayControlMessage('reason ', reason),
        params: { rule: 'display-control' },
      });
    } else if (!HAS_LETTER_OR_DIGIT.test(reason)) {
      ctx.addIssue({ code: 'custom', message: 'reason must contain a letter or a digit', params: { rule: 'letter-or-digit' } });
    }
  });

/**
 * `POST /v1/exports/{id}/revoke` body: why a completed export's link is withdrawn. The reason is
 * kept on the job and in the append-only audit trail, read by auditors like the export's own
 * reason, so it takes the very same rules (reasonSchema); unknown fields are refused.
 */
export const revokeRequestSchema = z.strictObject({ reason: reasonSchema });
export type RevokeRequest = z.infer<typeof revokeRequestSchema>;

/** Parses a revoke body, throwing a ValidationError that names the field and the rule. */
export function parseRevokeRequest(body: unknown): RevokeRequest {
  const parsed = revokeRequestSchema.safeParse(body, INPUT_ERRORS);
  if (!parsed.success) throw toValidationError(parsed.error);
  return parsed.data;
}

/**
 * `POST /v1/exports/{id}/cancel` body, optional: why the requester stops the export. Kept on the
 * job and in the audit trail with the cancel, so it takes the reason's rules (reasonSchema); a
 * cancel sent without a body records none. Unknown fields are refused, so a misspelt `reason`
 * is not dropped in silence.
 */
export const cancelRequestSchema = z.strictObject({ reason: reasonSchema.optional() });
export type CancelRequest = z.infer<typeof cancelRequestSchema>;

/** Parses a cancel body (undefined: none was sent), throwing a ValidationError that names the field and the rule. */
export function parseCancelRequest(body: unknown): CancelRequest {
  if (body === undefined) return {};
  const parsed = cancelRequestSchema.safeParse(body, INPUT_ERRORS);
  if (!parsed.success) throw toValidationError(parsed.error);
  return parsed.data;
}

// A missing date is `required` like every other missing field: a fixed message here would hide
// the shared error map's REQUIRED_MESSAGE, and issueRule would call it `type`.
const calendarDate = z.iso.date({ error: (issue) => (issue.input === undefined ? REQUIRED_MESSAGE : 'must be a calendar date (YYYY-MM-DD)') });
/**
 * A user or segment id. A scope-"user" id travels inline in a chunk message; queue bodies are
 * ASCII (queueMessageBody escapes the rest), but control characters, U+FFFE and U+FFFF are refused
 * here all the same: no real id holds them, and a file or trail showing them would mislead.
 * The audit trail shows the ids too (segmentId, userId, userIds up to 100): like the query, none
 * may hold a bidi override or an invisible format character (display-control), which would show
 * auditors another id than the one exported.
 */
const id = refuseDisplayControl(
  z
    .string()
    .min(1)
    .max(128)
    // refine, not regex: kept out of the API Gateway model, whose regex dialect is not JavaScript's.
    // Both run; an id holding both is told the first (one issue per path).
    .refine((value) => !/[\p{Cc}\uFFFE\uFFFF]/u.test(value), { message: 'must not contain control characters, U+FFFE or U+FFFF', params: { rule: 'no-control-characters' } }),
);

export const MAX_SELECTED_USER_IDS = 1_000_000;

export const casesExportRequestSchema = z.strictObject({
  kind: z.literal('cases'),
  from: calendarDate,
  to: calendarDate,
  /** IANA zone in which `from`/`to` are days and dates are shown; defaults to the channel's. */
  timezone: timeZoneSchema.optional(),
  /** The dashboard's filter, applied as is (S6). */
  filter: casesRequestFilterSchema.optional(),
  reason: reasonSchema,
  password: passwordSchema,
});

const contactsCommon = {
  kind: z.literal('contacts'),
  timezone: timeZoneSchema.optional(),
  reason: reasonSchema,
  password: passwordSchema,
};
/**
 * The quick search (C1). Kept in the audit trail with the request: nothing that changes how it
 * displays (a U+202E there shows auditors the text reversed); no customer's name, email or phone
 * is searched for with a control character. The `matching` rule: it is compared with customer
 * data, which may hold a soft hyphen or a zero-width space.
 */
const query = refuseDisplayControl(z.string().max(200), 'query ', 'matching').optional();

/**
 * A key that another scope takes (`query` with `selection`, `filter` with `all`) is the usual
 * unknown key here: say which scope refuses it (toValidationError names the key as the field).
 */
const SCOPE_FIELDS = new Set(['filter', 'query', 'segmentId', 'userIds', 'userId']);
const scopeKeys = (scope: string) => ({
  // Only for keys some other scope takes: a misspelt key ("fileNmae") is no field of any scope,
  // and "not allowed with scope" would suggest one that accepts it (it gets "is not an allowed field").
  error: (issue: { code?: string; keys?: readonly string[] }) =>
    issue.code === 'unrecognized_keys' && (issue.keys ?? []).every((key) => SCOPE_FIELDS.has(key)) ? `is not allowed with scope "${scope}"` : undefined,
});

/** C6 scopes: all customers, the filter result, a segment, a checked selection, or one customer. */
export const contactsExportRequestSchema = z.discriminatedUnion('scope', [
  z.strictObject({ ...contactsCommon, scope: z.literal('all'), query }, scopeKeys('all')),
  z.strictObject({ ...contactsCommon, scope: z.literal('filter'), filter: usersRequestFilterSchema, query }, scopeKeys('filter')),
  z.strictObject({ ...contactsCommon, scope: z.literal('segment'), segmentId: id, query }, scopeKeys('segment')),
  z.strictObject(
    {
      ...contactsCommon,
      scope: z.literal('selection'),
      // Each customer once, in the order given: the file has one row per customer anyway, and
      // the job and the audit entry count (and list) the customers, not the repeats.
      userIds: z
        .array(id)
        .min(1)
        .max(MAX_SELECTED_USER_IDS)
        .transform((ids) => [...new Set(ids)]),
    },
    scopeKeys('selection'),
  ),
  z.strictObject({ ...contactsCommon, scope: z.literal('user'), userId: id }, scopeKeys('user')),
]);

export const exportRequestSchema = z.discriminatedUnion('kind', [casesExportRequestSchema, contactsExportRequestSchema]);

export type ExportRequest = z.infer<typeof exportRequestSchema>;
export type CasesExportRequest = z.infer<typeof casesExportRequestSchema>;
export type ContactsExportRequest = z.infer<typeof contactsExportRequestSchema>;
export type ContactsScope = ContactsExportRequest['scope'];

/** Parses a request body, throwing a ValidationError that lists every issue's path. */
export function parseExportRequest(body: unknown): ExportRequest {
  const parsed = exportRequestSchema.safeParse(body, INPUT_ERRORS);
  if (!parsed.success) throw toValidationError(parsed.error);
  return parsed.data;
}

/**
 * A filter is kept whole in the audit entry, a DynamoDB item (400 KB at most): a larger one
 * would fail at the write. (The job keeps it with its definition, in S3 when large.) 100 kB of
 * JSON holds thousands of `in` values; longer id lists are a selection (scope `selection`),
 * whose ids are stored apart.
 */
export const MAX_FILTER_BYTES = 100_000;

/** The zones furthest behind and ahead of UTC (-12 and +14, no DST). */
const EXTREME_ZONES = ['Etc/GMT+12', 'Pacific/Kiritimati'];

/** The product rules a parsed request must pass before any work starts (S3, S4, C7). */
export function checkExportRequest(request: ExportRequest, config: PolicyConfig = defaultPolicyConfig, now: Date = new Date()): void {
  if (request.kind === 'cases') {
    // Without `timezone` the channel's zone applies, not known here: today where it is latest.
    const zone = request.timezone ?? EXTREME_ZONES[1]!;
    checkCaseRange(request, config, {
      date: dayInZone(now, zone),
      where: request.timezone !== undefined ? `in ${request.timezone}` : 'anywhere (UTC+14)',
    });
  }
  checkPassword(request.kind, request.password, config);
  if ('filter' in request && request.filter) {
    const bytes = new TextEncoder().encode(JSON.stringify(request.filter)).length;
    if (bytes > MAX_FILTER_BYTES) {
      throw new PolicyViolationError(
        'FILTER_TOO_LARGE',
        `filter must be at most ${MAX_FILTER_BYTES} bytes as JSON (this one is ${bytes}); to export a long list of customers, use scope "selection"`,
        // The body's own size refusal (413 BODY_TOO_LARGE) names the same rule.
        { field: 'filter', rule: 'max-bytes' },
      );
    }
    // What can be judged without the workspace (a date-time that does not exist, an operator a
    // fixed field cannot take, a between that ends before it starts) is judged here, before the
    // cooldown: a manager in cooldown must not wait half an hour to learn the body was wrong.
    // Profile keys are checked against the workspace's schema later, when the export is planned.
    // Without `timezone` the export runs in the channel's zone, not known here, and a `between`
    // mixing a calendar day with an instant is ordered or not depending on it: then only what is
    // wrong in the zones furthest apart (UTC-12 and UTC+14), and so in every zone between them
    // (the bounds move monotonically with the offset), is refused now; the rest waits for the plan.
    const target = request.kind === 'cases' ? 'cases' : 'users';
    const zones = request.timezone !== undefined ? [request.timezone] : EXTREME_ZONES;
    // Stops at the first zone it compiles in (a 100,000-value `in` list is not built twice).
    let first: unknown;
    for (const timeZone of zones) {
      try {
        compileFilter(request.filter, target, { now, timeZone });
        return;
      } catch (error) {
        first ??= error;
      }
    }
    throw first;
  }
}

export type JsonSchemaTarget = 'draft-04' | 'draft-07';

/**
 * JSON Schema of the request body, from the same zod schema the handler uses.
 * - `draft-04` (default) is what API Gateway REST models accept.
 * - Every `$schema` key is removed: API Gateway rejects meta-schema URIs it does not know, and
 *   CDK's `JsonSchema` type has no `$schema` field anyway (it takes `schema: JsonSchemaVersion`).
 *   With no `$`-keys left (the filter has a fixed depth, so there is no `$ref` either), the object
 *   can be handed to CDK's `JsonSchema` as is.
 * - `io: 'input'` describes what a client sends (before trimming).
 * - Zod refinements have no JSON Schema form and are checked by the handler only: a known IANA
 *   time zone (the model checks the name's shape), and the reason's 500-character limit after
 *   trimming (the model counts the untrimmed text).
 */
export function exportRequestJsonSchema(options: { target?: JsonSchemaTarget } = {}): Record<string, unknown> {
  const schema = z.toJSONSchema(exportRequestSchema, {
    target: options.target ?? 'draft-04',
    io: 'input',
    unrepresentable: 'any',
  }) as Record<string, unknown>;
  return stripKeys(schema, new Set(['$schema', '$id'])) as Record<string, unknown>;
}

function stripKeys(value: unknown, drop: ReadonlySet<string>): unknown {
  if (Array.isArray(value)) return value.map((v) => stripKeys(v, drop));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (!drop.has(k)) out[k] = stripKeys(v, drop);
    return out;
  }
  return value;
}
