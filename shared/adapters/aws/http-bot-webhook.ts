import type { BotWebhook } from '../../ports/bot-webhook';

/** fetch-based webhook client; the timeout keeps a hanging bot from eating the Lambda's time. */
export class HttpBotWebhook implements BotWebhook {
  constructor(
    private readonly url: string,
    private readonly timeoutMs = 10_000,
  ) {}

  async post(body: string, headers: Record<string, string>): Promise<{ status: number }> {
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
    await response.arrayBuffer().catch(() => undefined);
    return { status: response.status };
  }
}
