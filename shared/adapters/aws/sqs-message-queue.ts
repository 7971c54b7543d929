import { SendMessageBatchCommand, SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { MessageQueue, QueueName, SendOptions } from '../../ports/message-queue';

/**
 * The message body: JSON with every character past U+007E written as a \uXXXX escape, so the body
 * is plain ASCII. SQS refuses bodies holding characters outside XML's set (lone surrogates, U+FFFE,
 * control characters) and the local queue emulator refuses every character past U+FFFF (its check
 * reads UTF-16 halves): a user id such as "😀" passed validation, then failed to dispatch with a
 * 500. JSON.parse reads the escapes back to the same string. Cost: 6 bytes instead of 1-3 for such
 * characters; the largest message (100 inline ids of at most 128 UTF-16 units) stays under 80 KB of
 * the 256 KB limit.
 */
export function queueMessageBody(body: unknown): string {
  return JSON.stringify(body).replace(/[\u007f-\uffff]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

export class SqsMessageQueue implements MessageQueue {
  constructor(
    private readonly sqs: SQSClient,
    private readonly urls: Record<QueueName, string>,
  ) {}

  async send(queue: QueueName, body: unknown, options: SendOptions = {}): Promise<void> {
    await this.sqs.send(
      new SendMessageCommand({
        QueueUrl: this.urls[queue],
        MessageBody: queueMessageBody(body),
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
              Entries: batch.map((body, index) => ({ Id: String(index), MessageBody: queueMessageBody(body) })),
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
