import { SendMessageBatchCommand, SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { MessageQueue, QueueName, SendOptions } from '../../ports/message-queue';

export class SqsMessageQueue implements MessageQueue {
  constructor(
    private readonly sqs: SQSClient,
    private readonly urls: Record<QueueName, string>,
  ) {}

  async send(queue: QueueName, body: unknown, options: SendOptions = {}): Promise<void> {
    await this.sqs.send(
      new SendMessageCommand({
        QueueUrl: this.urls[queue],
        MessageBody: JSON.stringify(body),
        ...(options.delaySeconds !== undefined ? { DelaySeconds: options.delaySeconds } : {}),
      }),
    );
  }

  async sendMany(queue: QueueName, bodies: readonly unknown[]): Promise<void> {
    const batches: unknown[][] = [];
    for (let i = 0; i < bodies.length; i += 10) batches.push(bodies.slice(i, i + 10));
    // A few batches in flight: planning thousands of chunks should not take thousands of round trips in series.
    const inFlight = 8;
    for (let i = 0; i < batches.length; i += inFlight) {
      await Promise.all(
        batches.slice(i, i + inFlight).map(async (batch) => {
          const result = await this.sqs.send(
            new SendMessageBatchCommand({
              QueueUrl: this.urls[queue],
              Entries: batch.map((body, index) => ({ Id: String(index), MessageBody: JSON.stringify(body) })),
            }),
          );
          if (result.Failed && result.Failed.length > 0) {
            const first = result.Failed[0];
            throw new Error(`SQS batch send to ${queue} failed for ${result.Failed.length} entries: ${first?.Code ?? ''}`);
          }
        }),
      );
    }
  }
}
