import { readFileSync } from 'node:fs';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { createApiHandler } from '../../../functions/api/app';
import { createTokenVerifier, DEV_AUDIENCE, DEV_ISSUER, signDevToken } from '../../../shared/auth';
import { createCapturingLogger, type Fakes } from './fakes';

/** A sample event from events/ with its `{{VAR}}` placeholders filled in. */
export function loadEvent(name: string, vars: Record<string, string>): APIGatewayProxyEvent {
  let text = readFileSync(new URL(`../../../events/${name}`, import.meta.url), 'utf8');
  for (const [key, value] of Object.entries(vars)) text = text.split(`{{${key}}}`).join(value);
  return JSON.parse(text) as APIGatewayProxyEvent;
}

export type ApiCaller = {
  /** Runs the api handler on the fakes; the body parsed. */
  call(event: APIGatewayProxyEvent): Promise<{ status: number; body: Record<string, any> }>;
  /** A bearer of channel ch-1 (manager m-1, export:download unless overridden), at the fakes' clock. */
  token(over?: Partial<{ managerId: string; permissions: string[] }>): Promise<string>;
};

/** The api handler wired to `fakes`, as the tests that drive it through HTTP events use it. */
export function apiCallerFor(fakes: Fakes, secret: string): ApiCaller {
  const context = { awsRequestId: 'ctx-req', functionName: 'api' } as Context;
  const handler = createApiHandler(async () => ({
    deps: fakes.deps,
    allowedOrigin: 'https://admin.example.com',
    verifier: createTokenVerifier({ issuer: DEV_ISSUER, audience: DEV_AUDIENCE, devSecret: secret }),
    logger: createCapturingLogger([]),
  }));
  return {
    async call(event) {
      const result = (await handler(event, context)) as APIGatewayProxyResult;
      return { status: result.statusCode, body: JSON.parse(result.body) as Record<string, any> };
    },
    token(over = {}) {
      return signDevToken(
        { channelId: 'ch-1', managerId: 'm-1', name: 'Kim', permissions: ['export:download'], expiresIn: '1h', ...over },
        { secret, now: fakes.clock.now() },
      );
    },
  };
}
