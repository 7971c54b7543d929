/**
 * The response headers a browser's script may read from the API (`Access-Control-Expose-Headers`):
 * the handler's answers, API Gateway's own (an authorizer's 401, the stage throttle's 429) and the
 * web ACL's must all list them, or the admin UI cannot read `Retry-After` on a 429 or
 * `WWW-Authenticate` on a 401. No imports, so the CDK app can use it.
 */
export const CORS_EXPOSED_HEADERS = 'Location, Retry-After, Idempotency-Replayed, X-Request-Id, WWW-Authenticate, Accept-Encoding';

/**
 * The CORS headers of an answer to `origin`: only for the one allowed (admin) origin, echoed,
 * never `*`; none for another origin or without one configured. The handler's answers and the
 * local stack's own use it.
 */
export function corsResponseHeaders(origin: string | undefined, allowedOrigin: string | undefined): Record<string, string> {
  if (!allowedOrigin || !origin || origin !== allowedOrigin) return {};
  return { 'Access-Control-Allow-Origin': origin, 'Access-Control-Expose-Headers': CORS_EXPOSED_HEADERS, Vary: 'Origin' };
}

/**
 * What a preflight allows (API Gateway answers them on AWS, the local stack the same way): the
 * methods the routes use, the request headers a client sets, and how long a browser may keep the
 * answer.
 */
export const CORS_ALLOWED_METHODS = ['GET', 'POST', 'OPTIONS'] as const;
export const CORS_ALLOWED_HEADERS = ['Authorization', 'Content-Type', 'Idempotency-Key'] as const;
export const CORS_MAX_AGE_SECONDS = 3600;
