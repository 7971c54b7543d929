import { readFileSync } from 'node:fs';
import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { beforeEach, describe, expect, it } from 'vitest';
import { createApiHandler, type ApiRuntime } from '../../functions/api/app';
import { buildOpenApiDocument, serializeOpenApiDocument, type OpenApiDocument } from '../../functions/api/openapi';
import { matchRoute, routeTemplates } from '../../functions/api/router';
import { createTokenVerifier, DEV_AUDIENCE, DEV_ISSUER, signDevToken } from '../../shared/auth';
import type { ExportJob } from '../../shared/app/export-job';
import { NotFoundError } from '../../shared/domain';
import { MAX_REQUEST_BODY_BYTES } from '../../shared/http';
import { completeJobInStore, loadEvent } from './support/api-harness';
import { createCapturingLogger, createFakes, type Fakes } from './support/fakes';

/**
 * docs/openapi.json is a contract, not a brochure: it must be what functions/api/openapi.ts
 * builds (a), a well-formed OpenAPI 3.1 document whose schemas compile (b), cover exactly the
 * router's routes (c), and describe what the real handler answers (d): every response of a
 * realistic session, and of every refusal that can be produced in-process, must have a declared
 * status, its required headers and a body that validates against the declared schema.
 */

const document = buildOpenApiDocument();
const DOC_FILE = new URL('../../docs/openapi.json', import.meta.url);
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;
type Method = (typeof METHODS)[number];

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

/**
 * The committed document as a tool reads it (plain JSON): (b)-(d) check what is published, and
 * (a) that it is what the code builds.
 */
const raw = JSON.parse(readFileSync(DOC_FILE, 'utf8')) as JsonObject;

const isObject = (value: unknown): value is JsonObject => typeof value === 'object' && value !== null && !Array.isArray(value);

/** `#/a/b~1c` -> the value there, or undefined (RFC 6901). */
function resolvePointer(pointer: string): Json | undefined {
  if (!pointer.startsWith('#/')) return undefined;
  let node: Json | undefined = raw;
  for (const token of pointer.slice(2).split('/').map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'))) {
    if (Array.isArray(node)) node = node[Number(token)];
    else if (isObject(node)) node = node[token];
    else return undefined;
  }
  return node;
}

/** Follows Reference Objects until a real object. */
function deref(value: Json | undefined, seen: string[] = []): JsonObject {
  if (!isObject(value)) throw new Error(`not an object: ${JSON.stringify(value)}`);
  const target = value.$ref;
  if (typeof target !== 'string') return value;
  if (seen.includes(target)) throw new Error(`$ref cycle: ${[...seen, target].join(' -> ')}`);
  return deref(resolvePointer(target), [...seen, target]);
}

function walk(value: Json, visit: (node: JsonObject, path: string) => void, path = '#'): void {
  if (Array.isArray(value)) value.forEach((v, i) => walk(v, visit, `${path}/${i}`));
  else if (isObject(value)) {
    visit(value, path);
    for (const [k, v] of Object.entries(value)) walk(v, visit, `${path}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`);
  }
}

function operationsOf(): { path: string; method: Method; operation: JsonObject; item: JsonObject }[] {
  const paths = raw.paths as JsonObject;
  return Object.entries(paths).flatMap(([path, item]) =>
    METHODS.flatMap((method) => (isObject(item) && isObject(item[method]) ? [{ path, method, operation: item[method] as JsonObject, item }] : [])),
  );
}

// ---------------------------------------------------------------------------------------------
// ajv in JSON Schema 2020-12 mode, OpenAPI 3.1's default dialect. Component schemas are added
// once as one resource; every `#/components/schemas/X` is pointed at it, so an inline schema
// (a response's allOf over Error) compiles on its own.

const BUNDLE = 'https://export-service.invalid/openapi.json';

function forAjv(schema: Json): Json {
  if (Array.isArray(schema)) return schema.map(forAjv);
  if (!isObject(schema)) return schema;
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(schema)) {
    out[k] = k === '$ref' && typeof v === 'string' && v.startsWith('#/components/schemas/') ? `${BUNDLE}#/$defs/${v.slice('#/components/schemas/'.length)}` : forAjv(v);
  }
  return out;
}

function createAjv(): Ajv2020 {
  // strictSchema: an unknown keyword (a misspelt `requried`) is an error, not a silent no-op.
  // strictRequired is off: a `then` may require what its `if` branch's base schema defines.
  const ajv = new Ajv2020({ strict: true, strictTypes: false, strictTuples: false, strictRequired: false, allErrors: true });
  addFormats(ajv);
  ajv.addSchema({ $id: BUNDLE, $defs: forAjv((raw.components as JsonObject).schemas as Json) } as never);
  return ajv;
}

const ajv = createAjv();
const validators = new Map<string, ValidateFunction>();
/** The compiled schema at a pointer of the document, cached. */
function validatorAt(pointer: string): ValidateFunction {
  let validate = validators.get(pointer);
  if (!validate) {
    const schema = resolvePointer(pointer);
    if (schema === undefined) throw new Error(`no schema at ${pointer}`);
    validate = ajv.compile(forAjv(schema) as never);
    validators.set(pointer, validate);
  }
  return validate;
}

/** Every Schema Object outside components.schemas: those of parameters, headers and media types. */
function schemaPointers(): string[] {
  const found: string[] = [];
  walk(raw, (node, path) => {
    if (path.startsWith('#/components/schemas') || !isObject(node.schema)) return;
    const parameter = typeof node.in === 'string' && typeof node.name === 'string';
    const header = /\/headers\/[^/]+$/.test(path);
    const mediaType = /\/content\/[^/]+$/.test(path);
    if (parameter || header || mediaType) found.push(`${path}/schema`);
  });
  return found;
}

/** The pointer a chain of Reference Objects ends at. */
function finalPointer(pointer: string, seen: string[] = []): string {
  const node = resolvePointer(pointer);
  if (!isObject(node) || typeof node.$ref !== 'string') return pointer;
  if (seen.includes(node.$ref)) throw new Error(`$ref cycle at ${pointer}`);
  return finalPointer(node.$ref, [...seen, node.$ref]);
}

// ---------------------------------------------------------------------------------------------

describe('docs/openapi.json', () => {
  it('(a) is what functions/api/openapi.ts builds', () => {
    const committed = readFileSync(DOC_FILE, 'utf8');
    const fresh = serializeOpenApiDocument(document);
    const hint = 'docs/openapi.json is stale: run `npm run openapi` (tsx bin/openapi.ts) and commit the result';
    expect(JSON.parse(committed), hint).toEqual(JSON.parse(fresh));
    expect(committed === fresh, `${hint} (same content, different formatting)`).toBe(true);
  });

  it('(b) is a well-formed OpenAPI 3.1 document: refs resolve, operations answer, schemas compile in 2020-12', () => {
    expect(raw.openapi).toBe('3.1.0');
    const info = raw.info as JsonObject;
    expect(typeof info.title).toBe('string');
    expect(typeof info.version).toBe('string');
    expect((raw.servers as Json[]).length).toBeGreaterThan(0);

    const refs: string[] = [];
    walk(raw, (node, path) => {
      if (typeof node.$ref === 'string') refs.push(`${path} -> ${node.$ref}`);
    });
    expect(refs.length).toBeGreaterThan(20);
    const dangling = refs.filter((entry) => resolvePointer(entry.split(' -> ')[1] ?? '') === undefined);
    expect(dangling, 'every $ref resolves').toEqual([]);

    const schemes = Object.keys((raw.components as JsonObject).securitySchemes as JsonObject);
    const tags = (raw.tags as JsonObject[]).map((t) => t.name);
    const operationIds = new Set<string>();
    for (const { path, method, operation, item } of operationsOf()) {
      const where = `${method.toUpperCase()} ${path}`;
      expect(path, where).toMatch(/^\/[^?#]*$/);
      expect(typeof operation.operationId, where).toBe('string');
      expect(operationIds.has(operation.operationId as string), `${where}: operationId unique`).toBe(false);
      operationIds.add(operation.operationId as string);
      for (const tag of (operation.tags as string[] | undefined) ?? []) expect(tags, where).toContain(tag);
      for (const requirement of (operation.security as JsonObject[] | undefined) ?? []) {
        for (const name of Object.keys(requirement)) expect(schemes, where).toContain(name);
      }
      const responses = operation.responses as JsonObject;
      expect(Object.keys(responses).length, `${where} has responses`).toBeGreaterThan(0);
      expect(Object.keys(responses).some((s) => /^[23]\d\d$/.test(s)), `${where} has a success`).toBe(true);
      for (const [status, response] of Object.entries(responses)) {
        expect(status, where).toMatch(/^(?:[1-5]\d\d|[1-5]XX|default)$/);
        expect(typeof deref(response).description, `${where} ${status}: description`).toBe('string');
      }
      // Path templating: each {name} is a required path parameter, and no path parameter is extra.
      const declared = [...((item.parameters as Json[] | undefined) ?? []), ...((operation.parameters as Json[] | undefined) ?? [])].map((p) => deref(p));
      const pathParams = declared.filter((p) => p.in === 'path');
      const templated = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
      expect(pathParams.map((p) => p.name).sort(), `${where}: path parameters`).toEqual(templated.sort());
      for (const p of pathParams) expect(p.required, `${where}: ${String(p.name)} required`).toBe(true);
      const keys = declared.map((p) => `${String(p.in)}:${String(p.name)}`);
      expect(new Set(keys).size, `${where}: parameters unique`).toBe(keys.length);
      for (const p of declared) expect(['query', 'header', 'path', 'cookie'], where).toContain(p.in);
      const body = operation.requestBody;
      if (body !== undefined) expect(Object.keys(deref(body).content as JsonObject).length, where).toBeGreaterThan(0);
    }

    // Every schema compiles in ajv's 2020-12 mode, strict about unknown keywords.
    for (const name of Object.keys((raw.components as JsonObject).schemas as JsonObject)) {
      expect(() => validatorAt(`#/components/schemas/${name}`), name).not.toThrow();
    }
    const inline = schemaPointers();
    expect(inline.length).toBeGreaterThan(50);
    for (const pointer of inline) expect(() => validatorAt(pointer), pointer).not.toThrow();
  });

  it('the request body schema is the zod schema: it accepts the sample events and refuses an unknown field', () => {
    const validate = validatorAt('#/components/schemas/ExportRequest');
    for (const name of ['api-create-export-cases.json', 'api-create-export-contacts.json']) {
      const body = JSON.parse(loadEvent(name, { TOKEN: 't', PASSWORD: 'Zq7Secr3tPw' }).body as string) as unknown;
      expect(validate(body), `${name}: ${JSON.stringify(validate.errors)}`).toBe(true);
    }
    expect(validate({ kind: 'contacts', scope: 'all', reason: 'r', password: 'Zq7Secr3tPw', dryRun: true })).toBe(false);
  });

  it("(c) has exactly the router's routes, each operationId the route matchRoute picks", () => {
    const documented = operationsOf().map(({ method, path }) => `${method.toUpperCase()} ${path}`);
    expect(documented.sort()).toEqual(routeTemplates().sort());
    const samples: Record<string, string> = { exportId: '019a4c3b2f10d1c2e3f4a5b6c7d8', token: 'tok-019a4c3b2f10d1c2e3f4a5b6c7d8-0123456789' };
    for (const { method, path, operation, item } of operationsOf()) {
      const concrete = path.replace(/\{(\w+)\}/g, (_m, name: string) => samples[name] ?? name);
      const match = matchRoute(method.toUpperCase(), concrete);
      expect(match.name, `${method.toUpperCase()} ${path}`).toBe(operation.operationId);
      // The sample values are valid by the declared parameter schemas, so they test the route.
      for (const p of [...((item.parameters as Json[] | undefined) ?? [])].map((x) => deref(x))) {
        const value = match.params[p.name as string];
        expect(value, `${path}: ${String(p.name)}`).toBeDefined();
        const validate = ajv.compile(forAjv(p.schema as Json) as never);
        expect(validate(value), `${path}: ${String(p.name)} sample`).toBe(true);
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------
// (d) The contract: the real handler, in-process, with the API's fakes.

const secret = 'openapi-test-secret-openapi-test-secret';
const PASSWORD = 'Zq7Secr3tPw';
const context = { awsRequestId: 'ctx-req', functionName: 'api' } as Context;


function setQuery(event: APIGatewayProxyEvent, query: Record<string, string | string[]> | null): APIGatewayProxyEvent {
  if (query === null) {
    event.queryStringParameters = null;
    event.multiValueQueryStringParameters = null;
    return event;
  }
  const entries = Object.entries(query).map(([k, v]) => [k, Array.isArray(v) ? v : [v]] as const);
  event.queryStringParameters = Object.fromEntries(entries.map(([k, v]) => [k, v[v.length - 1] as string]));
  event.multiValueQueryStringParameters = Object.fromEntries(entries);
  return event;
}

function setHeader(event: APIGatewayProxyEvent, name: string, value: string | undefined): APIGatewayProxyEvent {
  for (const map of [event.headers, event.multiValueHeaders] as Record<string, unknown>[]) {
    for (const key of Object.keys(map ?? {})) if (key.toLowerCase() === name.toLowerCase()) delete map[key];
  }
  if (value !== undefined) {
    event.headers = { ...(event.headers ?? {}), [name]: value };
    event.multiValueHeaders = { ...(event.multiValueHeaders ?? {}), [name]: [value] };
  }
  return event;
}

function headerOf(result: APIGatewayProxyResult, name: string): string | undefined {
  const entry = Object.entries(result.headers ?? {}).find(([k]) => k.toLowerCase() === name.toLowerCase());
  return entry === undefined ? undefined : String(entry[1]);
}

/** One segment of a path template against one of the request (literal segments are decoded once, as the router does). */
function segmentMatches(template: string, segment: string): boolean {
  if (/^\{\w+\}$/.test(template)) return segment !== '';
  try {
    return decodeURIComponent(segment) === template;
  } catch {
    return false;
  }
}

/** The document's path template for a request path (the router's rules: trailing slash tolerated). */
function documentedPath(rawPath: string): string | undefined {
  const path = rawPath.length > 1 ? rawPath.replace(/\/+$/, '') : rawPath;
  const segments = path.replace(/^\//, '').split('/');
  return Object.keys(raw.paths as JsonObject).find((template) => {
    const parts = template.replace(/^\//, '').split('/');
    return parts.length === segments.length && parts.every((part, i) => segmentMatches(part, segments[i] ?? ''));
  });
}

type Observation = { operation: string; status: number; code?: string };
type Call = { status: number; headers: Record<string, string>; body: Record<string, any>; text: string };

/**
 * Checks one answer against the document; throws (failing the test) with what is wrong. Returns
 * which documented operation (or `unrouted`) answered it.
 */
function checkAgainstDocument(event: APIGatewayProxyEvent, result: APIGatewayProxyResult): Observation {
  const method = event.httpMethod.toUpperCase();
  const template = documentedPath(event.path);
  const item = template === undefined ? undefined : ((raw.paths as JsonObject)[template] as JsonObject);
  const operation = item?.[method.toLowerCase()];
  const status = String(result.statusCode);
  let responsePointer: string;
  let operationId: string;
  if (item !== undefined && isObject(operation)) {
    operationId = operation.operationId as string;
    const responses = operation.responses as JsonObject;
    if (responses[status] === undefined) {
      throw new Error(`${method} ${template} answered ${status}, which the document does not declare (declared: ${Object.keys(responses).join(', ')}); body: ${result.body.slice(0, 300)}`);
    }
    const escaped = (template as string).replace(/~/g, '~0').replace(/\//g, '~1');
    responsePointer = `#/paths/${escaped}/${method.toLowerCase()}/responses/${status}`;
  } else {
    // Not an operation of the document: only the unrouted answers may come back.
    operationId = 'unrouted';
    const unrouted = raw['x-unrouted-responses'] as JsonObject;
    if (unrouted[status] === undefined) throw new Error(`${method} ${event.path} (no operation) answered ${status}, not an unrouted answer`);
    if (item !== undefined) {
      if (status !== '405') throw new Error(`${method} on ${template}, which does not take it, answered ${status} instead of 405`);
      const allowed = METHODS.filter((m) => isObject(item[m])).map((m) => m.toUpperCase());
      const allow = (headerOf(result, 'Allow') ?? '').split(/,\s*/);
      if ([...allow].sort().join() !== [...allowed].sort().join()) throw new Error(`405 Allow "${allow.join(', ')}" is not the path's methods (${allowed.join(', ')})`);
    } else if (status === '405') {
      throw new Error(`${method} ${event.path}: a 405 for a path the document does not have`);
    }
    responsePointer = `#/x-unrouted-responses/${status}`;
  }
  const responseTarget = finalPointer(responsePointer);
  const response = deref(resolvePointer(responseTarget));

  for (const [name, declared] of Object.entries((response.headers as JsonObject | undefined) ?? {})) {
    const headerObject = deref(declared);
    const value = headerOf(result, name);
    if (value === undefined) {
      if (headerObject.required === true) throw new Error(`${method} ${event.path} ${status}: required header ${name} missing`);
      continue;
    }
    const validate = ajv.compile(forAjv(headerObject.schema as Json) as never);
    if (!validate(value)) throw new Error(`${method} ${event.path} ${status}: header ${name} "${value}" does not match: ${ajv.errorsText(validate.errors)}`);
  }

  const content = response.content as JsonObject | undefined;
  let code: string | undefined;
  if (method === 'HEAD' || content === undefined) {
    // RFC 9110: a HEAD answer has no body; a response declared without content has none either.
    if (result.body !== '') throw new Error(`${method} ${event.path} ${status}: a body where the document declares none`);
  } else {
    const contentType = headerOf(result, 'Content-Type') ?? '';
    const mediaType = Object.keys(content).find((type) => contentType.toLowerCase().startsWith(type));
    if (mediaType === undefined) throw new Error(`${method} ${event.path} ${status}: Content-Type "${contentType}" not declared (${Object.keys(content).join(', ')})`);
    let body: unknown;
    try {
      body = JSON.parse(result.body) as unknown;
    } catch {
      throw new Error(`${method} ${event.path} ${status}: the body is not JSON`);
    }
    const escapedType = mediaType.replace(/~/g, '~0').replace(/\//g, '~1');
    const validate = validatorAt(`${responseTarget}/content/${escapedType}/schema`);
    if (!validate(body)) {
      throw new Error(`${method} ${event.path} ${status}: the body does not match the declared schema: ${ajv.errorsText(validate.errors)}\n${result.body.slice(0, 600)}`);
    }
    code = isObject(body) && isObject(body.error) && typeof body.error.code === 'string' ? body.error.code : undefined;
  }
  return { operation: operationId, status: result.statusCode, ...(code !== undefined ? { code } : {}) };
}

let fakes: Fakes;
let handler: ReturnType<typeof createApiHandler>;
let observed: Observation[];

async function call(event: APIGatewayProxyEvent): Promise<Call> {
  const result = (await handler(event, context)) as APIGatewayProxyResult;
  observed.push(checkAgainstDocument(event, result));
  const headers = Object.fromEntries(Object.entries(result.headers ?? {}).map(([k, v]) => [k, String(v)]));
  return { status: result.statusCode, headers, text: result.body, body: result.body === '' ? {} : (JSON.parse(result.body) as Record<string, any>) };
}

async function token(over: Partial<{ channelId: string; managerId: string; name: string; permissions: string[]; expiresIn: string }> = {}, now: Date = fakes.clock.now()) {
  return signDevToken({ channelId: 'ch-1', managerId: 'm-1', name: 'Kim', permissions: ['export:download'], expiresIn: '1h', ...over }, { secret, now });
}

const auditorToken = () => token({ managerId: 'm-9', name: 'Auditor Lee', permissions: ['audit:read'] });

/** The pipeline's end state, written straight into the fake store (as handler.test.ts does). */
function completeJob(exportId: string, extra: Partial<ExportJob> = {}): void {
  completeJobInStore(fakes, exportId, extra);
}

const getExportEvent = async (exportId: string, bearer?: string) => loadEvent('api-get-export.json', { TOKEN: bearer ?? (await token()), EXPORT_ID: exportId });
const downloadEvent = (downloadToken: string, method: 'GET' | 'HEAD' = 'GET') =>
  loadEvent(method === 'GET' ? 'api-download.json' : 'api-download-head.json', { DOWNLOAD_TOKEN: downloadToken });

beforeEach(() => {
  fakes = createFakes();
  observed = [];
  const runtime: ApiRuntime = {
    deps: fakes.deps,
    allowedOrigin: 'https://admin.example.com',
    verifier: createTokenVerifier({ issuer: DEV_ISSUER, audience: DEV_AUDIENCE, devSecret: secret }),
    logger: createCapturingLogger([]),
  };
  handler = createApiHandler(async () => runtime);
});

/** Which (operation, status) pairs a test produced, as `operation status` strings. */
const seen = () => new Set(observed.map((o) => `${o.operation} ${o.status}`));

describe('(d) contract: the handler answers as docs/openapi.json says', () => {
  it('a session: create two exports, replay one, list, read, complete, check and follow the link, audit, cancel, expire', async () => {
    const manager = await token();
    const cases = await call(loadEvent('api-create-export-cases.json', { TOKEN: manager, PASSWORD }));
    expect(cases.status).toBe(202);
    const casesId = cases.body.exportId as string;
    const contacts = await call(loadEvent('api-create-export-contacts.json', { TOKEN: manager, PASSWORD }));
    expect(contacts.status).toBe(202);
    const contactsId = contacts.body.exportId as string;
    expect(contacts.headers['Idempotency-Replayed']).toBeUndefined();
    const replay = await call(loadEvent('api-create-export-contacts.json', { TOKEN: manager, PASSWORD }));
    expect(replay.status).toBe(202);
    expect(replay.body.exportId).toBe(contactsId);
    expect(replay.headers['Idempotency-Replayed']).toBe('true');

    const firstPage = await call(setQuery(loadEvent('api-list-exports.json', { TOKEN: manager }), { limit: '1' }));
    expect(firstPage.status).toBe(200);
    expect(firstPage.body.items).toHaveLength(1);
    expect(typeof firstPage.body.cursor).toBe('string');
    const secondPage = await call(setQuery(loadEvent('api-list-exports.json', { TOKEN: manager }), { limit: '1', cursor: firstPage.body.cursor as string }));
    expect(secondPage.status).toBe(200);
    expect(secondPage.body.cursor).toBeUndefined();

    const queued = await call(await getExportEvent(contactsId));
    expect(queued.body).toMatchObject({ status: 'queued', links: { cancel: expect.any(String) } });

    // The pipeline finishes it and the bot is told; some source records had no id.
    completeJob(contactsId, { skippedRecords: 2, notifiedAt: '2026-03-01T10:05:02.000Z' } as Partial<ExportJob>);
    await fakes.audit.append({ type: 'completed', exportId: contactsId, channelId: 'ch-1', at: '2026-03-01T10:05:00.000Z', rowCount: 12, sha256: 'ab'.repeat(32), fileSize: 4096, fileName: 'contacts.xlsx' });
    await fakes.audit.append({ type: 'notified', exportId: contactsId, channelId: 'ch-1', at: '2026-03-01T10:05:02.000Z', event: 'export.completed' });
    const completed = await call(await getExportEvent(contactsId));
    expect(completed.body).toMatchObject({ status: 'completed', skippedRecords: 2, notification: { status: 'delivered' }, link: expect.any(String) });
    const asAuditor = await call(await getExportEvent(contactsId, await auditorToken()));
    expect(asAuditor.status).toBe(200);
    expect(asAuditor.body.link).toBeUndefined();
    const listed = await call(loadEvent('api-list-exports.json', { TOKEN: manager }));
    expect(listed.body.items).toHaveLength(2);

    const downloadToken = (completed.body.link as string).split('/').pop() as string;
    const head = await call(downloadEvent(downloadToken, 'HEAD'));
    expect(head.status).toBe(200);
    expect(head.text).toBe('');
    const anonymous = await call(downloadEvent(downloadToken));
    expect(anonymous.status).toBe(302);
    const withBearer = await call(setHeader(downloadEvent(downloadToken), 'Authorization', `Bearer ${manager}`));
    expect(withBearer.status).toBe(302);
    // A chat app's tracking parameter is ignored.
    expect((await call(setQuery(downloadEvent(downloadToken), { utm_source: 'chat' }))).status).toBe(302);

    // The requester cancels with no permission left (export:download withdrawn while it ran).
    const canceled = await call(loadEvent('api-cancel-export.json', { TOKEN: await token({ permissions: [] }), EXPORT_ID: casesId }));
    expect(canceled.status).toBe(200);
    expect(canceled.body).toMatchObject({ status: 'canceled', scope: 'range' });
    expect(canceled.body.links.cancel).toBeUndefined();
    // A replay answers with the export as it is now: completed, no cancel link.
    const lateReplay = await call(loadEvent('api-create-export-contacts.json', { TOKEN: manager, PASSWORD }));
    expect(lateReplay.body).toMatchObject({ exportId: contactsId, status: 'completed' });
    expect(lateReplay.body.links.cancel).toBeUndefined();

    // A third export that fails in the pipeline, and whose bot refused the news.
    const other = await token({ managerId: 'm-2', name: 'Park' });
    const failing = await call(loadEvent('api-create-export-contacts.json', { TOKEN: other, PASSWORD }));
    const failedId = failing.body.exportId as string;
    Object.assign(fakes.store.jobs.get(failedId) as ExportJob, {
      status: 'failed',
      error: { code: 'TOO_MANY_ROWS', message: 'the export has more than 1000000 rows; narrow the range, filter or selection' },
      notifyRefusedAt: '2026-03-01T10:06:00.000Z',
      notifyRefusedStatus: 403,
    });
    await fakes.audit.append({ type: 'failed', exportId: failedId, channelId: 'ch-1', at: '2026-03-01T10:05:30.000Z', code: 'TOO_MANY_ROWS', message: 'too many rows' });
    await fakes.audit.append({ type: 'notify-failed', exportId: failedId, channelId: 'ch-1', at: '2026-03-01T10:06:00.000Z', event: 'export.failed', reason: 'HTTP 403' });
    // And one still waiting for its chunks: its trail entry is `requested`.
    const waiting = await call(loadEvent('api-create-export-cases.json', { TOKEN: other, PASSWORD }));
    expect(waiting.status).toBe(202);
    const failed = await call(await getExportEvent(failedId, other));
    expect(failed.body).toMatchObject({ status: 'failed', error: { code: 'TOO_MANY_ROWS' }, notification: { status: 'failed', reason: 'HTTP 403' } });

    // A link used more often than an entry lists: the entry points at every use.
    for (let i = 0; i < 105; i += 1) {
      await fakes.audit.append({ type: 'downloaded', exportId: contactsId, channelId: 'ch-1', at: new Date(Date.parse('2026-03-02T00:00:00.000Z') + i * 1000).toISOString(), outcome: 'redirected', ip: '198.51.100.9' });
    }
    const auditor = await auditorToken();
    const trail = await call(setQuery(loadEvent('api-list-audit.json', { TOKEN: auditor }), null));
    expect(trail.status).toBe(200);
    expect(trail.body.items).toHaveLength(4);
    expect((trail.body.items as Record<string, any>[]).map((e) => e.status).sort()).toEqual(['canceled', 'completed', 'failed', 'requested']);
    const entry = (trail.body.items as Record<string, any>[]).find((e) => e.exportId === contactsId);
    expect(entry).toMatchObject({ status: 'completed', downloadCount: 108, notification: { status: 'delivered' }, links: { downloads: expect.any(String) } });
    expect((trail.body.items as Record<string, any>[]).find((e) => e.exportId === casesId)).toMatchObject({ status: 'canceled', canceledBy: { managerId: 'm-1' }, range: { from: '2025-09-01' } });
    const filtered = await call(setQuery(loadEvent('api-list-audit.json', { TOKEN: auditor }), { from: '2026-03-01', to: '2026-03-02T23:59:59+09:00', kind: 'contacts', managerId: 'm-1', limit: '1' }));
    expect(filtered.status).toBe(200);
    const uses = await call(setQuery(loadEvent('api-list-export-downloads.json', { TOKEN: auditor, EXPORT_ID: contactsId }), { limit: '100' }));
    expect(uses.status).toBe(200);
    expect(uses.body.items).toHaveLength(100);
    const rest = await call(setQuery(loadEvent('api-list-export-downloads.json', { TOKEN: auditor, EXPORT_ID: contactsId }), { limit: '100', cursor: uses.body.cursor as string }));
    expect(rest.body.items).toHaveLength(8);
    expect(rest.body.cursor).toBeUndefined();

    // Past the link window: expired, and the link is gone (audited for GET, not for HEAD).
    fakes.clock.current = new Date('2026-03-08T10:00:01.000Z');
    const expired = await call(await getExportEvent(contactsId, await token({}, fakes.clock.now())));
    expect(expired.body).toMatchObject({ status: 'expired', progress: { percent: 100 } });
    expect(expired.body.link).toBeUndefined();
    expect((await call(downloadEvent(downloadToken))).status).toBe(410);
    const goneHead = await call(downloadEvent(downloadToken, 'HEAD'));
    expect(goneHead.status).toBe(410);
    expect(goneHead.text).toBe('');

    for (const pair of [
      'createExport 202',
      'listExports 200',
      'getExport 200',
      'cancelExport 200',
      'checkDownload 200',
      'download 302',
      'listAudit 200',
      'listExportDownloads 200',
      'download 410',
      'checkDownload 410',
    ]) {
      expect(seen(), pair).toContain(pair);
    }
  });

  it('revoke: every status it can answer in-process (200, 400, 401, 404, 409, 413, 415, 500), and the revoked export everywhere it shows', async () => {
    const manager = await token();
    const auditor = await auditorToken();
    const revokeEvent = (exportId: string, bearer: string, body: string | null = JSON.stringify({ reason: 'Link posted in the wrong room' })) => {
      const event = loadEvent('api-revoke-export.json', { TOKEN: bearer, EXPORT_ID: exportId, REASON: 'x' });
      event.body = body;
      return event;
    };
    const created = await call(loadEvent('api-create-export-contacts.json', { TOKEN: manager, PASSWORD }));
    const exportId = created.body.exportId as string;

    // 409 while it runs; 400s for the body and the query; 415; 413; 401; 404.
    const running = await call(revokeEvent(exportId, manager));
    expect(running.status).toBe(409);
    expect(running.body.error).toMatchObject({ code: 'EXPORT_NOT_REVOCABLE', rule: 'not-finished' });
    completeJob(exportId);
    await fakes.audit.append({ type: 'completed', exportId, channelId: 'ch-1', at: '2026-03-01T10:05:00.000Z', rowCount: 12, sha256: 'ab'.repeat(32), fileSize: 4096, fileName: 'contacts.xlsx' });
    for (const [body, code] of [
      [JSON.stringify({}), 'VALIDATION_FAILED'],
      [JSON.stringify({ reason: 'ok', extra: 1 }), 'VALIDATION_FAILED'],
      ['{', 'MALFORMED_JSON'],
      [null, 'BODY_REQUIRED'],
    ] as const) {
      const res = await call(revokeEvent(exportId, manager, body));
      expect(res.status, String(body)).toBe(400);
      expect(res.body.error.code).toBe(code);
    }
    expect((await call(setQuery(revokeEvent(exportId, manager), { force: 'true' }))).status).toBe(400);
    expect((await call(setHeader(revokeEvent(exportId, manager), 'Content-Type', 'text/plain'))).status).toBe(415);
    expect((await call(revokeEvent(exportId, manager, JSON.stringify({ reason: 'x'.repeat(MAX_REQUEST_BODY_BYTES) })))).status).toBe(413);
    expect((await call(setHeader(revokeEvent(exportId, manager), 'Authorization', undefined))).status).toBe(401);
    expect((await call(revokeEvent(exportId, await token({ managerId: 'm-2' })))).status).toBe(404);
    expect((await call(revokeEvent(exportId, await token({ channelId: 'ch-2', permissions: ['audit:read'] })))).status).toBe(404);

    // 500: the audit append fails; the retry (by an auditor) answers 200 with the first revocation.
    fakes.audit.failNext = 'revoked';
    expect((await call(revokeEvent(exportId, manager))).status).toBe(500);
    const revoked = await call(revokeEvent(exportId, auditor));
    expect(revoked.status).toBe(200);
    expect(revoked.body).toMatchObject({ status: 'revoked', revokedBy: { managerId: 'm-1' }, revokeReason: 'Link posted in the wrong room' });

    // Where the revoked export shows: read, list, the trail; its link is gone for GET and HEAD.
    expect((await call(await getExportEvent(exportId))).body).toMatchObject({ status: 'revoked' });
    expect((await call(await getExportEvent(exportId, auditor))).body).toMatchObject({ status: 'revoked', sha256: 'ab'.repeat(32) });
    expect((await call(loadEvent('api-list-exports.json', { TOKEN: manager }))).body.items[0]).toMatchObject({ status: 'revoked' });
    const trail = await call(setQuery(loadEvent('api-list-audit.json', { TOKEN: auditor }), null));
    expect(trail.body.items[0]).toMatchObject({ status: 'revoked', revokedBy: { managerId: 'm-1' }, revokeReason: 'Link posted in the wrong room' });
    expect((await call(downloadEvent(`tok-${exportId}-0123456789`))).status).toBe(410);
    expect((await call(downloadEvent(`tok-${exportId}-0123456789`, 'HEAD'))).status).toBe(410);
    // A failed export: no link to revoke.
    (fakes.store.jobs.get(exportId) as ExportJob).status = 'failed';
    const failed = await call(revokeEvent(exportId, manager));
    expect(failed.status).toBe(409);
    expect(failed.body.error).toMatchObject({ code: 'EXPORT_NOT_REVOCABLE', rule: 'no-link' });

    for (const pair of ['200', '400', '401', '404', '409', '413', '415', '500'].map((status) => `revokeExport ${status}`)) {
      expect(seen(), pair).toContain(pair);
    }
    for (const pair of ['getExport 200', 'listExports 200', 'listAudit 200', 'download 410', 'checkDownload 410']) expect(seen(), pair).toContain(pair);
  });

  it('every documented refusal that can be produced in-process: 400, 401, 403, 404, 405, 409, 410, 413, 415, 422, 429, 500', async () => {
    const manager = await token();
    const auditor = await auditorToken();
    const expectError = async (event: APIGatewayProxyEvent, status: number, code: string) => {
      const res = await call(event);
      expect(res.status, `${event.httpMethod} ${event.path}: ${res.text.slice(0, 200)}`).toBe(status);
      if (event.httpMethod !== 'HEAD') expect(res.body.error?.code).toBe(code);
      return res;
    };
    const contactsBody = (patch: Record<string, unknown>) =>
      JSON.stringify({ ...(JSON.parse(loadEvent('api-create-export-contacts.json', { TOKEN: 't', PASSWORD }).body as string) as Record<string, unknown>), ...patch });
    const createWith = async (patch: Record<string, unknown>, managerId = 'm-1') => {
      const ev = loadEvent('api-create-export-contacts.json', { TOKEN: await token({ managerId }), PASSWORD });
      setHeader(ev, 'Idempotency-Key', undefined);
      ev.body = contactsBody(patch);
      return ev;
    };

    // 400: the body, the policies, the key, the query, the cursor, the path.
    const invalid = await expectError(await createWith({ reason: undefined, unexpected: 1 }), 400, 'VALIDATION_FAILED');
    expect(invalid.body.error.issues.length).toBeGreaterThanOrEqual(2);
    await expectError(loadEvent('api-create-export-malformed.json', { TOKEN: manager }), 400, 'MALFORMED_JSON');
    const empty = await createWith({});
    empty.body = '';
    await expectError(empty, 400, 'BODY_REQUIRED');
    const tooLong = loadEvent('api-create-export-cases.json', { TOKEN: manager, PASSWORD });
    tooLong.body = (tooLong.body as string).replace('2025-11-30', '2026-06-30');
    await expectError(tooLong, 400, 'CASE_RANGE_TOO_LONG');
    await expectError(await createWith({ password: 'short' }), 400, 'PASSWORD_TOO_SHORT');
    await expectError(setHeader(loadEvent('api-create-export-contacts.json', { TOKEN: manager, PASSWORD }), 'Idempotency-Key', 'bad key!'), 400, 'INVALID_IDEMPOTENCY_KEY');
    await expectError(setQuery(loadEvent('api-create-export-contacts.json', { TOKEN: manager, PASSWORD }), { dryRun: 'true' }), 400, 'INVALID_QUERY');
    const badQuery = await expectError(setQuery(loadEvent('api-list-exports.json', { TOKEN: manager }), { limit: '0', sort: 'asc' }), 400, 'INVALID_QUERY');
    expect(badQuery.body.error.issues).toHaveLength(2);
    await expectError(setQuery(loadEvent('api-list-exports.json', { TOKEN: manager }), { cursor: 'forged.cursor' }), 400, 'INVALID_CURSOR');
    await expectError(setQuery(loadEvent('api-list-audit.json', { TOKEN: auditor }), { from: '2026-03-02', to: '2026-03-01' }), 400, 'INVALID_QUERY');
    await expectError(setQuery(loadEvent('api-list-audit.json', { TOKEN: auditor }), { from: 'yesterday' }), 400, 'INVALID_QUERY');
    // The download link reads no query (a repeated parameter is a 404 for an unknown token, not a
    // 400): its only 400 is a path that is not valid percent-encoding.
    await expectError(setQuery(downloadEvent('tok-ffff-0123456789'), { utm: ['a', 'b'] }), 404, 'LINK_NOT_FOUND');
    const badLink = downloadEvent('tok-ffff-0123456789');
    badLink.path = '/v1/downloads/%zz';
    await expectError(badLink, 400, 'INVALID_PATH');
    await expectError(setQuery(await getExportEvent('0123456789abcdef'), { dryRun: 'true' }), 400, 'INVALID_QUERY');
    const repeatedAndUnknown = await expectError(setQuery(loadEvent('api-list-exports.json', { TOKEN: manager }), { limit: ['1', '2'], q: '1', cursor: ['a', 'b'] }), 400, 'INVALID_QUERY');
    expect(repeatedAndUnknown.body.error.issues.map((i: { path: string }) => i.path)).toEqual(['limit', 'cursor', 'q']);
    const twoTypes = await createWith({}, 'm-two-types');
    twoTypes.multiValueHeaders = { ...twoTypes.multiValueHeaders, 'Content-Type': ['application/json', 'application/json'] };
    const typeTwice = await expectError(twoTypes, 400, 'INVALID_CONTENT_TYPE');
    expect(typeTwice.body.error).toMatchObject({ field: 'Content-Type', rule: 'once' });
    const hugeFilter = await expectError(
      await createWith({ scope: 'filter', filter: { join: 'and', groups: [{ join: 'and', conditions: [{ field: 'email', op: 'in', values: Array.from({ length: 30_000 }, (_u, i) => `c-${i}@example.com`) }] }] } }, 'm-huge'),
      400,
      'FILTER_TOO_LARGE',
    );
    expect(hugeFilter.body.error).toMatchObject({ field: 'filter', rule: 'max-bytes' });
    const badPath = await getExportEvent('0123456789abcdef');
    badPath.path = '/v1/exports/%zz';
    const invalidPath = await expectError(badPath, 400, 'INVALID_PATH');
    expect(invalidPath.body.error).toMatchObject({ field: 'path', rule: 'percent-encoding', issues: [{ path: 'path', rule: 'percent-encoding' }] });
    const badUnrouted = await getExportEvent('0123456789abcdef');
    badUnrouted.path = '/v1/%/exports';
    await expectError(badUnrouted, 400, 'INVALID_PATH');

    // 401: no bearer, an expired one.
    await expectError(setHeader(loadEvent('api-list-exports.json', { TOKEN: manager }), 'Authorization', undefined), 401, 'UNAUTHENTICATED');
    const stale = await token({}, new Date('2026-02-01T00:00:00.000Z'));
    await expectError(loadEvent('api-list-audit.json', { TOKEN: stale }), 401, 'UNAUTHENTICATED');

    // 403: without the permission; an auditor canceling what they did not request.
    await expectError(loadEvent('api-list-audit.json', { TOKEN: manager }), 403, 'PERMISSION_DENIED');
    await expectError(loadEvent('api-create-export-contacts.json', { TOKEN: auditor, PASSWORD }), 403, 'PERMISSION_DENIED');
    const created = await call(loadEvent('api-create-export-contacts.json', { TOKEN: manager, PASSWORD }));
    expect(created.status).toBe(202);
    const exportId = created.body.exportId as string;
    await expectError(loadEvent('api-cancel-export.json', { TOKEN: auditor, EXPORT_ID: exportId }), 403, 'NOT_REQUESTER');
    await expectError(loadEvent('api-list-export-downloads.json', { TOKEN: manager, EXPORT_ID: exportId }), 403, 'PERMISSION_DENIED');

    // 404: an unknown export, link, route, segment.
    await expectError(await getExportEvent('0123456789abcdef'), 404, 'EXPORT_NOT_FOUND');
    await expectError(await getExportEvent(exportId, await token({ channelId: 'ch-2' })), 404, 'EXPORT_NOT_FOUND');
    await expectError(loadEvent('api-list-export-downloads.json', { TOKEN: auditor, EXPORT_ID: 'ffffffffffffffff' }), 404, 'EXPORT_NOT_FOUND');
    await expectError(loadEvent('api-cancel-export.json', { TOKEN: manager, EXPORT_ID: 'not-an-id' }), 404, 'EXPORT_NOT_FOUND');
    await expectError(downloadEvent('tok-ffff-0123456789'), 404, 'LINK_NOT_FOUND');
    await expectError(downloadEvent('short', 'HEAD'), 404, 'LINK_NOT_FOUND');
    const nowhere = loadEvent('api-list-exports.json', { TOKEN: manager });
    nowhere.path = '/v1/nothing';
    await expectError(nowhere, 404, 'ROUTE_NOT_FOUND');
    const plan = fakes.dispatcher.plan.bind(fakes.dispatcher);
    fakes.dispatcher.plan = async () => {
      // What resolveSegment (shared/domain/filter.ts) throws for a segment the channel lacks.
      throw new NotFoundError('segmentId: no segment with this id (rule C4)', { code: 'SEGMENT_NOT_FOUND', field: 'segmentId', rule: 'C4' });
    };
    await expectError(await createWith({ scope: 'segment', segmentId: 'seg-gone', filter: undefined }, 'm-seg'), 404, 'SEGMENT_NOT_FOUND');
    fakes.dispatcher.plan = plan;

    // 405: a method the path does not take (HEAD without a body).
    const del = loadEvent('api-list-exports.json', { TOKEN: manager });
    del.httpMethod = 'DELETE';
    await expectError(del, 405, 'METHOD_NOT_ALLOWED');
    const headList = setQuery(loadEvent('api-list-exports.json', { TOKEN: manager }), null);
    headList.httpMethod = 'HEAD';
    const headRes = await expectError(headList, 405, 'METHOD_NOT_ALLOWED');
    expect(headRes.text).toBe('');
    const postLink = downloadEvent('tok-ffff-0123456789');
    postLink.httpMethod = 'POST';
    await expectError(postLink, 405, 'METHOD_NOT_ALLOWED');

    // 409, 410: a cancel of an export that completed; the canceled export's link. A second
    // cancel is a 200 (idempotent), with the first one's facts.
    const first = await call(loadEvent('api-cancel-export.json', { TOKEN: manager, EXPORT_ID: exportId }));
    expect(first.status).toBe(200);
    fakes.clock.advance(1000);
    const second = await call(loadEvent('api-cancel-export.json', { TOKEN: manager, EXPORT_ID: exportId }));
    expect(second.status).toBe(200);
    expect(second.body).toEqual(first.body);
    const done = await call(await createWith({}, 'm-1'));
    expect(done.status).toBe(202);
    completeJob(done.body.exportId as string);
    await expectError(loadEvent('api-cancel-export.json', { TOKEN: manager, EXPORT_ID: done.body.exportId as string }), 409, 'EXPORT_TERMINAL');
    completeJob(exportId);
    (fakes.store.jobs.get(exportId) as ExportJob).status = 'canceled';
    await expectError(downloadEvent(`tok-${exportId}-0123456789`), 410, 'LINK_GONE');
    await expectError(downloadEvent(`tok-${exportId}-0123456789`, 'HEAD'), 410, 'LINK_GONE');

    // 413, 415: the body's size, media type and coding.
    const big = await createWith({}, 'm-big');
    big.body = JSON.stringify({ kind: 'contacts', scope: 'all', reason: 'x'.repeat(MAX_REQUEST_BODY_BYTES), password: PASSWORD });
    await expectError(big, 413, 'BODY_TOO_LARGE');
    await expectError(setHeader(await createWith({}, 'm-type'), 'Content-Type', 'text/plain'), 415, 'UNSUPPORTED_CONTENT_TYPE');
    const gzip = await expectError(setHeader(await createWith({}, 'm-gzip'), 'Content-Encoding', 'gzip'), 415, 'UNSUPPORTED_CONTENT_ENCODING');
    expect(gzip.headers['Accept-Encoding']).toBe('identity');

    // 422: the same Idempotency-Key with another body.
    const again = loadEvent('api-create-export-contacts.json', { TOKEN: manager, PASSWORD: 'Another1Password' });
    const reused = await expectError(again, 422, 'IDEMPOTENCY_KEY_REUSED');
    expect(reused.body.error).toMatchObject({ field: 'Idempotency-Key', rule: 'same-body' });

    // 429: the cooldown (C8).
    expect((await call(loadEvent('api-create-export-cases.json', { TOKEN: manager, PASSWORD }))).status).toBe(202);
    const cooldown = await expectError(loadEvent('api-create-export-cases.json', { TOKEN: manager, PASSWORD }), 429, 'COOLDOWN_ACTIVE');
    expect(cooldown.headers['Retry-After']).toBe(String(cooldown.body.error.retryAfterSeconds));

    // 500: a table outage, with nothing internal in the answer.
    fakes.store.failCreate = true;
    const outage = await expectError(loadEvent('api-create-export-cases.json', { TOKEN: await token({ managerId: 'm-outage' }), PASSWORD }), 500, 'INTERNAL');
    expect(outage.text).not.toContain('simulated');

    const statuses = new Set(observed.map((o) => o.status));
    for (const status of [400, 401, 403, 404, 405, 409, 410, 413, 415, 422, 429, 500]) expect(statuses, String(status)).toContain(status);
  });
});
