import { describe, expect, it } from 'vitest';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import type { SQSRecord } from 'aws-lambda';
import { generateWorkspace } from '../../shared/domain';
import { compareUsersInExportOrder } from '../../shared/app/source-keys';
import type { LocalStack } from '../../infra/local/stack';
import type { SqsHandler } from '../../infra/local/sqs-poller';
import { readExportFile, storesFor, submitExport, waitFor, waitForJob, useLocalStack, QUIET_ENV } from './helpers';

const CHANNEL = 'c2';
const SEED = 11;
const USERS = 250;

type Behaviour = {
  /** Send every chunk message of these exports a second time (a duplicate SQS message). */
  duplicate: Set<string>;
  /** `${exportId}/${chunkId}` that throw on their first delivery only. */
  throwOnce: Set<string>;
  /** `${exportId}/${chunkId}` that always throw. */
  throwAlways: Set<string>;
};

function bodyOf(record: SQSRecord): { exportId: string; chunkId: string } {
  return JSON.parse(record.body) as { exportId: string; chunkId: string };
}

describe('pipeline under redelivery and failures', () => {
  let stack: LocalStack;
  const behaviour: Behaviour = { duplicate: new Set(), throwOnce: new Set(), throwAlways: new Set() };
  const duplicated = new Set<string>();
  const CASES = 400;
  const workspace = generateWorkspace({ channelId: CHANNEL, seed: SEED, users: USERS, cases: CASES });
  const expectedIds = [...workspace.users].map((u) => u.id).sort(compareUsersInExportOrder);

  useLocalStack(
    {
      port: 0,
      seed: { channelId: CHANNEL, users: USERS, cases: CASES, seed: SEED },
      env: { ...QUIET_ENV, NOTIFY_BACKOFF_MS: '10' },
      // Failed records come back after the retry delay (RETRY_BASE_SECONDS 1: 1 s, 2 s, ...),
      // then the DLQ after 3 receives. The visibility timeout only bounds a delivery that is
      // still running: 10 s, so a slow chunk on a loaded machine is not received again while it
      // works (each such receive counts toward the DLQ; 3 s once dead-lettered a chunk whose
      // first delivery ran long, hit a transient emulator error and held the users-phase claim).
      queues: { chunk: { visibilityTimeout: 10, maxReceiveCount: 3 }, finalize: { visibilityTimeout: 20 }, notify: { visibilityTimeout: 2 } },
      wrapHandler: (name, handler): SqsHandler => {
        if (name !== 'chunk') return handler;
        return async (event, context) => {
          const injected: SQSRecord[] = [];
          const pass: SQSRecord[] = [];
          for (const record of event.Records) {
            const { exportId, chunkId } = bodyOf(record);
            const key = `${exportId}/${chunkId}`;
            if (behaviour.duplicate.has(exportId) && !duplicated.has(key)) {
              duplicated.add(key);
              await stack.clients.sqs.send(new SendMessageCommand({ QueueUrl: stack.queues.chunk.url, MessageBody: record.body }));
            }
            const firstDelivery = record.attributes.ApproximateReceiveCount === '1';
            if (behaviour.throwAlways.has(key) || (behaviour.throwOnce.has(key) && firstDelivery)) {
              injected.push(record);
            } else {
              pass.push(record);
            }
          }
          // Injected failures come back after the retry delay, as the handler's own do, not
          // after the whole visibility timeout.
          // (Imported here: the module reads its settings at load, after the stack set them.)
          const { scheduleRetries } = await import('../../shared/adapters/aws/sqs-handler');
          await scheduleRetries(injected);
          const result = pass.length > 0 ? await handler({ Records: pass }, context) : undefined;
          const failures = injected.map((record) => ({ itemIdentifier: record.messageId }));
          return { batchItemFailures: [...failures, ...(result?.batchItemFailures ?? [])] };
        };
      },
    },
    (started) => (stack = started),
  );

  const botMessagesFor = (exportId: string) => stack.bot.messages.filter((m) => (m.body as { exportId?: string }).exportId === exportId);
  const deliveriesFor = (records: SQSRecord[], exportId: string) => records.filter((r) => bodyOf(r).exportId === exportId);
  /** Distinct messages (a redelivery after a visibility timeout is the same message again). */
  const messagesFor = (records: SQSRecord[], exportId: string) => new Set(deliveriesFor(records, exportId).map((r) => r.messageId));

  it('every chunk delivered twice: same rows, right counts, one finalize, one bot message', async () => {
    const job = await submitExport(stack, { kind: 'contacts', scope: 'all' }, { channelId: CHANNEL, beforePlan: (id) => behaviour.duplicate.add(id) });
    const done = await waitForJob(stack, job, (j) => j.status === 'completed' || j.status === 'failed');
    expect(done.status).toBe('completed');
    await waitFor(() => (botMessagesFor(job.exportId).length > 0 ? true : undefined));
    // Let any straggling duplicates run through before counting.
    await waitFor(() => (deliveriesFor(stack.deliveries.chunk, job.exportId).length >= 2 * done.chunksTotal ? true : undefined));
    await new Promise((resolve) => setTimeout(resolve, 1500));
    // At least twice each (a slow first run can also outlive the visibility timeout: more redeliveries).
    expect(deliveriesFor(stack.deliveries.chunk, job.exportId).length).toBeGreaterThanOrEqual(2 * done.chunksTotal);
    const after = await storesFor(stack).store.getJob(CHANNEL, job.exportId);
    expect(after?.chunksDone).toBe(done.chunksTotal);
    expect(after?.rowsWritten).toBe(USERS);
    expect(after?.rowCount).toBe(USERS);
    expect(messagesFor(stack.deliveries.finalizer, job.exportId).size).toBe(1);
    expect(botMessagesFor(job.exportId)).toHaveLength(1);
    const rows = (await readExportFile(stack, done))['User data'] ?? [];
    expect(rows.slice(1).map((r) => r[0])).toEqual(expectedIds);
  });

  it('cases with every chunk (both phases) delivered twice: one finalize, one bot message, users once each', async () => {
    const job = await submitExport(stack, { kind: 'cases', from: '2025-07-01', to: '2025-07-31', timezone: 'Asia/Seoul' }, {
      channelId: CHANNEL,
      beforePlan: (id) => behaviour.duplicate.add(id),
    });
    const done = await waitForJob(stack, job, (j) => j.status === 'completed' || j.status === 'failed');
    expect(done.status).toBe('completed');
    await waitFor(() => (botMessagesFor(job.exportId).length > 0 ? true : undefined));
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(messagesFor(stack.deliveries.finalizer, job.exportId).size).toBe(1);
    expect(botMessagesFor(job.exportId)).toHaveLength(1);
    const after = await storesFor(stack).store.getJob(CHANNEL, job.exportId);
    expect(after?.chunksDone).toBe(after?.chunksTotal);
    expect(after?.sheetChunks?.users).toBeGreaterThan(0);
    const sheets = await readExportFile(stack, done);
    const caseRows = (sheets['UserChatCase data'] ?? []).slice(1);
    expect(caseRows.length).toBe(done.rowCount);
    const caseIds = caseRows.map((r) => r[2]);
    expect(new Set(caseIds).size).toBe(caseIds.length);
    const userCol = (sheets['UserChatCase data'] ?? [])[0]?.indexOf('userId') ?? -1;
    const referenced = [...new Set(caseRows.map((r) => String(r[userCol])))].sort(compareUsersInExportOrder);
    expect((sheets['User data'] ?? []).slice(1).map((r) => r[0])).toEqual(referenced);
  });

  it('a chunk that throws once is retried and the export completes', async () => {
    const job = await submitExport(stack, { kind: 'contacts', scope: 'all' }, { channelId: CHANNEL, beforePlan: (id) => behaviour.throwOnce.add(`${id}/users-5`) });
    const done = await waitForJob(stack, job, (j) => j.status === 'completed' || j.status === 'failed');
    expect(done.status).toBe('completed');
    const tries = deliveriesFor(stack.deliveries.chunk, job.exportId).filter((r) => bodyOf(r).chunkId === 'users-5');
    expect(tries.map((r) => r.attributes.ApproximateReceiveCount).slice(0, 2)).toEqual(['1', '2']);
    const rows = (await readExportFile(stack, done))['User data'] ?? [];
    expect(rows.slice(1).map((r) => r[0])).toEqual(expectedIds);
    await waitFor(() => (botMessagesFor(job.exportId).length === 1 ? true : undefined));
  });

  it('a chunk that always throws ends in the DLQ: export failed, no file, the bot is told', async () => {
    const job = await submitExport(stack, { kind: 'contacts', scope: 'all' }, { channelId: CHANNEL, beforePlan: (id) => behaviour.throwAlways.add(`${id}/users-2`) });
    const failed = await waitForJob(stack, job, (j) => j.status === 'completed' || j.status === 'failed');
    expect(failed.status).toBe('failed');
    expect(failed.error?.code).toBe('PIPELINE_FAILED');
    expect(failed.objectKey).toBeUndefined();
    expect(deliveriesFor(stack.deliveries.dlq, job.exportId)).toHaveLength(1);
    const message = await waitFor(() => botMessagesFor(job.exportId)[0]);
    expect((message.body as { type: string }).type).toBe('export.failed');
    expect((message.body as { link: unknown }).link).toBeNull();
    expect(message.signatureValid).toBe(true);
    expect(await storesFor(stack).objects.list(`exports/${CHANNEL}/${job.exportId}/`)).toEqual([]);
  });

  it('a canceled export writes no file and sends no link', async () => {
    const job = await submitExport(stack, { kind: 'contacts', scope: 'all' }, { channelId: CHANNEL });
    // What the API's cancel does: a conditional transition from an active state.
    const { store } = storesFor(stack);
    const canceled = await store.setStatus(CHANNEL, job.exportId, 'canceled', ['queued', 'running', 'finalizing']);
    expect(canceled).toBe(true);
    await waitFor(() => (deliveriesFor(stack.deliveries.chunk, job.exportId).length >= 16 ? true : undefined));
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const after = await store.getJob(CHANNEL, job.exportId);
    expect(after?.status).toBe('canceled');
    expect(after?.objectKey).toBeUndefined();
    expect(deliveriesFor(stack.deliveries.finalizer, job.exportId)).toHaveLength(0);
    expect(botMessagesFor(job.exportId)).toHaveLength(0);
  });

  it('a bot that refuses the event (400): recorded by the notifier at once, one delivery, no retries, no DLQ', async () => {
    stack.bot.failWith = 400;
    try {
      const job = await submitExport(stack, { kind: 'contacts', scope: 'user', userId: 'no-such-user' }, { channelId: CHANNEL });
      const recorded = await waitForJob(stack, job, (j) => j.notifyError !== undefined);
      expect(recorded.status).toBe('completed');
      expect(recorded.notifiedAt).toBeUndefined();
      // Before: every receive posted 3 times and threw; after maxReceiveCount the DLQ recorded
      // "could not be told ... after every retry".
      expect(recorded.notifyError).toBe('the bot refused the event (export.completed) with HTTP 400; not retried');
      const notifyDeliveries = stack.deliveries.notifier.filter((r) => r.body.includes(job.exportId));
      expect(notifyDeliveries.map((r) => r.attributes.ApproximateReceiveCount)).toEqual(['1']);
      expect(stack.deliveries.dlq.filter((r) => r.body.includes(job.exportId))).toEqual([]);
    } finally {
      stack.bot.failWith = undefined;
    }
  });
});
