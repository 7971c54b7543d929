export { mapErrorToResponse, statusOf, type ErrorBody } from './error-mapper';
export { BadRequestBodyError, MethodNotAllowedError, RouteNotFoundError } from './http-errors';
export { emptyResponse, jsonResponse, redirectResponse } from './responses';
