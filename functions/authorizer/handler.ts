import { Logger } from '@aws-lambda-powertools/logger';
import type { APIGatewayAuthorizerResult, APIGatewayTokenAuthorizerEvent } from 'aws-lambda';
import { z } from 'zod';
import { createTokenVerifier } from '../../shared/auth';
import { tokenLifetimeSetting } from '../../shared/config';
import { SERVICE_NAME } from '../../shared/metric-names';
import { createAuthorize } from './authorize';

/** The authorizer reads only the JWT settings; failing here names the missing variable. */
const envSchema = z.object({
  JWT_ISSUER: z.string().min(1),
  JWT_AUDIENCE: z.string().min(1),
  JWT_JWKS_URL: z.url(),
  JWT_MAX_LIFETIME_SECONDS: tokenLifetimeSetting.optional(),
});

const logger = new Logger({ serviceName: SERVICE_NAME, logLevel: 'INFO' });

function readEnv(env: Record<string, string | undefined>) {
  const result = envSchema.safeParse(env);
  if (!result.success) {
    throw new Error(`invalid environment: ${result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  return result.data;
}

const env = readEnv(process.env);
// Module scope: the JWKS fetched on the first call is reused by every warm invocation.
const authorize = createAuthorize({
  verifier: createTokenVerifier({
    issuer: env.JWT_ISSUER,
    audience: env.JWT_AUDIENCE,
    jwksUrl: env.JWT_JWKS_URL,
    ...(env.JWT_MAX_LIFETIME_SECONDS !== undefined ? { maxLifetimeSeconds: env.JWT_MAX_LIFETIME_SECONDS } : {}),
  }),
  onRejected: (reason) => logger.info('bearer token rejected', { reason }),
});

export async function handler(event: APIGatewayTokenAuthorizerEvent): Promise<APIGatewayAuthorizerResult> {
  return authorize(event);
}
