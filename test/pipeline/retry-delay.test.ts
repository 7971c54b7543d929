import { describe, expect, it, vi } from 'vitest';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { ConfigError, resetConfig, type Config } from '../../shared/config';
import { CONFIG_ERRORS_METRIC, RECORD_FAILURES_METRIC } from '../../shared/metric-names';
import { checkNotifierConfig, logger, metrics } from '../../shared/adapters/aws/pipeline-deps';
import { ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import type { Context, SQSEvent, SQSRecord } from 'aws-lambda';
import type { LocalStack } from '../../infra/local/stack';
import { useLocalStack } from './helpers';
import { createSqsHandler, exportIdOf, holderLeaseOf, messageTypeOf, parseReceiveLimits, queueUrlForArn, retryAfterOf, retryDelaySeconds, retryVisibilitySeconds, waitedOnHolder } from '../../shared/adapters/aws/sqs-handler';
import { CLAIM_LEASE_MS } from '../../shared/ports/export-store';
import { LeaseBusyError } from '../../shared/app/pipeline-steps';

describe('retry delay of failed SQS records', () => {
  it('doubles per receive from the base and is capped at 15 minutes', () => {
    expect([1, 2, 3, 4].map((n) => retryDelaySeconds(n, 30))).toEqual([30, 60, 120, 240]);
    expect(retryDelaySeconds(20, 30)).toBe(900);
    expect(retryDelaySeconds(0, 30)).toBe(30);
  });

  it("a record's export id and message type are read from any body, and only our own types become a metric dimension", () => {
    const of = (body: string) => ({ exportId: exportIdOf({ body }).exportId, type: messageTypeOf({ body }) });
    expect(of('{"type":"finalize","exportId":"e1","channelId":"c"}')).toEqual({ exportId: 'e1', type: 'finalize' });
    expect(of('{"type":"revoke","exportId":"e2"}')).toEqual({ exportId: 'e2', type: 'revoke' });
    // Whatever else a body says stays out of the dimension (its text could be anything).
    expect(of('{"type":"drop table","exportId":7}')).toEqual({ exportId: undefined, type: 'unreadable' });
    expect(of('{"type":"toString","exportId":""}')).toEqual({ exportId: undefined, type: 'unreadable' });
    expect(of('not json')).toEqual({ exportId: undefined, type: 'unreadable' });
    expect(of('null')).toEqual({ exportId: undefined, type: 'unreadable' });
    expect(of(JSON.stringify({ type: 'chunk', exportId: 'x'.repeat(201) }))).toEqual({ exportId: undefined, type: 'chunk' });
    expect(['chunk', 'finalize', 'notify', 'revoke', 'cancel'].map((type) => messageTypeOf({ body: JSON.stringify({ type }) }))).toEqual([
      'chunk',
      'finalize',
      'notify',
      'revoke',
      'cancel',
    ]);
  });

  it('the last receive gets no delay: nothing follows it but the DLQ', () => {
    const settings = { baseSeconds: 30, maxReceiveCount: 4 };
    // 30 + 60 + 120 = 210 s from the first failure to the dead letter with 4 receives (the
    // stack's 5 give 450 s, docs/deploy.md); before, the last receive added its backoff too.
    expect([1, 2, 3, 4].map((n) => retryVisibilitySeconds(n, settings))).toEqual([30, 60, 120, 0]);
    expect(retryVisibilitySeconds(5, settings)).toBe(0);
    expect(retryVisibilitySeconds(1, { baseSeconds: 30, maxReceiveCount: 1 })).toBe(0);
    // A delivery that only waited on the lease holder keeps the backoff on its last receive: the
    // holder gets that long to finish before the dead letter could fail its export.
    expect([1, 2, 3, 4].map((n) => retryVisibilitySeconds(n, { ...settings, waitingOnHolder: true }))).toEqual([30, 60, 120, 240]);
    expect(waitedOnHolder(new LeaseBusyError('e1', 'finalizeClaim'))).toBe(true);
    expect(holderLeaseOf(new LeaseBusyError('e1', 'finalizeClaim'))).toBe(CLAIM_LEASE_MS / 1000);
    expect(holderLeaseOf(new Error('DynamoDB throttled'))).toBeUndefined();
    expect(waitedOnHolder(new Error('DynamoDB throttled'))).toBe(false);
    expect(waitedOnHolder('LeaseBusyError')).toBe(false);
  });

  it('a delivery waiting on a lease holder is received the last time only after the lease lapsed, so a dead holder is taken over', () => {
    // Receives happen at the sums of the delays before them, each after a claim wait of up to
    // CLAIM_WAIT_MS. A holder that died keeps the lease CLAIM_LEASE_MS from its claim, which was
    // at or before the first receive: the last receive must come later than that.
    const lease = CLAIM_LEASE_MS / 1000;
    const lastReceiveAt = (baseSeconds: number, maxReceiveCount: number, holderLeaseSeconds?: number): number => {
      let at = 0;
      for (let n = 1; n < maxReceiveCount; n++) at += retryVisibilitySeconds(n, { baseSeconds, maxReceiveCount, waitingOnHolder: true, holderLeaseSeconds });
      return at;
    };
    // Before: the local stack's 1 s base (and anything under ~16 s) never outlived the lease.
    expect(lastReceiveAt(1, 4)).toBeLessThan(lease);
    for (const base of [1, 5, 15, 16, 30, 120]) {
      for (const max of [2, 3, 4, 6]) expect(lastReceiveAt(base, max, lease)).toBeGreaterThan(lease);
    }
    // Only the receive before the last waits that long: the others keep the short backoff.
    expect([1, 2, 3, 4].map((n) => retryVisibilitySeconds(n, { baseSeconds: 1, maxReceiveCount: 4, waitingOnHolder: true, holderLeaseSeconds: lease }))).toEqual([1, 2, lease + 1, 8]);
    expect([1, 2, 3, 4].map((n) => retryVisibilitySeconds(n, { baseSeconds: 30, maxReceiveCount: 4, waitingOnHolder: true, holderLeaseSeconds: lease }))).toEqual([30, 60, lease + 1, 240]);
    // Not for other failures.
    expect(retryVisibilitySeconds(3, { baseSeconds: 1, maxReceiveCount: 4, holderLeaseSeconds: lease })).toBe(4);
  });

  it('a delay the failure asks for (Retry-After) wins over a shorter backoff, up to 15 minutes, but not on the last receive', () => {
    const settings = { baseSeconds: 30, maxReceiveCount: 4 };
    expect(retryVisibilitySeconds(1, { ...settings, retryAfterSeconds: 120 })).toBe(120);
    expect(retryVisibilitySeconds(3, { ...settings, retryAfterSeconds: 10 })).toBe(120);
    expect(retryVisibilitySeconds(1, { ...settings, retryAfterSeconds: 1.2 })).toBe(30);
    expect(retryVisibilitySeconds(2, { ...settings, retryAfterSeconds: 100.2 })).toBe(101);
    expect(retryVisibilitySeconds(1, { ...settings, retryAfterSeconds: 86_400 })).toBe(900);
    expect(retryVisibilitySeconds(4, { ...settings, retryAfterSeconds: 600 })).toBe(0);
  });

  it('reads a requested delay only from a finite, non-negative retryAfterSeconds', () => {
    expect(retryAfterOf(Object.assign(new Error('x'), { retryAfterSeconds: 45 }))).toBe(45);
    expect(retryAfterOf(Object.assign(new Error('x'), { retryAfterSeconds: 0 }))).toBe(0);
    for (const value of [-1, Number.NaN, Number.POSITIVE_INFINITY, '45', undefined]) {
      expect(retryAfterOf(Object.assign(new Error('x'), { retryAfterSeconds: value })), String(value)).toBeUndefined();
    }
    expect(retryAfterOf('a string reason')).toBeUndefined();
    expect(retryAfterOf(null)).toBeUndefined();
  });

  it('the receive limits are required whole numbers of 1-1000, and a bad one is named', () => {
    const good = { CHUNK_MAX_RECEIVE_COUNT: '4', FINALIZE_MAX_RECEIVE_COUNT: '3', NOTIFY_MAX_RECEIVE_COUNT: '5' };
    expect(parseReceiveLimits(good)).toEqual({ chunk: 4, finalize: 3, notify: 5 });
    expect(() => parseReceiveLimits({ ...good, NOTIFY_MAX_RECEIVE_COUNT: undefined })).toThrow(/NOTIFY_MAX_RECEIVE_COUNT/);
    // Not coerced: an empty variable must not quietly become 0 (every receive would be the last).
    for (const bad of ['', ' ', '0', '1001', '2.5', 'four', '0x4']) {
      expect(() => parseReceiveLimits({ ...good, CHUNK_MAX_RECEIVE_COUNT: bad }), JSON.stringify(bad)).toThrow(/CHUNK_MAX_RECEIVE_COUNT/);
    }
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

  it('a bad setting fails every record and counts them in recordFailures (Lambda sees a success); each failure line names its export', async () => {
    const record = (exportId: string, n: number) => ({
      messageId: `m-${n}`,
      receiptHandle: `r-${n}`,
      body: JSON.stringify({ type: 'finalize', exportId, channelId: 'c' }),
      attributes: { ApproximateReceiveCount: '1', SentTimestamp: '0', SenderId: 'test', ApproximateFirstReceiveTimestamp: '0' },
      messageAttributes: {},
      md5OfBody: '',
      eventSource: 'aws:sqs',
      eventSourceARN: stack.queues.finalize.arn,
      awsRegion: 'us-east-1',
    });
    const added = vi.spyOn(metrics, 'addMetric');
    const errors = vi.spyOn(logger, 'error');
    const saved = process.env.LINK_TTL_DAYS;
    process.env.LINK_TTL_DAYS = '45';
    resetConfig();
    let ran = 0;
    try {
      const handler = createSqsHandler('test', async () => {
        ran++;
      });
      const response = await handler({ Records: [record('e-bad-1', 1), record('e-bad-2', 2)] } as SQSEvent, {} as Context);
      expect(response.batchItemFailures).toEqual([{ itemIdentifier: 'm-1' }, { itemIdentifier: 'm-2' }]);
      expect(ran).toBe(0);
      expect(added).toHaveBeenCalledWith(RECORD_FAILURES_METRIC, MetricUnit.Count, 2);
      // One refused batch, for the InvalidConfiguration alarm.
      expect(added).toHaveBeenCalledWith(CONFIG_ERRORS_METRIC, MetricUnit.Count, 1);
      const lines = errors.mock.calls.map(([message, extra]) => ({ message, extra: extra as unknown as Record<string, unknown> }));
      expect(lines.find((l) => l.message === 'invalid configuration: every record of the batch fails')?.extra).toMatchObject({ records: 2, error: { name: 'ConfigError' } });
      expect(lines.filter((l) => l.message === 'record failed').map((l) => l.extra.exportId)).toEqual(['e-bad-1', 'e-bad-2']);
    } finally {
      if (saved === undefined) delete process.env.LINK_TTL_DAYS;
      else process.env.LINK_TTL_DAYS = saved;
      resetConfig();
      added.mockRestore();
      errors.mockRestore();
    }
  });

  it("the notifier's own settings (its webhook and key) are checked with the shared ones: a missing one refuses the batch, counted, one line naming it", async () => {
    expect(() => checkNotifierConfig({ BOT_WEBHOOK_URL: 'https://bot.example/hook', BOT_SIGNING_SECRET_ARN: 'arn:aws:secretsmanager:x' } as Config)).not.toThrow();
    expect(() => checkNotifierConfig({ BOT_WEBHOOK_URL: 'https://bot.example/hook', BOT_SIGNING_SECRET: 'k' } as Config)).not.toThrow();
    expect(() => checkNotifierConfig({} as Config)).toThrow(
      new ConfigError('invalid environment: BOT_WEBHOOK_URL: required for the notifier; BOT_SIGNING_SECRET or BOT_SIGNING_SECRET_ARN: required for the notifier'),
    );
    const added = vi.spyOn(metrics, 'addMetric');
    const errors = vi.spyOn(logger, 'error');
    let ran = 0;
    try {
      const handler = createSqsHandler(
        'test',
        async () => {
          ran++;
        },
        () => checkNotifierConfig({} as Config),
      );
      const body = JSON.stringify({ type: 'notify', exportId: 'e-n', channelId: 'c', event: 'export.completed' });
      const record = { messageId: 'm-n', receiptHandle: 'r', body, attributes: { ApproximateReceiveCount: '1' }, eventSourceARN: stack.queues.notify.arn } as unknown as SQSRecord;
      const response = await handler({ Records: [record] } as SQSEvent, {} as Context);
      expect(response.batchItemFailures).toEqual([{ itemIdentifier: 'm-n' }]);
      expect(ran).toBe(0);
      expect(added).toHaveBeenCalledWith(CONFIG_ERRORS_METRIC, MetricUnit.Count, 1);
      const line = errors.mock.calls.find(([message]) => message === 'invalid configuration: every record of the batch fails');
      expect(JSON.stringify(line?.[1])).toContain('BOT_WEBHOOK_URL: required for the notifier');
    } finally {
      added.mockRestore();
      errors.mockRestore();
    }
  });
});
