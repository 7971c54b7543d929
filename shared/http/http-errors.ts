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

/** Malformed JSON, a wrong content type, or an undecodable body. */
export class BadRequestBodyError extends Error {
  readonly code: string;
  constructor(code: 'MALFORMED_JSON' | 'UNSUPPORTED_CONTENT_TYPE' | 'BODY_REQUIRED' | 'BODY_TOO_LARGE', message: string) {
    super(message);
    this.name = 'BadRequestBodyError';
    this.code = code;
  }
}
