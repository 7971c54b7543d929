import { SignJWT } from 'jose';
import { z } from 'zod';
import { principalSchema } from './principal';

/**
 * Local stack and tests only. On AWS tokens come from the workspace's identity provider and are
 * checked against its JWKS; nothing in the deployed service signs tokens.
 */
export const DEV_ISSUER = 'export-service-local';
export const DEV_AUDIENCE = 'export-service';
/**
 * Used when JWT_DEV_SECRET is not set, so `npm start` and `npm run token` agree without setup.
 * It protects nothing but demo data on 127.0.0.1; the AWS configuration cannot use it because
 * a deployed stack verifies against JWT_JWKS_URL.
 */
export const DEFAULT_DEV_SECRET = 'local-dev-secret-for-the-export-service-only';

const SPAN = /^(\d+)\s*([smhdw])$/;

export const devTokenInputSchema = principalSchema.extend({
  /** A time span ("30s", "15m", "12h", "7d", "1w") or seconds; checked here so a bad one is an issue naming the field. */
  expiresIn: z
    .union([z.string().regex(SPAN, 'must look like 30s, 15m, 12h, 7d or 1w'), z.number().int().positive()])
    .default('12h'),
});
export type DevTokenInput = z.input<typeof devTokenInputSchema>;

export type DevTokenOptions = {
  secret?: string;
  issuer?: string;
  audience?: string;
  /** Injected clock: iat/exp are computed from it (tests of expiry, the local stack's clock). */
  now?: Date;
};

export function resolveDevSecret(env: NodeJS.ProcessEnv = process.env): string {
  return env.JWT_DEV_SECRET && env.JWT_DEV_SECRET !== '' ? env.JWT_DEV_SECRET : DEFAULT_DEV_SECRET;
}

export async function signDevToken(input: DevTokenInput, options: DevTokenOptions = {}): Promise<string> {
  const claims = devTokenInputSchema.parse(input);
  const now = options.now ?? new Date();
  const iat = Math.floor(now.getTime() / 1000);
  const exp = typeof claims.expiresIn === 'number' ? iat + claims.expiresIn : claims.expiresIn;
  const builder = new SignJWT({
    channelId: claims.channelId,
    managerId: claims.managerId,
    name: claims.name,
    permissions: claims.permissions,
  })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer(options.issuer ?? process.env.JWT_ISSUER ?? DEV_ISSUER)
    .setAudience(options.audience ?? process.env.JWT_AUDIENCE ?? DEV_AUDIENCE)
    .setSubject(claims.managerId)
    .setIssuedAt(iat);
  // A string span is relative to iat only when jose knows our clock: compute it ourselves.
  if (typeof exp === 'number') builder.setExpirationTime(exp);
  else builder.setExpirationTime(iat + parseSpanSeconds(exp));
  return builder.sign(new TextEncoder().encode(options.secret ?? resolveDevSecret()));
}

const SPAN_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };

export function parseSpanSeconds(span: string): number {
  const match = SPAN.exec(span.trim());
  if (!match?.[1] || !match[2]) throw new Error(`expiresIn "${span}" must look like 30s, 15m, 12h, 7d or 1w`);
  return Number(match[1]) * (SPAN_UNITS[match[2]] ?? 1);
}
