/**
 * Wraps the workbook's package key for storage on the job (KMS on AWS, a local AES-256-GCM
 * key in the local stack). The password itself is never wrapped or stored anywhere.
 */
export interface KeyWrapper {
  /** Returns base64 text safe to store in a table item. */
  wrap(plainKey: Buffer, context: { exportId: string }): Promise<string>;
  /** Fails when the context differs from the one used to wrap (the key is bound to its export). */
  unwrap(wrapped: string, context: { exportId: string }): Promise<Buffer>;
}
