import { isUtf8 } from 'node:buffer';
import { isRoutePath } from '../../functions/api/router';
import { CORS_ALLOWED_HEADERS, CORS_ALLOWED_METHODS, CORS_MAX_AGE_SECONDS, corsResponseHeaders } from '../../shared/http/cors';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { bodyTooLarge, MAX_REQUEST_BODY_BYTES } from '../../shared/http/limits';

/**
 * Turns a Node HTTP request into the API Gateway REST (v1) proxy event the api Lambda gets, and
 * writes the handler's result back. The event is the one a `/{proxy+}` resource would send (the
 * stack declares a resource per route instead; the handler routes on `path` and `httpMethod` and
 * reads neither `resource` nor `pathParameters`, so both shapes are served alike). A text body that is
 * valid UTF-8 is passed as a string, as API Gateway does; anything else (a binary type, or text
 * bytes that are not UTF-8) as base64 with isBase64Encoded, so the api sees the client's bytes.
 */
// As on AWS, where the web ACL refuses a larger declared body with 413 (shared/http/limits.ts).
const MAX_BODY_BYTES = MAX_REQUEST_BODY_BYTES;

/**
 * A body over the service's limit (shared/http/limits.ts): the local stack answers it as the web
 * ACL does on AWS, with a 413, instead of letting it fall into the catch-all 500.
 */
export class BodyTooLargeError extends Error {
  readonly code = 'BODY_TOO_LARGE';
  constructor(readonly limitBytes: number) {
    super(`the request body must be at most ${limitBytes} bytes`);
    this.name = 'BodyTooLargeError';
  }
}

/**
 * The whole body, or BodyTooLargeError as soon as it passes `limit`: refused before reading a
 * byte when Content-Length already says so, else when the count passes the limit. Reading then
 * stops here (the stream is paused and let go, what was read is dropped): at most the limit is
 * ever held in memory, never the 30 MB a client sends. writeBodyTooLarge decides what happens
 * to the rest.
 */
export function readBody(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(new BodyTooLargeError(limit));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    const onData = (chunk: Buffer | string): void => {
      const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
      size += buffer.length;
      if (size > limit) {
        done();
        req.pause();
        chunks.length = 0;
        reject(new BodyTooLargeError(limit));
        return;
      }
      chunks.push(buffer);
    };
    const onEnd = (): void => {
      done();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (error: Error): void => {
      done();
      reject(error);
    };
    // A client that goes away mid-body: no 'end' will come.
    const onClose = (): void => {
      done();
      reject(new Error('request closed before its body ended'));
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

/**
 * The headers of an answer the local stack gives itself, before or instead of the api (the 413,
 * the 503 while it starts, a 500 of its own), as the api's own answers carry them: JSON, never
 * cached, and for the admin origin (ADMIN_ORIGIN) the CORS headers, so a browser client sees the
 * status instead of a CORS network error. On AWS, the web ACL's and API Gateway's answers carry
 * the same (infra/stack).
 */
export function stackAnswerHeaders(req: IncomingMessage, requestId: string): Record<string, string> {
  const cors = Object.entries(corsResponseHeaders(req.headers.origin, process.env.ADMIN_ORIGIN)).map(([name, value]) => [name.toLowerCase(), value]);
  return {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'x-request-id': requestId,
    ...Object.fromEntries(cors),
  };
}

/**
 * `OPTIONS` on a route's path, answered as API Gateway's preflight routes do on AWS
 * (infra/stack/export-api.ts: a mock integration on every resource, no authorizer, the same lists):
 * 204 with the admin origin (ADMIN_ORIGIN) and the methods and headers, whatever the request's
 * origin (the browser compares). Any other path goes on to the api (its 404). Without it the api
 * answered 405 and a browser client could not use the local stack.
 */
export function preflightHeaders(req: IncomingMessage, path: string): Record<string, string> | undefined {
  if (req.method !== 'OPTIONS' || !isRoutePath(path)) return undefined;
  const allowed = process.env.ADMIN_ORIGIN;
  return {
    ...(allowed ? { 'access-control-allow-origin': allowed } : {}),
    'access-control-allow-methods': CORS_ALLOWED_METHODS.join(','),
    'access-control-allow-headers': CORS_ALLOWED_HEADERS.join(','),
    'access-control-max-age': String(CORS_MAX_AGE_SECONDS),
    vary: 'Origin',
  };
}

/** After a 413, how much more of the body is read and dropped, and for how long, at most. */
const LINGER_BYTES = MAX_BODY_BYTES;
const LINGER_MS = 5_000;

/**
 * The 413 for BodyTooLargeError, in the api's error envelope (code, message, requestId, and
 * X-Request-Id). Closing the socket at once would reset a client still sending its body, and a
 * reset often loses the answer (the client sees EPIPE or ECONNRESET, not the 413). So, as web
 * servers do ("lingering close"), the rest is read and dropped, never kept, while the client
 * reads the answer and stops sending; a client that goes on past LINGER_BYTES or LINGER_MS more
 * is cut off. A client that does finish its body keeps its connection, as after any answer.
 */
export function writeBodyTooLarge(req: IncomingMessage, res: ServerResponse, error: BodyTooLargeError): void {
  const requestId = randomUUID();
  res.writeHead(413, stackAnswerHeaders(req, requestId));
  res.end(JSON.stringify({ error: { ...bodyTooLarge(error.limitBytes), requestId } }));
  if (req.complete) return;
  const socket = req.socket;
  let dropped = 0;
  const cutOff = (): void => {
    clearTimeout(timer);
    req.off('data', onData);
    socket.destroy();
  };
  const timer = setTimeout(cutOff, LINGER_MS);
  timer.unref();
  const onData = (chunk: Buffer | string): void => {
    dropped += chunk.length;
    if (dropped > LINGER_BYTES) cutOff();
  };
  req.on('data', onData);
  req.once('end', () => clearTimeout(timer));
  socket.once('close', () => clearTimeout(timer));
  req.resume();
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

/**
 * Node reads header bytes as Latin-1; AWS's front doors put header values into the event's JSON
 * decoded as UTF-8 (an ALB does, honojs/hono#4432). Bytes that are valid UTF-8 are read so here too (a User-Agent holding U+202E must reach the api as U+202E, which
 * the audit trail strips, not as the three Latin-1 letters of its bytes); anything else stays as read.
 */
function headerText(latin1: string): string {
  if (!/[^\x00-\x7f]/.test(latin1)) return latin1;
  const bytes = Buffer.from(latin1, 'latin1');
  return isUtf8(bytes) ? bytes.toString('utf8') : latin1;
}

export function toApiGatewayEvent(req: IncomingMessage, body: Buffer, stage = 'local'): APIGatewayProxyEvent {
  const url = new URL(req.url ?? '/', 'http://127.0.0.1');
  // Null-prototype maps: a header or query parameter named `constructor`, `toString` or
  // `__proto__` must be a key like any other, not a lookup of Object.prototype's member.
  const headers: Record<string, string> = Object.create(null) as Record<string, string>;
  const multiValueHeaders: Record<string, string[]> = Object.create(null) as Record<string, string[]>;
  // rawHeaders keeps the client's casing, as API Gateway does.
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i] ?? '';
    const value = headerText(req.rawHeaders[i + 1] ?? '');
    headers[name] = headers[name] !== undefined ? `${headers[name]},${value}` : value;
    (multiValueHeaders[name] ??= []).push(value);
  }
  const query: Record<string, string> = Object.create(null) as Record<string, string>;
  const multiQuery: Record<string, string[]> = Object.create(null) as Record<string, string[]>;
  for (const [key, value] of url.searchParams) {
    query[key] = value; // API Gateway keeps the last value in the single-value map
    (multiQuery[key] ??= []).push(value);
  }
  const hasQuery = Object.keys(query).length > 0;
  const contentType = req.headers['content-type'];
  // Bytes that are not UTF-8 would become U+FFFD in a string, silently: sent as base64 instead,
  // so the api sees them and refuses them (functions/api/app.ts, parseJsonBody).
  const asText = isTextual(contentType) && isUtf8(body);
  const sourceIp = (req.socket.remoteAddress ?? '127.0.0.1').replace(/^::ffff:/, '');
  const userAgent = req.headers['user-agent'] === undefined ? null : headerText(req.headers['user-agent']);
  const path = rawPathOf(req.url, url);
  const now = new Date();
  return {
    resource: '/{proxy+}',
    path,
    httpMethod: (req.method ?? 'GET').toUpperCase(),
    // Plain objects again (the spread copies `__proto__` as an own key), as JSON.parse makes AWS's.
    headers: { ...headers },
    multiValueHeaders: { ...multiValueHeaders },
    queryStringParameters: hasQuery ? { ...query } : null,
    multiValueQueryStringParameters: hasQuery ? { ...multiQuery } : null,
    pathParameters: { proxy: decodeProxy(path.replace(/^\//, '')) },
    stageVariables: null,
    body: body.length === 0 ? null : asText ? body.toString('utf8') : body.toString('base64'),
    isBase64Encoded: body.length > 0 && !asText,
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
