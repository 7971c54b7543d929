import { describe, expect, it } from 'vitest';
import type { LocalStack } from '../../infra/local/stack';
import { S3DeleteError, type S3ObjectStore } from '../../shared/adapters/aws/s3-object-store';
import { createPipelineDispatcher } from '../../shared/app/api/pipeline-dispatcher';
import type { ExportJob } from '../../shared/app/export-job';
import { exportFileName, finalizeExport } from '../../shared/app/finalize-export';
import { objectKeys, type FinalizeMessage } from '../../shared/app/messages';
import { buildChunkMessages } from '../../shared/app/plan-chunks';
import { processChunk } from '../../shared/app/process-chunk';
import type { StepDeps } from '../../shared/app/pipeline-steps';
import type { ObjectStore } from '../../shared/ports/object-store';
import { silentLog } from '../../shared/ports/pipeline-log';
import { http, managerToken } from '../e2e/support';
import { chunkDepsFor, exportReadyToFinalize, finalizeDepsFor, storesFor, submitExport, useSeededStack } from './helpers';

/**
 * A canceled export keeps nothing under parts/{id}/ (parts are raw deflate of the row XML:
 * readable customer data). Before, only the follow-ups of a finished or failed export deleted
 * parts/, so a cancel left them, and the parts chunks still running wrote after it, for the
 * 1-day lifecycle rule. The cancel goes through the API over HTTP (the real composition root);
 * chunk deliveries and the finalizer are direct calls, so every interleaving is fixed.
 */

const CHANNEL = 'cancel-clean';
const LINK_SECRET = 'link-secret-for-cancel-clean';
let stack: LocalStack;
useSeededStack({ channelId: CHANNEL, users: 60, cases: 200, seed: 3 }, (s) => (stack = s));

const stepDeps = (): StepDeps => {
  const { store, objects, queue } = storesFor(stack);
  return { store, objects, queue, clock: { now: () => new Date() }, log: silentLog };
};
const partsOf = (exportId: string) => storesFor(stack).objects.list(objectKeys.partsPrefix(exportId));
const finalizeMessage = (job: Pick<ExportJob, 'exportId'>): FinalizeMessage => ({ type: 'finalize', exportId: job.exportId, channelId: CHANNEL });
/** submitExport's jobs belong to manager m1. */
const cancel = async (exportId: string) => http(stack, 'POST', `/v1/exports/${exportId}/cancel`, { token: await managerToken(CHANNEL, 'm1') });

describe('cancel deletes parts/', () => {
  it('at the cancel, after a chunk that was rendering during it, for late deliveries, the finalizer and a retried cancel', async () => {
    const job = await submitExport(stack, { kind: 'cases', from: '2025-07-01', to: '2025-07-20', timezone: 'Asia/Seoul' }, { channelId: CHANNEL });
    const messages = buildChunkMessages(job, {}, 2000);
    expect(messages.length).toBeGreaterThan(10);
    const deps = chunkDepsFor(stack);
    for (const message of messages.slice(0, 5)) expect((await processChunk(message, deps, { receiveCount: 1 })).status).toBe('done');
    expect((await partsOf(job.exportId)).length).toBeGreaterThanOrEqual(15);

    // The cancel lands while the next chunk renders: it reads the job (running) before the cancel
    // and writes its part after the cancel has emptied parts/.
    const objects = storesFor(stack).objects;
    let canceled: Awaited<ReturnType<typeof cancel>> | undefined;
    const racing = Object.create(objects) as S3ObjectStore;
    let cancelStarted = false;
    racing.put = async (key, body, options) => {
      // Claimed before the await, so a write running alongside cannot cancel a second time.
      if (!cancelStarted) {
        cancelStarted = true;
        canceled = await cancel(job.exportId);
        // The cancel's own sweep: nothing rendered before it is left.
        expect(await partsOf(job.exportId)).toEqual([]);
      }
      return objects.put(key, body, options);
    };
    const racingOutcome = await processChunk(messages[5]!, chunkDepsFor(stack, { objects: racing }), { receiveCount: 1 });
    expect(canceled?.status, JSON.stringify(canceled?.body)).toBe(200);
    expect(canceled?.body.status).toBe('canceled');
    expect(racingOutcome.status).toBe('skipped');
    expect(await partsOf(job.exportId)).toEqual([]);
    // Not counted either: the chunk stopped before its completion.
    expect((await storesFor(stack).store.getJob(CHANNEL, job.exportId))?.chunksDone).toBe(5);

    // A write the sweeps missed (or a sweep that failed) is taken by every later step of the export.
    const stray = objectKeys.part(job.exportId, 'cases', 99);
    await objects.put(stray, 'rows in the clear');
    expect((await processChunk(messages[6]!, deps, { receiveCount: 1 })).status).toBe('skipped');
    expect(await partsOf(job.exportId)).toEqual([]);

    await objects.put(stray, 'rows in the clear');
    expect((await finalizeExport(finalizeMessage(job), finalizeDepsFor(stack, stepDeps(), LINK_SECRET), { receiveCount: 1 })).status).toBe('skipped');
    expect(await partsOf(job.exportId)).toEqual([]);

    // A retried cancel (the first one's audit append failed, say) repeats the sweep: 200, data gone.
    await objects.put(stray, 'rows in the clear');
    const again = await cancel(job.exportId);
    expect(again.status).toBe(200);
    expect(await partsOf(job.exportId)).toEqual([]);
    expect((await storesFor(stack).store.getJob(CHANNEL, job.exportId))?.status).toBe('canceled');
  });

  it('a cancel while the last case chunk plans the users phase: no user chunk is sent, its id batches are swept', async () => {
    const job = await submitExport(stack, { kind: 'cases', from: '2025-08-01', to: '2025-08-31', timezone: 'Asia/Seoul' }, { channelId: CHANNEL });
    const messages = buildChunkMessages(job, {}, 2000);
    const deps = chunkDepsFor(stack);
    for (const message of messages.slice(0, -1)) expect((await processChunk(message, deps, { receiveCount: 1 })).status).toBe('done');
    const { objects, store, queue } = storesFor(stack);
    let canceled: number | undefined;
    let cancelStarted = false;
    const racing = Object.create(objects) as S3ObjectStore;
    racing.put = async (key, body, options) => {
      await objects.put(key, body, options);
      // The first users id batch is written, then the manager cancels (the API sweeps parts/).
      // Claimed before the await: the id batches may be written concurrently, and one cancel is
      // enough.
      if (!cancelStarted && key.includes('/ids/users-')) {
        cancelStarted = true;
        canceled = (await cancel(job.exportId)).status;
      }
    };
    const sent: string[] = [];
    const watchedQueue = Object.create(queue) as typeof queue;
    watchedQueue.sendMany = async (name, bodies) => {
      sent.push(...bodies.map((b) => `${name}:${(b as { chunkId?: string }).chunkId ?? ''}`));
      return queue.sendMany(name, bodies);
    };
    await processChunk(messages.at(-1)!, chunkDepsFor(stack, { objects: racing, queue: watchedQueue }), { receiveCount: 1 });
    expect(canceled).toBe(200);
    expect(sent.filter((s) => s.startsWith('chunk:users-'))).toEqual([]);
    const after = await store.getJob(CHANNEL, job.exportId);
    expect([after?.status, after?.phase]).toEqual(['canceled', 'main']);
    expect(await partsOf(job.exportId)).toEqual([]);
  });

  it('the finalizer: a cancel while the file is written leaves neither the file nor parts/', async () => {
    const ready = await exportReadyToFinalize(stack, CHANNEL, 'cc0ffee00001', stepDeps());
    const { objects, store } = storesFor(stack);
    expect((await partsOf(ready.exportId)).length).toBeGreaterThan(0);
    const watched = Object.create(objects) as S3ObjectStore;
    watched.upload = async (key, body, options) => {
      await objects.upload(key, body, options);
      // Canceled after the status read and the file, before the completion: the store's write
      // only (the API's sweep ran before these parts were read, say, and they are still here).
      expect(await store.setStatus(CHANNEL, ready.exportId, 'canceled', ['finalizing'], { canceledAt: new Date().toISOString() })).toBe(true);
    };
    const outcome = await finalizeExport(finalizeMessage(ready), finalizeDepsFor(stack, { ...stepDeps(), objects: watched }, LINK_SECRET), {
      receiveCount: 1,
    });
    expect(outcome.status).toBe('skipped');
    expect((await store.getJob(CHANNEL, ready.exportId))?.status).toBe('canceled');
    expect(await objects.list(objectKeys.filePrefix(CHANNEL, ready.exportId))).toEqual([]);
    expect(await partsOf(ready.exportId)).toEqual([]);
  });

  it('the finalizer: a cancel between its status read and its move to finalizing (the API sweep failed) leaves no parts/', async () => {
    const ready = await exportReadyToFinalize(stack, CHANNEL, 'cc0ffee00003', stepDeps());
    const { objects, store } = storesFor(stack);
    expect((await partsOf(ready.exportId)).length).toBeGreaterThan(0);
    const racing = Object.create(store) as typeof store;
    racing.setStatus = async (channelId, exportId, to, from, extra) => {
      if (to === 'finalizing') {
        // The cancel commits first; only the store's write, as when the API's best-effort sweep failed.
        expect(await store.setStatus(channelId, exportId, 'canceled', ['queued', 'running'], { canceledAt: new Date().toISOString() })).toBe(true);
      }
      return store.setStatus(channelId, exportId, to, from, extra);
    };
    const outcome = await finalizeExport(finalizeMessage(ready), finalizeDepsFor(stack, { ...stepDeps(), store: racing }, LINK_SECRET), {
      receiveCount: 1,
    });
    expect(outcome.status).toBe('skipped');
    expect((await store.getJob(CHANNEL, ready.exportId))?.status).toBe('canceled');
    // Before, this path acknowledged the only finalize message and left the parts (readable rows).
    expect(await partsOf(ready.exportId)).toEqual([]);
  });

  it('the finalizer: a cancel over the API while it reads parts (the sweep deletes them under it) stops the run quietly, no error to retry', async () => {
    const ready = await exportReadyToFinalize(stack, CHANNEL, 'cc0ffee00002', stepDeps());
    const { objects, store } = storesFor(stack);
    let canceled: number | undefined;
    let cancelStarted = false;
    const watched = Object.create(objects) as S3ObjectStore;
    watched.getBuffer = async (key: string) => {
      // The first part body (not a meta) read: the manager cancels right then.
      // Claimed before the await: the finalizer prefetches the next part while it reads one, so
      // two reads can get here together, and one cancel is enough.
      if (!cancelStarted && !key.endsWith('.json') && !key.includes('meta')) {
        cancelStarted = true;
        canceled = (await cancel(ready.exportId)).status;
      }
      return objects.getBuffer(key);
    };
    const outcome = await finalizeExport(finalizeMessage(ready), finalizeDepsFor(stack, { ...stepDeps(), objects: watched }, LINK_SECRET), {
      receiveCount: 1,
    });
    expect(canceled).toBe(200);
    expect(outcome.status).toBe('skipped');
    expect((await store.getJob(CHANNEL, ready.exportId))?.status).toBe('canceled');
    expect(await objects.list(objectKeys.filePrefix(CHANNEL, ready.exportId))).toEqual([]);
    expect(await partsOf(ready.exportId)).toEqual([]);
  });
});

describe('a finalizer run whose parts vanish because another run finished the export', () => {
  it('stops quietly (skipped, no error to retry) and deletes nothing of the other run, sending the notify that run may have died before', async () => {
    const ready = await exportReadyToFinalize(stack, CHANNEL, 'cc0ffee00004', stepDeps());
    const { objects, store } = storesFor(stack);
    const otherFile = `${objectKeys.filePrefix(CHANNEL, ready.exportId)}other-run.xlsx`;
    let finished = false;
    const watched = Object.create(objects) as S3ObjectStore;
    watched.getBuffer = async (key: string) => {
      // The first part body read: another run (a duplicate delivery past its lease) completes the
      // export right then, its file stored, and sweeps parts/ under this one.
      if (!finished && !key.endsWith('.json') && !key.includes('meta')) {
        finished = true;
        await objects.put(otherFile, 'the other run\'s file');
        const facts = { completedAt: new Date().toISOString(), rowCount: 1, fileName: 'other.xlsx', fileSize: 20, sha256: 'ab'.repeat(32) };
        expect(await store.setStatus(CHANNEL, ready.exportId, 'completed', ['finalizing'], facts)).toBe(true);
        await objects.deletePrefix(objectKeys.partsPrefix(ready.exportId));
      }
      return objects.getBuffer(key);
    };
    const outcome = await finalizeExport(finalizeMessage(ready), finalizeDepsFor(stack, { ...stepDeps(), objects: watched }, LINK_SECRET), { receiveCount: 1 });
    expect(finished).toBe(true);
    expect(outcome.status).toBe('skipped');
    const after = await store.getJob(CHANNEL, ready.exportId);
    expect(after?.status).toBe('completed');
    // The other run died before announcing it (its stand-in here never does): this run does.
    expect(after?.notifyEnqueued).toBe(true);
    expect((await objects.list(objectKeys.filePrefix(CHANNEL, ready.exportId))).map((o) => o.key)).toEqual([otherFile]);
  });
});

describe("the API's sweep (createPipelineDispatcher.discardParts)", () => {
  it('is best effort: an S3 failure is logged with its name and counts, never thrown into the cancel', async () => {
    const lines: string[] = [];
    const write = (message: string, extra?: Record<string, unknown>) => void lines.push(`${message} ${JSON.stringify(extra ?? {})}`);
    const dispatcher = createPipelineDispatcher({
      store: {} as never,
      objects: {
        deletePrefix: async () => {
          throw new S3DeleteError('S3 DeleteObjects failed for 2 of 9 objects (InternalError); 7 deleted', { failed: 2, deleted: 7 });
        },
      } as unknown as ObjectStore,
      queue: {} as never,
      workspace: {} as never,
      selectionBatch: 2000,
      log: { info: write, warn: write, error: write },
    });
    await expect(dispatcher.discardParts({ exportId: 'e-best-effort' })).resolves.toBeUndefined();
    expect(lines).toEqual([expect.stringMatching(/^parts of a canceled or revoked export not deleted: the parts\/ lifecycle rule will .*e-best-effort.*S3DeleteError: .*failed for 2 of 9/)]);
  });
});
