import middy from '@middy/core';
import { corsResponseHeaders } from '../../shared/http/cors';
import type { z } from 'zod';
import type { Logger } from '@aws-lambda-powertools/logger';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { principalFromAuthorizerContext, UnauthenticatedError, type Principal, type TokenVerifier } from '../../shared/auth';
import {
  cancelExport,
  checkDownloadLink,
  downloadFile,
  exportLinks,
  getExport,
  listAudit,
  listExportDownloads,
  listAuditQuerySchema,
  listDownloadsQuerySchema,
  listExports,
  listExportsQuerySchema,
  queryIssues,
  repeatedQueryParameters,
  unexpectedParameterIssues,
  unexpectedQueryParameters,
  requestExport,
  revokeExport,
  type ApiDeps,
} from '../../shared/app/api';
import { formatIssuePath, INPUT_ERRORS, ValidationError, type ValidationIssue } from '../../shared/domain/errors';
import { scanJsonBeforeParse, type JsonStructureProblem } from '../../shared/json-text';
import { requirePermission } from '../../shared/domain/policies';
import { loneSurrogatePath } from '../../shared/text-rules';
import { errorForLog } from '../../shared/error-for-log';
import { BadRequestBodyError, bodyLimitFor, bodyTooLarge, emptyResponse, isJsonMediaType, jsonResponse, mapErrorToResponse, normalizeEventHeaders, redirectResponse, sentMoreThanOnce, statusOf } from '../../shared/http';
import { EXPORT_ID_PATTERN } from '../../shared/app/api/read-exports';
import { matchRoute, type Match, type RouteName } from './router';
import type { ClientInput } from '../../shared/app/api/client';

export type ApiRuntime = {
  deps: ApiDeps;
  verifier: TokenVerifier;
  logger: Logger;
  /** The admin UI's origin (ADMIN_ORIGIN): the one origin whose requests get CORS headers. */
  allowedOrigin?: string;
};

/**
 * The api Lambda: one middy handler for every route of the REST API's `/{proxy+}` resource.
 * Thin: parse, authenticate, call one use case, shape the response. Errors are mapped once,
 * in onError, so every route answers errors in the same JSON form.
 */
export function createApiHandler(getRuntime: () => Promise<ApiRuntime>) {
  return middy<APIGatewayProxyEvent, APIGatewayProxyResult>()
    .use({
      before: async (request) => {
        normalizeEventHeaders(request.event);
      },
    })
    .use({
      onError: async (request) => {
        const requestId = requestIdOf(request.event, request.context);
        const status = statusOf(request.error);
        const runtime = await getRuntime().catch((startError: unknown) => {
          // Cold-start failure (e.g. a missing variable): the message names it, never a value.
          console.error(JSON.stringify({ level: 'ERROR', message: 'api runtime unavailable', requestId, error: String(startError) }));
          return undefined;
        });
        // The same fields as a served request's line (requestLogFields): an auditor's refused
        // POST /v1/exports named nobody and no route, only the request id.
        const fields = requestLogFields(request.event, request.context, status);
        if (status >= 500) {
          // The client gets a generic message and the request id; the details go to the log only.
          runtime?.logger.error('request failed', { ...fields, error: errorForLog(request.error, { stack: true }) });
        } else {
          runtime?.logger.info('request refused', { ...fields, code: (request.error as { code?: string } | null)?.code });
        }
        request.response = withCors(bodilessForHead(mapErrorToResponse(request.error, requestId), request.event), request.event, runtime?.allowedOrigin);
      },
    })
    .handler(async (event, context) => {
      const runtime = await getRuntime();
      // Always set by API Gateway; a hand-made event without them is no route (not a TypeError, a 500).
      const route = matchRoute(event.httpMethod ?? '', event.path ?? '');
      factsOf(event).route = route;
      const response = await dispatch(runtime, route.name, route.params, event);
      runtime.logger.info('request handled', requestLogFields(event, context, response.statusCode));
      return withCors(bodilessForHead(response, event), event, runtime.allowedOrigin);
    });
}

/** A response to HEAD has the headers a GET would get and no body (RFC 9110 9.3.2), errors included. */
function bodilessForHead(response: APIGatewayProxyResult, event: APIGatewayProxyEvent | undefined): APIGatewayProxyResult {
  return event?.httpMethod?.toUpperCase() === 'HEAD' ? { ...response, body: '' } : response;
}

/**
 * A Lambda proxy response carries its own CORS headers (API Gateway adds them only to
 * preflights and its own errors). Only the configured admin origin is echoed, never `*`.
 */
function withCors(response: APIGatewayProxyResult, event: APIGatewayProxyEvent | undefined, allowedOrigin: string | undefined): APIGatewayProxyResult {
  const cors = corsResponseHeaders(event?.headers?.origin, allowedOrigin);
  if (Object.keys(cors).length === 0) return response;
  return { ...response, headers: { ...(response.headers ?? {}), ...cors } };
}

async function dispatch(
  runtime: ApiRuntime,
  name: RouteName,
  params: Record<string, string>,
  event: APIGatewayProxyEvent,
): Promise<APIGatewayProxyResult> {
  const { deps } = runtime;
  // API Gateway keeps the last of a repeated parameter in queryStringParameters: `?limit=1&limit=2`
  // would silently mean 2. Refused, naming it, as the operator commands refuse an option twice.
  // A cache-busting `_=<timestamp>` (jQuery's `cache: false` and others append it to GETs) is
  // no parameter of ours: dropped on reads, so it is neither refused as unknown nor as repeated.
  // The download link reads no parameter at all, so none is looked at there, repeated or not: a
  // messenger that appends `utm_source=…` to a link that already carries one made it a 400 (not
  // even audited), where the link must work whatever was added to it.
  const method = event.httpMethod?.toUpperCase();
  const read = method === 'GET' || method === 'HEAD';
  const repeated = ignoresQuery(name)
    ? []
    : Object.entries(event.multiValueQueryStringParameters ?? {})
        .filter(([parameter, values]) => (values?.length ?? 0) > 1 && !(read && parameter === CACHE_BUSTER))
        .map(([parameter]) => parameter);
  const query = { ...(event.queryStringParameters ?? {}) };
  if (read) delete query[CACHE_BUSTER];
  if (repeated.length > 0) throw repeatedQueryParameters(repeated, otherQueryIssues(name, query));
  switch (name) {
    case 'download': {
      const principal = await optionalPrincipal(runtime, event);
      const { location } = await downloadFile(deps, { token: params.token ?? '', ...clientOf(event), ...(principal ? { principal } : {}) });
      return redirectResponse(location);
    }
    case 'checkDownload':
      // No Location: the presigned URL is made for a GET that downloads, and audited with it.
      await checkDownloadLink(deps, params.token ?? '');
      return emptyResponse(200, { 'Referrer-Policy': 'no-referrer' });
    case 'createExport': {
      const principal = await authenticate(runtime, event);
      // Before the body is read: a caller who may not export learns nothing from its parsing
      // (and costs no parse). requestExport checks it too.
      requirePermission(principal, 'export:download');
      refuseQuery(query);
      // normalizeEventHeaders joined two lines into one value, which would be refused for its
      // characters: say what is wrong instead.
      if (sentMoreThanOnce(event, 'idempotency-key')) {
        throw new ValidationError('Idempotency-Key must be sent once', { code: 'INVALID_IDEMPOTENCY_KEY', field: 'Idempotency-Key', rule: 'once' });
      }
      const body = parseJsonBody(event);
      const { job, replayed } = await requestExport(deps, principal, body, header(event, 'idempotency-key'), clientOf(event));
      runtime.logger.info('export requested', { exportId: job.exportId, kind: job.kind, replayed });
      // A replay answers with the export as it is now: no cancel link once it is over.
      const links = exportLinks(job, deps.publicBaseUrl);
      return jsonResponse(
        202,
        { exportId: job.exportId, status: job.status, links },
        { Location: links.self, ...(replayed ? { 'Idempotency-Replayed': 'true' } : {}) },
      );
    }
    case 'getExport': {
      const principal = await authenticate(runtime, event);
      refuseQuery(query);
      return jsonResponse(200, await getExport(deps, principal, params.exportId ?? ''));
    }
    case 'listExports':
      return jsonResponse(200, await listExports(deps, await authenticate(runtime, event), query));
    case 'cancelExport': {
      const principal = await authenticate(runtime, event);
      refuseQuery(query);
      // The body is optional (`{ "reason": … }`); one that is sent takes the JSON body rules.
      const body = event.body === null || event.body === undefined || event.body === '' ? undefined : parseJsonBody(event);
      return jsonResponse(200, await cancelExport(deps, principal, params.exportId ?? '', body, clientOf(event)));
    }
    case 'revokeExport': {
      // No permission asked before the body, unlike createExport: the requester needs none
      // (revokeExport decides who may, and answers anyone else the read's 404).
      const principal = await authenticate(runtime, event);
      refuseQuery(query);
      const view = await revokeExport(deps, principal, params.exportId ?? '', parseJsonBody(event), clientOf(event));
      runtime.logger.info('export link revoked', { exportId: view.exportId, status: view.status });
      return jsonResponse(200, view);
    }
    case 'listAudit':
      return jsonResponse(200, await listAudit(deps, await authenticate(runtime, event), query));
    case 'listExportDownloads':
      return jsonResponse(200, await listExportDownloads(deps, await authenticate(runtime, event), params.exportId ?? '', query));
    default: {
      const unreachable: never = name;
      throw new Error(`unhandled route ${String(unreachable)}`);
    }
  }
}

/** The query parameter browsers' HTTP helpers add to defeat caches (`?_=1700000000000`). */
const CACHE_BUSTER = '_';

/**
 * The download link (GET and HEAD): the token in the path is all it reads. Chat apps and mail
 * clients add tracking parameters to links they show, sometimes one already there, and the
 * link must still work (docs/api.md, "Query strings").
 */
function ignoresQuery(name: RouteName): boolean {
  return name === 'download' || name === 'checkDownload';
}

/**
 * Routes that take no query parameter refuse one, as the list routes refuse an unknown one:
 * `POST /v1/exports?dryRun=true` created an export. The download link is left alone, repeated
 * parameters included (ignoresQuery).
 */
function refuseQuery(query: Record<string, string | undefined>): void {
  const names = Object.keys(query);
  if (names.length > 0) throw unexpectedQueryParameters(names);
}

/**
 * What the route's own check finds in a query that also repeats a parameter (on the values API
 * Gateway kept, the last of each), so that one INVALID_QUERY lists every bad parameter: a
 * repeated one used to hide an unknown one until the client had fixed it and tried again. The
 * same checks the use cases run (refuseQuery, the list schemas); nothing is read or written.
 */
function otherQueryIssues(name: RouteName, query: Record<string, string | undefined>): ValidationIssue[] {
  const schemaIssues = (schema: z.ZodType) => {
    const parsed = schema.safeParse(query, INPUT_ERRORS);
    return parsed.success ? [] : queryIssues(parsed.error);
  };
  switch (name) {
    case 'listExports':
      return schemaIssues(listExportsQuerySchema);
    case 'listAudit':
      return schemaIssues(listAuditQuerySchema);
    case 'listExportDownloads':
      return schemaIssues(listDownloadsQuerySchema);
    case 'createExport':
    case 'getExport':
    case 'cancelExport':
    case 'revokeExport':
      return unexpectedParameterIssues(Object.keys(query));
    case 'download':
    case 'checkDownload':
      // Never reached with a repeated parameter (ignoresQuery): the link reads none.
      return [];
    default: {
      const unreachable: never = name;
      throw new Error(`unhandled route ${String(unreachable)}`);
    }
  }
}

/**
 * Where the request came from, for the audit trail: the source address API Gateway saw (the local
 * stack sets it from the socket), never X-Forwarded-For, which the client writes; and the
 * User-Agent. The use cases cut and clean both (shared/app/api/client.ts).
 */
function clientOf(event: APIGatewayProxyEvent): ClientInput {
  const ip = event.requestContext?.identity?.sourceIp;
  const userAgent = header(event, 'user-agent');
  return { ...(ip ? { ip } : {}), ...(userAgent ? { userAgent } : {}) };
}

function header(event: APIGatewayProxyEvent, name: string): string | undefined {
  // normalizeEventHeaders has lower-cased every header name and combined repeated ones.
  const value = event.headers?.[name];
  return value === undefined || value === null ? undefined : value;
}

/**
 * On AWS a Lambda authorizer has already verified the token and left the principal in the
 * request context (clients cannot set that); locally, and for any route without the authorizer,
 * the handler verifies the bearer itself.
 */
async function authenticate(runtime: ApiRuntime, event: APIGatewayProxyEvent): Promise<Principal> {
  // Before the authorizer's answer: API Gateway hands the authorizer one of the lines, and a
  // request carrying two bearers must not be served as either (normalizeEventHeaders).
  if (sentMoreThanOnce(event, 'authorization')) {
    throw new UnauthenticatedError('invalid', 'the Authorization header must be sent once');
  }
  const principal =
    principalFromAuthorizerContext(event.requestContext?.authorizer, runtime.deps.clock.now()) ??
    (await runtime.verifier.verifyAuthorization(header(event, 'authorization'), runtime.deps.clock.now()));
  // Verified: the request's log line may name it, refused or not.
  factsOf(event).principal = principal;
  return principal;
}

/** The download route needs no bearer; when a valid one is present, the audit names the manager. */
async function optionalPrincipal(runtime: ApiRuntime, event: APIGatewayProxyEvent): Promise<Principal | undefined> {
  if (!header(event, 'authorization')) {
    const principal = principalFromAuthorizerContext(event.requestContext?.authorizer, runtime.deps.clock.now());
    if (principal) factsOf(event).principal = principal;
    return principal;
  }
  try {
    return await authenticate(runtime, event);
  } catch {
    return undefined;
  }
}

/**
 * Fatal: a byte sequence that is not UTF-8 is an error, never a silent U+FFFD stored in the job
 * and the append-only audit trail (RFC 8259 §8.1: JSON exchanged between systems is UTF-8).
 * ignoreBOM keeps a leading byte order mark in the text, where JSON.parse refuses it with
 * MALFORMED_JSON, as it did before this decoder was used (the default would drop it silently).
 */
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** `token=value` parameters of a media type; a quoted value is unquoted (RFC 9110 §5.6.6). */
const MEDIA_TYPE_PARAMETER = /;\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)/g;

/**
 * Whether every `charset` parameter says UTF-8 (none at all is UTF-8, JSON's only encoding).
 * `utf8` is the same encoding under a common alias (WHATWG Encoding lists it), so it passes too.
 */
function charsetIsUtf8(contentType: string): boolean {
  for (const [, name = '', raw = ''] of contentType.matchAll(MEDIA_TYPE_PARAMETER)) {
    if (name.toLowerCase() !== 'charset') continue;
    const value = raw.startsWith('"') ? raw.slice(1, -1).replace(/\\(.)/g, '$1') : raw;
    if (!/^utf-?8$/i.test(value.trim())) return false;
  }
  return true;
}

/**
 * How deeply a request body may nest objects and arrays. An export request nests at most ~9
 * (body, filter, groups, a group, conditions, a condition, values, and a nested group's two);
 * a body nested tens of thousands deep only costs time to read and to report.
 */
export const MAX_BODY_DEPTH = 32;

/** A refusal of the body's structure, by path only (a value there may be the password). */
function structureError(problem: JsonStructureProblem): ValidationError {
  const field = formatIssuePath(problem.path, '', 'key', 'body');
  return new ValidationError(
    problem.rule === 'max-depth'
      ? `${field}: the body nests deeper than ${MAX_BODY_DEPTH} levels (an export request needs fewer than 10)`
      : `${field}: the key is given twice in one object (each key may appear once)`,
    { code: 'VALIDATION_FAILED', field, rule: problem.rule },
  );
}

/**
 * Whether a Content-Encoding header leaves the body as sent: absent, empty, or only `identity`
 * (codings are case-insensitive and may be listed, RFC 9110 §8.4).
 */
export function contentEncodingIsIdentity(value: string | undefined): boolean {
  if (value === undefined) return true;
  return value.split(',').every((coding) => {
    const name = coding.trim().toLowerCase();
    return name === '' || name === 'identity';
  });
}

function parseJsonBody(event: APIGatewayProxyEvent): unknown {
  // Before the media type: normalizeEventHeaders joined the lines with a comma, and the joined
  // value was refused as "must be application/json" even when both lines said so. Two media
  // types are no media type; say what is wrong, as for Idempotency-Key.
  if (sentMoreThanOnce(event, 'content-type')) {
    throw new ValidationError('Content-Type must be sent once', { code: 'INVALID_CONTENT_TYPE', field: 'Content-Type', rule: 'once' });
  }
  const contentType = header(event, 'content-type');
  // application/json only, by the predicate the body-size limits use too (shared/http/media-type.ts).
  if (!isJsonMediaType(contentType)) {
    throw new BadRequestBodyError('UNSUPPORTED_CONTENT_TYPE', 'Content-Type must be application/json', { field: 'Content-Type', rule: 'media-type' });
  }
  // Another charset would be decoded as UTF-8 anyway and stored garbled (Latin-1 `café` as
  // `caf\ufffd`): refused instead. The value is not repeated: it is input.
  if (!charsetIsUtf8(contentType)) {
    throw new BadRequestBodyError('UNSUPPORTED_CONTENT_TYPE', 'Content-Type charset must be utf-8: the request body must be UTF-8 JSON', {
      field: 'Content-Type',
      rule: 'charset',
    });
  }
  // A compressed body (gzip, br…) would be read as text and refused as "not valid UTF-8", which
  // sends the client looking in the wrong place; one labelled so but sent plain would be taken.
  // Neither API Gateway (no compression configured) nor the handler decodes a content coding.
  if (!contentEncodingIsIdentity(header(event, 'content-encoding'))) {
    throw new BadRequestBodyError('UNSUPPORTED_CONTENT_ENCODING', 'Content-Encoding is not supported: send the JSON body uncompressed (identity)', {
      field: 'Content-Encoding',
      rule: 'identity',
    });
  }
  if (event.body === null || event.body === undefined || event.body === '') {
    throw new BadRequestBodyError('BODY_REQUIRED', 'a JSON request body is required', { field: 'body', rule: 'required' });
  }
  // Size first, in bytes, so an oversized body is never decoded.
  const bytes = event.isBase64Encoded ? Buffer.from(event.body, 'base64') : undefined;
  // The limit the web ACL and the local stack apply to this request (only creating an export
  // takes a large body): a body the gateway let through over it is refused the same way here.
  const limit = bodyLimitFor(event.httpMethod, event.path, contentType);
  if ((bytes ? bytes.length : Buffer.byteLength(event.body, 'utf8')) > limit) {
    const refusal = bodyTooLarge(limit);
    throw new BadRequestBodyError(refusal.code, refusal.message, refusal);
  }
  // A base64 body is the client's bytes: checked here. A string body has been decoded before
  // the handler: on AWS, API Gateway (REST) passes an application/json body as a string (it is
  // not one of the API's binary media types), so whatever it made of bytes that were not UTF-8
  // is done already and a U+FFFD in it cannot be told from one the client meant; the check
  // applies there only if application/json became a binary media type (then the body arrives
  // base64). The local stack sends a body that is not valid UTF-8 as base64
  // (infra/local/http-to-apigw.ts), so locally it is always checked.
  let text: string;
  if (bytes) {
    try {
      text = UTF8.decode(bytes);
    } catch {
      throw new BadRequestBodyError('MALFORMED_JSON', 'the request body is not valid UTF-8: JSON must be sent as UTF-8', { field: 'body', rule: 'utf-8' });
    }
  } else {
    text = event.body;
  }
  // One scan before JSON.parse: a 3 MB body of 1.4 million `[` took JSON.parse ~0.8 s of the
  // event loop before the depth was looked at, so the scan stops at the first level too deep.
  const { tooDeep, repeatedKey } = scanJsonBeforeParse(text, MAX_BODY_DEPTH);
  if (tooDeep) throw structureError(tooDeep);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text) as unknown;
  } catch {
    // Never echo the parser's message: it quotes the input, which holds the password.
    const bom = text.startsWith('\uFEFF');
    throw new BadRequestBodyError(
      'MALFORMED_JSON',
      bom
        ? 'the request body is not valid JSON: it starts with a byte order mark (U+FEFF), which JSON senders must not add (RFC 8259)'
        : 'the request body is not valid JSON',
      { field: 'body', rule: bom ? 'no-bom' : 'json' },
    );
  }
  // Valid JSON with a key given twice (JSON.parse keeps the last value silently): refused by
  // path, never by value (the value may be the password).
  if (repeatedKey) throw structureError(repeatedKey);
  // Valid JSON, but `\ud800` decodes to half a character: refused here for every field, by
  // path only (the value may be the password), before anything stores it.
  const bad = loneSurrogatePath(text, parsed);
  if (bad !== undefined) {
    const field = formatIssuePath(bad);
    throw new ValidationError(`${field}: must be valid Unicode text (it holds a lone surrogate, half of a UTF-16 pair)`, {
      code: 'VALIDATION_FAILED',
      field,
      rule: 'unicode',
    });
  }
  return parsed;
}

/**
 * What the handler learnt of a request on its way (the route it matched, the principal of a
 * verified token), for the one log line the request gets, served or refused. Keyed by the event,
 * the one object middy hands both the handler and onError; gone with it.
 */
type RequestFacts = { route?: Match; principal?: Principal };
const requestFacts = new WeakMap<APIGatewayProxyEvent, RequestFacts>();

function factsOf(event: APIGatewayProxyEvent): RequestFacts {
  let facts = requestFacts.get(event);
  if (!facts) requestFacts.set(event, (facts = {}));
  return facts;
}

/**
 * The fields of a request's log line (docs/api.md, "Logs"), one code path for the served, the
 * refused and the failed: who asked (manager and channel, from a verified token only: an
 * unverified one names whoever its author chose), which route (its template, never the path: a
 * download path is the link's capability token), which export (only an id of the form
 * newExportId makes: anything else in the path is the caller's text, left out), and the status.
 * Never a header, a body or a token.
 */
function requestLogFields(event: APIGatewayProxyEvent | undefined, context: Context | undefined, status: number): Record<string, string | number> {
  const facts = event ? requestFacts.get(event) : undefined;
  const exportId = facts?.route?.params.exportId;
  return {
    requestId: requestIdOf(event, context),
    ...(facts?.route ? { route: facts.route.template } : {}),
    status,
    ...(exportId !== undefined && EXPORT_ID_PATTERN.test(exportId) ? { exportId } : {}),
    ...(facts?.principal ? { managerId: facts.principal.managerId, channelId: facts.principal.channelId } : {}),
  };
}

function requestIdOf(event: APIGatewayProxyEvent | undefined, context: Context | undefined): string {
  return event?.requestContext?.requestId ?? context?.awsRequestId ?? 'unknown';
}
