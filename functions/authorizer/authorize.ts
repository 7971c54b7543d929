import type { APIGatewayAuthorizerResult, APIGatewayTokenAuthorizerEvent } from 'aws-lambda';
import { toAuthorizerContext, UnauthenticatedError, type TokenVerifier, type VerifiedPrincipal } from '../../shared/auth';

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

export function buildAllowPolicy(principal: VerifiedPrincipal, methodArn: string): APIGatewayAuthorizerResult {
  const context = toAuthorizerContext(principal);
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
