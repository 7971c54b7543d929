/**
 * Authentication failed: no token, a malformed one, a bad signature, wrong issuer/audience,
 * expired, or claims of the wrong shape. Deliberately one class with a coarse `reason`, so the
 * response cannot be used to probe which check failed beyond what RFC 6750 allows.
 * Not a DomainError: identity is an edge concern, not a business rule.
 */
export class UnauthenticatedError extends Error {
  // UPPER_SNAKE as every other code (it was the one lower-case code), and what API Gateway's own
  // 401 answers with on AWS (infra/stack/export-api.ts).
  readonly code = 'UNAUTHENTICATED';
  constructor(
    readonly reason: 'missing' | 'invalid' | 'expired',
    message: string,
  ) {
    super(message);
    this.name = 'UnauthenticatedError';
  }
}
