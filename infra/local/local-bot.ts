import { createHmac, timingSafeEqual } from 'node:crypto';

export type InboxMessage = {
  receivedAt: string;
  /** Whether X-Signature matched HMAC-SHA256(BOT_SIGNING_SECRET, body): the bot would reject it otherwise. */
  signatureValid: boolean;
  timestamp: string | undefined;
  body: unknown;
};

/**
 * The local notification bot: the notifier's webhook target in the local stack. It verifies
 * the signature the way a real bot would and keeps every message so a developer (GET
 * /v1/dev/inbox) or a test can follow the link.
 */
export class LocalBot {
  readonly messages: InboxMessage[] = [];
  /** Status to answer with; tests set it to 500 to exercise the notifier's retries. */
  failWith: number | undefined;

  constructor(private readonly secret: string) {}

  receive(rawBody: string, headers: Record<string, string | string[] | undefined>): number {
    if (this.failWith) return this.failWith;
    const header = String(headers['x-signature'] ?? '');
    const expected = `sha256=${createHmac('sha256', this.secret).update(rawBody).digest('hex')}`;
    const signatureValid = header.length === expected.length && timingSafeEqual(Buffer.from(header), Buffer.from(expected));
    let body: unknown = rawBody;
    try {
      body = JSON.parse(rawBody);
    } catch {
      // keep the raw text: the inbox shows what arrived
    }
    const timestamp = headers['x-timestamp'];
    if (this.messages.length >= 1000) this.messages.shift(); // the inbox keeps the latest 1,000
    this.messages.push({
      receivedAt: new Date().toISOString(),
      signatureValid,
      timestamp: Array.isArray(timestamp) ? timestamp[0] : timestamp,
      body,
    });
    return signatureValid ? 200 : 401;
  }
}
