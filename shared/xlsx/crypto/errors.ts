/**
 * Errors of the encryption layer. They name the field and the rule that failed and never carry
 * a password, a key or any other secret: messages end up in logs and API responses.
 */
export class EncryptionInputError extends Error {
  override readonly name = 'EncryptionInputError';
  readonly field: string;
  readonly rule: string;

  constructor(field: string, rule: string, message: string) {
    super(message);
    this.field = field;
    this.rule = rule;
  }
}

/** The encrypting sink was misused (wrong byte count, used after finish) or its output failed. */
export class EncryptionStreamError extends Error {
  override readonly name = 'EncryptionStreamError';

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
