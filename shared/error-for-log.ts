/** What of an error a log line carries. */
export type LoggedError = { name?: string; message: string; code?: string; httpStatus?: number; stack?: string };

/**
 * What of an error a log line may carry. Never the whole error (a logger copies every enumerable
 * property, and an SDK error carries the request's parameters). Its name, code and HTTP status;
 * its message and stack unless it is an AWS service error (one with `$metadata`), whose message
 * can name what it was refused on: an S3 AccessDenied names the object's ARN, and an export's
 * object key holds its channel, id and file name. Our own errors' messages name fields and rules,
 * never values or secrets, and are kept: they are what the reader needs.
 */
export function errorForLog(e: unknown, options: { stack?: boolean } = {}): LoggedError {
  if (!(e instanceof Error)) return { message: typeof e === 'string' ? e : 'non-Error thrown' };
  const code: unknown = (e as { code?: unknown }).code ?? (e as { Code?: unknown }).Code;
  const metadata = (e as { $metadata?: { httpStatusCode?: unknown } }).$metadata;
  const fromService = typeof metadata === 'object' && metadata !== null;
  const status = fromService ? metadata.httpStatusCode : undefined;
  return {
    name: e.name,
    message: fromService ? `${e.name} from an AWS service (message withheld: it can name resources)` : e.message,
    ...(code !== undefined ? { code: String(code) } : {}),
    ...(typeof status === 'number' ? { httpStatus: status } : {}),
    ...(options.stack && !fromService && e.stack ? { stack: e.stack } : {}),
  };
}
