/**
 * ECMA-376 agile encryption keys (MS-OFFCRYPTO 2.3.4.10, 2.3.4.11, 2.3.4.13, 2.3.4.14).
 *
 * Key derivation is its own step so the password never leaves the process it was typed into:
 * the API derives `{ params, packageKey }` and hands the finalizer only the package key, wrapped by
 * KMS, and the params sealed under it (shared/app/job-encryption.ts). The params are what the
 * finished file's EncryptionInfo stream shows anyone holding the file, but not public: with
 * them a password can be tested offline (the verifier), so they are never stored in the clear.
 */
import { createCipheriv, createDecipheriv, createHash, hash, randomBytes } from 'node:crypto';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { z } from 'zod';
import { EncryptionInputError } from './errors';

/** The only cipher suite we write: AES-256-CBC with SHA-512, as current Excel does. */
export const KEY_BYTES = 32;
export const BLOCK_BYTES = 16;
export const SALT_BYTES = 16;
export const HASH_BYTES = 64;
export const DEFAULT_SPIN_COUNT = 100_000;
/** MS-OFFCRYPTO caps spinCount at 10,000,000; zero would skip key stretching, so we refuse it. */
export const MIN_SPIN_COUNT = 1;
export const MAX_SPIN_COUNT = 10_000_000;
export const MAX_PASSWORD_UNITS = 255;

/** blockKey constants from MS-OFFCRYPTO 2.3.4.11 and 2.3.4.14. */
export const BLOCK_KEY_VERIFIER_INPUT = Buffer.from('fea7d2763b4b9e79', 'hex');
export const BLOCK_KEY_VERIFIER_VALUE = Buffer.from('d7aa0f6d3061344e', 'hex');
export const BLOCK_KEY_ENCRYPTED_KEY = Buffer.from('146e0be7abacd0d6', 'hex');
export const BLOCK_KEY_HMAC_KEY = Buffer.from('5fb2ad010cb9e1f6', 'hex');
export const BLOCK_KEY_HMAC_VALUE = Buffer.from('a0677f02b22c8433', 'hex');

const base64Pattern = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** A canonical base64 string that decodes to exactly `bytes` bytes (fixed lengths keep EncryptionInfo fixed-size). */
function base64OfLength(bytes: number) {
  return z
    .string()
    .regex(base64Pattern, { message: 'must be base64' })
    .refine((value) => Buffer.from(value, 'base64').length === bytes, {
      message: `must decode to exactly ${bytes} bytes`,
    });
}

/**
 * Everything needed to write the EncryptionInfo stream except encryptedHmacValue (which depends
 * on the data). Field names follow the XML attributes of MS-OFFCRYPTO 2.3.4.10. Nothing here
 * reveals the password or the package key: the key is only present encrypted under the
 * password-derived key, exactly as in the finished file.
 */
export const encryptionParamsSchema = z
  .object({
    /** keyData/@saltValue: salt of the package key; seeds the per-segment IVs. */
    keyDataSalt: base64OfLength(SALT_BYTES),
    /** dataIntegrity/@encryptedHmacKey: random HMAC key encrypted with the package key. */
    encryptedHmacKey: base64OfLength(HASH_BYTES),
    spinCount: z.number().int().min(MIN_SPIN_COUNT).max(MAX_SPIN_COUNT),
    /** p:encryptedKey/@saltValue: salt of the password hash. */
    passwordSalt: base64OfLength(SALT_BYTES),
    encryptedVerifierHashInput: base64OfLength(SALT_BYTES),
    encryptedVerifierHashValue: base64OfLength(HASH_BYTES),
    encryptedKeyValue: base64OfLength(KEY_BYTES),
  })
  .strict();

export type EncryptionParams = z.infer<typeof encryptionParamsSchema>;

export interface DerivedEncryptionKeys {
  params: EncryptionParams;
  /** The 32-byte "secret key" that encrypts the package. Wrap it (KMS) before it travels. */
  packageKey: Buffer;
}

export interface DeriveEncryptionKeysOptions {
  spinCount?: number;
}

/** Parses params from an untrusted edge (queue message, table item) with a field-naming error. */
export function parseEncryptionParams(value: unknown): EncryptionParams {
  const result = encryptionParamsSchema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0];
    const field = issue && issue.path.length > 0 ? `params.${issue.path.join('.')}` : 'params';
    throw new EncryptionInputError(field, issue?.code ?? 'invalid', `${field} ${issue?.message ?? 'is invalid'}`);
  }
  return result.data;
}

export function validatePassword(password: unknown): asserts password is string {
  if (typeof password !== 'string') {
    throw new EncryptionInputError('password', 'type', 'password must be a string');
  }
  // MS-OFFCRYPTO limits the password to 255 UTF-16 code units; String#length counts exactly those.
  if (password.length < 1 || password.length > MAX_PASSWORD_UNITS) {
    throw new EncryptionInputError(
      'password',
      'length',
      `password must be 1..${MAX_PASSWORD_UNITS} UTF-16 code units long (got ${password.length})`,
    );
  }
}

function validateSpinCount(spinCount: unknown): asserts spinCount is number {
  if (
    typeof spinCount !== 'number' ||
    !Number.isInteger(spinCount) ||
    spinCount < MIN_SPIN_COUNT ||
    spinCount > MAX_SPIN_COUNT
  ) {
    throw new EncryptionInputError(
      'spinCount',
      'range',
      `spinCount must be an integer in ${MIN_SPIN_COUNT}..${MAX_SPIN_COUNT}`,
    );
  }
}

/** How many hash iterations run between event-loop yields, so a derivation never blocks for long. */
const ITERATIONS_PER_SLICE = 20_000;

/**
 * H_n of MS-OFFCRYPTO 2.3.4.11: H0 = SHA512(salt || password UTF-16LE), Hi = SHA512(i LE32 || Hi-1).
 * One 68-byte buffer is reused for every round and the one-shot `crypto.hash` avoids a Hash
 * object per round: 100,000 rounds take ~110 ms here instead of ~140 ms with createHash.
 */
export async function hashPassword(password: string, salt: Buffer, spinCount: number): Promise<Buffer> {
  // Buffer.alloc, not Buffer.from: small Buffer.from/concat results are slices of Node's shared
  // 8 KiB pool, which outlives this call (a warm Lambda keeps it) and is never wiped, so a copy
  // there would keep the password in memory after the fill below. The hash is fed in two parts
  // for the same reason: no joined copy of salt and password.
  const passwordBytes = Buffer.alloc(password.length * 2);
  passwordBytes.write(password, 'utf16le');
  const round = Buffer.alloc(4 + HASH_BYTES);
  const h0 = createHash('sha512').update(salt).update(passwordBytes).digest();
  h0.copy(round, 4);
  h0.fill(0);
  passwordBytes.fill(0);
  for (let i = 0; i < spinCount; i += 1) {
    round.writeUInt32LE(i, 0);
    hash('sha512', round, 'buffer').copy(round, 4);
    if ((i + 1) % ITERATIONS_PER_SLICE === 0 && i + 1 < spinCount) await yieldToEventLoop();
  }
  const result = Buffer.from(round.subarray(4));
  round.fill(0);
  return result;
}

/** Final key for one blockKey: first keyBits/8 bytes of SHA512(H_n || blockKey) (SHA-512 output is long enough). */
export function deriveBlockKey(passwordHash: Buffer, blockKey: Buffer): Buffer {
  // Fed in parts: a joined copy of H_n (which with the stored salts opens the file) would land in
  // the shared buffer pool and stay there.
  return createHash('sha512').update(passwordHash).update(blockKey).digest().subarray(0, KEY_BYTES);
}

/** IV for data-integrity and segment encryption: first blockSize bytes of SHA512(keyData salt || blockKey). */
export function deriveIv(keyDataSalt: Buffer, blockKey: Buffer): Buffer {
  return hash('sha512', Buffer.concat([keyDataSalt, blockKey]), 'buffer').subarray(0, BLOCK_BYTES);
}

/** AES-256-CBC without padding: every value we encrypt is already a multiple of the block size. */
export function encryptAesCbc(key: Buffer, iv: Buffer, data: Buffer): Buffer {
  const cipher = createCipheriv('aes-256-cbc', key, iv);
  cipher.setAutoPadding(false);
  return Buffer.concat([cipher.update(data), cipher.final()]);
}

export function decryptAesCbc(key: Buffer, iv: Buffer, data: Buffer): Buffer {
  const decipher = createDecipheriv('aes-256-cbc', key, iv);
  decipher.setAutoPadding(false);
  return Buffer.concat([decipher.update(data), decipher.final()]);
}

/**
 * Derives a fresh package key and the EncryptionInfo parameters for `password` (which let a
 * password guess be tested: keep them sealed until they are written into the file).
 * Every call draws new salts and a new package key, so two exports never share a key.
 */
export async function deriveEncryptionKeys(
  password: string,
  opts: DeriveEncryptionKeysOptions = {},
): Promise<DerivedEncryptionKeys> {
  validatePassword(password);
  const spinCount = opts.spinCount ?? DEFAULT_SPIN_COUNT;
  validateSpinCount(spinCount);

  const passwordSalt = randomBytes(SALT_BYTES);
  const keyDataSalt = randomBytes(SALT_BYTES);
  const packageKey = randomBytes(KEY_BYTES);
  const hmacKey = randomBytes(HASH_BYTES);
  const verifierHashInput = randomBytes(SALT_BYTES);

  const passwordHash = await hashPassword(password, passwordSalt, spinCount);
  // The password key encryptor uses its own salt as IV (blockSize = saltSize = 16).
  const blockKeys = [BLOCK_KEY_VERIFIER_INPUT, BLOCK_KEY_VERIFIER_VALUE, BLOCK_KEY_ENCRYPTED_KEY].map((b) => deriveBlockKey(passwordHash, b));
  passwordHash.fill(0);
  const [inputKey, valueKey, keyKey] = blockKeys as [Buffer, Buffer, Buffer];
  const encryptedVerifierHashInput = encryptAesCbc(inputKey, passwordSalt, verifierHashInput);
  const encryptedVerifierHashValue = encryptAesCbc(valueKey, passwordSalt, hash('sha512', verifierHashInput, 'buffer'));
  const encryptedKeyValue = encryptAesCbc(keyKey, passwordSalt, packageKey);
  const encryptedHmacKey = encryptAesCbc(packageKey, deriveIv(keyDataSalt, BLOCK_KEY_HMAC_KEY), hmacKey);
  // Each of these opens the file with the stored salts as the password does: wiped, not left
  // to the garbage collector.
  for (const key of blockKeys) key.fill(0);
  hmacKey.fill(0);

  return {
    params: {
      keyDataSalt: keyDataSalt.toString('base64'),
      encryptedHmacKey: encryptedHmacKey.toString('base64'),
      spinCount,
      passwordSalt: passwordSalt.toString('base64'),
      encryptedVerifierHashInput: encryptedVerifierHashInput.toString('base64'),
      encryptedVerifierHashValue: encryptedVerifierHashValue.toString('base64'),
      encryptedKeyValue: encryptedKeyValue.toString('base64'),
    },
    packageKey,
  };
}
