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

export function openCursor(secret: Buffer, scope: string, cursor: string): string {
  const [body, mac, extra] = cursor.split('.');
  if (!body || !mac || extra !== undefined || !/^[A-Za-z0-9_-]+$/.test(body) || !equalHex(mac, hmacHex(secret, `cursor-v1\0${scope}`, body).slice(0, 32))) {
    throw new ValidationError('cursor is not a cursor returned by this endpoint for this caller', { code: 'INVALID_CURSOR', field: 'cursor' });
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
    .refine((text) => /^[1-9][0-9]{0,2}$/.test(text) && Number(text) <= 100, 'must be a whole number from 1 to 100')
    .transform(Number)
    .default(defaultLimit);
}
