import { pbkdf2 } from 'node:crypto';
import type { ExportRequest } from '../../domain';
import { canonicalJson, equalHex, hmacHex } from './hmac';

/**
 * The slow digest of the password inside an idempotency record's body hash. The record lives
 * 24 h in the exports table (and in its backups): with a plain HMAC of the whole body, a reader
 * of the table who also holds the HMAC key tests a password guess with one HMAC, some 100,000x
 * cheaper than attacking the encrypted file (ECMA-376 agile, 100,000 SHA-512 rounds). PBKDF2 at
 * the same SHA-512 round count with a per-record salt makes a guess against the record cost at
 * least what it costs against the file, and no table of guesses serves two records.
 */
export const IDEMPOTENCY_PASSWORD_KDF = {
  digest: 'sha512',
  iterations: 100_000,
  keyLength: 64,
  saltBytes: 16,
} as const;

export const IDEMPOTENCY_HASH_V1 = 'idempotency-body-v1';
export const IDEMPOTENCY_HASH_V2 = 'idempotency-body-v2';

/**
 * PBKDF2-HMAC-SHA512 of the password. The async form runs on libuv's thread pool: the event
 * loop (other requests of a warm local stack, the SDK's sockets) keeps going meanwhile.
 */
export function slowPasswordDigest(password: string, salt: Buffer): Promise<Buffer> {
  // Buffer.alloc, not Buffer.from: a small Buffer.from is a slice of Node's shared pool, which
  // is never wiped (as in agile-keys.ts hashPassword).
  const bytes = Buffer.alloc(Buffer.byteLength(password, 'utf8'));
  bytes.write(password, 'utf8');
  const { iterations, keyLength, digest } = IDEMPOTENCY_PASSWORD_KDF;
  return new Promise((resolve, reject) => {
    pbkdf2(bytes, salt, iterations, keyLength, digest, (error, key) => {
      bytes.fill(0);
      if (error) reject(error);
      else resolve(key);
    });
  });
}

/**
 * The v2 body hash: the HMAC covers the request without its password, then the password's slow
 * digest. NUL cannot occur in canonical JSON (JSON.stringify escapes control characters), so
 * the two parts cannot run into each other.
 */
export async function idempotencyHashV2(secret: Buffer, request: ExportRequest, salt: Buffer): Promise<string> {
  const { password, ...withoutPassword } = request;
  const digest = await slowPasswordDigest(password, salt);
  try {
    return hmacHex(secret, IDEMPOTENCY_HASH_V2, `${canonicalJson(withoutPassword)}\0${digest.toString('hex')}`);
  } finally {
    digest.fill(0);
  }
}

/**
 * The v1 body hash (before the slow digest): one HMAC over the whole body, password included.
 * Only compared against, never written: records from the previous version live 24 h at most.
 */
export function idempotencyHashV1(secret: Buffer, request: ExportRequest): string {
  return hmacHex(secret, IDEMPOTENCY_HASH_V1, canonicalJson(request));
}

/**
 * Whether `request` is the body a stored record was made from, in constant time per compare.
 * A record with a salt is v2 (one PBKDF2 with its salt); one without is v1, written by the
 * version before this one during a deploy. A v1 record may have been hashed with the key the
 * api used before it had a secret of its own (`legacySecrets`): both are tried.
 */
export async function matchesIdempotencyRecord(
  record: { requestHash: string; passwordSalt?: string },
  request: ExportRequest,
  secret: Buffer,
  legacySecrets: readonly Buffer[] = [],
): Promise<boolean> {
  if (record.passwordSalt === undefined) {
    return [secret, ...legacySecrets].some((key) => equalHex(record.requestHash, idempotencyHashV1(key, request)));
  }
  const salt = Buffer.from(record.passwordSalt, 'base64');
  // A salt that is not what this version writes (truncated, not base64) matches nothing.
  if (salt.length !== IDEMPOTENCY_PASSWORD_KDF.saltBytes) return false;
  return equalHex(record.requestHash, await idempotencyHashV2(secret, request, salt));
}
