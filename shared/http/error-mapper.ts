import type { APIGatewayProxyResult } from 'aws-lambda';
import { UnauthenticatedError } from '../auth/errors';
import {
  ConflictError,
  CooldownActiveError,
  DomainError,
  NotFoundError,
  PermissionDeniedError,
  PolicyViolationError,
  TooManyRowsError,
  ValidationError,
} from '../domain/errors';
import { IdempotencyKeyReusedError, LinkGoneError } from '../app/api/errors';
import { BadRequestBodyError, MethodNotAllowedError, RouteNotFoundError } from './http-errors';
import { jsonResponse } from './responses';

export type ErrorBody = {
  error: {
    code: string;
    message: string;
    field?: string;
    rule?: string;
    issues?: readonly { path: string; message: string; rule?: string }[];
    retryAfterSeconds?: number;
    requestId?: string;
  };
};

const MAX_ISSUES = 50;
/**
 * Characters kept of each text of an error body (message, field, an issue's path and message).
 * Paths and messages name the request's keys, and a key may be megabytes long: a 3 MB body
 * whose long keys were echoed in four places made a 7 MB response, over Lambda's 6 MB limit
 * (a 502 instead of the 400).
 */
const MAX_ERROR_TEXT = 1_000;

/** `text` cut to MAX_ERROR_TEXT characters, never between the halves of a surrogate pair. */
function clip(text: string): string {
  if (text.length <= MAX_ERROR_TEXT) return text;
  const end = /[\uD800-\uDBFF]/.test(text.charAt(MAX_ERROR_TEXT - 1)) ? MAX_ERROR_TEXT - 1 : MAX_ERROR_TEXT;
  return `${text.slice(0, end)}… (${text.length - end} more characters)`;
}

/** Status for each known error; anything not listed is a 500. Order matters: subclasses first. */
export function statusOf(error: unknown): number {
  if (error instanceof UnauthenticatedError) return 401;
  if (error instanceof BadRequestBodyError) return error.status;
  if (error instanceof RouteNotFoundError) return 404;
  if (error instanceof MethodNotAllowedError) return 405;
  if (error instanceof CooldownActiveError) return 429;
  if (error instanceof PermissionDeniedError) return 403;
  if (error instanceof NotFoundError) return 404;
  if (error instanceof ConflictError) return 409;
  if (error instanceof LinkGoneError) return 410;
  if (error instanceof IdempotencyKeyReusedError) return 422;
  if (error instanceof TooManyRowsError) return 422;
  if (error instanceof ValidationError) return 400;
  if (error instanceof PolicyViolationError) return 400;
  // Any other DomainError is a rule the request broke: still the client's to fix.
  if (error instanceof DomainError) return 400;
  return 500;
}

/**
 * Turns any thrown value into the API's error response. Client errors carry their code, the
 * field and the rule; a 500 carries only a generic message and the request id (internals such
 * as table names, stack traces or SDK messages stay in the logs).
 */
export function mapErrorToResponse(error: unknown, requestId: string): APIGatewayProxyResult {
  const status = statusOf(error);
  const headers: Record<string, string> = {};
  if (status === 500 || !(error instanceof Error)) {
    return jsonResponse(500, { error: { code: 'INTERNAL', message: 'internal error; quote the request id when reporting it', requestId } } satisfies ErrorBody, {
      'X-Request-Id': requestId,
    });
  }
  const body: ErrorBody['error'] = { code: (error as { code?: string }).code ?? 'ERROR', message: clip(error.message), requestId };
  if (error instanceof DomainError) {
    if (error.field !== undefined) body.field = clip(error.field);
    if (error.rule !== undefined) body.rule = error.rule;
  }
  if (error instanceof BadRequestBodyError) {
    body.field = error.field;
    body.rule = error.rule;
  }
  // Bounded: a 100,000-value list with every value wrong must not become a 10 MB error body.
  if (error instanceof ValidationError && error.issues.length > 0) {
    body.issues = error.issues.slice(0, MAX_ISSUES).map((issue) => ({ ...issue, path: clip(issue.path), message: clip(issue.message) }));
  }
  if (error instanceof CooldownActiveError) {
    body.retryAfterSeconds = error.retryAfterSeconds;
    headers['Retry-After'] = String(error.retryAfterSeconds);
  }
  if (error instanceof UnauthenticatedError) {
    // The header to fix and the rule, as every refusal names them; `reason` stays in the header.
    body.field = 'Authorization';
    body.rule = 'bearer-token';
    // RFC 6750: tell the client which scheme and why; the description stays generic.
    headers['WWW-Authenticate'] = `Bearer realm="export-service", error="invalid_token", error_description="${error.reason}"`;
  }
  // Routing refusals name what to fix too: the path (never echoed) or the method.
  if (error instanceof RouteNotFoundError) {
    body.field = 'path';
    body.rule = 'known-route';
  }
  if (error instanceof MethodNotAllowedError) {
    body.field = 'method';
    body.rule = 'allowed-method';
    headers.Allow = error.allowed.join(', ');
  }
  // RFC 9110 §12.5.3: a 415 for a content coding says which codings are taken (none but identity).
  if (error instanceof BadRequestBodyError && error.code === 'UNSUPPORTED_CONTENT_ENCODING') headers['Accept-Encoding'] = 'identity';
  headers['X-Request-Id'] = requestId;
  return jsonResponse(status, { error: body } satisfies ErrorBody, headers);
}
