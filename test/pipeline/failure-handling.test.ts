import { describe, expect, it } from 'vitest';
import { ChangeMessageVisibilityCommand, ReceiveMessageCommand, SendMessageCommand, type Message } from '@aws-sdk/client-sqs';
import type { Context, SQSEvent, SQSRecord } from 'aws-lambda';
import type { LocalStack } from '../../infra/local/stack';
import type { ExportJob } from '../../shared/app/export-job';
import { exportFileName, finalizeExport, type FinalizeDeps } from '../../shared/app/finalize-export';
import { handleDeadLetter } from '../../shared/app/handle-dead-letter';
import { objectKeys, type FinalizeMessage, type NotifyMessage } from '../../shared/app/messages';
import { BotRetryLaterError, isPermanentRejection, notifyExport, parseRetryAfter, type BotAnswer, type NotifyDeps } from '../../shared/app/notify-export';
import type { StepDeps } from '../../shared/app/pipeline-steps';
import { silentLog } from '../../shared/ports/pipeline-log';
import { makeCompletedJob } from './job-fixture';
import { chunkDepsFor, exportReadyToFinalize as readyToFinalize, finalizeDepsFor, storesFor, submitExport, useLocalStack, notifyDepsFor } from './helpers';
import { buildChunkMessages } from '../../shared/app/plan-chunks';
import { processChunk } from '../../shared/app/process-chunk';
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';

/**
 * What the pipeline does when something keeps failing: the notifier and the bot's answers, the
 * last receive of a failing record, a bot's Retry-After, and the file of an export that fails
 * after its upload. Against the emulators, no pollers: every delivery is a direct call.
 */

const CHANNEL = 'fh-channel';
const LINK_SECRET = 'link-secret-for-failure-handling';
const BOT_SECRET = 'bot-secret-for-failure-handling';
/** High, so a record held back by the retry delay cannot be mistaken for one released at once. */
const RETRY_BASE_SECONDS = 60;

describe('how the notifier reads an answer', () => {
  it('a 4xx is permanent, except 408 and 429; nothing else is', () => {
    expect([400, 401, 403, 404, 409, 410, 413, 422, 451, 499].filter(isPermanentRejection)).toHaveLength(10);
    expect([200, 204, 301, 302, 307, 408, 429, 500, 502, 503, 504].filter(isPermanentRejection)).toEqual([]);
  });

  it('Retry-After: delay-seconds or an HTTP date, in whole seconds from now', () => {
    const now = new Date('2026-05-04T03:00:00.000Z');
    expect(parseRetryAfter('120', now)).toBe(120);
    expect(parseRetryAfter(' 0 ', now)).toBe(0);
    expect(parseRetryAfter('Mon, 04 May 2026 03:01:30 GMT', now)).toBe(90);
    // A date already past: come back at once (the SQS backoff still applies).
    expect(parseRetryAfter('Mon, 04 May 2026 02:59:00 GMT', now)).toBe(0);
    for (const bad of [undefined, '', 'soon', '-5', '1.5', '12abc']) expect(parseRetryAfter(bad, now), String(bad)).toBeUndefined();
  });
});

describe('failure handling', () => {
  let stack: LocalStack;

  useLocalStack(
    {
      port: 0,
      pollers: false,
      seed: { channelId: CHANNEL, users: 40, cases: 200, seed: 7 },
      env: { POWERTOOLS_LOG_LEVEL: 'CRITICAL', POWERTOOLS_METRICS_DISABLED: 'true', RETRY_BASE_SECONDS: String(RETRY_BASE_SECONDS) },
      queues: { finalize: { visibilityTimeout: 300, maxReceiveCount: 2 }, notify: { visibilityTimeout: 300, maxReceiveCount: 4 } },
    },
    (started) => (stack = started),
  );

  describe('notifier: what the bot answers decides what happens next', () => {
    const completedJob = (exportId: string): ExportJob => makeCompletedJob(exportId, CHANNEL);
    const message = (exportId: string): NotifyMessage => ({ type: 'notify', exportId, channelId: CHANNEL, event: 'export.completed' });
    const now = new Date('2026-05-04T03:00:00.000Z');

    /** A bot that answers `answers` in turn (the last one from then on), keeping every body it was sent. */
    function scriptedBot(...answers: (BotAnswer | Error)[]) {
      const bodies: string[] = [];
      return {
        bodies,
        post: async (body: string): Promise<BotAnswer> => {
          bodies.push(body);
          const answer = answers[Math.min(bodies.length, answers.length) - 1]!;
          if (answer instanceof Error) throw answer;
          return answer;
        },
      };
    }
    const deps = (bot: NotifyDeps['bot'], over: Partial<NotifyDeps> = {}): NotifyDeps =>
      notifyDepsFor({ store: storesFor(stack).store, bot, clock: { now: () => now }, botSigningSecret: BOT_SECRET, linkSigningSecret: LINK_SECRET, ...over });

    it.each([400, 401, 403, 404, 410, 422])('%i: one post, notifyError with the status only, acknowledged, the lease kept', async (status) => {
      const { store } = storesFor(stack);
      const exportId = `fh-refused-${status}`;
      await store.createJob(completedJob(exportId));
      // The answer's body echoes the event, link included: it must not end up anywhere.
      const bot = scriptedBot({ status });
      // Before: 3 posts and a throw on every receive, 12 signed posts before the DLQ.
      expect(await notifyExport(message(exportId), deps(bot))).toEqual({ status: 'rejected', attempts: 1 });
      expect(bot.bodies).toHaveLength(1);
      const job = await store.getJob(CHANNEL, exportId);
      expect(job?.notifyError).toBe(`the bot refused the event (export.completed) with HTTP ${status}; not retried`);
      expect(job?.notifiedAt).toBeUndefined();
      const link = (JSON.parse(bot.bodies[0]!) as { link: string }).link;
      expect(link).toMatch(/^https:\/\/api\.example\.com\/v1\/downloads\//);
      for (const secret of [link, link.split('/').pop()!, BOT_SECRET, LINK_SECRET]) expect(JSON.stringify(job)).not.toContain(secret);
      // The lease stays with the refused post: nobody else takes it up at once ...
      expect(await store.claimLease(CHANNEL, exportId, 'notifyClaim')).toBeUndefined();
      // ... and a duplicate delivery sees the final answer instead of posting (or waiting) again.
      expect(await notifyExport(message(exportId), deps(bot))).toEqual({ status: 'skipped', attempts: 0 });
      expect(bot.bodies).toHaveLength(1);
    });

    it.each([
      ['408', { status: 408 }],
      ['500', { status: 500 }],
      ['503 without Retry-After', { status: 503 }],
      ['a redirect', { status: 302 }],
      ['a network error', new TypeError('fetch failed')],
    ] as const)('%s: retried within the delivery, then thrown for SQS (no delay of its own), the lease given back', async (_name, answer) => {
      const { store } = storesFor(stack);
      const exportId = `fh-transient-${_name.replace(/\W+/g, '-')}`;
      await store.createJob(completedJob(exportId));
      const bot = scriptedBot(answer);
      const error = await notifyExport(message(exportId), deps(bot)).then(() => undefined, (e: unknown) => e as Error);
      expect(bot.bodies).toHaveLength(3);
      expect(error?.message).toMatch(/after 3 attempts/);
      // A plain error: SQS applies the usual backoff.
      expect(error?.name).toBe('Error');
      expect((error as { retryAfterSeconds?: unknown }).retryAfterSeconds).toBeUndefined();
      expect((await store.getJob(CHANNEL, exportId))?.notifyError).toBeUndefined();
      const token = await store.claimLease(CHANNEL, exportId, 'notifyClaim');
      expect(token).toBeDefined();
      await store.releaseClaim(CHANNEL, exportId, 'notifyClaim', token!);
    });

    it.each([
      ['429 without Retry-After', { status: 429 }, undefined],
      ['429, Retry-After in seconds', { status: 429, retryAfter: '120' }, 120],
      ['503, Retry-After as an HTTP date', { status: 503, retryAfter: new Date(now.getTime() + 90_000).toUTCString() }, 90],
      ['429, Retry-After in the past', { status: 429, retryAfter: 'Mon, 04 May 2026 02:00:00 GMT' }, 0],
      ['429, unreadable Retry-After', { status: 429, retryAfter: 'soon' }, undefined],
    ] as const)('%s: no second post now; the delay goes to SQS with the error', async (name, answer, seconds) => {
      const { store } = storesFor(stack);
      const exportId = `fh-later-${name.replace(/\W+/g, '-')}`;
      await store.createJob(completedJob(exportId));
      const bot = scriptedBot(answer, { status: 200 });
      const error = await notifyExport(message(exportId), deps(bot)).then(() => undefined, (e: unknown) => e);
      // Before: the next attempt 250 ms later (a 200 here), whatever the bot asked.
      expect(bot.bodies).toHaveLength(1);
      expect(error).toBeInstanceOf(BotRetryLaterError);
      expect((error as BotRetryLaterError).retryAfterSeconds).toBe(seconds);
      // The lease is given back: the redelivery posts at once.
      expect(await notifyExport(message(exportId), deps(bot))).toEqual({ status: 'sent', attempts: 1 });
      expect(bot.bodies).toHaveLength(2);
    });

    it('the reviewer\'s case, four receives of a 400: one post in all, and no receive after the first throws', async () => {
      const { store } = storesFor(stack);
      await store.createJob(completedJob('fh-four-receives'));
      const bot = scriptedBot({ status: 400 });
      let throws = 0;
      for (let receive = 1; receive <= 4; receive++) await notifyExport(message('fh-four-receives'), deps(bot)).catch(() => throws++);
      expect(throws).toBe(0);
      expect(bot.bodies).toHaveLength(1);
    });
  });

  describe('SQS handler: the last receive and Retry-After', () => {
    /** The SQS handler module, loaded after the stack set the environment it reads. */
    const sqsHandler = () => import('../../shared/adapters/aws/sqs-handler');

    function recordOf(message: Message, arn: string): SQSRecord {
      return {
        messageId: message.MessageId!,
        receiptHandle: message.ReceiptHandle!,
        body: message.Body!,
        attributes: {
          ApproximateReceiveCount: message.Attributes?.ApproximateReceiveCount ?? '1',
          SentTimestamp: '0',
          SenderId: 'test',
          ApproximateFirstReceiveTimestamp: '0',
        },
        messageAttributes: {},
        md5OfBody: message.MD5OfBody ?? '',
        eventSource: 'aws:sqs',
        eventSourceARN: arn,
        awsRegion: 'us-east-1',
      };
    }

    async function receiveOne(url: string): Promise<Message | undefined> {
      const received = await stack.clients.sqs.send(
        new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 1, WaitTimeSeconds: 2, MessageSystemAttributeNames: ['All'] }),
      );
      return received.Messages?.[0];
    }

    /** The VisibilityTimeout of every ChangeMessageVisibility the handlers' SQS client sends while `run` runs. */
    async function visibilitiesSetDuring(run: () => Promise<unknown>): Promise<number[]> {
      const { getClients } = await import('../../shared/adapters/aws/clients');
      const seen: number[] = [];
      const sqs = getClients().sqs;
      sqs.middlewareStack.add(
        (next, context) => async (args) => {
          if (context.commandName === 'ChangeMessageVisibilityCommand') seen.push((args.input as { VisibilityTimeout: number }).VisibilityTimeout);
          return next(args);
        },
        { step: 'initialize', name: 'captureVisibility' },
      );
      try {
        await run();
      } finally {
        sqs.middlewareStack.remove('captureVisibility');
      }
      return seen;
    }

    it('a record that fails on its last receive reaches the DLQ at once, not after another retry delay', async () => {
      const { createSqsHandler } = await sqsHandler();
      const handler = createSqsHandler('test', async () => {
        throw new Error('keeps failing');
      });
      const queue = stack.queues.finalize;
      const body = JSON.stringify({ probe: 'last-receive' });
      await stack.clients.sqs.send(new SendMessageCommand({ QueueUrl: queue.url, MessageBody: body }));

      const first = await receiveOne(queue.url);
      expect(first?.Attributes?.ApproximateReceiveCount).toBe('1');
      const firstDelays = await visibilitiesSetDuring(() => handler({ Records: [recordOf(first!, queue.arn)] } as SQSEvent, {} as Context));
      expect(firstDelays).toEqual([RETRY_BASE_SECONDS]);
      // Stands in for waiting out that delay.
      await stack.clients.sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: queue.url, ReceiptHandle: first!.ReceiptHandle!, VisibilityTimeout: 0 }));

      // maxReceiveCount is 2: this is the last receive.
      const last = await receiveOne(queue.url);
      expect(last?.Attributes?.ApproximateReceiveCount).toBe('2');
      // Before: 2 x 60 s more before SQS could move it (on AWS the last receive's backoff: 240 s with 5 receives).
      const lastDelays = await visibilitiesSetDuring(() => handler({ Records: [recordOf(last!, queue.arn)] } as SQSEvent, {} as Context));
      expect(lastDelays).toEqual([0]);

      // The next receive moves it to the DLQ (a few tries: the emulator moves it on a receive).
      let dead: Message | undefined;
      for (let i = 0; i < 5 && !dead; i++) {
        expect(await receiveOne(queue.url)).toBeUndefined();
        dead = await receiveOne(queue.dlqUrl);
      }
      expect(dead?.Body).toBe(body);
    });

    it('a failure carrying the bot\'s Retry-After is not received again before it (capped at 15 minutes)', async () => {
      const { createSqsHandler } = await sqsHandler();
      const queue = stack.queues.notify;
      const delayFor = async (reason: Error) => {
        await stack.clients.sqs.send(new SendMessageCommand({ QueueUrl: queue.url, MessageBody: JSON.stringify({ probe: reason.message }) }));
        const received = await receiveOne(queue.url);
        const handler = createSqsHandler('test', async () => {
          throw reason;
        });
        return visibilitiesSetDuring(() => handler({ Records: [recordOf(received!, queue.arn)] } as SQSEvent, {} as Context));
      };
      const asking = (name: string, retryAfterSeconds: unknown) => Object.assign(new Error(name), { retryAfterSeconds });
      // Before: 60 s (the first retry delay) whatever the bot asked for.
      expect(await delayFor(asking('429 a', 200))).toEqual([200]);
      // Shorter than the backoff: the backoff stands.
      expect(await delayFor(asking('429 b', 5))).toEqual([RETRY_BASE_SECONDS]);
      expect(await delayFor(asking('429 c', 86_400))).toEqual([900]);
      expect(await delayFor(asking('not a delay', '200'))).toEqual([RETRY_BASE_SECONDS]);
      expect(await delayFor(new Error('plain'))).toEqual([RETRY_BASE_SECONDS]);
      // What the notifier throws fits.
      expect(await delayFor(new BotRetryLaterError('429 d', 300))).toEqual([300]);
      expect(await delayFor(new BotRetryLaterError('429 e', undefined))).toEqual([RETRY_BASE_SECONDS]);
    });

    it('the limits come from the environment the local stack set from its queues', async () => {
      const { getReceiveLimits } = await sqsHandler();
      expect(getReceiveLimits()).toEqual({ chunk: 3, finalize: 2, notify: 4 });
    });
  });

  describe('dlq: an export that fails after its file was uploaded', () => {
    const stepDeps = (over: Partial<StepDeps> = {}): StepDeps => {
      const { store, objects, queue } = storesFor(stack);
      return { store, objects, queue, clock: { now: () => new Date() }, log: silentLog, ...over };
    };
    const finalizeDeps = (over: Partial<FinalizeDeps> = {}): FinalizeDeps => finalizeDepsFor(stack, stepDeps(), LINK_SECRET, over);
    const exportReadyToFinalize = (exportId: string): Promise<ExportJob> => readyToFinalize(stack, CHANNEL, exportId, stepDeps());

    const dead = (exportId: string) => JSON.stringify({ type: 'finalize', exportId, channelId: CHANNEL } satisfies FinalizeMessage);
    /** Everything stored under the export's file folder (objectKeys.file). */
    const filesOf = (exportId: string) => storesFor(stack).objects.list(`exports/${CHANNEL}/${exportId}/`);

    it('a chunk message its step could not read, naming its export: the dead letter fails the export (it stayed running for ever)', async () => {
      const ready = await exportReadyToFinalize('fh-unreadable-1');
      const { store } = storesFor(stack);
      // What the fuzz review's far-future range produced: an instant past year 9999, which the
      // chunk's own schema refuses on every delivery.
      const body = JSON.stringify({
        type: 'chunk',
        exportId: ready.exportId,
        channelId: CHANNEL,
        chunkId: 'c-0',
        sheet: 'cases',
        index: 0,
        source: { type: 'caseDay', day: '9999-12-31', fromIso: '9999-12-31T12:00:00.000Z', toIso: '+010000-01-01T12:00:00.000Z' },
      });
      expect(await handleDeadLetter(body, stepDeps(), { queue: 'chunk-dlq' })).toBe('failed-export');
      expect(await store.getJob(CHANNEL, ready.exportId)).toMatchObject({
        status: 'failed',
        error: { code: 'PIPELINE_FAILED', message: 'a chunk message of this export could not be read and was given up; request the export again' },
      });
      // Again: the export is already failed.
      expect(await handleDeadLetter(body, stepDeps(), { queue: 'chunk-dlq' })).toBe('unreadable');
      // Nothing to fail: not JSON, no ids, a notify (the bot is what failed), an unknown export.
      for (const junk of ['not json', '{}', JSON.stringify({ type: 'chunk', exportId: ready.exportId }), JSON.stringify({ type: 'notify', exportId: ready.exportId, channelId: CHANNEL }), body.replace(ready.exportId, 'no-such-export')]) {
        expect(await handleDeadLetter(junk, stepDeps(), { queue: 'chunk-dlq' }), junk).toBe('unreadable');
      }
    });

    it('the file prefix is where the finalizer puts the file', () => {
      expect(objectKeys.file('c1', 'e1', 'r1', 'f.xlsx').startsWith(objectKeys.filePrefix('c1', 'e1'))).toBe(true);
      expect(objectKeys.file('c1', 'e10', 'r1', 'f.xlsx').startsWith(objectKeys.filePrefix('c1', 'e1'))).toBe(false);
    });

    it('a finalize that uploaded the file and kept failing to save the token: the dead letter fails the export and deletes the file', async () => {
      const ready = await exportReadyToFinalize('fh-uploaded-1');
      const { store, objects } = storesFor(stack);
      const failingStore = Object.create(store) as typeof store;
      failingStore.saveDownloadToken = async () => {
        throw new Error('DynamoDB PutItem: ProvisionedThroughputExceededException');
      };
      const message: FinalizeMessage = { type: 'finalize', exportId: ready.exportId, channelId: CHANNEL };
      for (const receiveCount of [1, 2]) {
        await expect(finalizeExport(message, finalizeDeps({ store: failingStore }), { receiveCount })).rejects.toThrow(/ProvisionedThroughputExceeded/);
      }
      // Each run uploaded its own file (neither was completed).
      expect((await objects.list(objectKeys.filePrefix(CHANNEL, ready.exportId))).map((o) => o.key.endsWith(`/${exportFileName(ready)}`))).toEqual([true, true]);

      expect(await handleDeadLetter(dead(ready.exportId), stepDeps(), { queue: 'finalize-dlq' })).toBe('failed-export');
      expect(await store.getJob(CHANNEL, ready.exportId)).toMatchObject({ status: 'failed', error: { code: 'PIPELINE_FAILED' } });
      // Before: still there, for linkTtlDays + 1 days, with no link to it.
      expect(await filesOf(ready.exportId)).toEqual([]);
      expect(await objects.list(objectKeys.partsPrefix(ready.exportId))).toEqual([]);
      // A redelivered dead letter finds nothing left to delete, and that is no error.
      expect(await handleDeadLetter(dead(ready.exportId), stepDeps(), { queue: 'finalize-dlq' })).toBe('already-final');
    });

    it('a dead letter whose follow-ups throw deletes the file first; its redelivery finishes them', async () => {
      const ready = await exportReadyToFinalize('fh-uploaded-2');
      const { store } = storesFor(stack);
      const failingStore = Object.create(store) as typeof store;
      failingStore.saveDownloadToken = async () => {
        throw new Error('DynamoDB PutItem: InternalServerError');
      };
      await expect(
        finalizeExport({ type: 'finalize', exportId: ready.exportId, channelId: CHANNEL }, finalizeDeps({ store: failingStore }), { receiveCount: 1 }),
      ).rejects.toThrow(/InternalServerError/);
      // The first delivery of the dead letter fails the export, then its notify send throws.
      const failingQueue = { ...stepDeps().queue, send: async () => Promise.reject(new Error('SQS SendMessage: ServiceUnavailable')) };
      await expect(handleDeadLetter(dead(ready.exportId), stepDeps({ queue: failingQueue }), { queue: 'finalize-dlq' })).rejects.toThrow(/ServiceUnavailable/);
      expect((await store.getJob(CHANNEL, ready.exportId))?.status).toBe('failed');
      // Deleted before the error was thrown: the file does not wait for the queue (or the audit table).
      expect(await filesOf(ready.exportId)).toEqual([]);
      expect(await handleDeadLetter(dead(ready.exportId), stepDeps(), { queue: 'finalize-dlq' })).toBe('already-final');
      expect(await filesOf(ready.exportId)).toEqual([]);
      expect((await store.getJob(CHANNEL, ready.exportId))?.notifyEnqueued).toBe(true);
    });

    it('a finalize retry that finds its export failed or canceled elsewhere (after that cleanup ran) deletes the file it uploaded', async () => {
      for (const [exportId, status] of [['fh-late-1', 'failed'], ['fh-late-2', 'canceled']] as const) {
        const ready = await exportReadyToFinalize(exportId);
        const { store, objects } = storesFor(stack);
        const failingStore = Object.create(store) as typeof store;
        failingStore.saveDownloadToken = async () => {
          throw new Error('DynamoDB PutItem: InternalServerError');
        };
        const message: FinalizeMessage = { type: 'finalize', exportId, channelId: CHANNEL };
        await expect(finalizeExport(message, finalizeDeps({ store: failingStore }), { receiveCount: 1 })).rejects.toThrow(/InternalServerError/);
        expect(await filesOf(exportId)).toHaveLength(1);
        // Failed (or canceled) by someone else while this run was between its upload and its failure.
        expect(await store.setStatus(CHANNEL, exportId, status, ['finalizing'])).toBe(true);
        expect((await finalizeExport(message, finalizeDeps(), { receiveCount: 2 })).status).toBe('skipped');
        expect(await filesOf(exportId), status).toEqual([]);
        expect(await objects.list(objectKeys.filePrefix(CHANNEL, exportId))).toEqual([]);
      }
    });

    it('a definition gone from S3 (parts/ keeps it a day) fails the export at once with EXPORT_DATA_EXPIRED, in a chunk and in the finalizer', async () => {
      const { ddb, store } = storesFor(stack);
      /** The job as if its definition had been too large for the item and its object had since expired. */
      const expire = (exportId: string) =>
        ddb.send(
          new UpdateCommand({
            TableName: stack.tables.exports,
            Key: { pk: `EXPORT#${exportId}`, sk: 'JOB' },
            UpdateExpression: 'REMOVE #d SET #k = :k',
            ExpressionAttributeNames: { '#d': 'definition', '#k': 'definitionKey' },
            ExpressionAttributeValues: { ':k': `parts/${exportId}/definition-${'0'.repeat(64)}.json` },
          }),
        );

      const chunked = await submitExport(stack, { kind: 'contacts', scope: 'all' }, { channelId: CHANNEL, exportId: 'fh-expired-1' });
      await expire(chunked.exportId);
      const [first] = buildChunkMessages(chunked, {}, 100);
      // Before: thrown (retried three times, then a generic PIPELINE_FAILED dead letter).
      const chunkOutcome = await processChunk(first!, chunkDepsFor(stack, stepDeps()), { receiveCount: 1 });
      expect(chunkOutcome.status).toBe('failed');
      // What the chunk handler counts: this delivery's own failure, by its code.
      expect(chunkOutcome.failedWith).toBe('EXPORT_DATA_EXPIRED');
      const failed = await store.getJob(CHANNEL, chunked.exportId);
      expect(failed).toMatchObject({ status: 'failed', error: { code: 'EXPORT_DATA_EXPIRED' } });
      expect(failed?.error?.message).toMatch(/request the export again/);
      expect(failed?.error?.message).not.toContain('parts/');

      const ready = await exportReadyToFinalize('fh-expired-2');
      await expire(ready.exportId);
      const message: FinalizeMessage = { type: 'finalize', exportId: ready.exportId, channelId: CHANNEL };
      expect((await finalizeExport(message, finalizeDeps(), { receiveCount: 1 })).status).toBe('failed');
      expect(await store.getJob(CHANNEL, ready.exportId)).toMatchObject({ status: 'failed', error: { code: 'EXPORT_DATA_EXPIRED' } });
      expect(await filesOf(ready.exportId)).toEqual([]);
    });

    it('a finalize run that fails an export another run failed first reports skipped, so exportFailures counts the export once', async () => {
      const ready = await exportReadyToFinalize('fh-expired-3');
      const { ddb, store } = storesFor(stack);
      await ddb.send(
        new UpdateCommand({
          TableName: stack.tables.exports,
          Key: { pk: `EXPORT#${ready.exportId}`, sk: 'JOB' },
          UpdateExpression: 'REMOVE #d SET #k = :k',
          ExpressionAttributeNames: { '#d': 'definition', '#k': 'definitionKey' },
          ExpressionAttributeValues: { ':k': `parts/${ready.exportId}/definition-${'0'.repeat(64)}.json` },
        }),
      );
      // A concurrent run (a duplicate finalize message) fails it just before this one does.
      const racing = Object.create(store) as typeof store;
      racing.setStatus = async (...args) => {
        if (args[2] === 'failed') await store.setStatus(args[0], args[1], 'failed', ['finalizing'], { error: { code: 'EXPORT_DATA_EXPIRED', message: 'first' }, failedAt: new Date().toISOString() });
        return store.setStatus(...args);
      };
      const message: FinalizeMessage = { type: 'finalize', exportId: ready.exportId, channelId: CHANNEL };
      expect((await finalizeExport(message, finalizeDeps({ store: racing }), { receiveCount: 1 })).status).toBe('skipped');
      expect(await store.getJob(CHANNEL, ready.exportId)).toMatchObject({ status: 'failed', error: { message: 'first' } });
    });

    it('a dead-lettered duplicate finalize of a completed export leaves its file (the download) alone', async () => {
      const ready = await exportReadyToFinalize('fh-completed-1');
      const { objects, store } = storesFor(stack);
      const outcome = await finalizeExport({ type: 'finalize', exportId: ready.exportId, channelId: CHANNEL }, finalizeDeps(), { receiveCount: 1 });
      expect(outcome.status).toBe('completed');
      expect(await handleDeadLetter(dead(ready.exportId), stepDeps(), { queue: 'finalize-dlq' })).toBe('already-final');
      const completed = await store.getJob(CHANNEL, ready.exportId);
      expect(completed?.status).toBe('completed');
      expect(await objects.head(completed!.objectKey!)).not.toBeNull();
    });
  });

  describe('dlq: chunk dead letters of a healthy export, notify dead letters of no export', () => {
    const stepDeps = (): StepDeps => {
      const { store, objects, queue } = storesFor(stack);
      return { store, objects, queue, clock: { now: () => new Date() }, log: silentLog };
    };

    it('a chunk already done (a duplicate delivery that kept failing) does not fail an export that is moving on', async () => {
      const job = await submitExport(stack, { kind: 'contacts', scope: 'all' }, { channelId: CHANNEL });
      const messages = buildChunkMessages(job, {}, 2000);
      expect(messages.length).toBeGreaterThan(2);
      const deps = chunkDepsFor(stack);
      const { store } = storesFor(stack);
      // Chunk 0 is done, others are still to come: they will run the next step.
      expect((await processChunk(messages[0]!, deps, { receiveCount: 1 })).status).toBe('done');
      const dead0 = JSON.stringify(messages[0]);
      expect(await handleDeadLetter(dead0, stepDeps(), { queue: 'chunk-dlq' })).toBe('chunk-already-done');
      expect((await store.getJob(CHANNEL, job.exportId))?.status).toBe('running');
      // Every chunk done and the finalize sent: still moving, still not failed.
      for (const message of messages.slice(1)) await processChunk(message, deps, { receiveCount: 1 });
      const all = await store.getJob(CHANNEL, job.exportId);
      expect([all?.chunksDone === all?.chunksTotal, all?.finalizeEnqueued]).toEqual([true, true]);
      expect(await handleDeadLetter(dead0, stepDeps(), { queue: 'chunk-dlq' })).toBe('chunk-already-done');
      expect((await store.getJob(CHANNEL, job.exportId))?.status).not.toBe('failed');
    });

    it('a last case chunk whose sending of the user chunks kept failing: its dead letter fails the export (they never existed)', async () => {
      const job = await submitExport(stack, { kind: 'cases', from: '2025-08-01', to: '2025-08-31', timezone: 'Asia/Seoul' }, { channelId: CHANNEL });
      const messages = buildChunkMessages(job, {}, 2000);
      const deps = chunkDepsFor(stack);
      for (const message of messages.slice(0, -1)) await processChunk(message, deps, { receiveCount: 1 });
      const { store, queue } = storesFor(stack);
      const down = Object.create(queue) as typeof queue;
      down.sendMany = async () => {
        throw Object.assign(new Error('SQS unavailable'), { name: 'ServiceUnavailable' });
      };
      for (const receiveCount of [1, 2, 3]) {
        await expect(processChunk(messages.at(-1)!, chunkDepsFor(stack, { queue: down }), { receiveCount })).rejects.toThrow(/SQS unavailable/);
      }
      const stuck = await store.getJob(CHANNEL, job.exportId);
      // The users phase is counted into the total, but its chunks were never sent.
      expect([stuck?.status, stuck?.phase, stuck?.usersEnqueued, (stuck?.chunksDone ?? 0) < (stuck?.chunksTotal ?? 0)]).toEqual(['running', 'users', undefined, true]);
      expect(await handleDeadLetter(JSON.stringify(messages.at(-1)), stepDeps(), { queue: 'chunk-dlq' })).toBe('failed-export');
      expect(await store.getJob(CHANNEL, job.exportId)).toMatchObject({ status: 'failed', error: { code: 'PIPELINE_FAILED' } });
    });

    it('a dead letter of a canceled export sweeps the parts the cancel left (its sweep is best effort)', async () => {
      const job = await submitExport(stack, { kind: 'contacts', scope: 'all' }, { channelId: CHANNEL });
      const messages = buildChunkMessages(job, {}, 2000);
      expect(messages.length).toBeGreaterThan(1);
      expect((await processChunk(messages[0]!, chunkDepsFor(stack), { receiveCount: 1 })).status).toBe('done');
      const { store, objects } = storesFor(stack);
      // Canceled with the store's write alone: the API's sweep failed, so the rows are still here.
      expect(await store.setStatus(CHANNEL, job.exportId, 'canceled', ['queued', 'running'], { canceledAt: new Date().toISOString() })).toBe(true);
      const parts = () => objects.list(objectKeys.partsPrefix(job.exportId));
      expect((await parts()).length).toBeGreaterThan(0);
      expect(await handleDeadLetter(JSON.stringify(messages[1]), stepDeps(), { queue: 'chunk-dlq' })).toBe('already-final');
      expect(await parts()).toEqual([]);
      expect((await store.getJob(CHANNEL, job.exportId))?.status).toBe('canceled');
    });

    it('a chunk that never completed still fails the export (PIPELINE_FAILED)', async () => {
      const job = await submitExport(stack, { kind: 'contacts', scope: 'all' }, { channelId: CHANNEL });
      const [first] = buildChunkMessages(job, {}, 2000);
      expect(await handleDeadLetter(JSON.stringify(first), stepDeps(), { queue: 'chunk-dlq' })).toBe('failed-export');
      expect(await storesFor(stack).store.getJob(CHANNEL, job.exportId)).toMatchObject({ status: 'failed', error: { code: 'PIPELINE_FAILED' } });
    });

    it('a dead notify for an export that does not exist (or is another channel\'s) is acknowledged, not thrown for 14 days', async () => {
      const job = await submitExport(stack, { kind: 'contacts', scope: 'all' }, { channelId: CHANNEL });
      for (const [exportId, channelId] of [['no-such-export', CHANNEL], [job.exportId, 'another-channel']] as const) {
        const body = JSON.stringify({ type: 'notify', exportId, channelId, event: 'export.failed' } satisfies NotifyMessage);
        expect(await handleDeadLetter(body, stepDeps(), { queue: 'notify-dlq' })).toBe('unknown-export');
      }
    });
  });
});
