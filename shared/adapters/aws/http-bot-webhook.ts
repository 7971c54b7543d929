import { BOT_POST_TIMEOUT_MS } from '../../config';
import type { BotAnswer, BotWebhook } from '../../ports/bot-webhook';

/** fetch-based webhook client; the timeout keeps a hanging bot from eating the Lambda's time. */
export class HttpBotWebhook implements BotWebhook {
  constructor(
    private readonly url: string,
    private readonly timeoutMs = BOT_POST_TIMEOUT_MS,
  ) {}

  /**
   * The status and, when present, the Retry-After header (a 429 or 503 says when to come back;
   * the notifier hands it to the SQS retry delay). The body is never read, only cancelled: a
   * bot may echo the signed event, link included, and one that streams an endless answer must
   * not fill the notifier's memory (reading it all did, until the timeout).
   */
  async post(body: string, headers: Record<string, string>): Promise<BotAnswer> {
    const response = await fetch(this.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body,
      signal: AbortSignal.timeout(this.timeoutMs),
      // Never follow: a 301/302 turns the POST into an empty GET whose 200 would count as
      // delivered, and a 307/308 would re-post the signed body, link included, wherever the
      // Location points. A 3xx is returned as it is, and the caller treats it as a failure.
      redirect: 'manual',
    });
    await response.body?.cancel().catch(() => undefined);
    const retryAfter = response.headers.get('retry-after');
    return retryAfter === null ? { status: response.status } : { status: response.status, retryAfter };
  }
}
