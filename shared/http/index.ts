export { mapErrorToResponse, statusOf, type ErrorBody } from './error-mapper';
export { BadRequestBodyError, MethodNotAllowedError, RouteNotFoundError } from './http-errors';
export { emptyResponse, jsonResponse, redirectResponse } from './responses';
export { CONTENT_LENGTH_OVER_LIMIT_PATTERN, MAX_REQUEST_BODY_BYTES } from './limits';
