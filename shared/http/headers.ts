/** The header maps of an API Gateway (REST, Lambda proxy) event. */
export type EventHeaders = {
  headers?: Record<string, string | undefined> | null;
  multiValueHeaders?: Record<string, string[] | undefined> | null;
};

/**
 * Lower-cases header names (HTTP compares them without regard to case) and combines the field
 * lines of one name as HTTP does, with commas, in the order sent:
 * - API Gateway keeps only the last line of a name in `headers` (all of them in
 *   `multiValueHeaders`), so `Authorization` sent twice authenticated with the second;
 * - names that differ only in case arrive as separate keys, and middy's normalizer, which this
 *   replaces, let the last one overwrite the others (`authorization: Bearer a` beside
 *   `Authorization: Bearer b` was served as b).
 * Combined, two bearers read `Bearer a,Bearer b`, which no token matches, and the api refuses a
 * header it reads once when it came in two lines (sentMoreThanOnce): a request never silently
 * means one of its values.
 * `multiValueHeaders` decides only when it holds more lines for a name than `headers` has keys
 * for it; otherwise `headers` is read (tests and tools often set only that map).
 */
export function normalizeEventHeaders(event: EventHeaders): void {
  const single = new Map<string, string[]>();
  for (const [name, value] of Object.entries(event.headers ?? {})) {
    if (typeof value !== 'string') continue;
    const key = name.toLowerCase();
    single.set(key, [...(single.get(key) ?? []), value]);
  }
  const multi = new Map<string, string[]>();
  for (const [name, values] of Object.entries(event.multiValueHeaders ?? {})) {
    if (!Array.isArray(values)) continue;
    const key = name.toLowerCase();
    multi.set(key, [...(multi.get(key) ?? []), ...values.filter((v): v is string => typeof v === 'string')]);
  }
  const headers: Record<string, string> = {};
  const multiValueHeaders: Record<string, string[]> = {};
  for (const key of new Set([...single.keys(), ...multi.keys()])) {
    const fromSingle = single.get(key) ?? [];
    const fromMulti = multi.get(key) ?? [];
    const values = fromMulti.length > Math.max(1, fromSingle.length) ? fromMulti : fromSingle.length > 0 ? fromSingle : fromMulti;
    if (values.length === 0) continue;
    headers[key] = values.join(',');
    multiValueHeaders[key] = values;
  }
  // Both maps, always: a check of repeated lines (authenticate) reads multiValueHeaders even
  // where the event came with `headers` alone.
  event.headers = headers;
  event.multiValueHeaders = multiValueHeaders;
}

/** Whether a normalised event (normalizeEventHeaders) carried header `name` (lower case) in more than one line. */
export function sentMoreThanOnce(event: EventHeaders, name: string): boolean {
  return (event.multiValueHeaders?.[name]?.length ?? 0) > 1;
}
