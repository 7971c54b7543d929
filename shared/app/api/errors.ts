import type { z } from 'zod';
import { collectIssues, DomainError, MAX_ISSUES, nameForError, ValidationError, type ValidationIssue } from '../../domain/errors';

/**
 * A query string that does not parse: 400 INVALID_QUERY naming the first bad parameter in its
 * message, with every bad parameter in `issues`, each with its rule (at most 50, as a body's).
 */
export function invalidQuery(error: z.ZodError): ValidationError {
  return invalidQueryOf(queryIssues(error));
}

/**
 * A query schema's issues as INVALID_QUERY lists them. An unknown parameter is named as the field
 * itself ("foo: is not an allowed parameter"), not as `query`, which is also the body's
 * quick-search field; a whole-query issue is `query`.
 */
export function queryIssues(error: z.ZodError): ValidationIssue[] {
  return collectIssues(error, '', 'parameter', 'query');
}

/**
 * Query parameters given more than once: API Gateway keeps the last in queryStringParameters,
 * so `?limit=1&limit=2` would silently mean 2. Each is an issue (rule `once`), and `others`
 * (what the route's own check found in the values that were kept: an unknown parameter, a bad
 * limit) follow, one issue per parameter: a repeated one used to hide every other bad one.
 * Named only as nameForError allows: names are input, and this is answered before authentication.
 */
export function repeatedQueryParameters(names: readonly string[], others: readonly ValidationIssue[] = []): ValidationError {
  return invalidQueryOf([...names.map((name) => parameterIssue(name, 'given more than once (each parameter may be given once)', 'once')), ...others]);
}

/** Parameters on a route that takes none (see refuseQuery in functions/api/app.ts), each an issue. */
export function unexpectedQueryParameters(names: readonly string[]): ValidationError {
  return invalidQueryOf(unexpectedParameterIssues(names));
}

/** The issues of parameters a route that takes none refuses (rule `unknown-field`). */
export function unexpectedParameterIssues(names: readonly string[]): ValidationIssue[] {
  return names.map((name) => parameterIssue(name, 'is not an allowed parameter (this route takes none)', 'unknown-field'));
}

function parameterIssue(name: string, message: string, rule: string): ValidationIssue {
  return { path: nameForError(name, 'parameter name'), message, rule };
}

/** One INVALID_QUERY: one issue per parameter (the first told wins), its message naming the first. */
function invalidQueryOf(all: readonly ValidationIssue[]): ValidationError {
  const seen = new Set<string>();
  const issues = all.filter((issue) => !seen.has(issue.path) && seen.add(issue.path)).slice(0, MAX_ISSUES);
  const first = issues[0] ?? { path: 'query', message: 'invalid', rule: 'invalid' };
  return new ValidationError(`${first.path}: ${first.message}`, { code: 'INVALID_QUERY', field: first.path, ...(first.rule ? { rule: first.rule } : {}), issues });
}

/**
 * Same Idempotency-Key, different body: the client reused a key for another request. Rule
 * `same-body`: a key stands for one request body (as validated: key order and spacing aside).
 */
export class IdempotencyKeyReusedError extends DomainError {
  constructor() {
    super(
      'IDEMPOTENCY_KEY_REUSED',
      'this Idempotency-Key was already used with a different request body; use a new key for a new request',
      { field: 'Idempotency-Key', rule: 'same-body' },
    );
  }
}

/** The download link is past its window, or its export was canceled/expired: never again. */
export class LinkGoneError extends DomainError {
  constructor(message = 'this download link has expired; request a new export') {
    super('LINK_GONE', message, { field: 'token', rule: 'C9' });
  }
}
