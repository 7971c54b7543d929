import type { z } from 'zod';
import { DomainError, splitUnrecognizedKeys, ValidationError } from '../../domain/errors';

/** A query string that does not parse: 400 INVALID_QUERY naming the first bad parameter. */
export function invalidQuery(error: z.ZodError): ValidationError {
  // An unknown parameter is named as the field itself ("foo: is not an allowed parameter"), not
  // as `query`, which is also the body's quick-search field.
  const first = error.issues.flatMap((issue) => splitUnrecognizedKeys(issue, 'parameter'))[0];
  const field = first?.path.map(String).join('.') || 'query';
  return new ValidationError(`${field}: ${first?.message ?? 'invalid'}`, { code: 'INVALID_QUERY', field });
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
