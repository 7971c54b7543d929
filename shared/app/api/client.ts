import { cleanDisplayText } from '../../text-rules';

/**
 * Where a request came from, as the audit trail records it for every act a person does through
 * the API (request, cancel, revoke, download): the source address API Gateway saw (or the
 * socket's, locally; never X-Forwarded-For, which the client writes) and the User-Agent header.
 */
export type ClientFacts = { ip?: string; userAgent?: string };

/** Where a request came from as the handler read it, before clientFacts cuts and cleans it. */
export type ClientInput = { ip?: string | undefined; userAgent?: string | undefined };

/** The longest user agent kept: enough for any real browser's, bounded for the audit item. */
export const MAX_USER_AGENT_CHARS = 512;

/**
 * The facts as they may be stored. The caller chooses its User-Agent and auditors read it: cut
 * first, then cleaned as display names are (no control characters, bidi overrides, or a
 * surrogate pair's half left by the cut). An address longer than any IPv6 text form is cut.
 * Absent or empty values are left out, so an event carries only what was known.
 */
export function clientFacts(input: ClientInput | undefined): ClientFacts {
  const ip = input?.ip ? input.ip.slice(0, 64) : undefined;
  const userAgent = input?.userAgent ? cleanDisplayText(input.userAgent.slice(0, MAX_USER_AGENT_CHARS)) : undefined;
  return { ...(ip ? { ip } : {}), ...(userAgent ? { userAgent } : {}) };
}

/**
 * The job patch field that stores where a cancel or a revoke came from (`canceledFrom`,
 * `revokedFrom`), left out when nothing was known: a job item carries no empty origin.
 */
export function originPatch<K extends 'canceledFrom' | 'revokedFrom'>(field: K, input: ClientInput | undefined): Partial<Record<K, ClientFacts>> {
  const facts = clientFacts(input);
  return (Object.keys(facts).length > 0 ? { [field]: facts } : {}) as Partial<Record<K, ClientFacts>>;
}
