import { describe, expect, it } from 'vitest';
import { createPipelineDispatcher, FOLLOW_UP_SEND_TIMEOUT_MS } from '../../shared/app/api/pipeline-dispatcher';
import type { ExportJob } from '../../shared/app/export-job';
import { finalizeExport, type FinalizeDeps } from '../../shared/app/finalize-export';
import { handleDeadLetter } from '../../shared/app/handle-dead-letter';
import { FOLLOW_UP_DELAY_SECONDS, objectKeys, type ChunkMessage, type NotifyMessage, type RevokeMessage } from '../../shared/app/messages';
import { notifyExport, type BotAnswer } from '../../shared/app/notify-export';
import { processChunk, type ChunkDeps } from '../../shared/app/process-chunk';
import type { StepDeps } from '../../shared/app/pipeline-steps';
import { finishRevocation } from '../../shared/app/revoke-follow-ups';
import type { ObjectInfo, ObjectStore } from '../../shared/ports/object-store';
import type { PipelineLog } from '../../shared/ports/pipeline-log';
import { FakeAuditLog, FakeExportStore, MutableClock, notifyLeaseStore, RecordingQueue } from '../api/support/fakes';
import { notifyDepsFor } from './helpers';
import { makeCompletedJob } from './job-fixture';

/**
 * A revoked export (a completed one whose link was withdrawn: POST /v1/exports/{id}/revoke) is
 * final for every pipeline step: the notifier posts nothing (no link, and no message without
 * one), a late finalize or chunk delivery neither completes nor fails it nor announces it, a dead
 * letter leaves it revoked. And the api's file deletion removes what is under the export's file
 * prefix, logging a failure by the error's name only.
 */

const CHANNEL = 'c1';
const LINK_SECRET = 'link-secret-for-revoked-export-tests';

function revokedJob(exportId: string): ExportJob {
  return {
    ...makeCompletedJob(exportId, CHANNEL),
    status: 'revoked',
    sha256: 'cd'.repeat(32),
    objectKey: `exports/${CHANNEL}/${exportId}/run-1/f.xlsx`,
    revokedAt: '2099-01-01T00:00:00.000Z',
    revokedBy: 'm-9',
    revokeReason: 'leaked',
    finalizeEnqueued: true,
    chunksTotal: 3,
    chunksDone: 3,
  };
}

function recordingBot() {
  const bot = {
    posts: [] as string[],
    async post(body: string): Promise<BotAnswer> {
      bot.posts.push(body);
      return { status: 204 };
    },
  };
  return bot;
}

const notify = (exportId: string, event: NotifyMessage['event'] = 'export.completed'): NotifyMessage => ({ type: 'notify', exportId, channelId: CHANNEL, event });


/** An object store over a key -> size map; `failDelete` makes deletePrefix throw a named error. */
class MapObjectStore {
  objects = new Map<string, number>();
  failDelete: Error | undefined;
  async list(prefix: string): Promise<ObjectInfo[]> {
    return [...this.objects].filter(([key]) => key.startsWith(prefix)).map(([key, size]) => ({ key, size }));
  }
  async deletePrefix(prefix: string): Promise<number> {
    if (this.failDelete) throw this.failDelete;
    const keys = [...this.objects.keys()].filter((key) => key.startsWith(prefix));
    for (const key of keys) this.objects.delete(key);
    return keys.length;
  }
}

function recordingLog(lines: string[]): PipelineLog {
  const record = (level: string) => (message: string, extra?: Record<string, unknown>) => void lines.push(`${level} ${message} ${JSON.stringify(extra ?? {})}`);
  return { info: record('info'), warn: record('warn'), error: record('error') };
}

function stepsFor(job: ExportJob) {
  const store = new FakeExportStore();
  store.jobs.set(job.exportId, structuredClone(job));
  const objects = new MapObjectStore();
  objects.objects.set(job.objectKey as string, 100);
  objects.objects.set(objectKeys.part(job.exportId, 'users', 0), 10);
  const queue = new RecordingQueue();
  const audit = new FakeAuditLog();
  const lines: string[] = [];
  const steps: StepDeps = {
    store,
    objects: objects as unknown as ObjectStore,
    queue,
    clock: new MutableClock(new Date('2099-01-02T00:00:00.000Z')),
    audit,
    log: recordingLog(lines),
  };
  return { store, objects, queue, audit, steps, lines, current: () => store.jobs.get(job.exportId) as ExportJob };
}

/**
 * A notify delivery that finds the lease held by another delivery and waits; while it waits the
 * export is revoked, and the holder gives the lease back or keeps it.
 */
async function notifyRevokedWhileWaiting(exportId: string, options: { holderGivesBack: boolean }) {
  const held = new Set([exportId]);
  const store = notifyLeaseStore(held);
  store.jobs.set(exportId, makeCompletedJob(exportId, CHANNEL));
  const bot = recordingBot();
  const outcome = await notifyExport(
    notify(exportId),
    notifyDepsFor({
      store,
      bot,
      linkSigningSecret: LINK_SECRET,
      leaseWaitMs: 60_000,
      sleep: async () => {
        Object.assign(store.jobs.get(exportId) as ExportJob, { status: 'revoked', revokedAt: '2099-01-01T00:00:00.000Z', revokedBy: 'm-1', revokeReason: 'leaked' });
        if (options.holderGivesBack) held.delete(exportId);
      },
    }),
  );
  return { outcome, bot, held };
}

describe('a revoked export in the pipeline', () => {
  it('a pending notify for a revoked export posts nothing: no link, no message without one, nothing recorded', async () => {
    const store = notifyLeaseStore();
    store.jobs.set('rv-notify', revokedJob('rv-notify'));
    const audit = new FakeAuditLog();
    const bot = recordingBot();
    const outcome = await notifyExport(notify('rv-notify'), notifyDepsFor({ store, bot, audit, linkSigningSecret: LINK_SECRET }));
    expect(outcome).toEqual({ status: 'skipped', attempts: 0 });
    expect(bot.posts).toEqual([]);
    expect(store.jobs.get('rv-notify')?.notifiedAt).toBeUndefined();
    expect(audit.events).toEqual([]);
  });

  it('revoked while the delivery waited for another delivery\'s lease (given back after it failed): nothing is posted', async () => {
    const { outcome, bot, held } = await notifyRevokedWhileWaiting('rv-wait', { holderGivesBack: true });
    expect(outcome).toEqual({ status: 'skipped', attempts: 0 });
    expect(bot.posts).toEqual([]);
    // The lease is given back: nothing holds it for the next two minutes.
    expect(held.has('rv-wait')).toBe(false);
  });

  it('revoked while the lease stays held: the waiting delivery stops at once instead of retrying later', async () => {
    const { outcome, bot } = await notifyRevokedWhileWaiting('rv-held', { holderGivesBack: false });
    expect(outcome).toEqual({ status: 'skipped', attempts: 0 });
    expect(bot.posts).toEqual([]);
  });

  it('revoked while an attempt was under way (the bot answered 503 after the revoke): the retry posts nothing, no link goes out after the revoke', async () => {
    const held = new Set<string>();
    const store = notifyLeaseStore(held);
    store.jobs.set('rv-between', makeCompletedJob('rv-between', CHANNEL));
    const audit = new FakeAuditLog();
    const posts: string[] = [];
    const bot = {
      async post(body: string): Promise<BotAnswer> {
        posts.push(body);
        // The auditor revokes while the bot holds this post, then the bot fails it.
        Object.assign(store.jobs.get('rv-between') as ExportJob, { status: 'revoked', revokedAt: '2099-01-01T00:00:00.000Z', revokedBy: 'm-1', revokeReason: 'leaked' });
        return { status: 503 };
      },
    };
    const outcome = await notifyExport(notify('rv-between'), notifyDepsFor({ store, bot, audit, linkSigningSecret: LINK_SECRET, sleep: async () => undefined }));
    expect(outcome).toEqual({ status: 'skipped', attempts: 1 });
    expect(posts).toHaveLength(1);
    expect(store.jobs.get('rv-between')?.notifiedAt).toBeUndefined();
    expect(audit.events).toEqual([]);
    // The lease is given back.
    expect(held.has('rv-between')).toBe(false);
  });

  it('a redelivered finalize leaves it revoked: no completion, no failure, no notify, no audit event; parts/ swept', async () => {
    const { steps, queue, audit, current, objects } = stepsFor(revokedJob('rv-final'));
    const deps: FinalizeDeps = { ...steps, keyWrapper: {} as never, workspace: {} as never, linkSigningSecret: LINK_SECRET, linkTtlDays: 7 };
    for (const receiveCount of [1, 2]) {
      expect(await finalizeExport({ type: 'finalize', exportId: 'rv-final', channelId: CHANNEL }, deps, { receiveCount })).toEqual({ status: 'skipped' });
    }
    expect(current()).toMatchObject({ status: 'revoked', revokedBy: 'm-9' });
    expect(queue.sent).toEqual([]);
    expect(audit.events).toEqual([]);
    // Nothing is written; the file's deletion is the revoke's. parts/ (rows in the clear) is
    // swept: a run killed after its completion is retried only after the visibility timeout,
    // and nothing else would sweep them once the export was revoked meanwhile.
    expect([...objects.objects.keys()]).toEqual([revokedJob('rv-final').objectKey]);
  });

  it('a late chunk delivery skips it: no completion, no failure, no announcement', async () => {
    const { steps, queue, audit, current } = stepsFor(revokedJob('rv-chunk'));
    const deps: ChunkDeps = {
      ...steps,
      cases: {} as never,
      users: {} as never,
      workspace: {} as never,
      maxRows: 1_000_000,
    };
    const message: ChunkMessage = { type: 'chunk', exportId: 'rv-chunk', channelId: CHANNEL, chunkId: 'users-0', sheet: 'users', index: 0, source: { type: 'all', from: null, to: null } } as unknown as ChunkMessage;
    const outcome = await processChunk(message, deps, { receiveCount: 2 });
    expect(outcome.status).toBe('skipped');
    expect(current().status).toBe('revoked');
    expect(queue.sent).toEqual([]);
    expect(audit.events).toEqual([]);
  });

  it('a dead-lettered finalize leaves it revoked (already final): not failed, nothing announced', async () => {
    const { steps, queue, current } = stepsFor(revokedJob('rv-dlq'));
    const outcome = await handleDeadLetter(JSON.stringify({ type: 'finalize', exportId: 'rv-dlq', channelId: CHANNEL }), steps, { queue: 'finalize-dlq' });
    expect(outcome).toBe('already-final');
    expect(current()).toMatchObject({ status: 'revoked' });
    expect(current().error).toBeUndefined();
    expect(queue.sent).toEqual([]);
  });

  it('the follow-up message finishes a revocation whose request died after the transition: file, parts, then the trail', async () => {
    // The transition committed, then the request died (a timeout): no audit event, file and parts in place.
    const { steps, audit, objects, current } = stepsFor(revokedJob('rv-follow'));
    const message: RevokeMessage = { type: 'revoke', exportId: 'rv-follow', channelId: CHANNEL };
    expect(await finishRevocation(message, steps)).toBe('finished');
    expect(objects.objects.size).toBe(0);
    expect(audit.events.map((e) => e.type)).toEqual(['completed', 'revoked']);
    expect(audit.events[1]).toEqual({ type: 'revoked', exportId: 'rv-follow', channelId: CHANNEL, at: '2099-01-01T00:00:00.000Z', managerId: 'm-9', reason: 'leaked' });
    expect(current().status).toBe('revoked');
    // Again (a duplicate delivery, or the request's own follow-ups having run): the same trail.
    expect(await finishRevocation(message, steps)).toBe('finished');
    expect(audit.events.map((e) => e.type)).toEqual(['completed', 'revoked']);
  });

  it('the follow-up message leaves an export that was never revoked alone (the request was refused or failed before the transition)', async () => {
    const completed = { ...revokedJob('rv-never'), status: 'completed' as const };
    const { steps, audit, objects, current } = stepsFor(completed);
    expect(await finishRevocation({ type: 'revoke', exportId: 'rv-never', channelId: CHANNEL }, steps)).toBe('not-revoked');
    expect(objects.objects.size).toBe(2);
    expect(audit.events).toEqual([]);
    expect(current().status).toBe('completed');
  });

  it('an audit outage brings the follow-up back (thrown) after the data went; its dead letter tries again and leaves the export revoked', async () => {
    const { steps, audit, objects, current } = stepsFor(revokedJob('rv-outage'));
    audit.failNext = 'revoked';
    const message: RevokeMessage = { type: 'revoke', exportId: 'rv-outage', channelId: CHANNEL };
    await expect(finishRevocation(message, steps)).rejects.toThrow();
    expect(objects.objects.size).toBe(0);
    expect(await handleDeadLetter(JSON.stringify(message), steps, { queue: 'finalize-dlq' })).toBe('already-final');
    expect(audit.events.map((e) => e.type)).toEqual(['completed', 'revoked']);
    expect(current().status).toBe('revoked');
    expect(current().error).toBeUndefined();
  });

  it("the api's follow-up goes to the finalize queue, delayed past any request, and a queue outage does not stop the revocation", async () => {
    const queue = new RecordingQueue();
    const lines: string[] = [];
    const dispatcher = createPipelineDispatcher({ store: new FakeExportStore(), objects: new MapObjectStore() as unknown as ObjectStore, queue, workspace: {} as never, selectionBatch: 100, log: recordingLog(lines) });
    await dispatcher.scheduleFollowUp('revoke', { channelId: CHANNEL, exportId: 'rv-send' });
    expect(queue.sent).toEqual([{ queue: 'finalize', body: { type: 'revoke', exportId: 'rv-send', channelId: CHANNEL }, delaySeconds: FOLLOW_UP_DELAY_SECONDS }]);
    // Longer than the api may take (API Gateway's 29 s), within SQS's 900 s.
    expect(FOLLOW_UP_DELAY_SECONDS).toBeGreaterThan(29);
    expect(FOLLOW_UP_DELAY_SECONDS).toBeLessThanOrEqual(900);
    const down = new RecordingQueue();
    down.send = async () => {
      throw Object.assign(new Error('SQS SendMessage failed for https://sqs/123/export-finalize'), { name: 'QueueDoesNotExist' });
    };
    const failing = createPipelineDispatcher({ store: new FakeExportStore(), objects: new MapObjectStore() as unknown as ObjectStore, queue: down, workspace: {} as never, selectionBatch: 100, log: recordingLog(lines) });
    await expect(failing.scheduleFollowUp('revoke', { channelId: CHANNEL, exportId: 'rv-send' })).resolves.toBeUndefined();
    expect(lines).toEqual([expect.stringMatching(/^warn revoke follow-up not sent: the request finishes it alone.*"error":"QueueDoesNotExist"/)]);
    expect(lines[0]).not.toContain('sqs/123');
    // A queue that never answers holds the revoke up for the bound only, not the request's timeout.
    const hung = new RecordingQueue();
    hung.send = () => new Promise<void>(() => {});
    const slow = createPipelineDispatcher({ store: new FakeExportStore(), objects: new MapObjectStore() as unknown as ObjectStore, queue: hung, workspace: {} as never, selectionBatch: 100, log: recordingLog(lines), followUpTimeoutMs: 50 });
    // Without the bound this never settles (the test would time out).
    await expect(slow.scheduleFollowUp('revoke', { channelId: CHANNEL, exportId: 'rv-hang' })).resolves.toBeUndefined();
    expect(lines[1]).toMatch(/^warn revoke follow-up not sent.*"error":"FollowUpSendTimeout"/);
    expect(FOLLOW_UP_SEND_TIMEOUT_MS).toBeLessThanOrEqual(5_000);
  });

  it("the api's file deletion removes every object under the export's file prefix, and nothing else", async () => {
    const objects = new MapObjectStore();
    objects.objects.set(`exports/${CHANNEL}/rv-del/run-1/f.xlsx`, 100);
    objects.objects.set(`exports/${CHANNEL}/rv-del/run-2/f.xlsx`, 100);
    objects.objects.set(`exports/${CHANNEL}/rv-other/run-1/f.xlsx`, 100);
    const lines: string[] = [];
    const dispatcher = createPipelineDispatcher({ store: new FakeExportStore(), objects: objects as unknown as ObjectStore, queue: new RecordingQueue(), workspace: {} as never, selectionBatch: 100, log: recordingLog(lines) });
    await dispatcher.discardFile({ channelId: CHANNEL, exportId: 'rv-del' });
    expect([...objects.objects.keys()]).toEqual([`exports/${CHANNEL}/rv-other/run-1/f.xlsx`]);
  });

  it('a deletion that fails does not throw (the revocation stands) and is logged by the error name only', async () => {
    const objects = new MapObjectStore();
    objects.objects.set(`exports/${CHANNEL}/rv-fail/run-1/f.xlsx`, 100);
    const failure = new Error(`S3 DeleteObjects failed for exports/${CHANNEL}/rv-fail/run-1/f.xlsx in bucket secret-bucket`);
    failure.name = 'S3DeleteError';
    objects.failDelete = failure;
    const lines: string[] = [];
    const dispatcher = createPipelineDispatcher({ store: new FakeExportStore(), objects: objects as unknown as ObjectStore, queue: new RecordingQueue(), workspace: {} as never, selectionBatch: 100, log: recordingLog(lines) });
    await expect(dispatcher.discardFile({ channelId: CHANNEL, exportId: 'rv-fail' })).resolves.toBeUndefined();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^warn file of a revoked export not deleted/);
    expect(lines[0]).toContain('"error":"S3DeleteError"');
    expect(lines[0]).not.toContain('secret-bucket');
    expect(lines[0]).not.toContain('f.xlsx');
  });
});
