/** Outbound HTTP to the notification bot; the adapter signs and the notifier retries. */
export interface BotWebhook {
  post(body: string, headers: Record<string, string>): Promise<{ status: number }>;
}
