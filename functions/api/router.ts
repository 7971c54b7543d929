import { ValidationError } from '../../shared/domain/errors';
import { MethodNotAllowedError, RouteNotFoundError } from '../../shared/http';

export type RouteName =
  | 'createExport'
  | 'listExports'
  | 'getExport'
  | 'cancelExport'
  | 'revokeExport'
  | 'download'
  | 'checkDownload'
  | 'listAudit'
  | 'listExportDownloads';

/** Path segments: a literal, or `{name}` for a parameter taking one whole segment. */
type RouteDef = { name: RouteName; method: string; segments: readonly string[] };

/** The API's whole surface. Path segments are matched whole; ids are decoded once. */
const ROUTES: readonly RouteDef[] = [
  { name: 'createExport', method: 'POST', segments: ['v1', 'exports'] },
  { name: 'listExports', method: 'GET', segments: ['v1', 'exports'] },
  { name: 'getExport', method: 'GET', segments: ['v1', 'exports', '{exportId}'] },
  { name: 'cancelExport', method: 'POST', segments: ['v1', 'exports', '{exportId}', 'cancel'] },
  // A completed export's leaked link withdrawn (docs/api.md).
  { name: 'revokeExport', method: 'POST', segments: ['v1', 'exports', '{exportId}', 'revoke'] },
  { name: 'download', method: 'GET', segments: ['v1', 'downloads', '{token}'] },
  // Link checkers and chat previews probe a link with HEAD and read a 405 as a broken link.
  { name: 'checkDownload', method: 'HEAD', segments: ['v1', 'downloads', '{token}'] },
  { name: 'listAudit', method: 'GET', segments: ['v1', 'audit'] },
  { name: 'listExportDownloads', method: 'GET', segments: ['v1', 'audit', 'exports', '{exportId}', 'downloads'] },
];

/**
 * A matched route: its name, its decoded path parameters, and its template (`POST
 * /v1/exports/{exportId}/cancel`), which the request's log line names: never the path itself,
 * whose download token is a capability and whose export id is whatever the caller sent.
 */
export type Match = { name: RouteName; template: string; params: Record<string, string> };

function templateOf(route: RouteDef): string {
  return `${route.method} /${route.segments.join('/')}`;
}

/** `METHOD /path` of every route (parameters as `{name}`): the stack must declare each one. */
export function routeTemplates(): string[] {
  return ROUTES.map(templateOf);
}

/** A path segment that is not valid percent-encoding (a lone `%`, or bytes that are not UTF-8). */
export class InvalidPathError extends ValidationError {
  constructor() {
    // With its rule, as every refusal names one (the issue ValidationError lists carries it too).
    super('path: a segment is not valid percent-encoding (RFC 3986, UTF-8)', { code: 'INVALID_PATH', field: 'path', rule: 'percent-encoding' });
  }
}

/**
 * Stage prefixes never reach here: API Gateway passes `event.path` without the stage and (REST
 * APIs) still percent-encoded; the routing is ours, from the path alone (the stack declares one
 * resource per route, and `resource`/`pathParameters` are not read). So the path is split on its literal slashes first and each
 * segment decoded once after: `abc%2Fcancel` is one id `abc/cancel`, never a cancel route, and a
 * `%25` stays a `%` in the id. A trailing slash is tolerated. HEAD is a route of its own, on the
 * download link only: it must neither presign nor count as a download, so it is not a GET whose
 * body is dropped.
 */
export function matchRoute(method: string, rawPath: string): Match {
  const path = rawPath.length > 1 ? rawPath.replace(/\/+$/, '') : rawPath;
  const segments = path.replace(/^\//, '').split('/').map(decodeSegment);
  const allowed: string[] = [];
  for (const route of ROUTES) {
    const params = matchSegments(route.segments, segments);
    if (!params) continue;
    if (route.method !== method.toUpperCase()) {
      allowed.push(route.method);
      continue;
    }
    return { name: route.name, template: templateOf(route), params };
  }
  if (allowed.length > 0) throw new MethodNotAllowedError(allowed);
  throw new RouteNotFoundError(method);
}

/** Whether some route has this path, whatever its method (what API Gateway declares a preflight on). */
export function isRoutePath(rawPath: string): boolean {
  try {
    matchRoute('OPTIONS', rawPath);
    return true;
  } catch (error) {
    return error instanceof MethodNotAllowedError;
  }
}

function matchSegments(template: readonly string[], segments: readonly string[]): Record<string, string> | undefined {
  if (template.length !== segments.length) return undefined;
  const params: Record<string, string> = {};
  for (const [i, part] of template.entries()) {
    const segment = segments[i] ?? '';
    const param = /^\{(\w+)\}$/.exec(part)?.[1];
    if (param !== undefined) {
      if (segment === '') return undefined;
      params[param] = segment;
    } else if (segment !== part) {
      return undefined;
    }
  }
  return params;
}

/** Malformed encoding is the client's error (400), not an exception left to become a 500. */
function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new InvalidPathError();
  }
}
