import type { APIGatewayAuthorizerResult, APIGatewayTokenAuthorizerEvent } from 'aws-lambda';
import { z } from 'zod';
import { UnauthenticatedError, type Principal, type TokenVerifier } from '../../shared/auth';

/**
 * What the authorizer hands to the api function (API Gateway puts it under
 * `event.requestContext.authorizer`). Context values can only be strings, numbers or booleans,
 * so the permission list travels as JSON text; parseAuthorizerContext() reads it back.
 */
export const authorizerContextSchema = z.object({
  channelId: z.string().min(1),
  managerId: z.string().min(1),
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
});
export type AuthorizerContext = z.input<typeof authorizerContextSchema>;

/** The api handler's way back from `requestContext.authorizer` to a Principal. */
export function parseAuthorizerContext(context: unknown): Principal {
  return authorizerContextSchema.parse(context);
}

/**
 * `arn:aws:execute-api:{region}:{account}:{apiId}/{stage}/{METHOD}/{path}` -> the whole stage.
 * API Gateway caches the policy per token and reuses it for every route, so a policy naming only
 * the first route would deny the token's next call to another route until the cache expires.
 */
export function stageWildcardArn(methodArn: string): string {
  const match = /^(arn:[^:]+:execute-api:[^:]+:[^:]+:[^/]+\/[^/]+)\//.exec(methodArn);
  if (!match?.[1]) throw new Error('methodArn is not an execute-api method ARN');
  return `${match[1]}/*`;
}

export function buildAllowPolicy(principal: Principal, methodArn: string): APIGatewayAuthorizerResult {
  const context: AuthorizerContext = {
    channelId: principal.channelId,
    managerId: principal.managerId,
    name: principal.name,
    permissions: JSON.stringify(principal.permissions),
  };
  return {
    principalId: principal.managerId,
    policyDocument: {
      Version: '2012-10-17',
      Statement: [{ Action: 'execute-api:Invoke', Effect: 'Allow', Resource: stageWildcardArn(methodArn) }],
    },
    context,
  };
}

export type AuthorizeDeps = {
  verifier: TokenVerifier;
  /** Told why a token was refused (never the token itself). */
  onRejected?: (reason: string) => void;
};

/**
 * Verifies the bearer token and returns an allow policy for the stage. A bad token throws the
 * exact message 'Unauthorized', which API Gateway turns into a 401 (a Deny policy would be a 403,
 * telling the client "you may not" instead of "who are you?").
 */
export function createAuthorize(deps: AuthorizeDeps) {
  return async function authorize(event: APIGatewayTokenAuthorizerEvent, now?: Date): Promise<APIGatewayAuthorizerResult> {
    try {
      const principal = await deps.verifier.verifyAuthorization(event.authorizationToken, now);
      return buildAllowPolicy(principal, event.methodArn);
    } catch (error) {
      if (error instanceof UnauthenticatedError) {
        deps.onRejected?.(`${error.reason}: ${error.message}`);
        throw new Error('Unauthorized');
      }
      throw error;
    }
  };
}
