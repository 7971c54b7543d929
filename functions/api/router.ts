import { MethodNotAllowedError, RouteNotFoundError } from '../../shared/http';

export type RouteName = 'createExport' | 'listExports' | 'getExport' | 'cancelExport' | 'download' | 'listAudit';

type RouteDef = { name: RouteName; method: string; pattern: RegExp; params: readonly string[] };

/** The API's whole surface. Path segments are matched whole; ids are decoded once. */
const ROUTES: readonly RouteDef[] = [
  { name: 'createExport', method: 'POST', pattern: /^\/v1\/exports$/, params: [] },
  { name: 'listExports', method: 'GET', pattern: /^\/v1\/exports$/, params: [] },
  { name: 'getExport', method: 'GET', pattern: /^\/v1\/exports\/([^/]+)$/, params: ['exportId'] },
  { name: 'cancelExport', method: 'POST', pattern: /^\/v1\/exports\/([^/]+)\/cancel$/, params: ['exportId'] },
  { name: 'download', method: 'GET', pattern: /^\/v1\/downloads\/([^/]+)$/, params: ['token'] },
  { name: 'listAudit', method: 'GET', pattern: /^\/v1\/audit$/, params: [] },
];

export type Match = { name: RouteName; params: Record<string, string> };

/**
 * Stage prefixes never reach here: behind `/{proxy+}` API Gateway passes the resource path.
 * A trailing slash is tolerated; HEAD is not offered (a download must be counted once).
 */
export function matchRoute(method: string, rawPath: string): Match {
  const path = rawPath.length > 1 ? rawPath.replace(/\/+$/, '') : rawPath;
  const allowed: string[] = [];
  for (const route of ROUTES) {
    const found = route.pattern.exec(path);
    if (!found) continue;
    if (route.method !== method.toUpperCase()) {
      allowed.push(route.method);
      continue;
    }
    const params: Record<string, string> = {};
    route.params.forEach((name, i) => {
      params[name] = found[i + 1] ?? '';
    });
    return { name: route.name, params };
  }
  if (allowed.length > 0) throw new MethodNotAllowedError(allowed);
  throw new RouteNotFoundError(method, path);
}
