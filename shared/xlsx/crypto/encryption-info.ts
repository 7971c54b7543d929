/**
 * The EncryptionInfo stream of agile encryption (MS-OFFCRYPTO 2.3.4.10): version 4.4,
 * flags 0x40, then the `<encryption>` XML.
 *
 * Its length is a constant: every base64 field decodes to a fixed number of bytes and the one
 * variable number, spinCount, is followed by spaces up to its widest form (8 digits). The
 * compound-file layout is computed before the first byte is written, so EncryptionInfo (which
 * is only complete once the HMAC of the whole package is known) must not change size.
 */
import type { EncryptionParams } from './agile-keys';
import { HASH_BYTES, MAX_SPIN_COUNT } from './agile-keys';

const XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\r\n';
const NS_ENCRYPTION = 'http://schemas.microsoft.com/office/2006/encryption';
const NS_PASSWORD = 'http://schemas.microsoft.com/office/2006/keyEncryptor/password';
const NS_CERTIFICATE = 'http://schemas.microsoft.com/office/2006/keyEncryptor/certificate';
const CIPHER_ATTRIBUTES =
  'saltSize="16" blockSize="16" keyBits="256" hashSize="64" cipherAlgorithm="AES" ' +
  'cipherChaining="ChainingModeCBC" hashAlgorithm="SHA512"';
const SPIN_COUNT_WIDTH = String(MAX_SPIN_COUNT).length;
/** Version 4.4 = agile; flags 0x40 = fAgile (MS-OFFCRYPTO 2.3.4.10). */
const VERSION_AND_FLAGS = Buffer.from([0x04, 0x00, 0x04, 0x00, 0x40, 0x00, 0x00, 0x00]);

function encryptionXml(params: EncryptionParams, encryptedHmacValue: string): string {
  const spinCount = String(params.spinCount);
  // XML allows any whitespace between attributes; padding keeps the stream length constant.
  const spinPadding = ' '.repeat(Math.max(0, SPIN_COUNT_WIDTH - spinCount.length));
  return (
    XML_DECLARATION +
    `<encryption xmlns="${NS_ENCRYPTION}" xmlns:p="${NS_PASSWORD}" xmlns:c="${NS_CERTIFICATE}">` +
    `<keyData ${CIPHER_ATTRIBUTES} saltValue="${params.keyDataSalt}"/>` +
    `<dataIntegrity encryptedHmacKey="${params.encryptedHmacKey}" encryptedHmacValue="${encryptedHmacValue}"/>` +
    '<keyEncryptors>' +
    `<keyEncryptor uri="${NS_PASSWORD}">` +
    `<p:encryptedKey spinCount="${spinCount}"${spinPadding} ${CIPHER_ATTRIBUTES} saltValue="${params.passwordSalt}"` +
    ` encryptedVerifierHashInput="${params.encryptedVerifierHashInput}"` +
    ` encryptedVerifierHashValue="${params.encryptedVerifierHashValue}"` +
    ` encryptedKeyValue="${params.encryptedKeyValue}"/>` +
    '</keyEncryptor>' +
    '</keyEncryptors>' +
    '</encryption>'
  );
}

/** Builds the stream; `encryptedHmacValue` is the 64-byte HMAC already encrypted with the package key. */
export function buildEncryptionInfo(params: EncryptionParams, encryptedHmacValue: Buffer): Buffer {
  if (encryptedHmacValue.length !== HASH_BYTES) {
    throw new RangeError(`encryptedHmacValue must be ${HASH_BYTES} bytes`);
  }
  const xml = Buffer.from(encryptionXml(params, encryptedHmacValue.toString('base64')), 'utf8');
  return Buffer.concat([VERSION_AND_FLAGS, xml]);
}

const SAMPLE_PARAMS: EncryptionParams = {
  keyDataSalt: Buffer.alloc(16).toString('base64'),
  encryptedHmacKey: Buffer.alloc(64).toString('base64'),
  spinCount: MAX_SPIN_COUNT,
  passwordSalt: Buffer.alloc(16).toString('base64'),
  encryptedVerifierHashInput: Buffer.alloc(16).toString('base64'),
  encryptedVerifierHashValue: Buffer.alloc(64).toString('base64'),
  encryptedKeyValue: Buffer.alloc(32).toString('base64'),
};

/** Byte length of every EncryptionInfo stream we write (the same for all valid params). */
export const ENCRYPTION_INFO_SIZE = buildEncryptionInfo(SAMPLE_PARAMS, Buffer.alloc(HASH_BYTES)).length;
