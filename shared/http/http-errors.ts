/**
 * Errors that only exist at the HTTP edge (routing, body decoding). Business rules use the
 * domain's errors; the mapper handles both.
 */
export class RouteNotFoundError extends Error {
  readonly code = 'ROUTE_NOT_FOUND';
  constructor(method: string, path: string) {
    super(`no route for ${method} ${path.slice(0, 200)}`);
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
