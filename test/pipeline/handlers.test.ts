import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { startLocalStack, type LocalStack } from '../../infra/local/stack';
import { createLambdaContext } from '../../infra/local/lambda-context';
import type { SqsHandler } from '../../infra/local/sqs-poller';
import { objectKeys } from '../../shared/app/messages';
import { buildChunkMessages } from '../../shared/app/plan-chunks';
import { processChunk, type ChunkDeps } from '../../shared/app/process-chunk';
import { LeaseBusyError } from '../../shared/app/pipeline-steps';
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { chunkDepsFor, readExportFile, storesFor, submitExport } from './helpers';

/** The sample events in events/ drive the handlers directly (no pollers), against the emulators. */
function sample(name: string): SQSEvent {
  return JSON.parse(readFileSync(new URL(`../../events/${name}.json`, import.meta.url), 'utf8')) as SQSEvent;
}

async function load(path: string): Promise<SqsHandler> {
  return ((await import(path)) as { handler: SqsHandler }).handler;
}

async function invoke(handler: SqsHandler, event: SQSEvent): Promise<SQSBatchResponse> {
  return (await handler(event, createLambdaContext('test'))) ?? { batchItemFailures: [] };
}

describe('SQS handlers driven by events/sqs-*.json', () => {
  let stack: LocalStack;
  let chunk: SqsHandler;
  let finalizer: SqsHandler;
  let notifier: SqsHandler;
  let dlq: SqsHandler;
  const ddb = () => storesFor(stack).ddb;
  const chunkDeps = (over: Partial<ChunkDeps> = {}): ChunkDeps => chunkDepsFor(stack, over);

  beforeAll(async () => {
    stack = await startLocalStack({
      port: 0,
      pollers: false,
      seed: { channelId: 'evt-channel', users: 60, cases: 120, seed: 5 },
      env: { POWERTOOLS_LOG_LEVEL: 'ERROR', POWERTOOLS_METRICS_DISABLED: 'true' },
    });
    chunk = await load('../../functions/chunk/handler');
    finalizer = await load('../../functions/finalizer/handler');
    notifier = await load('../../functions/notifier/handler');
    dlq = await load('../../functions/dlq/handler');
    await submitExport(stack, { kind: 'contacts', scope: 'all' }, { channelId: 'evt-channel', exportId: 'evt-contacts-1' });
    await submitExport(stack, { kind: 'contacts', scope: 'user', userId: 'u5571bc00000003' }, { channelId: 'evt-channel', exportId: 'evt-user-1' });
  });

  afterAll(async () => {
    await stack?.stop();
  });

  it('chunk: processes good records, reports only the malformed one, and counts a redelivery once', async () => {
    const event = sample('sqs-chunk');
    const result = await invoke(chunk, event);
    expect(result.batchItemFailures).toEqual([{ itemIdentifier: event.Records[2]?.messageId }]);
    const { store, objects } = storesFor(stack);
    expect(await objects.head(objectKeys.part('evt-contacts-1', 'users', 0))).not.toBeNull();
    expect((await store.getJob('evt-channel', 'evt-contacts-1'))?.chunksDone).toBe(1);
    const userJob = await store.getJob('evt-channel', 'evt-user-1');
    expect(userJob?.status).toBe('running');
    expect(userJob?.rowsWritten).toBe(1);
    expect(userJob?.finalizeEnqueued).toBe(true);

    await invoke(chunk, { Records: event.Records.slice(0, 2) });
    expect((await store.getJob('evt-channel', 'evt-contacts-1'))?.chunksDone).toBe(1);
    expect((await store.getJob('evt-channel', 'evt-user-1'))?.rowsWritten).toBe(1);
  });

  it('finalizer: writes the encrypted file, completes the job, enqueues the notification; a second run is a no-op', async () => {
    const result = await invoke(finalizer, sample('sqs-finalize'));
    expect(result.batchItemFailures).toEqual([]);
    const { store, objects } = storesFor(stack);
    const job = await store.getJob('evt-channel', 'evt-user-1');
    expect(job?.status).toBe('completed');
    expect(job?.sha256).toMatch(/^[0-9a-f]{64}$/);
    const rows = (await readExportFile(stack, job!))['User data'] ?? [];
    expect(rows.map((r) => r[0])).toEqual(['id', 'u5571bc00000003']);
    expect(await objects.list('parts/evt-user-1/')).toEqual([]);
    const queued = await stack.clients.sqs.send(new ReceiveMessageCommand({ QueueUrl: stack.queues.notify.url, MaxNumberOfMessages: 10 }));
    expect((queued.Messages ?? []).map((m) => JSON.parse(m.Body ?? '{}'))).toContainEqual({
      type: 'notify',
      exportId: 'evt-user-1',
      channelId: 'evt-channel',
      event: 'export.completed',
    });

    await invoke(finalizer, sample('sqs-finalize'));
    expect((await store.getJob('evt-channel', 'evt-user-1'))?.completedAt).toBe(job?.completedAt);
  });

  it('notifier: posts one signed event with the link; a redelivery posts nothing', async () => {
    expect((await invoke(notifier, sample('sqs-notify'))).batchItemFailures).toEqual([]);
    expect((await invoke(notifier, sample('sqs-notify'))).batchItemFailures).toEqual([]);
    const messages = stack.bot.messages.filter((m) => (m.body as { exportId: string }).exportId === 'evt-user-1');
    expect(messages).toHaveLength(1);
    const body = messages[0]?.body as { link: string; message: { ko: string; en: string }; rowCount: number };
    expect(messages[0]?.signatureValid).toBe(true);
    expect(body.link).toMatch(new RegExp(`^${stack.apiUrl}/v1/downloads/[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$`));
    expect(body.rowCount).toBe(1);
    expect(body.message.ko).toContain(body.link);
  });

  it('dlq: a dead chunk fails its export and queues export.failed; a dead notification is only recorded', async () => {
    const result = await invoke(dlq, sample('sqs-dlq'));
    expect(result.batchItemFailures).toEqual([]);
    const job = await storesFor(stack).store.getJob('evt-channel', 'evt-contacts-1');
    expect(job?.status).toBe('failed');
    expect(job?.error?.code).toBe('PIPELINE_FAILED');
    expect(job?.notifyError).toMatch(/could not be told/);
    const queued = await stack.clients.sqs.send(new ReceiveMessageCommand({ QueueUrl: stack.queues.notify.url, MaxNumberOfMessages: 10 }));
    const bodies = (queued.Messages ?? []).map((m) => JSON.parse(m.Body ?? '{}') as { exportId: string; event: string });
    expect(bodies.filter((b) => b.exportId === 'evt-contacts-1')).toEqual([
      { type: 'notify', exportId: 'evt-contacts-1', channelId: 'evt-channel', event: 'export.failed' },
    ]);
  });

  it('finalizer: a job from before definitions were pinned whose profile schema changed while it ran fails with COLUMNS_CHANGED, no file', async () => {
    await submitExport(stack, { kind: 'contacts', scope: 'user', userId: 'u5571bc00000003' }, { channelId: 'evt-channel', exportId: 'evt-schema-1', legacyJob: true });
    const base = sample('sqs-chunk').Records[1]!;
    const chunkRecord = { ...base, messageId: 'schema-chunk', body: base.body.replace('evt-user-1', 'evt-schema-1') };
    expect((await invoke(chunk, { Records: [chunkRecord] })).batchItemFailures).toEqual([]);
    const schema = await ddb().send(new GetCommand({ TableName: stack.tables.workspace, Key: { pk: 'evt-channel', sk: 'PROFILE_SCHEMA#users' } }));
    const keys = [...((schema.Item?.keys as unknown[]) ?? []), { key: 'addedLater', type: 'string', order: 99, archived: false }];
    await ddb().send(new PutCommand({ TableName: stack.tables.workspace, Item: { ...schema.Item, keys } }));
    const finalizeBase = sample('sqs-finalize').Records[0]!;
    const finalizeRecord = { ...finalizeBase, messageId: 'schema-finalize', body: finalizeBase.body.replace('evt-user-1', 'evt-schema-1') };
    expect((await invoke(finalizer, { Records: [finalizeRecord] })).batchItemFailures).toEqual([]);
    const job = await storesFor(stack).store.getJob('evt-channel', 'evt-schema-1');
    expect(job?.status).toBe('failed');
    expect(job?.error?.code).toBe('COLUMNS_CHANGED');
    expect(await storesFor(stack).objects.list('exports/evt-channel/evt-schema-1/')).toEqual([]);
    await ddb().send(new PutCommand({ TableName: stack.tables.workspace, Item: schema.Item }));
  });

  it('finalizer: a profile key added while the export ran does not change its columns (pinned at the request): completed', async () => {
    await submitExport(stack, { kind: 'contacts', scope: 'user', userId: 'u5571bc00000003' }, { channelId: 'evt-channel', exportId: 'evt-schema-2' });
    const base = sample('sqs-chunk').Records[1]!;
    const chunkRecord = { ...base, messageId: 'schema-chunk-2', body: base.body.replace('evt-user-1', 'evt-schema-2') };
    expect((await invoke(chunk, { Records: [chunkRecord] })).batchItemFailures).toEqual([]);
    const schema = await ddb().send(new GetCommand({ TableName: stack.tables.workspace, Key: { pk: 'evt-channel', sk: 'PROFILE_SCHEMA#users' } }));
    const keys = [...((schema.Item?.keys as unknown[]) ?? []), { key: 'addedLater', type: 'string', order: 99, archived: false }];
    await ddb().send(new PutCommand({ TableName: stack.tables.workspace, Item: { ...schema.Item, keys } }));
    try {
      const finalizeBase = sample('sqs-finalize').Records[0]!;
      const finalizeRecord = { ...finalizeBase, messageId: 'schema-finalize-2', body: finalizeBase.body.replace('evt-user-1', 'evt-schema-2') };
      expect((await invoke(finalizer, { Records: [finalizeRecord] })).batchItemFailures).toEqual([]);
      const job = await storesFor(stack).store.getJob('evt-channel', 'evt-schema-2');
      expect(job?.status, JSON.stringify(job?.error)).toBe('completed');
      const header = (await readExportFile(stack, job!))['User data']?.[0] ?? [];
      expect(header).toContain('id');
      expect(header).not.toContain('profile.addedLater');
    } finally {
      await ddb().send(new PutCommand({ TableName: stack.tables.workspace, Item: schema.Item }));
    }
  });

  it('chunk: a case chunk redelivered after the users phase was planned does not finalize early', async () => {
    const job = await submitExport(stack, { kind: 'cases', from: '2025-06-26', to: '2025-12-26', timezone: 'Asia/Seoul' }, {
      channelId: 'evt-channel',
      exportId: 'evt-cases-1',
    });
    const record = (body: unknown, id: string, receiveCount = '1') => ({
      ...sample('sqs-chunk').Records[0]!,
      messageId: id,
      body: JSON.stringify(body),
      attributes: { ...sample('sqs-chunk').Records[0]!.attributes, ApproximateReceiveCount: receiveCount },
    });
    const mainChunks = buildChunkMessages(job, {}, 2000);
    for (let i = 0; i < mainChunks.length; i += 10) {
      const batch = mainChunks.slice(i, i + 10).map((m) => record(m, `main-${m.chunkId}`));
      expect((await invoke(chunk, { Records: batch })).batchItemFailures).toEqual([]);
    }
    const { store } = storesFor(stack);
    const planned = await store.getJob('evt-channel', 'evt-cases-1');
    expect(planned?.phase).toBe('users');
    expect(planned?.sheetChunks?.users).toBe(1);
    expect(planned?.chunksDone).toBe(mainChunks.length);
    expect(planned?.chunksTotal).toBe(mainChunks.length + 1);

    // The last case chunk again, as a redelivery whose completion count was read just before
    // another delivery planned the users phase (done == total of the case phase): it must
    // neither plan again nor finalize.
    const last = mainChunks[mainChunks.length - 1]!;
    await invoke(chunk, { Records: [record(last, 'main-redelivered', '2')] });
    const staleStore = Object.create(store) as typeof store;
    staleStore.markChunkDone = async (...args) => {
      const result = await store.markChunkDone(...args);
      return { ...result, total: result.done };
    };
    const outcome = await processChunk(last, chunkDeps({ store: staleStore }), { receiveCount: 3 });
    expect(outcome.finalizeEnqueued).toBe(false);
    expect(outcome.usersPhasePlanned).toBe(false);
    const after = await store.getJob('evt-channel', 'evt-cases-1');
    expect(after?.finalizeEnqueued).toBeUndefined();
    expect(after?.chunksTotal).toBe(mainChunks.length + 1);

    // The finalizer refuses too, without moving the job to finalizing.
    const finalizeRecord = { ...sample('sqs-finalize').Records[0]!, messageId: 'early-finalize', body: JSON.stringify({ type: 'finalize', exportId: 'evt-cases-1', channelId: 'evt-channel' }) };
    expect((await invoke(finalizer, { Records: [finalizeRecord] })).batchItemFailures).toEqual([{ itemIdentifier: 'early-finalize' }]);
    expect((await store.getJob('evt-channel', 'evt-cases-1'))?.status).toBe('running');

    // The users chunk completes the set and enqueues finalize.
    const usersChunk = { type: 'chunk', exportId: 'evt-cases-1', channelId: 'evt-channel', chunkId: 'users-0', sheet: 'users', index: 0, source: { type: 'userIdsObject', key: objectKeys.userIdBatch('evt-cases-1', 'users', 0) } };
    await invoke(chunk, { Records: [record(usersChunk, 'users-0')] });
    expect((await store.getJob('evt-channel', 'evt-cases-1'))?.finalizeEnqueued).toBe(true);
    expect((await invoke(finalizer, { Records: [finalizeRecord] })).batchItemFailures).toEqual([]);
    const done = await store.getJob('evt-channel', 'evt-cases-1');
    expect(done?.status).toBe('completed');
    const sheets = await readExportFile(stack, done!);
    expect((sheets['UserChatCase data'] ?? []).length - 1).toBe(done?.rowCount);
    expect((sheets['User data'] ?? []).length).toBeGreaterThan(1);
  });

  it('chunk: a next step that fails after its claim is finished by the retry; a claim held by a dead delivery makes retries wait, not return; a claim given back is taken over by the waiter', async () => {
    const exportId = 'evt-cases-2';
    const job = await submitExport(stack, { kind: 'cases', from: '2025-07-01', to: '2025-07-03', timezone: 'Asia/Seoul' }, { channelId: 'evt-channel', exportId });
    const { queue, store } = storesFor(stack);
    const deps = chunkDeps;
    // A queue whose next send of `kind` fails (e.g. a throttled SQS call), once.
    const failingOnce = (kind: 'chunk' | 'finalize'): ChunkDeps['queue'] => {
      let failed = false;
      const fail = (k: string) => {
        if (k !== kind || failed) return;
        failed = true;
        throw new Error('simulated SQS outage');
      };
      return {
        send: async (k, m) => (fail(k), queue.send(k, m)),
        sendMany: async (k, ms) => (fail(k), queue.sendMany(k, ms)),
      } as ChunkDeps['queue'];
    };
    const mainChunks = buildChunkMessages(job, {}, 2000);
    for (const m of mainChunks.slice(0, -1)) await processChunk(m, deps(), { receiveCount: 1 });
    const last = mainChunks[mainChunks.length - 1]!;

    // The delivery that completes the cases fails while sending the users' chunks (after the
    // phase was advanced): its retry must send them, not take the grown total for "not done".
    await expect(processChunk(last, deps({ queue: failingOnce('chunk') }), { receiveCount: 1 })).rejects.toThrow(/simulated SQS outage/);
    const stalled = await store.getJob('evt-channel', exportId);
    expect(stalled?.phase).toBe('users');
    expect(stalled?.usersEnqueued).toBeUndefined();
    // The failing delivery gave its claim back: the retry, well within the lease, takes over.
    const retried = await processChunk(last, deps(), { receiveCount: 2 });
    expect(retried.usersPhasePlanned).toBe(true);
    const planned = await store.getJob('evt-channel', exportId);
    expect(planned?.usersEnqueued).toBe(true);
    const userChunks = planned!.sheetChunks!.users!;
    expect(userChunks).toBeGreaterThan(0);

    // The users' last chunk fails while enqueueing the finalize: the retry enqueues it.
    const usersMessage = (index: number) => ({
      type: 'chunk' as const,
      exportId,
      channelId: 'evt-channel',
      chunkId: `users-${index}`,
      sheet: 'users' as const,
      index,
      source: { type: 'userIdsObject' as const, key: objectKeys.userIdBatch(exportId, 'users', index) },
    });
    for (let i = 0; i < userChunks - 1; i++) await processChunk(usersMessage(i), deps(), { receiveCount: 1 });
    const lastUsers = usersMessage(userChunks - 1);
    await expect(processChunk(lastUsers, deps({ queue: failingOnce('finalize') }), { receiveCount: 1 })).rejects.toThrow(/simulated SQS outage/);
    expect((await store.getJob('evt-channel', exportId))?.finalizeEnqueued).toBeUndefined();

    // A delivery that claimed the finalize and died (no release): a retry within the lease
    // waits for it briefly, then throws so that its message comes back later; it does not
    // report success and leave the export running for ever.
    const deadHolder = await store.claimLease('evt-channel', exportId, 'finalizeClaim');
    expect(deadHolder).toBeDefined();
    await expect(processChunk(lastUsers, deps({ claimWaitMs: 600 }), { receiveCount: 2 })).rejects.toBeInstanceOf(LeaseBusyError);
    expect((await store.getJob('evt-channel', exportId))?.finalizeEnqueued).toBeUndefined();
    // A holder that gives the lease back while a retry is waiting: the waiter takes the claim at
    // its next poll and enqueues the finalize, instead of waiting out its time and throwing
    // (which, with a short visibility timeout, only brings its message back again).
    const waiting = processChunk(lastUsers, deps({ claimWaitMs: 60_000 }), { receiveCount: 3 });
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect((await store.getJob('evt-channel', exportId))?.finalizeEnqueued).toBeUndefined();
    await store.releaseClaim('evt-channel', exportId, 'finalizeClaim', deadHolder!);
    const finished = await waiting;
    expect(finished.finalizeEnqueued).toBe(true);
    expect((await store.getJob('evt-channel', exportId))?.finalizeEnqueued).toBe(true);
  });
});
