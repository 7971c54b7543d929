export { mapErrorToResponse, statusOf, type ErrorBody } from './error-mapper';
export { BadRequestBodyError, MethodNotAllowedError, RouteNotFoundError } from './http-errors';
export { normalizeEventHeaders, sentMoreThanOnce, type EventHeaders } from './headers';
export { emptyResponse, jsonResponse, redirectResponse } from './responses';
export { bodyLimitFor, bodyTooLarge, contentLengthOverPattern, LARGE_BODY_PATH_PATTERN, MAX_OTHER_BODY_BYTES, MAX_REQUEST_BODY_BYTES, takesLargeBody } from './limits';
export { isJsonMediaType, JSON_MEDIA_TYPE_PATTERN } from './media-type';
