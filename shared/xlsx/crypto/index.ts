/**
 * Streaming ECMA-376 agile encryption in a streaming compound file.
 *
 *   const { params, packageKey } = await deriveEncryptionKeys(password);   // where the password is
 *   const sink = createEncryptingSink({ params, packageKey, packageSize, out });
 *   for await (const chunk of zipPackage) await sink.write(chunk);
 *   await sink.finish();                                                   // then end `out`
 *
 * `encryptedFileSize(packageSize)` is the exact number of bytes the sink writes.
 */
export {
  DEFAULT_SPIN_COUNT,
  MAX_PASSWORD_UNITS,
  MAX_SPIN_COUNT,
  MIN_SPIN_COUNT,
  deriveEncryptionKeys,
  encryptionParamsSchema,
  parseEncryptionParams,
  type DeriveEncryptionKeysOptions,
  type DerivedEncryptionKeys,
  type EncryptionParams,
} from './agile-keys';
export {
  MAX_PACKAGE_SIZE,
  createEncryptingSink,
  encryptedFileSize,
  planEncryptedFile,
  type EncryptedLayoutOptions,
  type EncryptingSink,
  type EncryptingSinkOptions,
} from './encrypting-sink';
export { ENCRYPTION_INFO_SIZE, buildEncryptionInfo } from './encryption-info';
export { SEGMENT_BYTES } from './segment-encryptor';
export type { CfbPlan, CfbVersion } from './cfb-layout';
export { EncryptionInputError, EncryptionStreamError } from './errors';
