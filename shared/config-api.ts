import { z } from 'zod';
import { ConfigError, cooldownMinutesSetting, positiveIntSetting, tokenLifetimeSetting } from './config';
import { DEFAULT_SPIN_COUNT } from './xlsx/crypto/agile-keys';

/**
 * The api function's own settings (beside shared/config.ts, which every function reads).
 * Read once at cold start; an error names the variable.
 */
const positiveInt = positiveIntSetting();

export const apiConfigSchema = z.object({
  JWT_ISSUER: z.string().min(1).optional(),
  JWT_AUDIENCE: z.string().min(1).optional(),
  /** AWS: the identity provider's JWKS. */
  JWT_JWKS_URL: z.url().optional(),
  /** Local stack only (HS256). */
  JWT_DEV_SECRET: z.string().min(32).optional(),
  /** The longest a bearer token may stay valid (shared/auth/verify-token.ts; default one day). */
  JWT_MAX_LIFETIME_SECONDS: tokenLifetimeSetting.optional(),
  /**
   * Secret for the API's own HMACs (idempotency body hashes, list cursors). Required outside the
   * local stack (the CDK stack sets the ARN of a secret only the api role may read); locally,
   * when unset, a key derived from the link signing secret is used (domain-separated).
   */
  API_HMAC_SECRET: z.string().min(32).optional(),
  API_HMAC_SECRET_ARN: z.string().min(1).optional(),
  /** Lifetime of the presigned S3 URL behind a download redirect. */
  DOWNLOAD_PRESIGN_SECONDS: positiveIntSetting(3600).default(60),
  /**
   * A cooldown hold older than this without its export is a crashed request's and is taken over
   * (see requestExport); never sooner than REQUEST_MAX_SECONDS, while its request may be alive.
   * Until then a refused request's Retry-After is the time left to the takeover.
   */
  STALE_COOLDOWN_SECONDS: positiveInt.default(120),
  /**
   * Whole minutes (C8 says 30 for contacts; cases follow it by default). An explicit 0 turns a
   * kind's cooldown off; an empty or mistyped value fails at start instead of turning it off.
   */
  COOLDOWN_MINUTES_CASES: cooldownMinutesSetting.optional(),
  COOLDOWN_MINUTES_CONTACTS: cooldownMinutesSetting.optional(),
  /** Key-derivation spin count (ECMA-376 default 100,000); lower only in the local stack, for tests. */
  KEY_SPIN_COUNT: positiveInt.optional(),
});
export type ApiConfig = z.infer<typeof apiConfigSchema> & {
  jwt: { issuer: string; audience: string; jwksUrl?: string; devSecret?: string; maxLifetimeSeconds?: number };
};

export function parseApiConfig(env: Record<string, string | undefined>, defaults: { devSecret: string; devIssuer: string; devAudience: string }): ApiConfig {
  const result = apiConfigSchema.safeParse(env);
  if (!result.success) {
    const issues = result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new ConfigError(`invalid environment: ${issues}`);
  }
  const c = result.data;
  const local = env.KMS_KEY_ID === 'local';
  if (c.JWT_JWKS_URL && c.JWT_DEV_SECRET) throw new ConfigError('invalid environment: JWT_JWKS_URL and JWT_DEV_SECRET: set only one');
  if (c.JWT_DEV_SECRET && !local) {
    // A shared HS256 secret lets whoever holds it mint any principal: only for 127.0.0.1.
    throw new ConfigError('invalid environment: JWT_DEV_SECRET: for the local stack only (KMS_KEY_ID=local); set JWT_JWKS_URL');
  }
  if (!c.JWT_JWKS_URL && !local) {
    // Never fall back to the public default dev secret outside the local stack.
    throw new ConfigError('invalid environment: JWT_JWKS_URL: required (JWT_DEV_SECRET is for the local stack only)');
  }
  if (c.KEY_SPIN_COUNT !== undefined && c.KEY_SPIN_COUNT < DEFAULT_SPIN_COUNT && !local) {
    // A lower count makes every password guess against a file that much cheaper: tests only.
    throw new ConfigError(`invalid environment: KEY_SPIN_COUNT: at least ${DEFAULT_SPIN_COUNT} outside the local stack (KMS_KEY_ID=local)`);
  }
  if (c.JWT_JWKS_URL && (!c.JWT_ISSUER || !c.JWT_AUDIENCE)) {
    throw new ConfigError(`invalid environment: ${!c.JWT_ISSUER ? 'JWT_ISSUER' : 'JWT_AUDIENCE'}: required with JWT_JWKS_URL`);
  }
  if (!c.API_HMAC_SECRET && !c.API_HMAC_SECRET_ARN && !local) {
    // The fallback derives the key from the link signing secret, which the finalizer and the
    // notifier read too: the api's HMACs (idempotency body hashes, list cursors) would then be
    // computable by roles that have no business with them.
    throw new ConfigError('invalid environment: API_HMAC_SECRET_ARN: required outside the local stack (KMS_KEY_ID=local)');
  }
  const jwt = c.JWT_JWKS_URL
    ? { issuer: c.JWT_ISSUER as string, audience: c.JWT_AUDIENCE as string, jwksUrl: c.JWT_JWKS_URL }
    : { issuer: c.JWT_ISSUER ?? defaults.devIssuer, audience: c.JWT_AUDIENCE ?? defaults.devAudience, devSecret: c.JWT_DEV_SECRET ?? defaults.devSecret };
  const lifetime = c.JWT_MAX_LIFETIME_SECONDS !== undefined ? { maxLifetimeSeconds: c.JWT_MAX_LIFETIME_SECONDS } : {};
  return { ...c, jwt: { ...jwt, ...lifetime } };
}
