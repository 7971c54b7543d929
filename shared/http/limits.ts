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
 * A Content-Length value over MAX_REQUEST_BODY_BYTES (3,000,000), as a regular expression in the
 * subset AWS WAF accepts (no lookaround): eight or more digits, or seven digits above 3000000.
 * Leading zeros are allowed. Tested against numbers around the limit.
 */
export const CONTENT_LENGTH_OVER_LIMIT_PATTERN =
  '^0*(?:[1-9][0-9]{7,}|[4-9][0-9]{6}|3(?:[1-9][0-9]{5}|0[1-9][0-9]{4}|00[1-9][0-9]{3}|000[1-9][0-9]{2}|0000[1-9][0-9]|00000[1-9]))$';
