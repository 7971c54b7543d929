import { z } from 'zod';
import { ValidationError } from '../../domain';
import { equalHex, hmacHex } from './hmac';

/**
 * A store's paging cursor wrapped with an HMAC over `scope`: opaque to the client, unforgeable,
 * and valid only for the scope it was issued for (the caller, and for the audit trail the query
 * too: a store cursor reused with other key bounds is rejected by DynamoDB, which would be a 500).
 */
export function sealCursor(secret: Buffer, scope: string, inner: string): string {
  const body = Buffer.from(inner, 'utf8').toString('base64url');
  return `${body}.${hmacHex(secret, `cursor-v1\0${scope}`, body).slice(0, 32)}`;
}

/** Longer than any cursor sealCursor makes from a store's key (a few hundred characters). */
export const MAX_CURSOR_LENGTH = 4096;

/**
 * The store's cursor inside `cursor`, or INVALID_CURSOR (rule `returned-cursor`) for anything
 * sealCursor did not make for this scope: empty, over-long, altered, or another scope's.
 * `boundTo` says what the scope is, so a cursor reused with another query is told that.
 */
export function openCursor(secret: Buffer, scope: string, cursor: string, boundTo = 'this caller'): string {
  const [body, mac, extra] = cursor.length > MAX_CURSOR_LENGTH ? [] : cursor.split('.');
  if (!body || !mac || extra !== undefined || !/^[A-Za-z0-9_-]+$/.test(body) || !equalHex(mac, hmacHex(secret, `cursor-v1\0${scope}`, body).slice(0, 32))) {
    throw new ValidationError(`cursor is not a cursor returned by this endpoint for ${boundTo}`, { code: 'INVALID_CURSOR', field: 'cursor', rule: 'returned-cursor' });
  }
  return Buffer.from(body, 'base64url').toString('utf8');
}

/**
 * A page size from the query string: a whole number 1-100 written plainly. z.coerce.number took
 * `0x10` (16), `1e1` and `+5`, and answered `limit=` with "too small" instead of the rule.
 */
export function pageLimitSchema(defaultLimit: number) {
  return z
    .string()
    .refine((text) => /^[1-9][0-9]{0,2}$/.test(text) && Number(text) <= 100, { message: 'must be a whole number from 1 to 100', params: { rule: 'page-size' } })
    .transform(Number)
    .default(defaultLimit);
}
