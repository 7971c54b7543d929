/**
 * Errors that only exist at the HTTP edge (routing, body decoding). Business rules use the
 * domain's errors; the mapper handles both.
 */
export class RouteNotFoundError extends Error {
  readonly code = 'ROUTE_NOT_FOUND';
  /**
   * No path in the message: it is input, and `/v1/downloads/{token}/...` holds a download token,
   * a credential, that the 404 would hand to whatever logs or shows the response. The method is
   * named only when it is a plain method token (letters, short), so that is not an echo of
   * arbitrary input either.
   */
  constructor(method: string) {
    const named = /^[A-Za-z]{1,10}$/.test(method) ? method.toUpperCase() : 'this method';
    super(`no route for ${named} here; see docs/api.md for the routes`);
    this.name = 'RouteNotFoundError';
  }
}

export class MethodNotAllowedError extends Error {
  readonly code = 'METHOD_NOT_ALLOWED';
  constructor(readonly allowed: readonly string[]) {
    super(`method not allowed; allowed: ${allowed.join(', ')}`);
    this.name = 'MethodNotAllowedError';
  }
}

export type BadRequestBodyCode =
  | 'MALFORMED_JSON'
  | 'UNSUPPORTED_CONTENT_TYPE'
  | 'UNSUPPORTED_CONTENT_ENCODING'
  | 'BODY_REQUIRED'
  | 'BODY_TOO_LARGE';

/**
 * The status each body refusal answers with (RFC 9110): 415 for a media type or a content coding
 * the route does not take (§15.5.16 names both), 413 for a body over the limit (what API Gateway
 * answers for one over its own payload limit, so a client sees one status for one refusal), 400
 * for a body that is missing or not JSON.
 */
const BODY_STATUS: Record<BadRequestBodyCode, number> = {
  MALFORMED_JSON: 400,
  UNSUPPORTED_CONTENT_TYPE: 415,
  UNSUPPORTED_CONTENT_ENCODING: 415,
  BODY_REQUIRED: 400,
  BODY_TOO_LARGE: 413,
};

/**
 * Malformed JSON, a wrong content type or coding, or an undecodable body. `field` names what is
 * wrong (a header, or `body`) and `rule` the rule it broke, as a domain error's do; neither ever
 * holds the input (the body may hold the password).
 */
export class BadRequestBodyError extends Error {
  readonly code: BadRequestBodyCode;
  readonly status: number;
  readonly field: string;
  readonly rule: string;
  constructor(code: BadRequestBodyCode, message: string, where: { field: string; rule: string }) {
    super(message);
    this.name = 'BadRequestBodyError';
    this.code = code;
    this.status = BODY_STATUS[code];
    this.field = where.field;
    this.rule = where.rule;
  }
}
