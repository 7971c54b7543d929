import { readFileSync } from 'node:fs';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { createApiHandler } from '../../../functions/api/app';
import { createTokenVerifier, DEV_AUDIENCE, DEV_ISSUER, signDevToken } from '../../../shared/auth';
import type { ExportJob } from '../../../shared/app/export-job';
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
      return { status: result.statusCode, body: result.body === '' ? {} : (JSON.parse(result.body) as Record<string, any>) };
    },
    token(over = {}) {
      return signDevToken(
        { channelId: 'ch-1', managerId: 'm-1', name: 'Kim', permissions: ['export:download'], expiresIn: '1h', ...over },
        { secret, now: fakes.clock.now() },
      );
    },
  };
}

/**
 * The pipeline's end state for `exportId`, written straight into the fake store (a completed
 * export with its file's facts and a link window ending 2026-03-08), `extra` on top.
 */
export function completeJobInStore(fakes: Fakes, exportId: string, extra: Partial<ExportJob> = {}): void {
  const job = fakes.store.jobs.get(exportId) as ExportJob;
  Object.assign(job, {
    status: 'completed',
    chunksDone: 3,
    rowsWritten: 12,
    rowCount: 12,
    fileName: 'contacts.xlsx',
    fileSize: 4096,
    sha256: 'ab'.repeat(32),
    objectKey: `exports/${exportId}.xlsx`,
    completedAt: '2026-03-01T10:05:00.000Z',
    expiresAt: '2026-03-08T10:00:00.000Z',
    ...extra,
  });
}
