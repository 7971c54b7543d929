import { createApiHandler } from './app';
import { getApiRuntime } from './runtime';

/**
 * The api Lambda (API Gateway REST proxy, `/{proxy+}`): POST/GET /v1/exports,
 * GET /v1/exports/{id}, POST /v1/exports/{id}/cancel, GET /v1/downloads/{token}, GET /v1/audit.
 * Routes, auth and error mapping: ./app.ts; adapters: ./runtime.ts; contract: docs/api.md.
 */
export const handler = createApiHandler(getApiRuntime);
export { resetApiRuntime, setApiClock } from './runtime';
