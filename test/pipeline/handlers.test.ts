import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { startLocalStack, type LocalStack } from '../../infra/local/stack';
import { seedWorkspace } from '../../infra/local/seed-data';
import { createLambdaContext } from '../../infra/local/lambda-context';
import type { SqsHandler } from '../../infra/local/sqs-poller';
import { objectKeys } from '../../shared/app/messages';
import { DEAD_LETTERS_METRIC } from '../../shared/metric-names';
import { metrics } from '../../shared/adapters/aws/pipeline-deps';
import { DynamoAuditLog } from '../../shared/adapters/aws/dynamo-audit-log';
import { buildChunkMessages } from '../../shared/app/plan-chunks';
import { processChunk, type ChunkDeps } from '../../shared/app/process-chunk';
import { LeaseBusyError } from '../../shared/app/pipeline-steps';
import { CELL_STYLES_VERSION, crc32, type ColumnSpec } from '../../shared/xlsx';
import { loadJobDefinition } from '../../shared/app/job-definition';
import { partFingerprint, sheetColumns } from '../../shared/app/workspace-context';
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { chunkDepsFor, readExportFile, storesFor, submitExport, QUIET_ENV } from './helpers';

/** The sample events in events/ drive the handlers directly (no pollers), against the emulators. */
function sample(name: string): SQSEvent {
  return JSON.parse(readFileSync(new URL(`../../events/${name}.json`, import.meta.url), 'utf8')) as SQSEvent;
}

/**
 * A sample event whose bodies name the calling test's exports (and channel) instead of the
 * sample's `evt-contacts-1` / `evt-user-1` / `evt-channel`: every test submits its own exports,
 * so none depends on another having run first, or sees what another left behind.
 */
function sampleFor(name: string, renames: Record<string, string>): SQSEvent {
  const event = sample(name);
  return {
    Records: event.Records.map((record) => ({
      ...record,
      body: Object.entries(renames).reduce((body, [from, to]) => body.replaceAll(`"${from}"`, `"${to}"`), record.body),
    })),
  };
}

async function load(path: string): Promise<SqsHandler> {
  return ((await import(path)) as { handler: SqsHandler }).handler;
}

async function invoke(handler: SqsHandler, event: SQSEvent): Promise<SQSBatchResponse> {
  return (await handler(event, createLambdaContext('test'))) ?? { batchItemFailures: [] };
}

/** The seeded channel the samples name; its data is only read (a test that changes it seeds its own). */
const CHANNEL = 'evt-channel';
const SEED = { users: 60, seed: 5 };
/** The seeded user the samples' one-user chunk lists. */
const USER_ID = 'u5571bc00000003';

type NotifyBody = { type: string; exportId: string; channelId: string; event: string };

describe('SQS handlers driven by events/sqs-*.json', () => {
  let stack: LocalStack;
  let chunk: SqsHandler;
  let finalizer: SqsHandler;
  let notifier: SqsHandler;
  let dlq: SqsHandler;
  const ddb = () => storesFor(stack).ddb;
  const chunkDeps = (over: Partial<ChunkDeps> = {}): ChunkDeps => chunkDepsFor(stack, over);

  /**
   * Every message for `exportId` now on the notify queue. The queue is shared by the whole file
   * and other tests' exports leave theirs there, so this reads until nothing more is visible
   * (a received message stays hidden for the queue's visibility timeout) rather than trusting
   * one batch of ten, and keeps only this export's.
   */
  async function notifyMessagesFor(exportId: string): Promise<NotifyBody[]> {
    const found: NotifyBody[] = [];
    for (let round = 0; round < 100; round++) {
      const received = await stack.clients.sqs.send(new ReceiveMessageCommand({ QueueUrl: stack.queues.notify.url, MaxNumberOfMessages: 10 }));
      const bodies = (received.Messages ?? []).map((m) => JSON.parse(m.Body ?? '{}') as NotifyBody);
      if (bodies.length === 0) return found;
      found.push(...bodies.filter((b) => b.exportId === exportId));
    }
    throw new Error('the notify queue never ran empty');
  }

  /** A one-user contacts export (the samples' user) whose only chunk the chunk handler has run: its finalize is enqueued. */
  async function userExportReadyToFinalize(exportId: string): Promise<void> {
    await submitExport(stack, { kind: 'contacts', scope: 'user', userId: USER_ID }, { channelId: CHANNEL, exportId });
    const chunkRecord = sampleFor('sqs-chunk', { 'evt-user-1': exportId }).Records[1]!;
    expect((await invoke(chunk, { Records: [chunkRecord] })).batchItemFailures).toEqual([]);
    expect((await storesFor(stack).store.getJob(CHANNEL, exportId))?.finalizeEnqueued).toBe(true);
  }

  /** The same export, finalized by the finalizer handler: completed, its notification enqueued. */
  async function completedUserExport(exportId: string): Promise<void> {
    await userExportReadyToFinalize(exportId);
    expect((await invoke(finalizer, sampleFor('sqs-finalize', { 'evt-user-1': exportId }))).batchItemFailures).toEqual([]);
    expect((await storesFor(stack).store.getJob(CHANNEL, exportId))?.status).toBe('completed');
  }

  /** A channel of the calling test's own, with the seeded channel's users: the test changes its profile schema. */
  async function seedChannel(channelId: string): Promise<void> {
    await seedWorkspace(ddb(), { channelId, ...SEED, cases: 0 });
  }

  beforeAll(async () => {
    stack = await startLocalStack({
      port: 0,
      pollers: false,
      seed: { channelId: CHANNEL, ...SEED, cases: 120 },
      env: QUIET_ENV,
    });
    chunk = await load('../../functions/chunk/handler');
    finalizer = await load('../../functions/finalizer/handler');
    notifier = await load('../../functions/notifier/handler');
    dlq = await load('../../functions/dlq/handler');
  });

  afterAll(async () => {
    await stack?.stop();
  });

  it('chunk: processes good records, reports only the malformed one, and counts a redelivery once', async () => {
    const contactsId = 'evt-chunk-contacts';
    const userExportId = 'evt-chunk-user';
    await submitExport(stack, { kind: 'contacts', scope: 'all' }, { channelId: CHANNEL, exportId: contactsId });
    await submitExport(stack, { kind: 'contacts', scope: 'user', userId: USER_ID }, { channelId: CHANNEL, exportId: userExportId });
    const event = sampleFor('sqs-chunk', { 'evt-contacts-1': contactsId, 'evt-user-1': userExportId });
    const result = await invoke(chunk, event);
    expect(result.batchItemFailures).toEqual([{ itemIdentifier: event.Records[2]?.messageId }]);
    const { store, objects } = storesFor(stack);
    expect(await objects.head(objectKeys.part(contactsId, 'users', 0))).not.toBeNull();
    expect((await store.getJob(CHANNEL, contactsId))?.chunksDone).toBe(1);
    const userJob = await store.getJob(CHANNEL, userExportId);
    expect(userJob?.status).toBe('running');
    expect(userJob?.rowsWritten).toBe(1);
    expect(userJob?.finalizeEnqueued).toBe(true);

    await invoke(chunk, { Records: event.Records.slice(0, 2) });
    expect((await store.getJob(CHANNEL, contactsId))?.chunksDone).toBe(1);
    expect((await store.getJob(CHANNEL, userExportId))?.rowsWritten).toBe(1);
  });

  it('finalizer: writes the encrypted file, completes the job, enqueues the notification; a second run is a no-op', async () => {
    const exportId = 'evt-finalize-user';
    await userExportReadyToFinalize(exportId);
    const event = sampleFor('sqs-finalize', { 'evt-user-1': exportId });
    const result = await invoke(finalizer, event);
    expect(result.batchItemFailures).toEqual([]);
    const { store, objects } = storesFor(stack);
    const job = await store.getJob(CHANNEL, exportId);
    expect(job?.status).toBe('completed');
    expect(job?.sha256).toMatch(/^[0-9a-f]{64}$/);
    const rows = (await readExportFile(stack, job!))['User data'] ?? [];
    expect(rows.map((r) => r[0])).toEqual(['id', USER_ID]);
    expect(await objects.list(`parts/${exportId}/`)).toEqual([]);
    expect(await notifyMessagesFor(exportId)).toEqual([{ type: 'notify', exportId, channelId: CHANNEL, event: 'export.completed' }]);

    await invoke(finalizer, event);
    expect((await store.getJob(CHANNEL, exportId))?.completedAt).toBe(job?.completedAt);
  });

  it('finalizer: a revoke follow-up (events/sqs-revoke.json) finishes a revocation whose request died after the transition', async () => {
    const exportId = 'evt-revoke-user';
    await completedUserExport(exportId);
    const { store, objects, ddb } = storesFor(stack);
    // The API's transition committed, then its request died: no audit event, the file in place.
    expect(await store.setStatus(CHANNEL, exportId, 'revoked', ['completed'], { revokedAt: new Date().toISOString(), revokedBy: 'm-audit', revokeReason: 'posted in the wrong room' })).toBe(true);
    expect(await objects.list(objectKeys.filePrefix(CHANNEL, exportId))).toHaveLength(1);
    const event = sampleFor('sqs-revoke', { 'evt-user-1': exportId });
    expect((await invoke(finalizer, event)).batchItemFailures).toEqual([]);
    expect(await objects.list(objectKeys.filePrefix(CHANNEL, exportId))).toEqual([]);
    const audit = new DynamoAuditLog(ddb, stack.tables.audit);
    // The API's `requested` event, which a direct submission skips: the trail lists the export from it.
    const job = await store.getJob(CHANNEL, exportId);
    await audit.append({ type: 'requested', exportId, channelId: CHANNEL, at: job!.createdAt, managerId: 'm1', managerName: 'Kim', kind: 'contacts', scope: 'user', filters: {}, reason: 'test' });
    const trail = await audit.query({ channelId: CHANNEL, limit: 100 });
    expect(trail.items.find((e) => e.exportId === exportId)).toMatchObject({ status: 'revoked', revokedBy: { managerId: 'm-audit' }, revokeReason: 'posted in the wrong room' });
    expect((await store.getJob(CHANNEL, exportId))?.status).toBe('revoked');
    // A follow-up of a revoke that never happened (refused, or failed before the transition): nothing.
    const other = 'evt-revoke-never';
    await completedUserExport(other);
    expect((await invoke(finalizer, sampleFor('sqs-revoke', { 'evt-user-1': other }))).batchItemFailures).toEqual([]);
    expect((await store.getJob(CHANNEL, other))?.status).toBe('completed');
    expect(await objects.list(objectKeys.filePrefix(CHANNEL, other))).toHaveLength(1);
  });

  it('finalizer: a cancel follow-up (events/sqs-cancel.json) finishes a cancel no pipeline step will meet (canceled before its chunks ran)', async () => {
    const exportId = 'evt-cancel-user';
    await submitExport(stack, { kind: 'contacts', scope: 'user', userId: USER_ID }, { channelId: CHANNEL, exportId });
    const { store, ddb } = storesFor(stack);
    const audit = new DynamoAuditLog(ddb, stack.tables.audit);
    const job = await store.getJob(CHANNEL, exportId);
    await audit.append({ type: 'requested', exportId, channelId: CHANNEL, at: job!.createdAt, managerId: 'm1', managerName: 'Kim', kind: 'contacts', scope: 'user', filters: {}, reason: 'test' });
    // The API's transition committed, then its request died: no canceled event.
    expect(await store.setStatus(CHANNEL, exportId, 'canceled', ['queued', 'running'], { canceledAt: new Date().toISOString() })).toBe(true);
    expect((await invoke(finalizer, sampleFor('sqs-cancel', { 'evt-user-1': exportId }))).batchItemFailures).toEqual([]);
    const trail = await audit.query({ channelId: CHANNEL, limit: 100 });
    expect(trail.items.find((e) => e.exportId === exportId)).toMatchObject({ status: 'canceled' });
    expect((await store.getJob(CHANNEL, exportId))?.status).toBe('canceled');
  });

  it('notifier: posts one signed event with the link; a redelivery posts nothing', async () => {
    const exportId = 'evt-notify-user';
    await completedUserExport(exportId);
    const event = sampleFor('sqs-notify', { 'evt-user-1': exportId });
    expect((await invoke(notifier, event)).batchItemFailures).toEqual([]);
    expect((await invoke(notifier, event)).batchItemFailures).toEqual([]);
    const messages = stack.bot.messages.filter((m) => (m.body as { exportId: string }).exportId === exportId);
    expect(messages).toHaveLength(1);
    const body = messages[0]?.body as { link: string; message: { ko: string; en: string }; rowCount: number };
    expect(messages[0]?.signatureValid).toBe(true);
    expect(body.link).toMatch(new RegExp(`^${stack.apiUrl}/v1/downloads/[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$`));
    expect(body.rowCount).toBe(1);
    expect(body.message.ko).toContain(body.link);
  });

  it('dlq: a dead chunk fails its export and queues export.failed; a dead notification is only recorded', async () => {
    const exportId = 'evt-dlq-contacts';
    await submitExport(stack, { kind: 'contacts', scope: 'all' }, { channelId: CHANNEL, exportId });
    // A running export, one of its chunks done, as when a later chunk gives up in production.
    const firstChunk = sampleFor('sqs-chunk', { 'evt-contacts-1': exportId }).Records[0]!;
    expect((await invoke(chunk, { Records: [firstChunk] })).batchItemFailures).toEqual([]);
    // Each dead letter is one deadLetters data point, by the message it carried and its outcome.
    const dimensions = vi.spyOn(Metrics.prototype, 'addDimensions');
    const added = vi.spyOn(Metrics.prototype, 'addMetric');
    const singleMetric = vi.spyOn(metrics, 'singleMetric');
    let result: SQSBatchResponse;
    let counted: unknown[];
    try {
      result = await invoke(dlq, sampleFor('sqs-dlq', { 'evt-contacts-1': exportId }));
      // Per data point: the dimensions added to its own Metrics instance, which comes from the
      // shared one's singleMetric (so it carries the default `service` dimension too).
      const singles = new Set(singleMetric.mock.results.map((r) => r.value as Metrics));
      counted = added.mock.calls.flatMap(([name], i) => {
        const instance = added.mock.contexts[i] as Metrics;
        if (name !== DEAD_LETTERS_METRIC || !singles.has(instance)) return [];
        const at = dimensions.mock.contexts.indexOf(instance);
        return [at < 0 ? 'no dimensions' : dimensions.mock.calls[at]?.[0]];
      });
      // The plain series by function is published too (on the shared instance, its dimension added per invocation).
      expect(added.mock.calls.filter(([name], i) => name === DEAD_LETTERS_METRIC && added.mock.contexts[i] === metrics)).toHaveLength(2);
    } finally {
      dimensions.mockRestore();
      added.mockRestore();
      singleMetric.mockRestore();
    }
    expect(result.batchItemFailures).toEqual([]);
    // The batch's records run concurrently: in either order.
    expect(counted).toHaveLength(2);
    expect(counted).toEqual(
      expect.arrayContaining([
        { function: 'dlq', message: 'chunk', outcome: 'failed-export' },
        { function: 'dlq', message: 'notify', outcome: 'notify-failure-recorded' },
      ]),
    );
    const job = await storesFor(stack).store.getJob(CHANNEL, exportId);
    expect(job?.status).toBe('failed');
    expect(job?.error?.code).toBe('PIPELINE_FAILED');
    expect(job?.notifyError).toMatch(/could not be told/);
    expect(await notifyMessagesFor(exportId)).toEqual([{ type: 'notify', exportId, channelId: CHANNEL, event: 'export.failed' }]);
  });

  it('finalizer: a job from before definitions were pinned whose profile schema changed while it ran fails with COLUMNS_CHANGED, no file', async () => {
    const channelId = 'evt-schema-1-channel';
    await seedChannel(channelId);
    await submitExport(stack, { kind: 'contacts', scope: 'user', userId: USER_ID }, { channelId, exportId: 'evt-schema-1', legacyJob: true });
    const renames = { 'evt-user-1': 'evt-schema-1', [CHANNEL]: channelId };
    const chunkRecord = { ...sampleFor('sqs-chunk', renames).Records[1]!, messageId: 'schema-chunk' };
    expect((await invoke(chunk, { Records: [chunkRecord] })).batchItemFailures).toEqual([]);
    // The channel is this test's own: its schema is changed for good, nothing else reads it.
    const schema = await ddb().send(new GetCommand({ TableName: stack.tables.workspace, Key: { pk: channelId, sk: 'PROFILE_SCHEMA#users' } }));
    expect(schema.Item).toBeDefined();
    const keys = [...((schema.Item?.keys as unknown[]) ?? []), { key: 'addedLater', type: 'string', order: 99, archived: false }];
    await ddb().send(new PutCommand({ TableName: stack.tables.workspace, Item: { ...schema.Item, keys } }));
    const finalizeRecord = { ...sampleFor('sqs-finalize', renames).Records[0]!, messageId: 'schema-finalize' };
    expect((await invoke(finalizer, { Records: [finalizeRecord] })).batchItemFailures).toEqual([]);
    const job = await storesFor(stack).store.getJob(channelId, 'evt-schema-1');
    expect(job?.status).toBe('failed');
    expect(job?.error?.code).toBe('COLUMNS_CHANGED');
    expect(await storesFor(stack).objects.list(`exports/${channelId}/evt-schema-1/`)).toEqual([]);
  });

  /** Runs the sample's one-user chunk for a fresh export, then rewrites its part's fingerprint. */
  async function chunkWithFingerprint(exportId: string, fingerprint: (columns: ColumnSpec[]) => string): Promise<Record<string, string>> {
    const channelId = `${exportId}-channel`;
    await seedChannel(channelId);
    await submitExport(stack, { kind: 'contacts', scope: 'user', userId: USER_ID }, { channelId, exportId });
    const renames = { 'evt-user-1': exportId, [CHANNEL]: channelId };
    const chunkRecord = { ...sampleFor('sqs-chunk', renames).Records[1]!, messageId: `${exportId}-chunk` };
    expect((await invoke(chunk, { Records: [chunkRecord] })).batchItemFailures).toEqual([]);
    const { objects, store } = storesFor(stack);
    const job = (await store.getJob(channelId, exportId))!;
    const definition = await loadJobDefinition(job, { objects, workspace: { get: () => Promise.reject(new Error('pinned: not read')) } as never });
    const metaKey = objectKeys.partMeta(exportId, 'users', 0);
    const meta = JSON.parse((await objects.getBuffer(metaKey))!.toString('utf8')) as { columns: string };
    const columns = sheetColumns(job, 'users', definition);
    expect(meta.columns).toBe(partFingerprint(columns));
    await objects.put(metaKey, JSON.stringify({ ...meta, columns: fingerprint(columns) }));
    return renames;
  }

  it('finalizer: a part fingerprinted by its columns alone (rendered before boolean cells named their style) still stitches: completed', async () => {
    const legacy = (columns: ColumnSpec[]) => createHash('sha256').update(JSON.stringify(columns)).digest('hex').slice(0, 16);
    const renames = await chunkWithFingerprint('evt-styles-1', legacy);
    const finalizeRecord = { ...sampleFor('sqs-finalize', renames).Records[0]!, messageId: 'styles-finalize-1' };
    expect((await invoke(finalizer, { Records: [finalizeRecord] })).batchItemFailures).toEqual([]);
    const job = await storesFor(stack).store.getJob('evt-styles-1-channel', 'evt-styles-1');
    expect(job?.status, JSON.stringify(job?.error)).toBe('completed');
    const sheet = (await readExportFile(stack, job!))['User data'] ?? [];
    expect(sheet).toHaveLength(2);
    const header = sheet[0] ?? [];
    expect(typeof sheet[1]?.[header.indexOf('member')]).toBe('boolean');
  });

  it('finalizer: a part from another version of the service (its cell styles unknown here) fails the export with COLUMNS_CHANGED saying so, no file', async () => {
    const renames = await chunkWithFingerprint('evt-styles-2', (columns) =>
      createHash('sha256').update(JSON.stringify({ columns, cellStyles: CELL_STYLES_VERSION + 1 })).digest('hex').slice(0, 16),
    );
    const finalizeRecord = { ...sampleFor('sqs-finalize', renames).Records[0]!, messageId: 'styles-finalize-2' };
    expect((await invoke(finalizer, { Records: [finalizeRecord] })).batchItemFailures).toEqual([]);
    const job = await storesFor(stack).store.getJob('evt-styles-2-channel', 'evt-styles-2');
    expect(job?.status).toBe('failed');
    expect(job?.error).toEqual({
      code: 'COLUMNS_CHANGED',
      message: 'parts of this export were rendered by another version of the service (an update while it ran); request the export again',
    });
    expect(await storesFor(stack).objects.list('exports/evt-styles-2-channel/evt-styles-2/')).toEqual([]);
  });

  it('finalizer: a profile key added while the export ran does not change its columns (pinned at the request): completed', async () => {
    const channelId = 'evt-schema-2-channel';
    await seedChannel(channelId);
    await submitExport(stack, { kind: 'contacts', scope: 'user', userId: USER_ID }, { channelId, exportId: 'evt-schema-2' });
    const renames = { 'evt-user-1': 'evt-schema-2', [CHANNEL]: channelId };
    const chunkRecord = { ...sampleFor('sqs-chunk', renames).Records[1]!, messageId: 'schema-chunk-2' };
    expect((await invoke(chunk, { Records: [chunkRecord] })).batchItemFailures).toEqual([]);
    // The channel is this test's own: its schema is changed for good, nothing else reads it.
    const schema = await ddb().send(new GetCommand({ TableName: stack.tables.workspace, Key: { pk: channelId, sk: 'PROFILE_SCHEMA#users' } }));
    expect(schema.Item).toBeDefined();
    const keys = [...((schema.Item?.keys as unknown[]) ?? []), { key: 'addedLater', type: 'string', order: 99, archived: false }];
    await ddb().send(new PutCommand({ TableName: stack.tables.workspace, Item: { ...schema.Item, keys } }));
    const finalizeRecord = { ...sampleFor('sqs-finalize', renames).Records[0]!, messageId: 'schema-finalize-2' };
    expect((await invoke(finalizer, { Records: [finalizeRecord] })).batchItemFailures).toEqual([]);
    const job = await storesFor(stack).store.getJob(channelId, 'evt-schema-2');
    expect(job?.status, JSON.stringify(job?.error)).toBe('completed');
    const header = (await readExportFile(stack, job!))['User data']?.[0] ?? [];
    expect(header).toContain('id');
    expect(header).not.toContain('profile.addedLater');
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

  /**
   * A July cases export of the seeded channel with its case chunks processed (all, or all but the
   * last, which then plans the users phase): where the users-phase tests start.
   */
  async function casesExport(exportId: string, to: string, chunks: 'all' | 'all but the last') {
    const job = await submitExport(stack, { kind: 'cases', from: '2025-07-01', to, timezone: 'Asia/Seoul' }, { channelId: 'evt-channel', exportId });
    const mainChunks = buildChunkMessages(job, {}, 2000);
    const deps = chunkDeps();
    for (const m of chunks === 'all' ? mainChunks : mainChunks.slice(0, -1)) expect((await processChunk(m, deps, { receiveCount: 1 })).status).toBe('done');
    return { job, mainChunks, deps };
  }

  /** Processes every planned users chunk of the export. */
  async function runUserChunks(exportId: string, deps: ChunkDeps): Promise<void> {
    const users = (await storesFor(stack).store.getJob('evt-channel', exportId))?.sheetChunks?.users ?? 0;
    for (let index = 0; index < users; index++) {
      const message = { type: 'chunk', exportId, channelId: 'evt-channel', chunkId: `users-${index}`, sheet: 'users', index, source: { type: 'userIdsObject', key: objectKeys.userIdBatch(exportId, 'users', index) } } as const;
      await processChunk(message, deps, { receiveCount: 1 });
    }
  }

  it('chunk: a case chunk whose user list is not the one its meta describes (overlapping deliveries) fails the export at the users phase (PART_MISMATCH)', async () => {
    const { job, mainChunks, deps } = await casesExport('evt-cases-refs-1', '2025-07-10', 'all but the last');
    // The other delivery's list (it rendered one more case: a user this part's rows do not name).
    const { objects, store } = storesFor(stack);
    const key = objectKeys.caseRefs(job.exportId, 0);
    const list = JSON.parse((await objects.getBuffer(key))!.toString('utf8')) as string[];
    await objects.put(key, JSON.stringify([...list, 'u-only-in-the-other-render']));
    await processChunk(mainChunks.at(-1)!, deps, { receiveCount: 1 });
    expect(await store.getJob('evt-channel', job.exportId)).toMatchObject({ status: 'failed', error: { code: 'PART_MISMATCH' } });
  });

  it('chunk: a duplicate delivery whose writes land after the export completed (and its parts were swept) sweeps them again', async () => {
    const { job, mainChunks, deps } = await casesExport('evt-cases-late-dup', '2025-07-03', 'all');
    const { objects, store } = storesFor(stack);
    await runUserChunks(job.exportId, deps);
    const finalizeRecord = { ...sample('sqs-finalize').Records[0]!, messageId: 'late-dup-finalize', body: JSON.stringify({ type: 'finalize', exportId: job.exportId, channelId: 'evt-channel' }) };
    expect((await invoke(finalizer, { Records: [finalizeRecord] })).batchItemFailures).toEqual([]);
    expect((await store.getJob('evt-channel', job.exportId))?.status).toBe('completed');
    expect(await objects.list(objectKeys.partsPrefix(job.exportId))).toEqual([]);
    // The duplicate read the job while it still ran, and its chunk as not yet done.
    const stale = Object.create(store) as typeof store;
    let reads = 0;
    stale.getJob = async (...args) => {
      const now = await store.getJob(...args);
      return reads++ === 0 && now ? { ...now, status: 'running' } : now;
    };
    stale.isChunkDone = async () => false;
    await processChunk(mainChunks[0]!, chunkDeps({ store: stale }), { receiveCount: 2 });
    expect(await objects.list(objectKeys.partsPrefix(job.exportId))).toEqual([]);
  });

  it('chunk: a list and meta that disagree only while the other delivery is still writing (list first, meta a moment later) are read again, and the users phase is planned', async () => {
    const { job, mainChunks, deps } = await casesExport('evt-cases-refs-settle', '2025-07-05', 'all but the last');
    const { objects, store } = storesFor(stack);
    const listKey = objectKeys.caseRefs(job.exportId, 0);
    const metaKey = objectKeys.partMeta(job.exportId, 'cases', 0);
    const list = JSON.stringify([...(JSON.parse((await objects.getBuffer(listKey))!.toString('utf8')) as string[]), 'u-from-the-other-render']);
    const meta = JSON.parse((await objects.getBuffer(metaKey))!.toString('utf8')) as { refsCrc32?: number };
    // The other delivery has written its list; its meta lands 100 ms later.
    await objects.put(listKey, list);
    const metaLands = new Promise<void>((resolve) =>
      setTimeout(() => void objects.put(metaKey, JSON.stringify({ ...meta, refsCrc32: crc32(Buffer.from(list)) })).then(resolve), 100),
    );
    const outcome = await processChunk(mainChunks.at(-1)!, deps, { receiveCount: 1 });
    await metaLands;
    expect(outcome.usersPhasePlanned).toBe(true);
    const planned = await store.getJob('evt-channel', job.exportId);
    expect([planned?.status, planned?.phase]).toEqual(['running', 'users']);
    const batch = JSON.parse((await objects.getBuffer(objectKeys.userIdBatch(job.exportId, 'users', 0)))!.toString('utf8')) as string[];
    expect(batch).toContain('u-from-the-other-render');
  });

  it('chunk: a users phase planned by a holder that failed before sending is not planned again from the lists as they are now; its chunks are sent', async () => {
    const { job, mainChunks, deps } = await casesExport('evt-cases-replan', '2025-07-05', 'all but the last');
    const { objects, store, queue } = storesFor(stack);
    // The holder advances the phase, then its send fails (SQS down past the SDK's retries).
    const failing = Object.create(queue) as typeof queue;
    failing.sendMany = async () => {
      throw new Error('SQS SendMessageBatch: ServiceUnavailable');
    };
    await expect(processChunk(mainChunks.at(-1)!, chunkDeps({ queue: failing }), { receiveCount: 1 })).rejects.toThrow('ServiceUnavailable');
    const stuck = await store.getJob('evt-channel', job.exportId);
    expect([stuck?.phase, stuck?.usersEnqueued]).toEqual(['users', undefined]);
    const batchKey = objectKeys.userIdBatch(job.exportId, 'users', 0);
    const batchBefore = (await objects.getBuffer(batchKey))!.toString('utf8');
    const planBefore = (await objects.getBuffer(objectKeys.refsPlan(job.exportId)))!.toString('utf8');
    // Meanwhile a late delivery replaced case chunk 0 (part, list and meta, consistent).
    const listKey = objectKeys.caseRefs(job.exportId, 0);
    const metaKey = objectKeys.partMeta(job.exportId, 'cases', 0);
    const list = JSON.stringify([...(JSON.parse((await objects.getBuffer(listKey))!.toString('utf8')) as string[]), 'u-late-render']);
    const meta = JSON.parse((await objects.getBuffer(metaKey))!.toString('utf8')) as { refsCrc32?: number };
    await objects.put(listKey, list);
    await objects.put(metaKey, JSON.stringify({ ...meta, refsCrc32: crc32(Buffer.from(list)) }));
    // The retry of the holder's message (its claim given back when it threw).
    const sent: string[] = [];
    const watching = Object.create(queue) as typeof queue;
    watching.sendMany = async (name, bodies) => {
      sent.push(...bodies.map((b) => (b as { chunkId: string }).chunkId));
      return queue.sendMany(name, bodies);
    };
    await processChunk(mainChunks.at(-1)!, chunkDeps({ queue: watching }), { receiveCount: 2 });
    expect((await objects.getBuffer(batchKey))!.toString('utf8')).toBe(batchBefore);
    expect((await objects.getBuffer(objectKeys.refsPlan(job.exportId)))!.toString('utf8')).toBe(planBefore);
    expect(sent).toEqual(Array.from({ length: stuck?.sheetChunks?.users ?? 0 }, (_u, i) => `users-${i}`));
    expect((await store.getJob('evt-channel', job.exportId))?.usersEnqueued).toBe(true);
  });

  it('chunk: a retry that finds the users phase planned but the export canceled since its claim sends no user chunk', async () => {
    const { job, mainChunks, deps } = await casesExport('evt-cases-replan-cancel', '2025-07-05', 'all but the last');
    const { store, queue } = storesFor(stack);
    const failing = Object.create(queue) as typeof queue;
    failing.sendMany = async () => {
      throw new Error('SQS SendMessageBatch: ServiceUnavailable');
    };
    await expect(processChunk(mainChunks.at(-1)!, chunkDeps({ queue: failing }), { receiveCount: 1 })).rejects.toThrow('ServiceUnavailable');
    // The manager cancels just after the retry took the claim.
    const racing = Object.create(store) as typeof store;
    racing.claimLease = async (...args) => {
      const token = await store.claimLease(...args);
      if (token) await store.setStatus('evt-channel', job.exportId, 'canceled', ['queued', 'running'], { canceledAt: new Date().toISOString() });
      return token;
    };
    const sent: string[] = [];
    const watching = Object.create(queue) as typeof queue;
    watching.sendMany = async (name, bodies) => {
      sent.push(...bodies.map((b) => (b as { chunkId: string }).chunkId));
      return queue.sendMany(name, bodies);
    };
    await processChunk(mainChunks.at(-1)!, chunkDeps({ store: racing, queue: watching }), { receiveCount: 2 });
    expect(sent).toEqual([]);
    expect((await store.getJob('evt-channel', job.exportId))?.status).toBe('canceled');
  });

  it('finalizer: a case part replaced after the users phase was planned from its list fails the export (PART_MISMATCH), not a users sheet missing users', async () => {
    const { job, deps } = await casesExport('evt-cases-refs-2', '2025-07-10', 'all');
    const { objects, store } = storesFor(stack);
    expect((await store.getJob('evt-channel', job.exportId))?.phase).toBe('users');
    // A late delivery of case chunk 0 replaces its part, list and meta (a consistent triple of
    // its own render) after the users were planned from the first list.
    const listKey = objectKeys.caseRefs(job.exportId, 0);
    const metaKey = objectKeys.partMeta(job.exportId, 'cases', 0);
    const list = JSON.stringify([...(JSON.parse((await objects.getBuffer(listKey))!.toString('utf8')) as string[]), 'u-only-in-the-late-render']);
    const meta = JSON.parse((await objects.getBuffer(metaKey))!.toString('utf8')) as { refsCrc32?: number };
    expect(meta.refsCrc32).toEqual(expect.any(Number));
    await objects.put(listKey, list);
    await objects.put(metaKey, JSON.stringify({ ...meta, refsCrc32: crc32(Buffer.from(list)) }));
    await runUserChunks(job.exportId, deps);
    const finalizeRecord = { ...sample('sqs-finalize').Records[0]!, messageId: 'refs-finalize', body: JSON.stringify({ type: 'finalize', exportId: job.exportId, channelId: 'evt-channel' }) };
    expect((await invoke(finalizer, { Records: [finalizeRecord] })).batchItemFailures).toEqual([]);
    expect(await store.getJob('evt-channel', job.exportId)).toMatchObject({ status: 'failed', error: { code: 'PART_MISMATCH' } });
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
