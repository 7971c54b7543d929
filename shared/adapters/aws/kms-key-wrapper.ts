import { DecryptCommand, EncryptCommand, type KMSClient } from '@aws-sdk/client-kms';
import type { KeyWrapper } from '../../ports/key-wrapper';

/** Wraps package keys with a KMS key; the exportId is the encryption context, binding the key to its job. */
export class KmsKeyWrapper implements KeyWrapper {
  constructor(
    private readonly kms: KMSClient,
    private readonly keyId: string,
  ) {}

  async wrap(plainKey: Buffer, context: { exportId: string }): Promise<string> {
    const result = await this.kms.send(
      new EncryptCommand({ KeyId: this.keyId, Plaintext: plainKey, EncryptionContext: { exportId: context.exportId } }),
    );
    if (!result.CiphertextBlob) throw new Error('KMS returned no ciphertext');
    return Buffer.from(result.CiphertextBlob).toString('base64');
  }

  async unwrap(wrapped: string, context: { exportId: string }): Promise<Buffer> {
    const result = await this.kms.send(
      new DecryptCommand({
        KeyId: this.keyId,
        CiphertextBlob: Buffer.from(wrapped, 'base64'),
        EncryptionContext: { exportId: context.exportId },
      }),
    );
    if (!result.Plaintext) throw new Error('KMS returned no plaintext');
    // A copy the caller wipes after use; the SDK's own array is wiped here, so the key does not
    // linger in the warm container's heap until the next GC reuses the memory.
    const key = Buffer.from(result.Plaintext);
    result.Plaintext.fill(0);
    return key;
  }
}
