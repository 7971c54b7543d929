import { timingSafeEqual } from 'node:crypto';
import { signDelivery } from '../../shared/app/notify-export';

export type InboxMessage = {
  receivedAt: string;
  /** Always true: only deliveries whose X-Signature matched HMAC-SHA256(BOT_SIGNING_SECRET, `<X-Timestamp>.<body>`) are kept. */
  signatureValid: boolean;
  timestamp: string | undefined;
  body: unknown;
};

/** How far X-Timestamp may be from now: older (or future) deliveries are refused as replays. */
export const BOT_TIMESTAMP_TOLERANCE_SECONDS = 300;

/**
 * The local notification bot: the notifier's webhook target in the local stack. It checks a
 * delivery the way a real bot should (the signature over X-Timestamp and the exact body, and
 * that signed timestamp fresh, against replays) and keeps the accepted ones so a developer (GET /v1/dev/inbox)
 * or a test can follow the link. A refused delivery is counted, never kept: the inbox must not
 * show a forged "export ready" message with someone else's link.
 */
export class LocalBot {
  readonly messages: InboxMessage[] = [];
  /** Deliveries refused for a bad signature or a stale timestamp. */
  refused = 0;
  /** Status to answer with; tests set it to 500 to exercise the notifier's retries. */
  failWith: number | undefined;

  constructor(
    private readonly secret: string,
    private readonly now: () => number = Date.now,
  ) {}

  receive(rawBody: string, headers: Record<string, string | string[] | undefined>): number {
    if (this.failWith) return this.failWith;
    const timestamp = headers['x-timestamp'];
    const timestampText = String((Array.isArray(timestamp) ? timestamp[0] : timestamp) ?? '');
    const given = Buffer.from(String(headers['x-signature'] ?? ''), 'utf8');
    // The timestamp is inside the signed text: a replay with a fresh X-Timestamp fails here.
    const expected = Buffer.from(signDelivery(timestampText, rawBody, this.secret), 'utf8');
    // Byte lengths, not string lengths: timingSafeEqual throws on buffers of different sizes.
    const signatureValid = given.length === expected.length && timingSafeEqual(given, expected);
    const sentAt = /^\d{1,15}$/.test(timestampText) ? Number(timestampText) : Number.NaN;
    const fresh = Number.isFinite(sentAt) && Math.abs(this.now() / 1000 - sentAt) <= BOT_TIMESTAMP_TOLERANCE_SECONDS;
    if (!signatureValid || !fresh) {
      this.refused++;
      return 401;
    }
    let body: unknown = rawBody;
    try {
      body = JSON.parse(rawBody);
    } catch {
      // keep the raw text: the inbox shows what arrived
    }
    if (this.messages.length >= 1000) this.messages.shift(); // the inbox keeps the latest 1,000
    this.messages.push({
      receivedAt: new Date().toISOString(),
      signatureValid,
      timestamp: Array.isArray(timestamp) ? timestamp[0] : timestamp,
      body,
    });
    return 200;
  }
}
