/**
 * The bot's answer as the notifier reads it: the status, and the raw Retry-After header when the
 * bot sent one. Never the body: a bot may echo what it was sent, link included, and nothing
 * records or logs it.
 */
export type BotAnswer = { status: number; retryAfter?: string | undefined };

/** Outbound HTTP to the notification bot; the adapter signs and the notifier retries. */
export interface BotWebhook {
  post(body: string, headers: Record<string, string>): Promise<BotAnswer>;
}
