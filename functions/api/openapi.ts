import { z } from 'zod';
import { cancelRequestSchema, exportRequestSchema, revokeRequestSchema } from '../../shared/domain/export-request';
import { exportStatusSchema } from '../../shared/app/export-job';
import { MAX_AUDIT_COLUMNS_BYTES, MAX_LISTED_DOWNLOADS } from '../../shared/ports/audit-log';
import { MAX_CURSOR_LENGTH } from '../../shared/app/api/cursor';
import { EXPORT_ID_PATTERN } from '../../shared/app/api/read-exports';
import { IDEMPOTENCY_KEY } from '../../shared/app/api/request-export';
import type { RouteName } from './router';

/**
 * The OpenAPI 3.1 description of the HTTP API, built as a plain object. docs/openapi.json is this
 * object written out by `bin/openapi.ts`, and test/api/openapi.test.ts holds both to the truth:
 * the committed file must equal a fresh build, every route of router.ts must be here (and only
 * those), and the real handler's answers to a realistic session must match what is declared.
 *
 * What this describes is what a client sees: the handler's answers, and the few that are made in
 * front of it with the same envelope (the web ACL's 413/429, API Gateway's 400/401/403/404/429,
 * the local server's 413). Where those differ from the handler's (no `requestId` in the web ACL's
 * bodies, no `X-Request-Id`), the schema says so rather than pretending they cannot happen.
 */

// ---------------------------------------------------------------------------------------------
// Types: just enough of OpenAPI 3.1 for the compiler to catch a misspelt key in what is built
// here. Schemas stay open records: JSON Schema 2020-12 is too wide to type usefully.

export type JsonSchema = { [keyword: string]: unknown };
export type Ref = { $ref: string };

export type HeaderObject = { description: string; required?: boolean; schema: JsonSchema };
export type MediaTypeObject = { schema: JsonSchema | Ref; example?: unknown };
export type ResponseObject = {
  description: string;
  headers?: Record<string, HeaderObject | Ref>;
  content?: Record<string, MediaTypeObject>;
};
export type ParameterObject = {
  name: string;
  in: 'query' | 'path' | 'header';
  description: string;
  required?: boolean;
  schema: JsonSchema;
};
export type OperationObject = {
  operationId: RouteName;
  summary: string;
  description: string;
  tags: string[];
  security: Record<string, string[]>[];
  parameters?: (ParameterObject | Ref)[];
  requestBody?: { required: boolean; description: string; content: Record<string, MediaTypeObject> };
  responses: Record<string, ResponseObject | Ref>;
};
export type HttpMethod = 'get' | 'post' | 'head';
export type PathItemObject = { parameters?: (ParameterObject | Ref)[] } & Partial<Record<HttpMethod, OperationObject>>;

export type OpenApiDocument = {
  openapi: '3.1.0';
  info: { title: string; version: string; description: string };
  servers: { url: string; description: string }[];
  security: Record<string, string[]>[];
  tags: { name: string; description: string }[];
  paths: Record<string, PathItemObject>;
  components: {
    securitySchemes: Record<string, Record<string, unknown>>;
    schemas: Record<string, JsonSchema>;
    parameters: Record<string, ParameterObject>;
    headers: Record<string, HeaderObject>;
    responses: Record<string, ResponseObject>;
  };
  /**
   * Answers to a request that names no operation of this document (see UNROUTED_DESCRIPTION).
   * OpenAPI has no place for responses outside an operation, and declaring DELETE and co. as
   * operations would make every client generator emit methods that can only fail.
   */
  'x-unrouted-responses': Record<string, Ref | string>;
};

const ref = (section: 'schemas' | 'parameters' | 'headers' | 'responses', name: string): Ref => ({ $ref: `#/components/${section}/${name}` });

// ---------------------------------------------------------------------------------------------
// Request body: generated from the zod schema the handler parses with, never retyped here.

/**
 * The body schema in the OpenAPI 3.1 dialect (JSON Schema 2020-12). `io: 'input'` describes what
 * a client sends (before trimming); refinements have no JSON Schema form and stay the handler's
 * (a known IANA zone, display-control characters, a reason of 500 characters after trimming),
 * as for the API Gateway model (exportRequestJsonSchema, which is draft-04 for the gateway).
 * `$schema` is dropped: the document's dialect already says it, and a Schema Object that
 * names its own dialect would be read as a separate resource by some tools.
 */
function requestBodySchema(schema: z.ZodType, title: string, description: string): JsonSchema {
  const { $schema: _dialect, ...generated } = z.toJSONSchema(schema, {
    target: 'draft-2020-12',
    io: 'input',
    unrepresentable: 'any',
  }) as JsonSchema;
  void _dialect;
  return { title, description, ...generated };
}

function exportRequestBodySchema(): JsonSchema {
  return requestBodySchema(
    exportRequestSchema,
    'ExportRequest',
    'Generated from exportRequestSchema (shared/domain/export-request.ts) with z.toJSONSchema. The handler also checks what JSON Schema cannot say: ' +
      'a known IANA time zone (rule known-zone), no control characters, bidi overrides or invisible format characters in reason, query, the filter\'s texts, segmentId, userId and userIds (display-control), ' +
      'a letter or digit in reason (letter-or-digit), 500 characters of reason after trimming, and then the policies (S3 range, S4/C7 password, filter size, the filter against the workspace).',
  );
}

/** POST /v1/exports/{id}/revoke's body, from the zod schema the handler parses with (as above). */
function revokeRequestBodySchema(): JsonSchema {
  return requestBodySchema(
    revokeRequestSchema,
    'RevokeRequest',
    'Generated from revokeRequestSchema (shared/domain/export-request.ts): the reason takes the export request\'s rules, which the handler also checks where JSON Schema cannot: ' +
      'not blank, a letter or digit (letter-or-digit), no control characters, bidi overrides or invisible format characters (display-control), 500 characters after trimming.',
  );
}

/** POST /v1/exports/{id}/cancel's optional body, from the zod schema the handler parses with (as above). */
function cancelRequestBodySchema(): JsonSchema {
  return requestBodySchema(
    cancelRequestSchema,
    'CancelRequest',
    'Generated from cancelRequestSchema (shared/domain/export-request.ts): an optional reason, kept on the export and in the audit trail, with the revoke reason\'s rules, which the handler also checks where JSON Schema cannot: ' +
      'not blank, a letter or digit (letter-or-digit), no control characters, bidi overrides or invisible format characters (display-control), 500 characters after trimming.',
  );
}

// ---------------------------------------------------------------------------------------------
// Response schemas. Each mirrors the code that builds the object (named in its description):
// `required` lists exactly what that code always sets, and `additionalProperties: false` is used
// where the object is built field by field (closed); `filters` is the one open object, since it
// is the validated request as stored.

const isoDateTime: JsonSchema = { type: 'string', format: 'date-time' };

/** A revoked export's facts, the same in the export view and the audit entry. */
const revocationFields: Record<string, JsonSchema> = {
  revokedAt: isoDateTime,
  revokedBy: {
    type: 'object',
    description: 'Who withdrew the link: the requester or an audit:read holder of the channel.',
    additionalProperties: false,
    required: ['managerId'],
    properties: { managerId: { type: 'string', minLength: 1 } },
  },
  revokeReason: { type: 'string', minLength: 1, maxLength: 500, description: 'Why the link was withdrawn, as given to POST /v1/exports/{id}/revoke.' },
};
const exportIdSchema: JsonSchema = {
  type: 'string',
  // Anything else cannot name an export (a 404).
  pattern: EXPORT_ID_PATTERN.source,
  description: '12 hex digits of milliseconds and 16 random hex digits (newExportId); sortable by creation time',
};
const sha256Schema: JsonSchema = { type: 'string', pattern: '^[0-9a-f]{64}$', description: "SHA-256 of the encrypted file, lower-case hex" };
const cursorSchema: JsonSchema = {
  type: 'string',
  minLength: 1,
  maxLength: MAX_CURSOR_LENGTH,
  description: 'Opaque, sealed with an HMAC; absent on the last page.',
};

const notificationSchema: JsonSchema = {
  type: 'object',
  description:
    'Whether the bot told the requester (notificationView in shared/app/api/view.ts, assembleAuditEntry for the trail). Absent until the bot answered or was given up on.',
  additionalProperties: false,
  required: ['status', 'at', 'event'],
  properties: {
    status: { type: 'string', enum: ['delivered', 'failed'] },
    at: isoDateTime,
    event: { type: 'string', enum: ['export.completed', 'export.failed'] },
    reason: {
      type: 'string',
      // notifyFailureReasonSchema: nothing but these two forms reaches the view or the trail.
      pattern: '^(?:dead-lettered|HTTP [1-5][0-9]{2})$',
      description: '`HTTP {status}` when the bot refused the post (never retried), `dead-lettered` when every retry failed; only when `status` is `failed`.',
    },
  },
};

const exportLinksSchema: JsonSchema = {
  type: 'object',
  description: 'exportLinks in shared/app/api/view.ts: `cancel` only while the export is queued, running or finalizing.',
  additionalProperties: false,
  required: ['self'],
  properties: {
    self: { type: 'string', format: 'uri' },
    cancel: { type: 'string', format: 'uri' },
  },
};

const exportViewSchema: JsonSchema = {
  type: 'object',
  description:
    'toExportView in shared/app/api/view.ts. File facts (fileName, fileSize, sha256, completedAt, expiresAt) only when completed, expired or revoked; `link` only when completed and the caller is the requester holding export:download; ' +
    '`error` only when failed; revokedAt, revokedBy and revokeReason only when revoked; `skippedRecords` only when source records without an id were left out. Never the password, the encryption parameters, the wrapped key or the object key.',
  additionalProperties: false,
  required: ['exportId', 'kind', 'status', 'requestedBy', 'reason', 'scope', 'createdAt', 'updatedAt', 'progress', 'links'],
  properties: {
    exportId: exportIdSchema,
    kind: { type: 'string', enum: ['cases', 'contacts'] },
    status: ref('schemas', 'ExportStatus'),
    requestedBy: {
      type: 'object',
      additionalProperties: false,
      required: ['managerId', 'name'],
      properties: { managerId: { type: 'string', minLength: 1 }, name: { type: 'string' } },
    },
    reason: { type: 'string', minLength: 1, maxLength: 500 },
    scope: {
      type: 'string',
      // `query` is in contactsScopeSchema (shared/app/export-job.ts) for jobs stored by an
      // earlier version; a request can no longer ask for it.
      enum: ['range', 'all', 'filter', 'segment', 'selection', 'user', 'query'],
      description: 'The contacts scope; `range` for a cases export. `query` appears only on exports stored by an earlier version; a request can no longer ask for it (a quick search is the `query` field beside a scope).',
    },
    createdAt: isoDateTime,
    updatedAt: isoDateTime,
    progress: {
      type: 'object',
      description: 'describeProgress in shared/app/export-job.ts: percent is whole, 100 only when completed (and after its link expired or was revoked), and never goes back.',
      additionalProperties: false,
      required: ['chunksDone', 'chunksTotal', 'rowsWritten', 'percent'],
      properties: {
        chunksDone: { type: 'integer', minimum: 0 },
        chunksTotal: { type: 'integer', minimum: 0 },
        rowsWritten: { type: 'integer', minimum: 0 },
        percent: { type: 'integer', minimum: 0, maximum: 100 },
      },
    },
    rowCount: { type: 'integer', minimum: 0 },
    skippedRecords: { type: 'integer', minimum: 1 },
    fileName: { type: 'string', minLength: 1 },
    fileSize: { type: 'integer', minimum: 0 },
    sha256: sha256Schema,
    completedAt: isoDateTime,
    expiresAt: isoDateTime,
    link: { type: 'string', format: 'uri', description: 'The 7-day download link (GET /v1/downloads/{token}).' },
    error: {
      type: 'object',
      description: 'Why a failed export failed, e.g. TOO_MANY_ROWS, EXPORT_DATA_EXPIRED, PIPELINE_FAILED, DISPATCH_FAILED, INTERRUPTED (local stack).',
      additionalProperties: false,
      required: ['code', 'message'],
      properties: { code: { type: 'string', minLength: 1 }, message: { type: 'string' } },
    },
    ...revocationFields,
    notification: ref('schemas', 'Notification'),
    links: ref('schemas', 'ExportLinks'),
  },
};

const exportCreatedSchema: JsonSchema = {
  type: 'object',
  description: "The 202 of POST /v1/exports (functions/api/app.ts). A replay answers with the export as it is now: its status, and no cancel link once it is over.",
  additionalProperties: false,
  required: ['exportId', 'status', 'links'],
  properties: { exportId: exportIdSchema, status: ref('schemas', 'ExportStatus'), links: ref('schemas', 'ExportLinks') },
};

const pageOf = (items: Ref, what: string): JsonSchema => ({
  type: 'object',
  description: `${what}; \`cursor\` is absent on the last page.`,
  additionalProperties: false,
  required: ['items'],
  properties: { items: { type: 'array', items }, cursor: cursorSchema },
});

const auditDownloadSchema: JsonSchema = {
  type: 'object',
  description:
    'One use of the link (downloadView in shared/adapters/aws/dynamo-audit-log.ts): `managerId` when the request carried a valid bearer of the channel, `ip` and `userAgent` when sent (the user agent cut to 512 characters and cleaned).',
  additionalProperties: false,
  required: ['at', 'outcome'],
  properties: {
    at: isoDateTime,
    managerId: { type: 'string', minLength: 1 },
    ip: { type: 'string', maxLength: 64 },
    userAgent: { type: 'string', maxLength: 512 },
    outcome: { type: 'string', enum: ['redirected', 'gone'] },
    goneBecause: {
      type: 'string',
      enum: ['expired', 'revoked', 'canceled', 'failed'],
      description: 'With `gone` only: why the link no longer worked (absent on uses recorded before it was).',
    },
  },
};

/** Where a person's act came from, beside the actor (AuditClient in shared/ports/audit-log.ts). */
const clientFields: Record<string, JsonSchema> = {
  ip: { type: 'string', maxLength: 64, description: 'The source address API Gateway saw (never X-Forwarded-For); absent when not recorded.' },
  userAgent: { type: 'string', maxLength: 512, description: 'The User-Agent, cut to 512 characters and cleaned; absent when not sent or not recorded.' },
};

/** One sheet of a completed file (auditSheetSchema in shared/ports/audit-log.ts). */
const auditSheetSchema: JsonSchema = {
  type: 'object',
  description:
    'Its name, its data rows (the header aside), and its columns as its header row names them, in order, with the SHA-256 of their JSON array. ' +
    `\`columns\` is left out (count and digest kept) when all sheets' names together pass ${MAX_AUDIT_COLUMNS_BYTES.toLocaleString('en-US')} bytes of JSON.`,
  additionalProperties: false,
  required: ['name', 'rowCount', 'columnCount', 'columnsSha256'],
  properties: {
    name: { type: 'string' },
    rowCount: { type: 'integer', minimum: 0 },
    columnCount: { type: 'integer', minimum: 0 },
    columnsSha256: { type: 'string', pattern: '^[0-9a-f]{64}$' },
    columns: { type: 'array', items: { type: 'string' } },
  },
};

const auditEntrySchema: JsonSchema = {
  type: 'object',
  description:
    'One export as the trail tells it (AuditEntry in shared/ports/audit-log.ts, links added by list-audit.ts). `status` is `requested` until a completed, failed or canceled event exists, and `revoked` once a revocation does (the file\'s facts stay). ' +
    'completedAt, sheets, linkExpiresAt, failedAt, canceledAt, canceledBy, cancelReason, revokedAt, revokedBy and revokeReason are each present only when the trail holds the event they come from (sheets, linkExpiresAt, cancelReason and the actors\' ip and userAgent only on events recorded since they were).',
  additionalProperties: false,
  required: ['exportId', 'channelId', 'requestedBy', 'requestedAt', 'kind', 'scope', 'filters', 'reason', 'status', 'downloads', 'downloadCount'],
  properties: {
    exportId: exportIdSchema,
    channelId: { type: 'string', minLength: 1 },
    requestedBy: {
      type: 'object',
      additionalProperties: false,
      required: ['managerId', 'name'],
      properties: { managerId: { type: 'string', minLength: 1 }, name: { type: 'string' }, ...clientFields },
    },
    requestedAt: isoDateTime,
    kind: { type: 'string', enum: ['cases', 'contacts'] },
    scope: {
      type: 'string',
      enum: ['range', 'all', 'filter', 'segment', 'selection', 'user', 'query'],
      description: 'As the export view\'s: `query` only on exports stored by an earlier version.',
    },
    filters: {
      type: 'object',
      description:
        'The validated request without the password and reason (filter, query, segmentId with segmentConditions and segmentConditionsSha256, userIdsCount and the ids when at most 100, userId): open, it is the request as stored.',
    },
    range: {
      type: 'object',
      description: 'timezone: the zone the export was read in; cases add from/to.',
      additionalProperties: false,
      properties: { from: { type: 'string', format: 'date' }, to: { type: 'string', format: 'date' }, timezone: { type: 'string' } },
    },
    reason: { type: 'string', minLength: 1, maxLength: 500 },
    status: { type: 'string', enum: ['requested', 'completed', 'failed', 'canceled', 'revoked'] },
    rowCount: { type: 'integer', minimum: 0 },
    sha256: sha256Schema,
    fileSize: { type: 'integer', minimum: 0 },
    fileName: { type: 'string', minLength: 1 },
    sheets: { type: 'array', items: auditSheetSchema, description: 'Every sheet of the file, in order (absent for files recorded before it was).' },
    completedAt: isoDateTime,
    linkExpiresAt: {
      ...isoDateTime,
      description: 'When the link stops (or stopped) working. `status` stays `completed` after it: the trail records acts, not the clock; a use after it shows as `gone` with `goneBecause: expired`.',
    },
    error: {
      type: 'object',
      additionalProperties: false,
      required: ['code', 'message'],
      properties: { code: { type: 'string', minLength: 1 }, message: { type: 'string' } },
    },
    failedAt: isoDateTime,
    canceledAt: isoDateTime,
    canceledBy: {
      type: 'object',
      additionalProperties: false,
      required: ['managerId'],
      properties: { managerId: { type: 'string', minLength: 1 }, ...clientFields },
    },
    cancelReason: { type: 'string', minLength: 1, maxLength: 500, description: 'Why the export was canceled, when the cancel said.' },
    ...revocationFields,
    revokedBy: {
      type: 'object',
      description: 'Who withdrew the link (the requester or an audit:read holder of the channel), and from where when recorded.',
      additionalProperties: false,
      required: ['managerId'],
      properties: { managerId: { type: 'string', minLength: 1 }, ...clientFields },
    },
    notification: ref('schemas', 'Notification'),
    downloads: {
      type: 'array',
      description: `The most recent ${MAX_LISTED_DOWNLOADS} uses of the link, oldest first.`,
      maxItems: MAX_LISTED_DOWNLOADS,
      items: ref('schemas', 'AuditDownload'),
    },
    downloadCount: { type: 'integer', minimum: 0, description: 'Every use; a lower bound when downloadCountCapped is set.' },
    downloadCountCapped: { const: true, description: 'Only when counting stopped (10,000 uses, or 20 sequential reads).' },
    links: {
      type: 'object',
      description: 'Only when `downloads` lists fewer than every use: where to page through them all.',
      additionalProperties: false,
      required: ['downloads'],
      properties: { downloads: { type: 'string', format: 'uri' } },
    },
  },
};

/**
 * The error envelope (mapErrorToResponse in shared/http/error-mapper.ts). `requestId` is always
 * set by the handler and by API Gateway's own answers; the web ACL's fixed 413/429 bodies cannot
 * carry one, which is why EdgeError exists (used for 413 and 429 only).
 */
function errorEnvelope(requireRequestId: boolean, description: string): JsonSchema {
  return {
    type: 'object',
    description,
    additionalProperties: false,
    required: ['error'],
    properties: {
      error: {
        type: 'object',
        additionalProperties: false,
        required: requireRequestId ? ['code', 'message', 'requestId'] : ['code', 'message'],
        properties: {
          code: { type: 'string', pattern: '^[A-Z][A-Z0-9_]*$', description: 'Stable: clients switch on it. The codes each status can carry are listed per operation.' },
          message: { type: 'string', minLength: 1, description: 'Names fields and rules, never input values.' },
          field: { type: 'string', description: 'The field, parameter or header to fix.' },
          rule: { type: 'string', description: 'The rule broken: a product rule (S1-S9, C1-C11) or the check (required, format, once, max-bytes…).' },
          issues: {
            type: 'array',
            description: 'One per field (at most 50), for VALIDATION_FAILED, INVALID_QUERY and the other validation codes.',
            maxItems: 50,
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['path', 'message'],
              properties: { path: { type: 'string' }, message: { type: 'string' }, rule: { type: 'string' } },
            },
          },
          retryAfterSeconds: { type: 'integer', minimum: 1, description: 'COOLDOWN_ACTIVE only, as Retry-After.' },
          requestId: { type: 'string', minLength: 1, description: 'Quote it when reporting a problem.' },
        },
      },
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Headers.

const headers: Record<string, HeaderObject> = {
  CacheControl: {
    description: 'Every answer of the handler is private to its caller: nothing may cache it.',
    schema: { type: 'string', const: 'no-store' },
  },
  XRequestId: {
    description: "The request id, as in the error body. Set by the handler on every error; the answers made in front of it (web ACL, API Gateway) do not carry it.",
    schema: { type: 'string', minLength: 1 },
  },
  Location: { description: 'Where the resource is.', schema: { type: 'string', format: 'uri' } },
  IdempotencyReplayed: {
    description: 'Present (and `true`) only when the answer replays an earlier request with the same Idempotency-Key and body.',
    schema: { type: 'string', const: 'true' },
  },
  RetryAfter: { description: 'Seconds to wait before trying again.', schema: { type: 'string', pattern: '^[0-9]+$' } },
  WWWAuthenticate: {
    description:
      'RFC 6750: `Bearer realm="export-service", error="invalid_token", error_description="missing|invalid|expired"` from the handler; API Gateway\'s own 401 names the realm only.',
    schema: { type: 'string', pattern: '^Bearer realm="export-service"' },
  },
  Allow: { description: 'The methods the path takes.', schema: { type: 'string', pattern: '^[A-Z]+(?:, [A-Z]+)*$' } },
  AcceptEncoding: {
    description: 'With UNSUPPORTED_CONTENT_ENCODING: bodies are taken as sent, uncompressed.',
    schema: { type: 'string', const: 'identity' },
  },
  ReferrerPolicy: {
    description: 'The download token is a credential: no page reached from here may learn it.',
    schema: { type: 'string', const: 'no-referrer' },
  },
};

const header = (name: keyof typeof headers & string, required: boolean): HeaderObject | Ref =>
  // A Reference Object cannot carry `required`, so a required header is the component inlined.
  required ? { ...(headers[name] as HeaderObject), required: true } : ref('headers', name);

// ---------------------------------------------------------------------------------------------
// Error responses, per status and operation.

type ErrorStatus = '400' | '401' | '403' | '404' | '405' | '409' | '410' | '413' | '415' | '422' | '429' | '500';

/**
 * Statuses that also come from in front of the handler on every route that can answer them (the
 * web ACL, API Gateway's authorizer and throttle, the local server), without the handler's
 * X-Request-Id and Cache-Control: those headers are then not required. Others are the handler's
 * alone unless an operation says so (ErrorSpec.edge: the gateway's model check of a POST body).
 */
const EDGE_STATUSES: ReadonlySet<ErrorStatus> = new Set(['401', '403', '413', '429']);

/** The web ACL's 413/429 bodies are fixed text: no request id. */
const NO_REQUEST_ID_STATUSES: ReadonlySet<ErrorStatus> = new Set(['413', '429']);

const STATUS_TEXT: Record<ErrorStatus, string> = {
  '400': 'Bad request',
  '401': 'No valid bearer token',
  '403': 'Not permitted',
  '404': 'Not found (existence is not disclosed)',
  '405': 'Method not allowed',
  '409': 'Conflict with the export\'s state',
  '410': 'The link is spent',
  '413': 'Body too large',
  '415': 'Unsupported media type or content coding',
  '422': 'Idempotency-Key reused',
  '429': 'Too many requests',
  '500': 'Internal error: a generic message and the request id only',
};

type ErrorSpec = {
  /** The closed set of `error.code` values this operation answers with at this status. */
  codes: readonly string[];
  /** What each code means here (joined into the description). */
  notes: string;
  /** Required headers beyond the envelope's. */
  extraHeaders?: Record<string, HeaderObject | Ref>;
  /** Without a body: HEAD answers carry the headers a GET would get and no content. */
  bodiless?: boolean;
  /** Also answered in front of the handler here (see EDGE_STATUSES); defaults by status. */
  edge?: boolean;
};

function errorResponse(status: ErrorStatus, spec: ErrorSpec): ResponseObject {
  const edge = spec.edge ?? EDGE_STATUSES.has(status);
  const base = NO_REQUEST_ID_STATUSES.has(status) ? 'EdgeError' : 'Error';
  const schema: JsonSchema = {
    allOf: [
      ref('schemas', base),
      { properties: { error: { properties: { code: { enum: [...spec.codes] } } } } },
      // The cooldown is the handler's: its body has the wait and the request id; the web ACL's
      // and the gateway's RATE_LIMITED do not.
      ...(spec.codes.includes('COOLDOWN_ACTIVE')
        ? [
            {
              if: { properties: { error: { properties: { code: { const: 'COOLDOWN_ACTIVE' } } } } },
              then: { properties: { error: { required: ['retryAfterSeconds', 'requestId'] } } },
            },
          ]
        : []),
    ],
  };
  return {
    description: `${STATUS_TEXT[status]}. Codes: ${spec.codes.join(', ')}. ${spec.notes}${spec.bodiless ? ' Answered to HEAD: the status and headers only, no body.' : ''}`.trim(),
    headers: {
      'Cache-Control': header('CacheControl', !edge),
      'X-Request-Id': header('XRequestId', !edge),
      ...(spec.extraHeaders ?? {}),
    },
    ...(spec.bodiless ? {} : { content: { 'application/json': { schema } } }),
  };
}

/** Answered in front of the handler too, on every route (docs/api.md, Errors; docs/deploy.md). */
const tooLarge = (handlerLimit?: '3,000,000' | '1,000,000'): ErrorSpec => ({
  codes: ['BODY_TOO_LARGE'],
  notes:
    'A declared body (Content-Length) over 3,000,000 bytes (over 1,000,000 for anything but a JSON POST /v1/exports) is refused before the handler by the web ACL on AWS and by the local server, field `body`, rule `max-bytes`.' +
    (handlerLimit ? ` The handler answers the same for a body over ${handlerLimit} bytes whose length the web ACL did not see (sent chunked).` : ''),
});

const rateLimited = (withCooldown: boolean): ErrorSpec => ({
  codes: withCooldown ? ['COOLDOWN_ACTIVE', 'RATE_LIMITED'] : ['RATE_LIMITED'],
  notes:
    (withCooldown
      ? 'COOLDOWN_ACTIVE (rule C8, field `kind`): one export per manager and kind per window (30 minutes by default), with `retryAfterSeconds`; never more than the window. '
      : '') +
    'RATE_LIMITED: from the web ACL (per client address, Retry-After: 60, no requestId) or the stage throttle on AWS, never from the handler.',
  extraHeaders: { 'Retry-After': header('RetryAfter', true) },
});

const unauthenticated: ErrorSpec = {
  codes: ['UNAUTHENTICATED'],
  notes:
    'Field `Authorization`, rule `bearer-token`: no token, malformed, bad signature, wrong issuer or audience, expired, valid for longer than JWT_MAX_LIFETIME_SECONDS, claims of the wrong shape, or the header sent twice. On AWS the authorizer\'s 401 carries the same code.',
  extraHeaders: { 'WWW-Authenticate': header('WWWAuthenticate', true) },
};

const internal: ErrorSpec = { codes: ['INTERNAL'], notes: 'The details are in the log under the request id.' };

/**
 * The answers every operation shares, written once under components.responses and referenced:
 * 401 (bearer routes), 413 and 429 (web ACL, stage throttle) and 500, each also without a body
 * for HEAD. POST /v1/exports writes its own 413 and 429 (the handler answers both there too).
 */
const SHARED_RESPONSES = {
  Unauthenticated: () => errorResponse('401', unauthenticated),
  BodyTooLarge: () => errorResponse('413', tooLarge()),
  RateLimited: () => errorResponse('429', rateLimited(false)),
  Internal: () => errorResponse('500', internal),
  BodyTooLargeNoBody: () => errorResponse('413', { ...tooLarge(), bodiless: true }),
  RateLimitedNoBody: () => errorResponse('429', { ...rateLimited(false), bodiless: true }),
  InternalNoBody: () => errorResponse('500', { ...internal, bodiless: true }),
} satisfies Record<string, () => ResponseObject>;
type SharedResponse = keyof typeof SHARED_RESPONSES;

const shared = (name: SharedResponse): Ref => ref('responses', name);

/** Every operation's common tail: 413, 429 and 500. */
function commonErrors(opts: { bodiless?: boolean } = {}): Record<string, Ref> {
  return opts.bodiless
    ? { '413': shared('BodyTooLargeNoBody'), '429': shared('RateLimitedNoBody'), '500': shared('InternalNoBody') }
    : { '413': shared('BodyTooLarge'), '429': shared('RateLimited'), '500': shared('Internal') };
}

const INVALID_QUERY_NONE =
  'INVALID_QUERY: this route takes no query parameter (rule `unknown-field`), and any parameter given twice is refused (rule `once`), every bad one in `issues`.';
const INVALID_QUERY_LIST =
  'INVALID_QUERY: a parameter not listed (rule `unknown-field`), given twice (`once`) or out of its rules (`page-size`, `format`, `one-of`, `window-order`, `year-range`…), every bad one in `issues` (one per parameter; a repeated one does not hide the others). INVALID_CURSOR (rule `returned-cursor`): empty, over-long, altered, or issued for another caller, query or export.';
const INVALID_PATH = 'INVALID_PATH (field `path`, rule `percent-encoding`): a path segment that is not valid percent-encoding.';

// ---------------------------------------------------------------------------------------------
// Parameters.

const limitParameter = (defaultLimit: number): ParameterObject => ({
  name: 'limit',
  in: 'query',
  description: `Page size, 1-100 (default ${defaultLimit}), written plainly: digits only, no sign, exponent or leading zero (rule \`page-size\`).`,
  required: false,
  schema: { type: 'integer', minimum: 1, maximum: 100, default: defaultLimit },
});

const parameters: Record<string, ParameterObject> = {
  ExportId: {
    name: 'exportId',
    in: 'path',
    description: 'The export\'s id. A malformed, unknown or other channel\'s id is a 404 EXPORT_NOT_FOUND (existence is not disclosed).',
    required: true,
    schema: exportIdSchema,
  },
  DownloadToken: {
    name: 'token',
    in: 'path',
    description: 'The signed link token the bot posted (the capability itself). Any other value is a 404 LINK_NOT_FOUND.',
    required: true,
    schema: { type: 'string', pattern: '^[A-Za-z0-9._~-]{16,512}$' },
  },
  Cursor: { name: 'cursor', in: 'query', description: 'The `cursor` of the previous page, as returned.', required: false, schema: cursorSchema },
  ExportsLimit: limitParameter(20),
  AuditLimit: limitParameter(50),
  AuditFrom: {
    name: 'from',
    in: 'query',
    description:
      'Inclusive lower bound on the request time: a date (the whole UTC day from its start) or a date-time with an offset (send `+` as `%2B`; `T` and `Z` in either case, as RFC 3339 allows); finer than a millisecond is rounded up. Within the years 0000-9999 in UTC.',
    required: false,
    schema: { type: 'string', anyOf: [{ format: 'date' }, { format: 'date-time' }] },
  },
  AuditTo: {
    name: 'to',
    in: 'query',
    description: 'Inclusive upper bound, as `from` (a date: to the end of that UTC day); not before `from` (rule `window-order`).',
    required: false,
    schema: { type: 'string', anyOf: [{ format: 'date' }, { format: 'date-time' }] },
  },
  AuditManagerId: { name: 'managerId', in: 'query', description: 'Only exports this manager requested.', required: false, schema: { type: 'string', minLength: 1, maxLength: 200 } },
  AuditKind: { name: 'kind', in: 'query', description: 'Only this kind of export.', required: false, schema: { type: 'string', enum: ['cases', 'contacts'] } },
  IdempotencyKey: {
    name: 'Idempotency-Key',
    in: 'header',
    description:
      'Honoured for 24 hours per manager: the same key and body answer the first 202 again (Idempotency-Replayed: true); the same key with another body is a 422. A request refused with a 4xx keeps no hold on its key. Sent twice: 400 INVALID_IDEMPOTENCY_KEY, rule `once`.',
    required: false,
    schema: { type: 'string', pattern: IDEMPOTENCY_KEY.source },
  },
};

// ---------------------------------------------------------------------------------------------
// Operations.

type SecurityRequirement = Record<string, string[]>;
const bearer: SecurityRequirement[] = [{ bearerAuth: [] }];
/** The link is the capability: no bearer needed; a valid one only names the manager in the audit. */
const optionalBearer: SecurityRequirement[] = [{}, { bearerAuth: [] }];

const json = (schema: JsonSchema | Ref): Record<string, MediaTypeObject> => ({ 'application/json': { schema } });
const ok = (description: string, schema: JsonSchema | Ref): ResponseObject => ({
  description,
  headers: { 'Cache-Control': header('CacheControl', true) },
  content: json(schema),
});

const forbidden = (codes: readonly string[], notes: string) => errorResponse('403', { codes, notes });
const EXPORT_NOT_FOUND = 'EXPORT_NOT_FOUND (field `exportId`, rule `visible-export`): unknown, malformed or another channel\'s id, or one the caller may not see.';

function operations(): Record<string, PathItemObject> {
  const downloadErrors = (bodiless: boolean): Record<string, ResponseObject | Ref> => {
    const b = bodiless ? { bodiless: true } : {};
    return {
      '400': errorResponse('400', { codes: ['INVALID_PATH'], notes: `${INVALID_PATH} The query is not read: every parameter is ignored, a repeated one included (chat apps add tracking parameters to links).`, ...b }),
      '404': errorResponse('404', { codes: ['LINK_NOT_FOUND'], notes: 'LINK_NOT_FOUND (field `token`, rule `issued-link`): unknown, malformed or forged token.', ...b }),
      '410': errorResponse('410', {
        codes: ['LINK_GONE'],
        notes: 'LINK_GONE (field `token`, rule C9): past the link window (LINK_TTL_DAYS, 7), or the export was canceled, expired, revoked (its link withdrawn) or failed after its file was made.',
        ...b,
      }),
      ...commonErrors({ bodiless }),
    };
  };

  return {
    '/v1/exports': {
      post: {
        operationId: 'createExport',
        summary: 'Request an export',
        description:
          'Needs export:download (checked before the body is read). Takes no query parameter. Order of checks: permission, the body (media type, coding, size, JSON, schema), the policies and every filter check that needs no workspace, the Idempotency-Key, the cooldown, then the workspace (segment, profile keys).',
        tags: ['exports'],
        security: bearer,
        parameters: [ref('parameters', 'IdempotencyKey')],
        requestBody: {
          required: true,
          description: 'Strict: unknown fields are refused. `application/json` in UTF-8 (one Content-Type header), uncompressed, at most 3,000,000 bytes.',
          content: json(ref('schemas', 'ExportRequest')),
        },
        responses: {
          '202': {
            description: 'Accepted: the export is queued (or, replayed, as it is now).',
            headers: {
              'Cache-Control': header('CacheControl', true),
              Location: header('Location', true),
              'Idempotency-Replayed': header('IdempotencyReplayed', false),
            },
            content: json(ref('schemas', 'ExportCreated')),
          },
          '400': errorResponse('400', {
            codes: [
              'MALFORMED_JSON',
              'BODY_REQUIRED',
              'VALIDATION_FAILED',
              'INVALID_QUERY',
              'INVALID_IDEMPOTENCY_KEY',
              'INVALID_CONTENT_TYPE',
              'CASE_RANGE_BEFORE_LAUNCH',
              'CASE_RANGE_END_BEFORE_START',
              'CASE_RANGE_IN_FUTURE',
              'CASE_RANGE_TOO_LONG',
              'PASSWORD_REQUIRED',
              'PASSWORD_TOO_SHORT',
              'PASSWORD_TOO_LONG',
              'PASSWORD_INVALID_CHARACTERS',
              'FILTER_TOO_LARGE',
              'FILTER_INVALID',
              'FILTER_UNKNOWN_FIELD',
              'FILTER_OPERATOR_NOT_APPLICABLE',
              'SEGMENT_INVALID',
            ],
            notes:
              'MALFORMED_JSON (field `body`, rule `json`, `utf-8` or `no-bom`); BODY_REQUIRED (rule `required`); VALIDATION_FAILED with `field`, `rule` and one issue per field (rules such as `type`, `required`, `format`, `unknown-field`, `known-zone`, `display-control`, and for JSON that cannot be a request `duplicate-key`, `max-depth`, `unicode`; on AWS the gateway\'s model check answers it without `field` or `issues`); ' +
              `${INVALID_QUERY_NONE} INVALID_IDEMPOTENCY_KEY (rule \`format\` or \`once\`); INVALID_CONTENT_TYPE (field \`Content-Type\`, rule \`once\`: the header sent more than once, looked at before the media type); the policies CASE_RANGE_* (S3) and PASSWORD_* (S4/C7); FILTER_TOO_LARGE (field \`filter\`, rule \`max-bytes\`: over 100,000 bytes), FILTER_INVALID, FILTER_UNKNOWN_FIELD (C2/C5) and FILTER_OPERATOR_NOT_APPLICABLE; SEGMENT_INVALID (C4).`,
            // On AWS the gateway's model check answers VALIDATION_FAILED before the handler.
            edge: true,
          }),
          '401': shared('Unauthenticated'),
          '403': forbidden(['PERMISSION_DENIED'], 'PERMISSION_DENIED (rule S5/C10): without export:download, whatever the body.'),
          '404': errorResponse('404', { codes: ['SEGMENT_NOT_FOUND'], notes: 'SEGMENT_NOT_FOUND (field `segmentId`, rule C4): no such saved segment in the caller\'s channel.' }),
          '415': errorResponse('415', {
            codes: ['UNSUPPORTED_CONTENT_TYPE', 'UNSUPPORTED_CONTENT_ENCODING'],
            notes:
              'UNSUPPORTED_CONTENT_TYPE (field `Content-Type`, rule `media-type`, or `charset` for a charset other than UTF-8); UNSUPPORTED_CONTENT_ENCODING (field `Content-Encoding`, rule `identity`, with Accept-Encoding: identity).',
            extraHeaders: { 'Accept-Encoding': header('AcceptEncoding', false) },
          }),
          '422': errorResponse('422', {
            codes: ['IDEMPOTENCY_KEY_REUSED'],
            notes: 'IDEMPOTENCY_KEY_REUSED (field `Idempotency-Key`, rule `same-body`): the key was used with another body within 24 hours.',
          }),
          '413': errorResponse('413', tooLarge('3,000,000')),
          '429': errorResponse('429', rateLimited(true)),
          '500': shared('Internal'),
        },
      },
      get: {
        operationId: 'listExports',
        summary: "The caller's exports, newest first",
        description: 'Needs export:download. Only the caller\'s own exports (auditors use /v1/audit). The page comes from an eventually consistent index: an export created a moment ago can be missing for about a second.',
        tags: ['exports'],
        security: bearer,
        parameters: [ref('parameters', 'ExportsLimit'), ref('parameters', 'Cursor')],
        responses: {
          '200': ok('A page of exports.', ref('schemas', 'ExportPage')),
          '400': errorResponse('400', { codes: ['INVALID_QUERY', 'INVALID_CURSOR'], notes: INVALID_QUERY_LIST }),
          '401': shared('Unauthenticated'),
          '403': forbidden(['PERMISSION_DENIED'], 'PERMISSION_DENIED: without export:download.'),
          ...commonErrors(),
        },
      },
    },
    '/v1/exports/{exportId}': {
      parameters: [ref('parameters', 'ExportId')],
      get: {
        operationId: 'getExport',
        summary: 'One export: status, progress, file facts, link',
        description:
          'For the requester, and for audit:read holders of the channel (who see no `link`). Anyone else gets 404. Takes no query parameter. A completed export is shown as `expired`, without a link, once `expiresAt` has passed.',
        tags: ['exports'],
        security: bearer,
        responses: {
          '200': ok('The export.', ref('schemas', 'ExportView')),
          '400': errorResponse('400', { codes: ['INVALID_PATH', 'INVALID_QUERY'], notes: `${INVALID_PATH} ${INVALID_QUERY_NONE}` }),
          '401': shared('Unauthenticated'),
          '403': forbidden(['PERMISSION_DENIED'], 'PERMISSION_DENIED (field `permissions`, rule S5/C10): with neither export:download nor audit:read (the message names both).'),
          '404': errorResponse('404', { codes: ['EXPORT_NOT_FOUND'], notes: EXPORT_NOT_FOUND }),
          ...commonErrors(),
        },
      },
    },
    '/v1/exports/{exportId}/cancel': {
      parameters: [ref('parameters', 'ExportId')],
      post: {
        operationId: 'cancelExport',
        summary: 'Stop an export: no file, no link',
        description:
          "The requester only, who needs no permission beyond a valid token of the export's channel: a manager whose export:download was withdrawn while the export ran can still stop it (a cancel only ends work). Takes no query parameter. The body is optional: without one (no body, or an empty one) nothing is read; with one, it takes the same Content-Type, coding and size rules as a revoke's. The cooldown is given back. " +
          'An export already canceled answers 200 with the first cancel\'s facts (its reason and origin stay).',
        tags: ['exports'],
        security: bearer,
        requestBody: {
          required: false,
          description: 'Why the export is stopped: kept on the export and in the audit trail (`cancelReason`).',
          content: { 'application/json': { schema: ref('schemas', 'CancelRequest'), example: { reason: 'Wrong date range' } } },
        },
        responses: {
          '200': ok('The export, canceled (also when it already was: a cancel is idempotent).', ref('schemas', 'ExportView')),
          '400': errorResponse('400', {
            codes: ['INVALID_PATH', 'INVALID_QUERY', 'MALFORMED_JSON', 'VALIDATION_FAILED', 'INVALID_CONTENT_TYPE'],
            notes:
              `${INVALID_PATH} ${INVALID_QUERY_NONE} MALFORMED_JSON (field \`body\`, rule \`json\`, \`utf-8\` or \`no-bom\`); ` +
              'VALIDATION_FAILED with `field` and `rule`: `reason` (rules `type`, `pattern` for an empty or blank one, `max-length`, `letter-or-digit`, `display-control`), an unknown field (`unknown-field`), `duplicate-key`, `max-depth`, `unicode`; INVALID_CONTENT_TYPE (rule `once`).',
          }),
          '401': shared('Unauthenticated'),
          '403': forbidden(
            ['NOT_REQUESTER'],
            'NOT_REQUESTER (field `exportId`, rule `requester-only`): an audit:read holder of the channel, who can see the export but did not request it. No permission is asked of the requester; anyone else gets the 404.',
          ),
          '404': errorResponse('404', { codes: ['EXPORT_NOT_FOUND'], notes: EXPORT_NOT_FOUND }),
          '409': errorResponse('409', {
            codes: ['EXPORT_TERMINAL', 'EXPORT_BUSY'],
            notes: 'EXPORT_TERMINAL (field `exportId`, rule `in-progress`): already completed, failed, expired or revoked (an export already canceled answers 200: a cancel is idempotent); EXPORT_BUSY (field `exportId`, rule `state-changed`): it changed state while canceling, try again.',
          }),
          '415': errorResponse('415', {
            codes: ['UNSUPPORTED_CONTENT_TYPE', 'UNSUPPORTED_CONTENT_ENCODING'],
            notes:
              'Only with a body: UNSUPPORTED_CONTENT_TYPE (field `Content-Type`, rule `media-type`, or `charset` for a charset other than UTF-8); UNSUPPORTED_CONTENT_ENCODING (field `Content-Encoding`, rule `identity`, with Accept-Encoding: identity).',
            extraHeaders: { 'Accept-Encoding': header('AcceptEncoding', false) },
          }),
          ...commonErrors(),
        },
      },
    },
    '/v1/exports/{exportId}/revoke': {
      parameters: [ref('parameters', 'ExportId')],
      post: {
        operationId: 'revokeExport',
        summary: "Withdraw a completed export's download link",
        description:
          "For a link that leaked. The requester (no permission needed beyond a valid token of the export's channel) or an audit:read holder of the channel; anyone else gets 404. " +
          'Only a completed export whose link still works: the export becomes `revoked`, the revocation is audited, the link answers 410 and the file is deleted (best effort: the revocation stands without it, and the bucket\'s lifecycle rule is the backstop). ' +
          'An export already revoked answers 200 again (the first revocation\'s facts; no second audit event). Takes no query parameter. The body takes the same Content-Type, coding and JSON rules as POST /v1/exports, at most 1,000,000 bytes (only an export request may reach 3,000,000).',
        tags: ['exports'],
        security: bearer,
        requestBody: {
          required: true,
          description: 'Why the link is withdrawn: kept on the export and in the audit trail.',
          content: { 'application/json': { schema: ref('schemas', 'RevokeRequest'), example: { reason: 'Link posted in the wrong room' } } },
        },
        responses: {
          '200': ok('The export, revoked (or already revoked).', ref('schemas', 'ExportView')),
          '400': errorResponse('400', {
            codes: ['INVALID_PATH', 'INVALID_QUERY', 'MALFORMED_JSON', 'BODY_REQUIRED', 'VALIDATION_FAILED', 'INVALID_CONTENT_TYPE'],
            notes:
              `${INVALID_PATH} ${INVALID_QUERY_NONE} MALFORMED_JSON (field \`body\`, rule \`json\`, \`utf-8\` or \`no-bom\`); BODY_REQUIRED (rule \`required\`); ` +
              'VALIDATION_FAILED with `field` and `rule`: `reason` (rules `required`, `type`, `pattern` for an empty or blank one, `max-length`, `letter-or-digit`, `display-control`), an unknown field (`unknown-field`), `duplicate-key`, `max-depth`, `unicode`; INVALID_CONTENT_TYPE (rule `once`).',
          }),
          '401': shared('Unauthenticated'),
          '404': errorResponse('404', { codes: ['EXPORT_NOT_FOUND'], notes: `${EXPORT_NOT_FOUND} Also for a colleague who neither requested it nor holds audit:read.` }),
          '409': errorResponse('409', {
            codes: ['EXPORT_NOT_REVOCABLE', 'EXPORT_BUSY'],
            notes:
              'EXPORT_NOT_REVOCABLE (field `exportId`): rule `not-finished` while queued, running or finalizing (no link yet: cancel it instead); rule `no-link` when failed, canceled or expired (there is no link to revoke). EXPORT_BUSY (field `exportId`, rule `state-changed`): it changed state while revoking, try again.',
          }),
          '415': errorResponse('415', {
            codes: ['UNSUPPORTED_CONTENT_TYPE', 'UNSUPPORTED_CONTENT_ENCODING'],
            notes:
              'UNSUPPORTED_CONTENT_TYPE (field `Content-Type`, rule `media-type`, or `charset` for a charset other than UTF-8); UNSUPPORTED_CONTENT_ENCODING (field `Content-Encoding`, rule `identity`, with Accept-Encoding: identity).',
            extraHeaders: { 'Accept-Encoding': header('AcceptEncoding', false) },
          }),
          '413': errorResponse('413', tooLarge('1,000,000')),
          '429': shared('RateLimited'),
          '500': shared('Internal'),
        },
      },
    },
    '/v1/downloads/{token}': {
      parameters: [ref('parameters', 'DownloadToken')],
      get: {
        operationId: 'download',
        summary: 'Follow a download link',
        description:
          'No bearer needed: the link is the capability. Every use, refused ones after expiry included, is audited (time, IP, user agent, and the manager when a valid bearer of the channel is sent) before the answer. Query parameters are ignored, repeated ones included.',
        tags: ['downloads'],
        security: optionalBearer,
        responses: {
          '302': {
            description:
              'To a presigned S3 GET, valid DOWNLOAD_PRESIGN_SECONDS (60). No body: the URL is a credential while it lasts and is given once, in Location (redirectResponse in shared/http/responses.ts).',
            headers: {
              'Cache-Control': header('CacheControl', true),
              Location: header('Location', true),
              'Referrer-Policy': header('ReferrerPolicy', true),
            },
          },
          ...downloadErrors(false),
        },
      },
      head: {
        operationId: 'checkDownload',
        summary: 'Check a download link',
        description:
          'For link checkers and chat previews: what a GET would answer for an unknown (404) or spent (410) link, and 200 for a valid one, always without a body and never with a Location. Presigns nothing and is not audited. Query parameters are ignored, repeated ones included.',
        tags: ['downloads'],
        security: optionalBearer,
        responses: {
          '200': {
            description: 'The link is valid. No body.',
            headers: { 'Cache-Control': header('CacheControl', true), 'Referrer-Policy': header('ReferrerPolicy', true) },
          },
          ...downloadErrors(true),
        },
      },
    },
    '/v1/audit': {
      get: {
        operationId: 'listAudit',
        summary: 'The audit trail: one entry per export, newest first',
        description:
          'Needs audit:read; always the caller\'s channel. `from`/`to` select exports by when they were requested. With a managerId or kind filter a page may hold fewer than `limit` entries (even none) and still carry a cursor: page until it is absent. The cursor is bound to the channel and the query.',
        tags: ['audit'],
        security: bearer,
        parameters: [
          ref('parameters', 'AuditFrom'),
          ref('parameters', 'AuditTo'),
          ref('parameters', 'AuditManagerId'),
          ref('parameters', 'AuditKind'),
          ref('parameters', 'Cursor'),
          ref('parameters', 'AuditLimit'),
        ],
        responses: {
          '200': ok('A page of audit entries.', ref('schemas', 'AuditPage')),
          '400': errorResponse('400', { codes: ['INVALID_QUERY', 'INVALID_CURSOR'], notes: INVALID_QUERY_LIST }),
          '401': shared('Unauthenticated'),
          '403': forbidden(['PERMISSION_DENIED'], 'PERMISSION_DENIED (rule C10): without audit:read.'),
          ...commonErrors(),
        },
      },
    },
    '/v1/audit/exports/{exportId}/downloads': {
      parameters: [ref('parameters', 'ExportId')],
      get: {
        operationId: 'listExportDownloads',
        summary: "Every use of one export's link, oldest first",
        description: 'Needs audit:read, in the export\'s channel. The cursor is bound to the channel and the export.',
        tags: ['audit'],
        security: bearer,
        parameters: [ref('parameters', 'AuditLimit'), ref('parameters', 'Cursor')],
        responses: {
          '200': ok('A page of uses.', ref('schemas', 'DownloadsPage')),
          '400': errorResponse('400', { codes: ['INVALID_PATH', 'INVALID_QUERY', 'INVALID_CURSOR'], notes: `${INVALID_PATH} ${INVALID_QUERY_LIST}` }),
          '401': shared('Unauthenticated'),
          '403': forbidden(['PERMISSION_DENIED'], 'PERMISSION_DENIED (rule C10): without audit:read.'),
          '404': errorResponse('404', { codes: ['EXPORT_NOT_FOUND'], notes: EXPORT_NOT_FOUND }),
          ...commonErrors(),
        },
      },
    },
  };
}

const UNROUTED_DESCRIPTION =
  'Answers to a request that names no operation above, on any path: 400 INVALID_PATH (rule percent-encoding) for a path segment that is not valid percent-encoding (looked at before routing); ' +
  '404 ROUTE_NOT_FOUND (field `path`, rule `known-route`) for a path no route has (the message names the method, never the path: it may hold a download token); ' +
  '405 METHOD_NOT_ALLOWED (field `method`, rule `allowed-method`), with Allow listing the methods the path takes, for a method it does not (a HEAD gets it without a body). ' +
  'On AWS, API Gateway answers a method the stack does not declare before the handler runs: 404 ROUTE_NOT_FOUND in the same envelope (field `method`, rule `known-route`).';

// ---------------------------------------------------------------------------------------------

/** The whole document. Deterministic: the same code builds the same object (docs/openapi.json). */
export function buildOpenApiDocument(): OpenApiDocument {
  return {
    openapi: '3.1.0',
    info: {
      title: 'export-service HTTP API',
      version: '1.0.0',
      description:
        'Password-protected XLSX exports of a support workspace\'s cases and contacts, their download links and the audit trail. Prose reference: docs/api.md. ' +
        'Every answer of the handler carries Cache-Control: no-store; errors share one envelope. CORS headers are added only for the configured ADMIN_ORIGIN. ' +
        'The local stack also answers 503 with Retry-After while it seeds its first run, before any route.',
    },
    servers: [
      { url: 'https://api.example.com', description: 'Placeholder: the deployment\'s PUBLIC_BASE_URL (the API Gateway stage URL or its custom domain).' },
      { url: 'http://127.0.0.1:3000', description: 'The local stack (`npm start`).' },
    ],
    security: bearer,
    tags: [
      { name: 'exports', description: 'Request, follow, cancel and revoke exports.' },
      { name: 'downloads', description: 'The 7-day links the bot posts.' },
      { name: 'audit', description: 'Who exported what, when, why, and every download.' },
    ],
    paths: operations(),
    components: {
      securitySchemes: {
        bearerAuth: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description:
            'Claims channelId, managerId, name, permissions (export:download, audit:read), iss, aud and exp; valid for at most JWT_MAX_LIFETIME_SECONDS (a day). RS256/ES256/PS256/EdDSA against the issuer\'s JWKS on AWS, HS256 with the dev key locally.',
        },
      },
      schemas: {
        ExportRequest: exportRequestBodySchema(),
        RevokeRequest: revokeRequestBodySchema(),
        CancelRequest: cancelRequestBodySchema(),
        ExportStatus: { type: 'string', enum: [...exportStatusSchema.options] },
        ExportLinks: exportLinksSchema,
        ExportCreated: exportCreatedSchema,
        ExportView: exportViewSchema,
        ExportPage: pageOf(ref('schemas', 'ExportView'), "The caller's exports, newest first"),
        Notification: notificationSchema,
        AuditDownload: auditDownloadSchema,
        AuditEntry: auditEntrySchema,
        AuditPage: pageOf(ref('schemas', 'AuditEntry'), 'Audit entries, newest request first'),
        DownloadsPage: pageOf(ref('schemas', 'AuditDownload'), "Uses of one export's link, oldest first"),
        Error: errorEnvelope(true, 'The error envelope of every refusal (shared/http/error-mapper.ts).'),
        EdgeError: errorEnvelope(false, 'The same envelope as answered in front of the handler by the web ACL (413 and 429 on AWS), whose fixed bodies carry no requestId.'),
      },
      parameters,
      headers,
      responses: {
        ...(Object.fromEntries(Object.entries(SHARED_RESPONSES).map(([name, build]) => [name, build()])) as Record<SharedResponse, ResponseObject>),
        InvalidPath: errorResponse('400', { codes: ['INVALID_PATH'], notes: INVALID_PATH }),
        // Also API Gateway's, for an undeclared method on AWS: no X-Request-Id then.
        RouteNotFound: errorResponse('404', { codes: ['ROUTE_NOT_FOUND'], notes: 'No route has this path (or, on AWS, this method).', edge: true }),
        MethodNotAllowed: errorResponse('405', {
          codes: ['METHOD_NOT_ALLOWED'],
          notes: 'The path takes other methods: see Allow. A HEAD gets this without a body.',
          extraHeaders: { Allow: header('Allow', true) },
        }),
      },
    },
    'x-unrouted-responses': {
      description: UNROUTED_DESCRIPTION,
      '400': ref('responses', 'InvalidPath'),
      '404': ref('responses', 'RouteNotFound'),
      '405': ref('responses', 'MethodNotAllowed'),
    },
  };
}

/** How docs/openapi.json is written: pretty JSON with a trailing newline (bin/openapi.ts). */
export function serializeOpenApiDocument(document: OpenApiDocument): string {
  return `${JSON.stringify(document, null, 2)}\n`;
}
