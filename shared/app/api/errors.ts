import type { z } from 'zod';
import { collectIssues, DomainError, MAX_ISSUES, nameForError, ValidationError } from '../../domain/errors';

/**
 * A query string that does not parse: 400 INVALID_QUERY naming the first bad parameter in its
 * message, with every bad parameter in `issues`, each with its rule (at most 50, as a body's).
 */
export function invalidQuery(error: z.ZodError): ValidationError {
  // An unknown parameter is named as the field itself ("foo: is not an allowed parameter"), not
  // as `query`, which is also the body's quick-search field; a whole-query issue is `query`.
  const issues = collectIssues(error, '', 'parameter', 'query').slice(0, MAX_ISSUES);
  const first = issues[0] ?? { path: 'query', message: 'invalid', rule: 'invalid' };
  return new ValidationError(`${first.path}: ${first.message}`, { code: 'INVALID_QUERY', field: first.path, ...(first.rule ? { rule: first.rule } : {}), issues });
}

/**
 * A query parameter given more than once: API Gateway keeps the last in queryStringParameters,
 * so `?limit=1&limit=2` would silently mean 2. Named only as nameForError allows: it is input,
 * and this is answered before authentication.
 */
export function repeatedQueryParameter(name: string): ValidationError {
  return queryParameterError(name, 'given more than once (each parameter may be given once)', 'once');
}

/** A query parameter on a route that takes none (see refuseQuery in functions/api/app.ts). */
export function unexpectedQueryParameter(name: string): ValidationError {
  return queryParameterError(name, 'is not an allowed parameter (this route takes none)', 'unknown-field');
}

/** INVALID_QUERY about one parameter, named only as nameForError allows (names are input). */
function queryParameterError(name: string, message: string, rule: string): ValidationError {
  const field = nameForError(name, 'parameter name');
  return new ValidationError(`${field}: ${message}`, { code: 'INVALID_QUERY', field, rule });
}

/** Same Idempotency-Key, different body: the client reused a key for another request. */
export class IdempotencyKeyReusedError extends DomainError {
  constructor() {
    super(
      'IDEMPOTENCY_KEY_REUSED',
      'this Idempotency-Key was already used with a different request body; use a new key for a new request',
      { field: 'Idempotency-Key' },
    );
  }
}

/** The download link is past its window, or its export was canceled/expired: never again. */
export class LinkGoneError extends DomainError {
  constructor(message = 'this download link has expired; request a new export') {
    super('LINK_GONE', message, { rule: 'C9' });
  }
}
