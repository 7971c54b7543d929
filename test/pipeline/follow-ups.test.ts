import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { DeleteObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { LocalStack } from '../../infra/local/stack';
import { DynamoCasesSource, DynamoUsersSource, DynamoWorkspaceSource } from '../../shared/adapters/aws/dynamo-source-data';
import { S3ObjectStore } from '../../shared/adapters/aws/s3-object-store';
import type { ExportJob } from '../../shared/app/export-job';
import { exportFileName, finalizeExport, type FinalizeDeps } from '../../shared/app/finalize-export';
import { handleDeadLetter } from '../../shared/app/handle-dead-letter';
import { objectKeys, type FinalizeMessage, type NotifyMessage } from '../../shared/app/messages';
import { notifyExport, type NotifyDeps } from '../../shared/app/notify-export';
import { processChunk } from '../../shared/app/process-chunk';
import { LeaseBusyError, type StepDeps } from '../../shared/app/pipeline-steps';
import type { AuditEvent, AuditLog } from '../../shared/ports/audit-log';
import type { MessageQueue, QueueName } from '../../shared/ports/message-queue';
import type { PipelineLog } from '../../shared/ports/pipeline-log';
import { silentLog } from '../../shared/ports/pipeline-log';
import { INTERNAL_FAILURE_CODES } from '../../shared/metric-names';
import { makeJob } from './job-fixture';
import { exportReadyToFinalize as readyToFinalize, finalizeDepsFor, storesFor, TEST_PASSWORD, useSeededStack } from './helpers';

/**
 * The steps after an export's final transition (audit, notify), the finalizer's streams when a
 * side fails, and the notifier's single post, against the emulators (no pollers: each delivery
 * is a direct call, so every interleaving here is fixed, not timed).
 */

const CHANNEL = 'fu-channel';
const LINK_SECRET = 'link-secret-for-follow-ups';

/** Records what would be sent; `failNotify` sends throw first (an SQS outage past the SDK's retries). */
class RecordingQueue implements MessageQueue {
  sent: { queue: QueueName; body: unknown }[] = [];
  failNotify = 0;
  async send(queue: QueueName, body: unknown): Promise<void> {
    if (queue === 'notify' && this.failNotify > 0) {
      this.failNotify--;
      throw new Error('SQS SendMessage: ServiceUnavailable');
    }
    this.sent.push({ queue, body: structuredClone(body) });
  }
  async sendMany(queue: QueueName, bodies: readonly unknown[]): Promise<void> {
    for (const body of bodies) await this.send(queue, body);
  }
  notifies(exportId: string): NotifyMessage[] {
    return this.sent.filter((m) => m.queue === 'notify' && (m.body as NotifyMessage).exportId === exportId).map((m) => m.body as NotifyMessage);
  }
}

/** Every append call as made (a real audit log keeps only the first of each once-per-export event); `fail` appends throw first. */
class RecordingAudit implements AuditLog {
  calls: AuditEvent[] = [];
  fail = 0;
  async append(event: AuditEvent): Promise<void> {
    if (this.fail > 0) {
      this.fail--;
      throw new Error('DynamoDB PutItem: ProvisionedThroughputExceededException');
    }
    this.calls.push(structuredClone(event));
  }
  async query(): Promise<never> {
    throw new Error('not used');
  }
  async listDownloads(): Promise<never> {
    throw new Error('not used');
  }
  of(exportId: string): AuditEvent[] {
    return this.calls.filter((e) => e.exportId === exportId);
  }
}

function capturingLog(lines: string[]): PipelineLog {
  const record = (level: string) => (message: string, extra?: Record<string, unknown>) => void lines.push(`${level} ${message} ${JSON.stringify(extra ?? {})}`);
  return { info: record('info'), warn: record('warn'), error: record('error') };
}

describe('follow-up steps, finalizer streams and the notifier lease', () => {
  let stack: LocalStack;

  useSeededStack({ channelId: CHANNEL, users: 60, cases: 0, seed: 11 }, (started) => (stack = started));

  const stepDeps = (over: Partial<StepDeps> = {}): StepDeps => {
    const { store, objects } = storesFor(stack);
    return { store, objects, queue: new RecordingQueue(), clock: { now: () => new Date() }, log: silentLog, ...over };
  };

  const finalizeDeps = (over: Partial<FinalizeDeps> = {}): FinalizeDeps => finalizeDepsFor(stack, stepDeps(), LINK_SECRET, over);
  /** A contacts export whose chunks have all run: ready for the finalizer. */
  const exportReadyToFinalize = (exportId: string): Promise<ExportJob> => readyToFinalize(stack, CHANNEL, exportId, stepDeps());

  it('chunk: a retried chunk of a failed export still owing its announcement finishes it; a first delivery does not', async () => {
    const { store, ddb } = storesFor(stack);
    const failedAt = '2026-03-01T10:00:00.000Z';
    await store.createJob(
      makeJob({ exportId: 'fu-chunk-1', channelId: CHANNEL, status: 'failed', chunksTotal: 16, chunksDone: 3, error: { code: 'SEGMENT_NOT_FOUND', message: 'gone' }, failedAt }),
    );
    const queue = new RecordingQueue();
    const audit = new RecordingAudit();
    const deps = {
      ...stepDeps({ queue, audit }),
      cases: new DynamoCasesSource(ddb, stack.tables.cases),
      users: new DynamoUsersSource(ddb, stack.tables.users),
      workspace: new DynamoWorkspaceSource(ddb, stack.tables.workspace),
      maxRows: 1_000_000,
    };
    const message = { type: 'chunk' as const, exportId: 'fu-chunk-1', channelId: CHANNEL, chunkId: 'users-3', sheet: 'users' as const, index: 3, source: { type: 'userShard' as const, shard: 3 } };
    // Another chunk's late first delivery: the failing delivery itself may still be finishing.
    await processChunk(message, deps, { receiveCount: 1 });
    expect(queue.notifies('fu-chunk-1')).toEqual([]);
    // The failing delivery's retry (its notify send threw after the transition) lands here.
    await processChunk(message, deps, { receiveCount: 2 });
    expect(queue.notifies('fu-chunk-1')).toEqual([expect.objectContaining({ event: 'export.failed' })]);
    expect(audit.of('fu-chunk-1')).toEqual([expect.objectContaining({ type: 'failed', at: failedAt, code: 'SEGMENT_NOT_FOUND' })]);
    expect((await store.getJob(CHANNEL, 'fu-chunk-1'))?.notifyEnqueued).toBe(true);
    await processChunk(message, deps, { receiveCount: 3 });
    expect(queue.notifies('fu-chunk-1')).toHaveLength(1);
  });

  it('dlq: a dead-lettered notify records the failure, unless another delivery already told the bot', async () => {
    const { store } = storesFor(stack);
    await store.createJob(makeJob({ exportId: 'fu-dlq-notify-1', channelId: CHANNEL, status: 'completed' }));
    await store.createJob(makeJob({ exportId: 'fu-dlq-notify-2', channelId: CHANNEL, status: 'completed' }));
    await store.updateProgress(CHANNEL, 'fu-dlq-notify-2', { notifiedAt: '2026-03-01T10:00:00.000Z' });
    const deps = stepDeps();
    const dead = (exportId: string) => JSON.stringify({ type: 'notify', exportId, channelId: CHANNEL, event: 'export.completed' });
    expect(await handleDeadLetter(dead('fu-dlq-notify-1'), deps, { queue: 'notify-dlq' })).toBe('notify-failure-recorded');
    expect((await store.getJob(CHANNEL, 'fu-dlq-notify-1'))?.notifyError).toMatch(/could not be told/);
    expect(await handleDeadLetter(dead('fu-dlq-notify-2'), deps, { queue: 'notify-dlq' })).toBe('already-final');
    expect((await store.getJob(CHANNEL, 'fu-dlq-notify-2'))?.notifyError).toBeUndefined();
  });

  it('dlq: a notify send that fails after the transition to failed is finished by the retry, with the same audit event', async () => {
    const { store } = storesFor(stack);
    await store.createJob(makeJob({ exportId: 'fu-dlq-1', channelId: CHANNEL, status: 'running', chunksTotal: 16, chunksDone: 3 }));
    const queue = new RecordingQueue();
    queue.failNotify = 1;
    const audit = new RecordingAudit();
    const deps = stepDeps({ queue, audit });
    const dead = JSON.stringify({ type: 'chunk', exportId: 'fu-dlq-1', channelId: CHANNEL, chunkId: 'users-3', sheet: 'users', index: 3, source: { type: 'userShard', shard: 3 } });

    await expect(handleDeadLetter(dead, deps, { queue: 'chunk-dlq' })).rejects.toThrow(/ServiceUnavailable/);
    expect((await store.getJob(CHANNEL, 'fu-dlq-1'))?.status).toBe('failed');
    // The redelivered dead letter loses the transition; before, that was the end of it.
    expect(await handleDeadLetter(dead, deps, { queue: 'chunk-dlq' })).toBe('already-final');

    const job = await store.getJob(CHANNEL, 'fu-dlq-1');
    expect(job?.notifyEnqueued).toBe(true);
    expect(queue.notifies('fu-dlq-1')).toEqual([{ type: 'notify', exportId: 'fu-dlq-1', channelId: CHANNEL, event: 'export.failed' }]);
    const events = audit.of('fu-dlq-1');
    expect(events).toHaveLength(2);
    expect(events[1]).toEqual(events[0]);
    expect(events[0]).toMatchObject({ type: 'failed', at: job?.failedAt, code: 'PIPELINE_FAILED', message: job?.error?.message });

    // Announced: a third delivery does nothing more.
    expect(await handleDeadLetter(dead, deps, { queue: 'chunk-dlq' })).toBe('already-final');
    expect(queue.notifies('fu-dlq-1')).toHaveLength(1);
    expect(audit.of('fu-dlq-1')).toHaveLength(2);
  });

  it('finalizer: an audit outage after completion fails the delivery (the bot is still told); the retry appends the same completed event', async () => {
    const ready = await exportReadyToFinalize('fu-audit-1');
    const queue = new RecordingQueue();
    const audit = new RecordingAudit();
    audit.fail = 1;
    const deps = finalizeDeps({ queue, audit });
    const message: FinalizeMessage = { type: 'finalize', exportId: ready.exportId, channelId: CHANNEL };

    await expect(finalizeExport(message, deps, { receiveCount: 1 })).rejects.toThrow(/ProvisionedThroughputExceeded/);
    const completed = await storesFor(stack).store.getJob(CHANNEL, ready.exportId);
    expect(completed?.status).toBe('completed');
    expect(completed?.notifyEnqueued).toBeUndefined();
    expect(queue.notifies(ready.exportId)).toHaveLength(1);
    expect(audit.of(ready.exportId)).toEqual([]);

    expect(await finalizeExport(message, deps, { receiveCount: 2 })).toEqual({ status: 'skipped' });
    const done = await storesFor(stack).store.getJob(CHANNEL, ready.exportId);
    expect(done?.notifyEnqueued).toBe(true);
    expect(audit.of(ready.exportId)).toEqual([
      {
        type: 'completed',
        exportId: ready.exportId,
        channelId: CHANNEL,
        at: done?.completedAt,
        rowCount: done?.rowCount,
        sha256: done?.sha256,
        fileSize: done?.fileSize,
        fileName: done?.fileName,
        // From the stored job too: the retry appends what the first run would have.
        sheets: done?.fileSheets,
        linkExpiresAt: done?.expiresAt,
      },
    ]);
    expect(done?.fileSheets).toEqual([expect.objectContaining({ name: 'User data', rowCount: 60 })]);
    expect(done?.rowCount).toBe(60);
    expect(await storesFor(stack).objects.list(objectKeys.partsPrefix(ready.exportId))).toEqual([]);
  });

  it('finalizer: the retry of a delivery that failed the export but not its notify finishes it from the stored failure', async () => {
    const { store } = storesFor(stack);
    const error = { code: 'COLUMNS_CHANGED', message: 'the profile schema changed while the export ran; request the export again' };
    await store.createJob(makeJob({ exportId: 'fu-failed-1', channelId: CHANNEL, status: 'failed', error, failedAt: '2025-07-01T00:05:00.000Z' }));
    const queue = new RecordingQueue();
    const audit = new RecordingAudit();
    const message: FinalizeMessage = { type: 'finalize', exportId: 'fu-failed-1', channelId: CHANNEL };
    // A first delivery (a concurrent duplicate) leaves it to the run in progress.
    expect(await finalizeExport(message, finalizeDeps({ queue, audit }), { receiveCount: 1 })).toEqual({ status: 'skipped' });
    expect(queue.notifies('fu-failed-1')).toEqual([]);
    expect(await finalizeExport(message, finalizeDeps({ queue, audit }), { receiveCount: 2 })).toEqual({ status: 'skipped' });
    expect(queue.notifies('fu-failed-1')).toEqual([{ type: 'notify', exportId: 'fu-failed-1', channelId: CHANNEL, event: 'export.failed' }]);
    expect(audit.of('fu-failed-1')).toEqual([{ type: 'failed', exportId: 'fu-failed-1', channelId: CHANNEL, at: '2025-07-01T00:05:00.000Z', ...error }]);
    expect((await store.getJob(CHANNEL, 'fu-failed-1'))?.notifyEnqueued).toBe(true);
  });

  it('finalizer: a part whose bytes are not the ones its meta describes fails the export (PART_MISMATCH), never a file with a bad CRC', async () => {
    const ready = await exportReadyToFinalize('fu-mismatch-1');
    const { objects, store } = storesFor(stack);
    // Two overlapping deliveries of one chunk that interleaved their writes: the other
    // delivery's part (same length, other bytes) beside this meta.
    const key = objectKeys.part(ready.exportId, 'users', 0);
    const part = (await objects.getBuffer(key))!;
    const other = Buffer.from(part);
    other[other.length >> 1] = (other[other.length >> 1] ?? 0) ^ 0xff;
    await objects.put(key, other);
    const queue = new RecordingQueue();
    const outcome = await finalizeExport({ type: 'finalize', exportId: ready.exportId, channelId: CHANNEL }, finalizeDeps({ queue }), { receiveCount: 1 });
    expect(outcome.status).toBe('failed');
    // The code the handler counts (exportFailuresInternal: an alarm reads it, as nothing retries this).
    expect(outcome.failedWith).toBe('PART_MISMATCH');
    expect(INTERNAL_FAILURE_CODES).toContain(outcome.failedWith);
    const job = await store.getJob(CHANNEL, ready.exportId);
    expect(job).toMatchObject({ status: 'failed', error: { code: 'PART_MISMATCH' } });
    expect(await objects.list(objectKeys.filePrefix(CHANNEL, ready.exportId))).toEqual([]);
    expect(queue.notifies(ready.exportId)).toEqual([expect.objectContaining({ event: 'export.failed' })]);
  });

  it('finalizer: a part missing mid-write settles the upload too (no pending multipart upload) and names no secret', async () => {
    const ready = await exportReadyToFinalize('fu-missing-1');
    const { objects } = storesFor(stack);
    const last = (ready.sheetChunks?.users ?? 0) - 1;
    // What a concurrent finalizer that completed (and deleted parts/) leaves behind; the metas
    // were read already, so the writer meets the gap mid-file.
    await stack.clients.s3.send(new DeleteObjectCommand({ Bucket: stack.bucket, Key: objectKeys.part(ready.exportId, 'users', last) }));

    let upload: 'not started' | 'pending' | 'resolved' | 'rejected' = 'not started';
    let body: Readable | undefined;
    const watched = Object.create(objects) as S3ObjectStore;
    watched.upload = async (key, stream, options) => {
      upload = 'pending';
      body = stream;
      try {
        await objects.upload(key, stream, options);
        upload = 'resolved';
      } catch (error) {
        upload = 'rejected';
        throw error;
      }
    };
    const lines: string[] = [];
    const deps = finalizeDeps({ objects: watched, log: capturingLog(lines) });
    const packageKey = await deps.keyWrapper.unwrap(ready.encryption.wrappedKey, { exportId: ready.exportId });

    const error = await finalizeExport({ type: 'finalize', exportId: ready.exportId, channelId: CHANNEL }, deps, { receiveCount: 1 }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error?.message).toMatch(new RegExp(`part users/${last} is missing`));
    // Settled by the time finalizeExport rejects: before, the upload's body never ended.
    expect(upload).toBe('rejected');
    expect(body?.destroyed).toBe(true);
    expect(await objects.list(objectKeys.filePrefix(CHANNEL, ready.exportId))).toEqual([]);
    expect((await storesFor(stack).store.getJob(CHANNEL, ready.exportId))?.status).toBe('finalizing');

    const told = [error?.message ?? '', String(error?.stack), ...lines].join('\n');
    for (const secret of [TEST_PASSWORD, LINK_SECRET, packageKey.toString('hex'), packageKey.toString('base64'), stack.env.LOCAL_WRAP_KEY ?? '-']) {
      expect(told).not.toContain(secret);
    }
  });

  it('s3 adapter: a body that fails mid-upload rejects the upload and aborts its multipart upload', async () => {
    const commands: string[] = [];
    const s3 = new S3Client({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } });
    s3.middlewareStack.add(
      (_next, context) => async () => {
        const name = String(context.commandName);
        commands.push(name);
        const output = name === 'CreateMultipartUploadCommand' ? { UploadId: 'up-1' } : name === 'UploadPartCommand' ? { ETag: '"etag"' } : {};
        return { output: { ...output, $metadata: {} }, response: {} };
      },
      { step: 'initialize', name: 'fakeS3' },
    );
    const body = Readable.from(
      (async function* () {
        yield Buffer.alloc(9 * 1024 * 1024, 1);
        throw new Error('part users/3 is missing');
      })(),
    );
    await expect(new S3ObjectStore(s3, 'bucket').upload('exports/c/e/f.xlsx', body)).rejects.toThrow(/part users\/3 is missing/);
    expect(commands).toContain('CreateMultipartUploadCommand');
    expect(commands).toContain('AbortMultipartUploadCommand');
    expect(commands).not.toContain('CompleteMultipartUploadCommand');
  });

  describe('notifier', () => {
    const completedJob = (exportId: string): ExportJob =>
      makeJob({ exportId, channelId: CHANNEL, status: 'completed', rowCount: 5, fileName: 'f.xlsx', expiresAt: '2099-01-01T00:00:00.000Z' });
    const message = (exportId: string): NotifyMessage => ({ type: 'notify', exportId, channelId: CHANNEL, event: 'export.completed' });
    const notifyDeps = (post: NotifyDeps['bot']['post'], over: Partial<NotifyDeps> = {}): NotifyDeps => ({
      store: storesFor(stack).store,
      bot: { post },
      clock: { now: () => new Date() },
      log: silentLog,
      botSigningSecret: 'bot-secret',
      linkSigningSecret: LINK_SECRET,
      publicBaseUrl: 'https://api.example.com',
      backoffMs: 1,
      ...over,
    });

    it('two overlapping deliveries of one notification post once', async () => {
      await storesFor(stack).store.createJob(completedJob('fu-notify-1'));
      let posts = 0;
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      let posting!: () => void;
      const firstPost = new Promise<void>((resolve) => (posting = resolve));
      const post = async () => {
        posts++;
        posting();
        // A second post (the bug) also lets the first finish, so the test fails instead of hanging.
        if (posts > 1) release();
        await gate;
        return { status: 200 };
      };
      const first = notifyExport(message('fu-notify-1'), notifyDeps(post));
      await firstPost;
      // The duplicate finds the post in flight and waits; its first wait lets the holder finish,
      // and lasts until the holder has (the lease wait also ends on the wall clock, which a
      // stalled machine could run out while the holder's notifiedAt write is still in flight).
      const second = notifyExport(
        message('fu-notify-1'),
        notifyDeps(post, {
          sleep: async () => {
            release();
            await first;
          },
        }),
      );
      const results = await Promise.all([first, second]);
      expect(results.map((r) => r.status)).toEqual(['sent', 'skipped']);
      expect(posts).toBe(1);
    });

    it('a delivery that finds the post held past its wait throws so SQS retries; a holder that fails gives the lease back', async () => {
      const { store } = storesFor(stack);
      await store.createJob(completedJob('fu-notify-2'));
      let posts = 0;
      const ok = async () => (posts++, { status: 200 });
      // A holder that is still at it (or died: its lease lapses after CLAIM_LEASE_MS).
      const held = await store.claimLease(CHANNEL, 'fu-notify-2', 'notifyClaim');
      expect(held).toBeDefined();
      await expect(notifyExport(message('fu-notify-2'), notifyDeps(ok, { leaseWaitMs: 0 }))).rejects.toThrow(LeaseBusyError);
      expect(posts).toBe(0);
      await store.releaseClaim(CHANNEL, 'fu-notify-2', 'notifyClaim', held!);

      const down = async () => ({ status: 503 });
      await expect(notifyExport(message('fu-notify-2'), notifyDeps(down, { attempts: 2, sleep: async () => undefined }))).rejects.toThrow(/after 2 attempts/);
      expect(await notifyExport(message('fu-notify-2'), notifyDeps(ok, { leaseWaitMs: 0 }))).toEqual({ status: 'sent', attempts: 1 });
      expect(await notifyExport(message('fu-notify-2'), notifyDeps(ok, { leaseWaitMs: 0 }))).toEqual({ status: 'skipped', attempts: 0 });
      expect(posts).toBe(1);
      expect(await store.claimLease(CHANNEL, 'fu-notify-2', 'notifyClaim')).toBeUndefined();
    });
  });
});
