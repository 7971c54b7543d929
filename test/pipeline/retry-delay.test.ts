import { describe, expect, it } from 'vitest';
import { ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import type { Context, SQSEvent } from 'aws-lambda';
import type { LocalStack } from '../../infra/local/stack';
import { useLocalStack } from './helpers';
import { createSqsHandler, queueUrlForArn, retryDelaySeconds } from '../../shared/adapters/aws/sqs-handler';

describe('retry delay of failed SQS records', () => {
  it('doubles per receive from the base and is capped at 15 minutes', () => {
    expect([1, 2, 3, 4].map((n) => retryDelaySeconds(n, 30))).toEqual([30, 60, 120, 240]);
    expect(retryDelaySeconds(20, 30)).toBe(900);
    expect(retryDelaySeconds(0, 30)).toBe(30);
  });

  it('finds the source queue by name, and none for a queue it does not own (a DLQ)', () => {
    const config = {
      CHUNK_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/123456789012/svc-chunk',
      FINALIZE_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/123456789012/svc-finalize',
      NOTIFY_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/123456789012/svc-notify',
    };
    expect(queueUrlForArn('arn:aws:sqs:eu-west-1:123456789012:svc-finalize', config)).toBe(config.FINALIZE_QUEUE_URL);
    expect(queueUrlForArn('arn:aws:sqs:eu-west-1:123456789012:svc-chunk-dlq', config)).toBeUndefined();
  });
});

describe('a failed record comes back after the retry delay, not the visibility timeout (fauxqs)', () => {
  let stack: LocalStack;

  useLocalStack(
    {
      port: 0,
      seed: false,
      pollers: false,
      env: { POWERTOOLS_LOG_LEVEL: 'CRITICAL', POWERTOOLS_METRICS_DISABLED: 'true', RETRY_BASE_SECONDS: '1' },
      queues: { chunk: { visibilityTimeout: 120 } },
    },
    (started) => (stack = started),
  );

  it('shortens the visibility of the failed record only', async () => {
    const { sqs } = stack.clients;
    const url = stack.queues.chunk.url;
    await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: JSON.stringify({ n: 1 }) }));
    const received = await sqs.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 1, WaitTimeSeconds: 5, MessageSystemAttributeNames: ['All'] }));
    const message = received.Messages?.[0];
    expect(message).toBeDefined();
    const event: SQSEvent = {
      Records: [
        {
          messageId: message!.MessageId!,
          receiptHandle: message!.ReceiptHandle!,
          body: message!.Body!,
          attributes: { ApproximateReceiveCount: '1', SentTimestamp: '0', SenderId: 'test', ApproximateFirstReceiveTimestamp: '0' },
          messageAttributes: {},
          md5OfBody: message!.MD5OfBody ?? '',
          eventSource: 'aws:sqs',
          eventSourceARN: stack.queues.chunk.arn,
          awsRegion: 'us-east-1',
        },
      ],
    };
    const handler = createSqsHandler('test', async () => {
      throw new Error('transient');
    });
    const response = await handler(event, {} as Context);
    expect(response.batchItemFailures).toEqual([{ itemIdentifier: message!.MessageId }]);
    // Visible again within seconds (retry delay 1 s), although the queue's visibility timeout is 120 s.
    const again = await sqs.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 1, WaitTimeSeconds: 10 }));
    expect(again.Messages?.[0]?.MessageId).toBe(message!.MessageId);
  });
});
