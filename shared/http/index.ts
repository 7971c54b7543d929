export { mapErrorToResponse, statusOf, type ErrorBody } from './error-mapper';
export { BadRequestBodyError, MethodNotAllowedError, RouteNotFoundError } from './http-errors';
export { normalizeEventHeaders, sentMoreThanOnce, type EventHeaders } from './headers';
export { emptyResponse, jsonResponse, redirectResponse } from './responses';
export { bodyLimitFor, bodyTooLarge, contentLengthOverPattern, isJsonPost, MAX_OTHER_BODY_BYTES, MAX_REQUEST_BODY_BYTES } from './limits';
export { isJsonMediaType, JSON_MEDIA_TYPE_PATTERN } from './media-type';
