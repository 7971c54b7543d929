import { createApiHandler } from './app';
import { getApiRuntime } from './runtime';

/**
 * The api Lambda (API Gateway REST proxy, `/{proxy+}`): POST/GET /v1/exports,
 * GET /v1/exports/{id}, POST /v1/exports/{id}/cancel, POST /v1/exports/{id}/revoke,
 * GET/HEAD /v1/downloads/{token}, GET /v1/audit, GET /v1/audit/exports/{exportId}/downloads.
 * Routes, auth and error mapping: ./app.ts; adapters: ./runtime.ts; contract: docs/api.md.
 */
export const handler = createApiHandler(getApiRuntime);
export { resetApiRuntime, setApiClock } from './runtime';
