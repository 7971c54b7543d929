// No imports: the CDK app reads this too.

/**
 * `Authorization: Bearer <jwt>`: the scheme in any letter case (RFC 7235), one or more spaces,
 * trailing whitespace allowed; group 1 is the JWT. Also API Gateway's validation regex for the
 * authorizer (infra/stack/export-api.ts), so AWS and the local stack accept the same headers.
 */
export const BEARER_HEADER_PATTERN = '^[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+)\\s*$';
