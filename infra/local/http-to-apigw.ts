import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';

/**
 * Turns a Node HTTP request into the API Gateway REST (v1) proxy event the api Lambda gets, and
 * writes the handler's result back. The event is the one a `/{proxy+}` resource would send (the
 * stack declares a resource per route instead; the handler routes on `path` and `httpMethod` and
 * reads neither `resource` nor `pathParameters`, so both shapes are served alike). Text bodies are passed
 * as UTF-8; anything else as base64 with isBase64Encoded, as API Gateway does for binary types.
 */
const MAX_BODY_BYTES = 10 * 1024 * 1024; // API Gateway's payload limit

export async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
    size += buffer.length;
    if (size > MAX_BODY_BYTES) throw new Error('request body too large');
    chunks.push(buffer);
  }
  return Buffer.concat(chunks);
}

function isTextual(contentType: string | undefined): boolean {
  if (!contentType) return true;
  return /^(text\/|application\/(json|x-www-form-urlencoded|xml|x-ndjson)|.*\+json)/i.test(contentType);
}

/**
 * The path as the client sent it, still percent-encoded: API Gateway REST passes `path` that way
 * and the api routes on its segments (functions/api/router.ts), decoding each once. Not
 * `url.pathname`: WHATWG parsing resolves `%2e%2e` as `..`, which API Gateway does not do.
 */
function rawPathOf(target: string | undefined, url: URL): string {
  const raw = (target ?? '/').split(/[?#]/, 1)[0] ?? '';
  // Absolute-form targets (`GET http://host/path`, as sent to a proxy) have no leading slash.
  return raw.startsWith('/') ? raw : url.pathname;
}

/**
 * API Gateway decodes path parameters, `{proxy+}` included (so `%2F` becomes `/` there: which
 * is why the api routes on `path`). A malformed encoding is left as sent rather than thrown:
 * an exception here would be a 500 from the local server, where the api answers the same
 * path with `400 INVALID_PATH`.
 */
function decodeProxy(proxy: string): string {
  try {
    return decodeURIComponent(proxy);
  } catch {
    return proxy;
  }
}

export function toApiGatewayEvent(req: IncomingMessage, body: Buffer, stage = 'local'): APIGatewayProxyEvent {
  const url = new URL(req.url ?? '/', 'http://127.0.0.1');
  const headers: Record<string, string> = {};
  const multiValueHeaders: Record<string, string[]> = {};
  // rawHeaders keeps the client's casing, as API Gateway does.
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i] ?? '';
    const value = req.rawHeaders[i + 1] ?? '';
    headers[name] = headers[name] !== undefined ? `${headers[name]},${value}` : value;
    (multiValueHeaders[name] ??= []).push(value);
  }
  const query: Record<string, string> = {};
  const multiQuery: Record<string, string[]> = {};
  for (const [key, value] of url.searchParams) {
    query[key] = value; // API Gateway keeps the last value in the single-value map
    (multiQuery[key] ??= []).push(value);
  }
  const hasQuery = Object.keys(query).length > 0;
  const contentType = req.headers['content-type'];
  const textual = isTextual(contentType);
  const sourceIp = (req.socket.remoteAddress ?? '127.0.0.1').replace(/^::ffff:/, '');
  const userAgent = req.headers['user-agent'] ?? null;
  const path = rawPathOf(req.url, url);
  const now = new Date();
  return {
    resource: '/{proxy+}',
    path,
    httpMethod: (req.method ?? 'GET').toUpperCase(),
    headers,
    multiValueHeaders,
    queryStringParameters: hasQuery ? query : null,
    multiValueQueryStringParameters: hasQuery ? multiQuery : null,
    pathParameters: { proxy: decodeProxy(path.replace(/^\//, '')) },
    stageVariables: null,
    body: body.length === 0 ? null : textual ? body.toString('utf8') : body.toString('base64'),
    isBase64Encoded: body.length > 0 && !textual,
    requestContext: {
      accountId: '000000000000',
      apiId: 'local',
      authorizer: null,
      protocol: `HTTP/${req.httpVersion}`,
      httpMethod: (req.method ?? 'GET').toUpperCase(),
      path: `/${stage}${path}`,
      stage,
      requestId: randomUUID(),
      requestTimeEpoch: now.getTime(),
      resourceId: 'local',
      resourcePath: '/{proxy+}',
      identity: {
        accessKey: null,
        accountId: null,
        apiKey: null,
        apiKeyId: null,
        caller: null,
        clientCert: null,
        cognitoAuthenticationProvider: null,
        cognitoAuthenticationType: null,
        cognitoIdentityId: null,
        cognitoIdentityPoolId: null,
        principalOrgId: null,
        sourceIp,
        user: null,
        userAgent,
        userArn: null,
      },
    },
  };
}

export function writeApiGatewayResult(res: ServerResponse, result: APIGatewayProxyResult): void {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(result.headers ?? {})) headers[name] = String(value);
  for (const [name, values] of Object.entries(result.multiValueHeaders ?? {})) headers[name] = values.map(String);
  const body = result.body ?? '';
  const bytes = result.isBase64Encoded ? Buffer.from(body, 'base64') : Buffer.from(body, 'utf8');
  res.writeHead(result.statusCode, headers);
  res.end(bytes);
}
