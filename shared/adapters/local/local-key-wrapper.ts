import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { KeyWrapper } from '../../ports/key-wrapper';

/**
 * The local stack's stand-in for KMS: AES-256-GCM under LOCAL_WRAP_KEY with the exportId as
 * additional authenticated data, so a wrapped key only unwraps for its own export (as with a
 * KMS encryption context). Format: base64(iv 12 | tag 16 | ciphertext).
 */
export class LocalKeyWrapper implements KeyWrapper {
  private readonly key: Buffer;

  constructor(keyBase64: string) {
    this.key = Buffer.from(keyBase64, 'base64');
    if (this.key.length !== 32) throw new Error('LOCAL_WRAP_KEY must be base64 of 32 bytes');
  }

  async wrap(plainKey: Buffer, context: { exportId: string }): Promise<string> {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(Buffer.from(context.exportId, 'utf8'));
    const ciphertext = Buffer.concat([cipher.update(plainKey), cipher.final()]);
    return Buffer.concat([iv, cipher.getAuthTag(), ciphertext]).toString('base64');
  }

  async unwrap(wrapped: string, context: { exportId: string }): Promise<Buffer> {
    const bytes = Buffer.from(wrapped, 'base64');
    if (bytes.length < 29) throw new Error('wrapped key is too short');
    const decipher = createDecipheriv('aes-256-gcm', this.key, bytes.subarray(0, 12));
    decipher.setAAD(Buffer.from(context.exportId, 'utf8'));
    decipher.setAuthTag(bytes.subarray(12, 28));
    return Buffer.concat([decipher.update(bytes.subarray(28)), decipher.final()]);
  }
}
