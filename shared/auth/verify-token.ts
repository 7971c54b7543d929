import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTVerifyGetKey } from 'jose';
import { z } from 'zod';
import { UnauthenticatedError } from './errors';
import { CLOCK_TOLERANCE_SECONDS } from './authorizer-context';
import { BEARER_HEADER_PATTERN } from './bearer';
import { principalSchema, type VerifiedPrincipal } from './principal';

export const tokenVerifierConfigSchema = z
  .object({
    issuer: z.string().min(1),
    audience: z.string().min(1),
    /** AWS: the issuer's JWKS (asymmetric keys, rotated by the issuer). */
    jwksUrl: z.url().optional(),
    /** Local stack and tests only: a shared HS256 secret. */
    devSecret: z.string().min(32).optional(),
  })
  .refine((c) => (c.jwksUrl === undefined) !== (c.devSecret === undefined), {
    message: 'exactly one of JWT_JWKS_URL or JWT_DEV_SECRET must be set',
    path: ['jwksUrl'],
  });
export type TokenVerifierConfig = z.infer<typeof tokenVerifierConfigSchema>;

export interface TokenVerifier {
  /** Resolves the principal of a raw `Authorization` header value, or throws UnauthenticatedError. */
  verifyAuthorization(header: string | undefined, now?: Date): Promise<VerifiedPrincipal>;
  verifyToken(token: string, now?: Date): Promise<VerifiedPrincipal>;
}


export function createTokenVerifier(config: TokenVerifierConfig): TokenVerifier {
  const parsed = tokenVerifierConfigSchema.parse(config);
  // The JWKS is fetched lazily and cached by jose across invocations of a warm Lambda.
  const key: Uint8Array | JWTVerifyGetKey = parsed.jwksUrl
    ? createRemoteJWKSet(new URL(parsed.jwksUrl))
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
    // `exp` is a required claim, so jose has checked that it is a number.
    return { ...claims.data, expiresAt: (payload as { exp: number }).exp };
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
