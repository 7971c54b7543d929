/**
 * Authentication failed: no token, a malformed one, a bad signature, wrong issuer/audience,
 * expired, or claims of the wrong shape. Deliberately one class with a coarse `reason`, so the
 * response cannot be used to probe which check failed beyond what RFC 6750 allows.
 * Not a DomainError: identity is an edge concern, not a business rule.
 */
export class UnauthenticatedError extends Error {
  readonly code = 'unauthenticated';
  constructor(
    readonly reason: 'missing' | 'invalid' | 'expired',
    message: string,
  ) {
    super(message);
    this.name = 'UnauthenticatedError';
  }
}
