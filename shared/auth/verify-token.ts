import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTVerifyGetKey } from 'jose';
import { z } from 'zod';
import { UnauthenticatedError } from './errors';
import { CLOCK_TOLERANCE_SECONDS } from './authorizer-context';
import { BEARER_HEADER_PATTERN } from './bearer';
import { DEFAULT_MAX_TOKEN_LIFETIME_SECONDS, TOKEN_LIFETIME_BOUNDS_SECONDS } from './token-lifetime';
import { principalSchema, type VerifiedPrincipal } from './principal';


export const tokenVerifierConfigSchema = z
  .object({
    issuer: z.string().min(1),
    audience: z.string().min(1),
    /** AWS: the issuer's JWKS (asymmetric keys, rotated by the issuer). */
    jwksUrl: z.url().optional(),
    /** Local stack and tests only: a shared HS256 secret. */
    devSecret: z.string().min(32).optional(),
    /**
     * The longest a token may stay valid (JWT_MAX_LIFETIME_SECONDS): `exp` at most this long after
     * `iat`, or after now when there is no `iat`. A leaked bearer (a browser's storage, a log, a
     * pasted curl command) can export a workspace's customers, so a token an issuer minted for
     * months is refused rather than honoured for months. Default one day.
     */
    maxLifetimeSeconds: z.number().int().min(TOKEN_LIFETIME_BOUNDS_SECONDS.min).max(TOKEN_LIFETIME_BOUNDS_SECONDS.max).default(DEFAULT_MAX_TOKEN_LIFETIME_SECONDS),
  })
  .refine((c) => (c.jwksUrl === undefined) !== (c.devSecret === undefined), {
    message: 'exactly one of JWT_JWKS_URL or JWT_DEV_SECRET must be set',
    path: ['jwksUrl'],
  });
export type TokenVerifierConfig = z.input<typeof tokenVerifierConfigSchema>;

export interface TokenVerifier {
  /** Resolves the principal of a raw `Authorization` header value, or throws UnauthenticatedError. */
  verifyAuthorization(header: string | undefined, now?: Date): Promise<VerifiedPrincipal>;
  verifyToken(token: string, now?: Date): Promise<VerifiedPrincipal>;
}


/**
 * The identity provider's key set could not be had (it answered other than 200, sent no key set,
 * timed out, or could not be reached): the service's problem, not the caller's token. Not an
 * UnauthenticatedError: a 401 would send every user to sign in again while nothing alarms; this
 * one is a 500 (the authorizer fails, API Gateway answers 500), which the ApiServerErrors alarm
 * counts.
 */
export class KeySetUnavailableError extends Error {
  constructor(cause: unknown) {
    super(`the identity provider's key set is unavailable (${cause instanceof Error ? cause.name : 'unknown'})`, { cause });
    this.name = 'KeySetUnavailableError';
  }
}

/**
 * The remote key set, its failures sorted: a key the set does not have (a forged or retired
 * `kid`), or a token header it cannot serve, is the token's (jose's own errors, a 401); fetching
 * the set failing is the service's (KeySetUnavailableError). jose reports a non-200 answer or
 * unreadable JSON as a bare JOSEError, not a subclass: that and anything not from jose (a refused
 * connection) are the fetch failing.
 */
function keySetOrUnavailable(remote: JWTVerifyGetKey): JWTVerifyGetKey {
  return async (header, token) => {
    try {
      return await remote(header, token);
    } catch (error) {
      const fetchFailed =
        error instanceof joseErrors.JWKSTimeout ||
        error instanceof joseErrors.JWKSInvalid ||
        !(error instanceof joseErrors.JOSEError) ||
        error.constructor === joseErrors.JOSEError;
      throw fetchFailed ? new KeySetUnavailableError(error) : error;
    }
  };
}

export function createTokenVerifier(config: TokenVerifierConfig): TokenVerifier {
  const parsed = tokenVerifierConfigSchema.parse(config);
  // The JWKS is fetched lazily and cached by jose across invocations of a warm Lambda.
  const key: Uint8Array | JWTVerifyGetKey = parsed.jwksUrl
    ? keySetOrUnavailable(createRemoteJWKSet(new URL(parsed.jwksUrl)))
    : new TextEncoder().encode(parsed.devSecret);
  // Pin algorithms so an attacker cannot pick one (e.g. `none` or HS256 keyed with a public key).
  const algorithms = parsed.jwksUrl ? ['RS256', 'ES256', 'PS256', 'EdDSA'] : ['HS256'];

  async function verifyToken(token: string, now?: Date): Promise<VerifiedPrincipal> {
    let payload: unknown;
    try {
      const result = await jwtVerify(token, key as Uint8Array, {
        issuer: parsed.issuer,
        audience: parsed.audience,
        algorithms,
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        requiredClaims: ['exp'],
        ...(now ? { currentDate: now } : {}),
      });
      payload = result.payload;
    } catch (error) {
      if (error instanceof joseErrors.JWTExpired) throw new UnauthenticatedError('expired', 'the token has expired');
      if (error instanceof joseErrors.JOSEError) throw new UnauthenticatedError('invalid', 'the token is invalid');
      throw error;
    }
    const claims = principalSchema.safeParse(payload);
    if (!claims.success) {
      const field = claims.error.issues[0]?.path.join('.') ?? 'claims';
      throw new UnauthenticatedError('invalid', `the token claim "${field}" is missing or malformed`);
    }
    // `exp` is a required claim, so jose has checked that it is a number (and `iat`, if present).
    const { exp, iat } = payload as { exp: number; iat?: number };
    // Both the lifetime it was issued with and what is left of it from now: an `iat` set in the
    // future (jose checks only that it is a number) must not stretch the window.
    const nowSeconds = Math.floor((now ?? new Date()).getTime() / 1000);
    const from = Math.min(iat ?? nowSeconds, nowSeconds);
    if (exp - from > parsed.maxLifetimeSeconds + CLOCK_TOLERANCE_SECONDS) {
      throw new UnauthenticatedError('invalid', `the token is valid for longer than the ${lifetimeText(parsed.maxLifetimeSeconds)} this service accepts`);
    }
    return { ...claims.data, expiresAt: exp };
  }

  return {
    verifyToken,
    async verifyAuthorization(header, now) {
      if (header === undefined || header.trim() === '') {
        throw new UnauthenticatedError('missing', 'an Authorization: Bearer token is required');
      }
      const match = new RegExp(BEARER_HEADER_PATTERN).exec(header);
      if (!match?.[1]) throw new UnauthenticatedError('invalid', 'the Authorization header must be "Bearer <jwt>"');
      return verifyToken(match[1], now);
    },
  };
}

function lifetimeText(seconds: number): string {
  if (seconds % 3600 === 0) return `${seconds / 3600} hour${seconds === 3600 ? '' : 's'}`;
  return `${seconds} seconds`;
}
