import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { parseEncryptionParams, type EncryptionParams } from '../xlsx';
import type { JobEncryption } from './export-job';

/**
 * The engine's EncryptionParams are NOT public data while the file does not exist: with the
 * password verifier (encryptedVerifierHashInput/Value), encryptedKeyValue and their salts,
 * anyone who reads them can test password guesses offline (SHA-512 x spinCount per guess), and
 * a guessed password yields the package key without KMS, and the user's password. So the job
 * item holds them sealed: AES-256-GCM under a key derived from the package key, which only the
 * finalizer can unwrap (KMS). A table reader sees a random-looking string and the wrapped key.
 *
 * Format of `sealedParams`: `ep1.` + base64(iv 12 | tag 16 | ciphertext), the ciphertext being
 * the params' JSON. The additional authenticated data binds it to its export and to this format
 * (JSON `["ep1", exportId]`), so sealed params copied onto another job do not open there.
 *
 * The sealing key is HKDF-SHA256(packageKey, info SEAL_INFO), not the package key itself: the
 * package key already keys AES-CBC in the file (segments, HMAC key and value); a derived key
 * keeps the two uses apart at the cost of one HKDF per export.
 */
export const SEALED_PARAMS_VERSION = 'ep1';
const SEAL_INFO = 'export-service/job-encryption-params/v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const PACKAGE_KEY_BYTES = 32;

/**
 * A job's encryption params that cannot be used: sealed params that do not open for this
 * export with its package key (bound to another export, altered, another format), or params
 * that are not the engine's. Permanent: the finalizer fails the export with `code`.
 */
export class JobEncryptionError extends Error {
  readonly code = 'ENCRYPTION_PARAMS_INVALID';
  constructor(
    /** What is wrong, for the log; never the data. */
    readonly reason: 'format' | 'authentication' | 'params',
    message: string,
  ) {
    super(message);
    this.name = 'JobEncryptionError';
  }
}

function aad(exportId: string): Buffer {
  return Buffer.from(JSON.stringify([SEALED_PARAMS_VERSION, exportId]), 'utf8');
}

/** The sealing key; the caller wipes it. */
function sealingKey(packageKey: Buffer): Buffer {
  if (packageKey.length !== PACKAGE_KEY_BYTES) throw new Error('the package key must be 32 bytes');
  // hkdfSync returns a fresh ArrayBuffer (not Node's shared pool): the Buffer over it is wiped in place.
  return Buffer.from(hkdfSync('sha256', packageKey, Buffer.alloc(0), SEAL_INFO, 32));
}

/**
 * Seals the params for storage on the job of `exportId` (a fresh random IV each call). Call it
 * before the package key is wiped.
 */
export function sealEncryptionParams(params: Record<string, unknown>, packageKey: Buffer, exportId: string): string {
  const key = sealingKey(packageKey);
  try {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    cipher.setAAD(aad(exportId));
    const ciphertext = Buffer.concat([cipher.update(JSON.stringify(params), 'utf8'), cipher.final()]);
    return `${SEALED_PARAMS_VERSION}.${Buffer.concat([iv, cipher.getAuthTag(), ciphertext]).toString('base64')}`;
  } finally {
    key.fill(0);
  }
}

/** Opens what sealEncryptionParams sealed for this export; throws JobEncryptionError otherwise. */
export function openEncryptionParams(sealed: string, packageKey: Buffer, exportId: string): EncryptionParams {
  const prefix = `${SEALED_PARAMS_VERSION}.`;
  if (!sealed.startsWith(prefix)) throw new JobEncryptionError('format', 'the sealed encryption params are of an unknown format');
  const bytes = Buffer.from(sealed.slice(prefix.length), 'base64');
  if (bytes.length <= IV_BYTES + TAG_BYTES) throw new JobEncryptionError('format', 'the sealed encryption params are truncated');
  const key = sealingKey(packageKey);
  let json: string;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, bytes.subarray(0, IV_BYTES));
    decipher.setAAD(aad(exportId));
    decipher.setAuthTag(bytes.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
    json = Buffer.concat([decipher.update(bytes.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
  } catch {
    throw new JobEncryptionError(
      'authentication',
      'the sealed encryption params do not open for this export (sealed for another export, or altered)',
    );
  } finally {
    key.fill(0);
  }
  return parseParams(() => JSON.parse(json) as unknown);
}

/**
 * The finalizer's reading of `job.encryption`: sealed params are opened with the unwrapped
 * package key; a job created before params were sealed (plain `params`, see jobEncryptionSchema)
 * still finalizes from its plain params.
 */
export function readJobEncryptionParams(encryption: JobEncryption, packageKey: Buffer, exportId: string): EncryptionParams {
  if ('sealedParams' in encryption) return openEncryptionParams(encryption.sealedParams, packageKey, exportId);
  return parseParams(() => encryption.params);
}

function parseParams(read: () => unknown): EncryptionParams {
  try {
    return parseEncryptionParams(read());
  } catch (error) {
    // The engine's message names the field and the rule, never a value.
    const detail = error instanceof Error && error.name === 'EncryptionInputError' ? `: ${error.message}` : '';
    throw new JobEncryptionError('params', `the job's encryption params are not valid${detail}`);
  }
}
