import { DomainError } from '../../domain/errors';

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
