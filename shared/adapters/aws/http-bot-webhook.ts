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
    });
    await response.arrayBuffer().catch(() => undefined);
    return { status: response.status };
  }
}
