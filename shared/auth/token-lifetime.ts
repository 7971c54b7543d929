/**
 * How long a bearer token may stay valid (JWT_MAX_LIFETIME_SECONDS): the verifier's default and
 * the bounds every place that reads the setting checks (api, authorizer, CDK context, the
 * token CLI). No imports: shared/config.ts reads these without pulling in the verifier.
 */
export const DEFAULT_MAX_TOKEN_LIFETIME_SECONDS = 86_400;
export const TOKEN_LIFETIME_BOUNDS_SECONDS = { min: 60, max: 30 * 86_400 } as const;
