import { DeleteMessageBatchCommand, ReceiveMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { createLambdaContext } from './lambda-context';

export type SqsHandler = (event: SQSEvent, context: Context) => Promise<SQSBatchResponse | void>;

export type PollerOptions = {
  sqs: SQSClient;
  queueUrl: string;
  queueArn: string;
  functionName: string;
  /** Loaded lazily so the handler module reads its configuration after the stack set the env. */
  loadHandler: () => Promise<SqsHandler>;
  batchSize?: number;
  /** Concurrent "Lambda instances" for this queue. */
  concurrency?: number;
  onError?: (error: unknown) => void;
  /** Every record handed to the handler, before it runs (tests count deliveries). */
  onDeliver?: (record: SQSRecord) => void;
};

export type Poller = { stop(): Promise<void>; deliveries: number };

/**
 * The part of Lambda's SQS event source mapping the local stack needs: long-poll the queue,
 * hand the batch to the same handler as a real SQSEvent, delete only the records that did not
 * appear in batchItemFailures (all of them stay when the handler throws). Failed records
 * reappear after the queue's visibility timeout, and SQS itself (fauxqs, which counts
 * receives) moves a record to the DLQ once maxReceiveCount is exceeded.
 */
export function startPoller(options: PollerOptions): Poller {
  let running = true;
  const state = { deliveries: 0 };
  const region = options.queueArn.split(':')[3] ?? 'us-east-1';

  async function loop(): Promise<void> {
    let handler: SqsHandler;
    try {
      handler = await options.loadHandler();
    } catch (error) {
      // A handler that cannot load leaves its queue unpolled; the messages wait, as with a broken deploy.
      options.onError?.(error);
      return;
    }
    while (running) {
      try {
        const received = await options.sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: options.queueUrl,
            MaxNumberOfMessages: options.batchSize ?? 10,
            // Short waits keep stop() quick; the emulator answers as soon as a message arrives.
            WaitTimeSeconds: 1,
            MessageSystemAttributeNames: ['All'],
            MessageAttributeNames: ['All'],
          }),
        );
        const messages = received.Messages ?? [];
        if (messages.length === 0 || !running) continue;
        const records: SQSRecord[] = messages.map((m) => ({
          messageId: m.MessageId ?? '',
          receiptHandle: m.ReceiptHandle ?? '',
          body: m.Body ?? '',
          attributes: {
            ApproximateReceiveCount: m.Attributes?.ApproximateReceiveCount ?? '1',
            SentTimestamp: m.Attributes?.SentTimestamp ?? String(Date.now()),
            SenderId: m.Attributes?.SenderId ?? '000000000000',
            ApproximateFirstReceiveTimestamp: m.Attributes?.ApproximateFirstReceiveTimestamp ?? String(Date.now()),
          },
          messageAttributes: {},
          md5OfBody: m.MD5OfBody ?? '',
          eventSource: 'aws:sqs',
          eventSourceARN: options.queueArn,
          awsRegion: region,
        }));
        for (const record of records) {
          state.deliveries++;
          options.onDeliver?.(record);
        }
        let failed: Set<string>;
        try {
          const response = await handler({ Records: records }, createLambdaContext(options.functionName));
          failed = new Set((response?.batchItemFailures ?? []).map((f) => f.itemIdentifier));
        } catch (error) {
          options.onError?.(error);
          failed = new Set(records.map((r) => r.messageId));
        }
        const succeeded = records.filter((r) => !failed.has(r.messageId));
        if (succeeded.length > 0) {
          await options.sqs.send(
            new DeleteMessageBatchCommand({
              QueueUrl: options.queueUrl,
              Entries: succeeded.map((r, i) => ({ Id: String(i), ReceiptHandle: r.receiptHandle })),
            }),
          );
        }
      } catch (error) {
        if (!running) break;
        options.onError?.(error);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  }

  const loops = Array.from({ length: options.concurrency ?? 1 }, () => loop());
  return {
    get deliveries() {
      return state.deliveries;
    },
    async stop() {
      running = false;
      await Promise.allSettled(loops);
    },
  };
}
