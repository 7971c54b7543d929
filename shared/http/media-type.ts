/**
 * What a JSON request body is, for every layer that tells one apart: the api's parser
 * (functions/api/app.ts: anything else is 415), the body-size split (limits.ts, the local stack)
 * and the web ACL's (infra/stack/api-firewall.ts). `application/json` in any case, with or
 * without parameters (the parser checks a `charset` itself).
 *
 * Only that type, not the `application/*+json` family the parser used to take too: it is the
 * one API Gateway checks a `POST /v1/exports` body against the JSON model for (export-api.ts);
 * a body of any other type skips the model ("if no matching content type is found, request
 * validation is not performed"), so it may hold raw control characters that grow sixfold in the
 * Lambda event, and must keep the smaller limit. Parsing a `+json` body while capping it as
 * "other" answered the same request 202 or 413 by its size alone.
 *
 * One pattern for both engines, JavaScript and AWS WAF (a regex match on the lower-cased header,
 * no lookaround): hence lower case, and `[ \t]` for the optional whitespace (RFC 9110 OWS).
 */
export const JSON_MEDIA_TYPE_PATTERN = '^application/json[ \\t]*(?:;|$)';

const JSON_MEDIA_TYPE = new RegExp(JSON_MEDIA_TYPE_PATTERN, 'i');

/** Whether a Content-Type value declares a JSON body (see JSON_MEDIA_TYPE_PATTERN). */
export function isJsonMediaType(contentType: string | undefined): contentType is string {
  return contentType !== undefined && JSON_MEDIA_TYPE.test(contentType);
}
