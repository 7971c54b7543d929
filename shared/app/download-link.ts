import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Download link tokens: stateless and signed, so no queue message or table item ever holds a
 * usable token. token = base64url(`${exportId}|${expiresAtMs}`) + '.' +
 * base64url(HMAC-SHA256(LINK_SIGNING_SECRET, `${exportId}|${expiresAtMs}`)).
 * The finalizer computes it when the export completes (and stores only its SHA-256 hash, the
 * audit handle); the notifier computes the same token from the job (exportId, expiresAt) for the
 * bot's link; the API's download endpoint verifies it and answers 410 once it has expired.
 * Deterministic on purpose: the same export and expiry always give the same link.
 */
export type DownloadTokenClaims = { exportId: string; expiresAt: Date };

export class InvalidDownloadTokenError extends Error {
  constructor(message = 'the download token is malformed or its signature does not match') {
    super(message);
    this.name = 'InvalidDownloadTokenError';
  }
}

function payloadOf(exportId: string, expiresAtMs: number): string {
  return `${exportId}|${expiresAtMs}`;
}

function sign(secret: string, payload: string): Buffer {
  return createHmac('sha256', secret).update(payload).digest();
}

export function createDownloadToken(claims: DownloadTokenClaims, secret: string): string {
  if (!secret) throw new Error('createDownloadToken: the link signing secret is empty');
  if (claims.exportId.includes('|')) throw new Error('createDownloadToken: exportId must not contain "|"');
  const payload = payloadOf(claims.exportId, claims.expiresAt.getTime());
  return `${Buffer.from(payload).toString('base64url')}.${sign(secret, payload).toString('base64url')}`;
}

/**
 * Checks the signature and returns the claims with `expired` computed against `now` (the API
 * answers 410 for a well-signed expired token, 404/401 for a bad one). Throws
 * InvalidDownloadTokenError for anything not made by createDownloadToken with this secret.
 */
export function verifyDownloadToken(token: string, secret: string, now: Date): DownloadTokenClaims & { expired: boolean } {
  if (typeof token !== 'string' || token.length > 512) throw new InvalidDownloadTokenError();
  const [encodedPayload, encodedSignature, ...rest] = token.split('.');
  if (!encodedPayload || !encodedSignature || rest.length > 0) throw new InvalidDownloadTokenError();
  const payload = Buffer.from(encodedPayload, 'base64url').toString('utf8');
  const given = Buffer.from(encodedSignature, 'base64url');
  const expected = sign(secret, payload);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new InvalidDownloadTokenError();
  const match = /^([^|]+)\|(\d{1,16})$/.exec(payload);
  if (!match?.[1] || !match[2]) throw new InvalidDownloadTokenError();
  const expiresAt = new Date(Number(match[2]));
  return { exportId: match[1], expiresAt, expired: now.getTime() >= expiresAt.getTime() };
}

/** What the store keeps: a hash, never the token. */
export function hashDownloadToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export function downloadLink(publicBaseUrl: string, token: string): string {
  return `${publicBaseUrl.replace(/\/+$/, '')}/v1/downloads/${token}`;
}
