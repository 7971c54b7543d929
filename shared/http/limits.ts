import { isJsonMediaType } from './media-type';

/**
 * The largest request body the service takes, in bytes, everywhere: the web ACL refuses a larger
 * declared Content-Length with 413 before API Gateway (infra/stack/api-firewall.ts), the local
 * stack does the same (infra/local/http-to-apigw.ts), and the api handler checks it again.
 *
 * Why not API Gateway's 10 MB: Lambda takes at most 6,291,456 bytes of event, and the event holds
 * the body JSON-escaped plus headers and the request context. Escaping at most doubles valid JSON
 * (a `"`, `\\` or line break becomes two bytes), so 3,000,000 bytes of body stay under 6,000,000
 * of event, leaving ~290 KB for the rest. Above that, a body passed the gateway and then failed
 * the Lambda invocation: a 5xx for bad input.
 */
export const MAX_REQUEST_BODY_BYTES = 3_000_000;

/**
 * The largest body of any other request: only `POST /v1/exports` with a JSON body takes a large
 * one, and there API Gateway checks it against the JSON model first, so what reaches the Lambda
 * is valid JSON (escaping at most doubles it). Anything else (a GET or HEAD with a body, a POST of
 * another type, a cancel's or a revoke's JSON body) reaches the Lambda unchecked, where a raw control character becomes `\u0001`,
 * six bytes: 1,000,000 bytes of them still fit the 6,291,456-byte event.
 */
export const MAX_OTHER_BODY_BYTES = 1_000_000;

/**
 * The refusal of a body over `limit`, as every layer answers it (the web ACL's and API Gateway's
 * fixed bodies, the local server, the api handler): one code, message, field and rule.
 */
export function bodyTooLarge(limit: number) {
  return { code: 'BODY_TOO_LARGE', message: `the request body must be at most ${limit} bytes`, field: 'body', rule: 'max-bytes' } as const;
}

/**
 * The path of the one route whose body API Gateway checks against the JSON model before the
 * Lambda (export-api.ts): `POST /v1/exports`. Matched at the end of the URI path, so whatever
 * comes before it (the stage, `/prod`, as the web ACL sees the path; a custom domain's base path)
 * does not matter; a trailing slash is allowed. One pattern for JavaScript and AWS WAF (no
 * lookaround). Cancel and revoke are POSTs with JSON bodies too, but no model checks theirs: a
 * raw control character there reaches the Lambda and grows sixfold, so they keep the small limit
 * (with the large one, 3,000,000 bytes of them overflowed the event: a 5xx for bad input).
 */
export const LARGE_BODY_PATH_PATTERN = '/v1/exports/?$';
const LARGE_BODY_PATH = new RegExp(LARGE_BODY_PATH_PATTERN);

/**
 * Whether a request's body is the one kind that may be large: a JSON POST to create an export
 * (see above), JSON by the very predicate the api's parser takes a body with (media-type.ts).
 * `path` is the URI path, without the query.
 */
export function takesLargeBody(method: string, path: string, contentType: string | undefined): boolean {
  return method.toUpperCase() === 'POST' && LARGE_BODY_PATH.test(path) && isJsonMediaType(contentType);
}

/** The body limit for a request (MAX_REQUEST_BODY_BYTES or MAX_OTHER_BODY_BYTES). */
export function bodyLimitFor(method: string, path: string, contentType: string | undefined): number {
  return takesLargeBody(method, path, contentType) ? MAX_REQUEST_BODY_BYTES : MAX_OTHER_BODY_BYTES;
}

/**
 * A regular expression matching a Content-Length value over `limit`, in the subset AWS WAF
 * accepts (no lookaround, no backreferences): more digits than `limit` has, or as many and
 * greater, digit by digit. Leading zeros are allowed. Tested against numbers around the limits.
 */
export function contentLengthOverPattern(limit: number): string {
  if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError('limit must be a positive integer');
  const digits = String(limit);
  const k = digits.length;
  const branches = [`[1-9][0-9]{${k},}`];
  for (let i = 0; i < k; i++) {
    const d = Number(digits[i]);
    if (d === 9) continue;
    const rest = k - i - 1;
    branches.push(`${digits.slice(0, i)}[${d + 1}-9]${rest > 0 ? `[0-9]{${rest}}` : ''}`);
  }
  return `^0*(?:${branches.join('|')})$`;
}
