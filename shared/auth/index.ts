export { PERMISSIONS, hasPermission, principalSchema, type Permission, type Principal, type VerifiedPrincipal } from './principal';
export { parseAuthorizerContext, principalFromAuthorizerContext, toAuthorizerContext } from './authorizer-context';
export { UnauthenticatedError } from './errors';
export { DEFAULT_MAX_TOKEN_LIFETIME_SECONDS } from './token-lifetime';
export { createTokenVerifier, tokenVerifierConfigSchema, type TokenVerifier, type TokenVerifierConfig } from './verify-token';
export {
  DEFAULT_DEV_SECRET,
  DEV_AUDIENCE,
  DEV_ISSUER,
  devTokenInputSchema,
  parseSpanSeconds,
  resolveDevSecret,
  signDevToken,
  type DevTokenInput,
  type DevTokenOptions,
} from './dev-token';
