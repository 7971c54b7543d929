import type { APIGatewayProxyResult } from 'aws-lambda';

/**
 * Every API response is private to its caller (exports, links, audit): nothing may be cached by
 * a browser or a shared proxy.
 */
const BASE_HEADERS = {
  'Content-Type': 'application/json; charset=utf-8',
  'Cache-Control': 'no-store',
  'X-Content-Type-Options': 'nosniff',
} as const;

export function jsonResponse(statusCode: number, body: unknown, headers: Record<string, string> = {}): APIGatewayProxyResult {
  return { statusCode, headers: { ...BASE_HEADERS, ...headers }, body: JSON.stringify(body) };
}

/**
 * A 302 without a body. The location is a presigned URL, a credential for its lifetime: it is
 * said once, in the header every client follows, not repeated in a body that clients and
 * proxies log more readily than headers.
 */
export function redirectResponse(location: string): APIGatewayProxyResult {
  return emptyResponse(302, { Location: location, 'Referrer-Policy': 'no-referrer' });
}

/** A response without a body (HEAD): no Content-Type, since there is no content. */
export function emptyResponse(statusCode: number, headers: Record<string, string> = {}): APIGatewayProxyResult {
  return { statusCode, headers: { 'Cache-Control': BASE_HEADERS['Cache-Control'], 'X-Content-Type-Options': BASE_HEADERS['X-Content-Type-Options'], ...headers }, body: '' };
}
