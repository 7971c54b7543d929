import { z } from 'zod';
import { principalSchema, type Principal, type VerifiedPrincipal } from './principal';

/**
 * What the Lambda authorizer hands to the api function (API Gateway puts it under
 * `event.requestContext.authorizer`). Context values can only be strings, numbers or booleans
 * (and reach the function as strings), so the permission list travels as JSON text and the
 * expiry as a number of seconds.
 *
 * API Gateway caches an authorizer's answer per token (5 minutes here), so a token that expires
 * inside that window would keep working until the cache entry goes: the expiry travels with the
 * principal and the api function checks it on every request.
 */
export const authorizerContextSchema = z.object({
  channelId: z.string(),
  managerId: z.string(),
  name: z.string(),
  permissions: z.string().transform((text, ctx) => {
    try {
      const parsed = z.array(z.string()).safeParse(JSON.parse(text));
      if (parsed.success) return parsed.data;
    } catch {
      // fall through to the issue below
    }
    ctx.addIssue({ code: 'custom', message: 'permissions must be a JSON array of strings' });
    return z.NEVER;
  }),
  /** The token's `exp`, in seconds since the epoch. */
  expiresAt: z.coerce.number().int().positive(),
});
export type AuthorizerContext = { channelId: string; managerId: string; name: string; permissions: string; expiresAt: number };

/**
 * Small clock skew between the issuer and Lambda is normal; a minute is the common allowance
 * and far below any token lifetime we issue. Used by the token check and the context check.
 */
export const CLOCK_TOLERANCE_SECONDS = 60;

export function toAuthorizerContext(principal: VerifiedPrincipal): AuthorizerContext {
  return {
    channelId: principal.channelId,
    managerId: principal.managerId,
    name: principal.name,
    permissions: JSON.stringify(principal.permissions),
    expiresAt: principal.expiresAt,
  };
}

/** The principal in an authorizer context; throws (naming the field) if it is malformed. */
export function parseAuthorizerContext(context: unknown): { principal: Principal; expiresAt: number } {
  const { expiresAt, ...rest } = authorizerContextSchema.parse(context);
  return { principal: principalSchema.parse(rest), expiresAt };
}

/**
 * The principal of a request the authorizer let through, or undefined when there is none or its
 * token has expired since (the caller then checks the bearer itself, which answers 401).
 */
export function principalFromAuthorizerContext(context: unknown, now: Date): Principal | undefined {
  if (!context || typeof context !== 'object') return undefined;
  try {
    const { principal, expiresAt } = parseAuthorizerContext(context);
    return now.getTime() / 1000 <= expiresAt + CLOCK_TOLERANCE_SECONDS ? principal : undefined;
  } catch {
    return undefined;
  }
}
