import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { LocalStack } from '../../infra/local/stack';
import { DynamoExportStore } from '../../shared/adapters/aws/dynamo-export-store';
import type { ExportJob } from '../../shared/app/export-job';
import { finalizeExport, type FinalizeDeps } from '../../shared/app/finalize-export';
import { handleDeadLetter } from '../../shared/app/handle-dead-letter';
import { objectKeys, type ChunkMessage, type FinalizeMessage, type NotifyMessage } from '../../shared/app/messages';
import { notifyExport, type BotAnswer, type NotifyDeps } from '../../shared/app/notify-export';
import { LeaseBusyError, type StepDeps } from '../../shared/app/pipeline-steps';
import { buildChunkMessages } from '../../shared/app/plan-chunks';
import { processChunk, type ChunkDeps } from '../../shared/app/process-chunk';
import type { AuditEvent, AuditLog } from '../../shared/ports/audit-log';
import { CLAIM_LEASE_MS } from '../../shared/ports/export-store';
import type { MessageQueue, QueueName } from '../../shared/ports/message-queue';
import { silentLog } from '../../shared/ports/pipeline-log';
import { makeCompletedJob, makeJob } from './job-fixture';
import { chunkDepsFor, exportReadyToFinalize, finalizeDepsFor, storesFor, submitExport, useSeededStack, notifyDepsFor } from './helpers';
import { setAddOf, storeLosingAnswer, transitionTo } from './lost-answer';

/**
 * A conditional write that DynamoDB committed but whose answer was lost (a 500 after the
 * commit, a reset connection): the SDK retries it, the retry fails the condition against the
 * write it repeats, and the caller reads "someone else did it". Each step that decides on such
 * a write must still go on: otherwise the only message that would ever finish the export is
 * acknowledged and the export stays `running` or `finalizing`, or is never announced. Against
 * the emulators with the real SDK retry (see storeLosingAnswer), no pollers: every delivery is a
 * direct call and every interleaving is forced by a gate, never timed.
 */

const CHANNEL = 'la-channel';
const LINK_SECRET = 'link-secret-for-lost-answers';

/** Records what would be sent (nothing reaches a queue: there are no pollers anyway). */
class RecordingQueue implements MessageQueue {
  sent: { queue: QueueName; body: unknown }[] = [];
  async send(queue: QueueName, body: unknown): Promise<void> {
    this.sent.push({ queue, body: structuredClone(body) });
  }
  async sendMany(queue: QueueName, bodies: readonly unknown[]): Promise<void> {
    for (const body of bodies) await this.send(queue, body);
  }
  of(queue: QueueName, exportId: string): unknown[] {
    return this.sent.filter((m) => m.queue === queue && (m.body as { exportId?: string }).exportId === exportId).map((m) => m.body);
  }
}

class RecordingAudit implements AuditLog {
  calls: AuditEvent[] = [];
  async append(event: AuditEvent): Promise<void> {
    this.calls.push(structuredClone(event));
  }
  async query(): Promise<never> {
    throw new Error('not used');
  }
  async listDownloads(): Promise<never> {
    throw new Error('not used');
  }
}

describe('a write that committed but whose answer was lost (the SDK retried it)', () => {
  let stack: LocalStack;

  useSeededStack({ channelId: CHANNEL, users: 60, cases: 120, seed: 5 }, (started) => (stack = started));

  const stepDeps = (over: Partial<StepDeps> = {}): StepDeps => {
    const { store, objects } = storesFor(stack);
    return { store, objects, queue: new RecordingQueue(), clock: { now: () => new Date() }, log: silentLog, ...over };
  };
  const chunkDeps = (over: Partial<ChunkDeps> = {}): ChunkDeps => chunkDepsFor(stack, over);
  const getJob = (exportId: string) => storesFor(stack).store.getJob(CHANNEL, exportId) as Promise<ExportJob>;

  describe('chunk: the set-add of the chunk that completes the set', () => {
    it('contacts: its own retry reads "already in the set", and the delivery still sends the finalize, once', async () => {
      const exportId = 'la-last-contacts';
      const job = await submitExport(stack, { kind: 'contacts', scope: 'all' }, { channelId: CHANNEL, exportId });
      const messages = buildChunkMessages(job, {}, 2000);
      const queue = new RecordingQueue();
      for (const m of messages.slice(0, -1)) await processChunk(m, chunkDeps({ queue }), { receiveCount: 1 });
      const last = messages.at(-1)!;

      const losing = storeLosingAnswer(stack, setAddOf(last.chunkId));
      const outcome = await processChunk(last, chunkDeps({ store: losing.store, queue }), { receiveCount: 1 });
      // The write went out twice (the SDK's retry), and the second one was refused: the store
      // cannot tell this delivery from a duplicate, so it reports one.
      expect(losing.lost).toEqual({ answers: 1, sends: 2 });
      expect(outcome.status).toBe('duplicate');
      // Before: nothing more, the message acknowledged, the export `running` for ever.
      expect(outcome.finalizeEnqueued).toBe(true);
      const after = await getJob(exportId);
      expect([after.status, after.chunksDone, after.chunksTotal, after.finalizeEnqueued]).toEqual(['running', messages.length, messages.length, true]);
      expect(queue.of('finalize', exportId)).toHaveLength(1);

      // Every delivery now goes on to the step when the set is complete; the set-once flag keeps
      // it to one message, whatever comes again (duplicates and retries of every chunk).
      for (const receiveCount of [1, 2]) {
        for (const m of messages) {
          const again = await processChunk(m, chunkDeps({ queue }), { receiveCount });
          expect([again.status, again.finalizeEnqueued]).toEqual(['duplicate', false]);
        }
      }
      expect(queue.of('finalize', exportId)).toHaveLength(1);
      expect((await getJob(exportId)).chunksDone).toBe(messages.length);
    });

    it('cases: the last case chunk still plans the users phase; the phase and the finalize are each sent once', async () => {
      const exportId = 'la-last-cases';
      const job = await submitExport(stack, { kind: 'cases', from: '2025-07-01', to: '2025-07-03', timezone: 'Asia/Seoul' }, { channelId: CHANNEL, exportId });
      const caseChunks = buildChunkMessages(job, {}, 2000);
      const queue = new RecordingQueue();
      for (const m of caseChunks.slice(0, -1)) await processChunk(m, chunkDeps({ queue }), { receiveCount: 1 });
      const last = caseChunks.at(-1)!;

      const losing = storeLosingAnswer(stack, setAddOf(last.chunkId));
      const outcome = await processChunk(last, chunkDeps({ store: losing.store, queue }), { receiveCount: 1 });
      expect(losing.lost).toEqual({ answers: 1, sends: 2 });
      // Before: not planned (a first receive that is "not the first set-add" did nothing).
      expect(outcome.usersPhasePlanned).toBe(true);
      const planned = await getJob(exportId);
      const userChunks = planned.sheetChunks?.users ?? 0;
      expect(userChunks).toBeGreaterThan(0);
      expect([planned.phase, planned.usersEnqueued, planned.chunksTotal]).toEqual(['users', true, caseChunks.length + userChunks]);
      const userMessages = queue.of('chunk', exportId) as ChunkMessage[];
      expect(userMessages).toHaveLength(userChunks);

      // Case chunks again (duplicates and retries): no second planning, no user chunk sent twice.
      for (const receiveCount of [1, 2]) for (const m of caseChunks) await processChunk(m, chunkDeps({ queue }), { receiveCount });
      expect(queue.of('chunk', exportId)).toHaveLength(userChunks);
      expect((await getJob(exportId)).chunksTotal).toBe(caseChunks.length + userChunks);

      for (const m of userMessages) await processChunk(m, chunkDeps({ queue }), { receiveCount: 1 });
      for (const m of [...caseChunks, ...userMessages]) await processChunk(m, chunkDeps({ queue }), { receiveCount: 1 });
      expect(queue.of('finalize', exportId)).toHaveLength(1);
      const done = await getJob(exportId);
      expect([done.chunksDone, done.finalizeEnqueued]).toEqual([done.chunksTotal, true]);
    });

    it('a duplicate arriving while the holder is sending the finalize does not send a second one: it throws for SQS, and its retry finds it sent', async () => {
      const exportId = 'la-duplicate-waits';
      const job = await submitExport(stack, { kind: 'contacts', scope: 'all' }, { channelId: CHANNEL, exportId });
      const messages = buildChunkMessages(job, {}, 2000);
      const queue = new RecordingQueue();
      for (const m of messages.slice(0, -1)) await processChunk(m, chunkDeps({ queue }), { receiveCount: 1 });

      // The holder's finalize send held at a gate (a slow SQS call).
      let open!: () => void;
      let reached!: () => void;
      const gate = new Promise<void>((resolve) => (open = resolve));
      const atGate = new Promise<void>((resolve) => (reached = resolve));
      const slowQueue: MessageQueue = {
        send: async (name, body) => {
          if (name === 'finalize') {
            reached();
            await gate;
          }
          return queue.send(name, body);
        },
        sendMany: (name, bodies) => queue.sendMany(name, bodies),
      };
      const holder = processChunk(messages.at(-1)!, chunkDeps({ queue: slowQueue }), { receiveCount: 1 });
      holder.catch(() => undefined);
      await atGate;

      // A first receive of a chunk already counted: it finds the set complete and the step claimed.
      await expect(processChunk(messages[0]!, chunkDeps({ queue, claimWaitMs: 0 }), { receiveCount: 1 })).rejects.toBeInstanceOf(LeaseBusyError);
      open();
      expect((await holder).finalizeEnqueued).toBe(true);
      const retried = await processChunk(messages[0]!, chunkDeps({ queue }), { receiveCount: 2 });
      expect([retried.status, retried.finalizeEnqueued]).toEqual(['duplicate', false]);
      expect(queue.of('finalize', exportId)).toHaveLength(1);
    });
  });

  describe('finalizer', () => {
    const message = (exportId: string): FinalizeMessage => ({ type: 'finalize', exportId, channelId: CHANNEL });
    const finalizeDeps = (steps: StepDeps, over: Partial<FinalizeDeps> = {}): FinalizeDeps => finalizeDepsFor(stack, steps, LINK_SECRET, over);
    const partsOf = (exportId: string) => storesFor(stack).objects.list(objectKeys.partsPrefix(exportId));

    it('the transition to finalizing, refused by its own retry: the run carries on and completes the export', async () => {
      const exportId = 'la-finalizing';
      await exportReadyToFinalize(stack, CHANNEL, exportId, stepDeps());
      const losing = storeLosingAnswer(stack, transitionTo('finalizing'));
      const queue = new RecordingQueue();
      const audit = new RecordingAudit();
      const outcome = await finalizeExport(message(exportId), finalizeDeps(stepDeps({ store: losing.store, queue, audit })), { receiveCount: 1 });
      expect(losing.lost).toEqual({ answers: 1, sends: 2 });
      // Before: `skipped`, the message acknowledged, the export `finalizing` for ever.
      expect(outcome.status).toBe('completed');
      const job = await getJob(exportId);
      expect([job.status, job.notifyEnqueued]).toEqual(['completed', true]);
      expect(queue.of('notify', exportId)).toEqual([{ type: 'notify', exportId, channelId: CHANNEL, event: 'export.completed' }]);
      expect(audit.calls.map((e) => e.type)).toEqual(['completed']);
      expect(await partsOf(exportId)).toEqual([]);
    });

    it('the completion, refused by its own retry: the audit event, the notify and the sweep of parts/ still happen', async () => {
      const exportId = 'la-completed';
      await exportReadyToFinalize(stack, CHANNEL, exportId, stepDeps());
      const losing = storeLosingAnswer(stack, transitionTo('completed'));
      const queue = new RecordingQueue();
      const audit = new RecordingAudit();
      const outcome = await finalizeExport(message(exportId), finalizeDeps(stepDeps({ store: losing.store, queue, audit })), { receiveCount: 1 });
      expect(losing.lost).toEqual({ answers: 1, sends: 2 });
      const job = await getJob(exportId);
      expect(job.status).toBe('completed');
      // Before: `skipped` with none of these: the bot never told, no audit event, parts/ left for the lifecycle rule.
      expect(queue.of('notify', exportId)).toEqual([{ type: 'notify', exportId, channelId: CHANNEL, event: 'export.completed' }]);
      expect(audit.calls).toEqual([
        expect.objectContaining({ type: 'completed', exportId, at: job.completedAt, rowCount: job.rowCount, sha256: job.sha256 }),
      ]);
      expect(job.notifyEnqueued).toBe(true);
      expect(await partsOf(exportId)).toEqual([]);
      expect(await storesFor(stack).objects.head(job.objectKey!)).not.toBeNull();
      // Its own completion (the stored completedAt is this run's), so it reports one.
      expect(outcome).toMatchObject({ status: 'completed', rowCount: job.rowCount, sha256: job.sha256, fileSize: job.fileSize });
    });

    it('a completion another run made first (a redelivery): this run adds no second notify or audit event', async () => {
      const exportId = 'la-completed-by-other';
      await exportReadyToFinalize(stack, CHANNEL, exportId, stepDeps());
      const { store } = storesFor(stack);
      const otherQueue = new RecordingQueue();
      const otherAudit = new RecordingAudit();
      // The other run (re-entering `finalizing`) completes and finishes its follow-ups while this
      // one is about to complete: forced by running it inside this run's completion write.
      const racing = Object.create(store) as typeof store;
      let raced = false;
      racing.setStatus = async (channelId, id, to, from, patch) => {
        if (to === 'completed' && !raced) {
          raced = true;
          const other = await finalizeExport(
            message(exportId),
            finalizeDeps(stepDeps({ queue: otherQueue, audit: otherAudit, clock: { now: () => new Date(Date.now() + 1_000) } })),
            { receiveCount: 2 },
          );
          expect(other.status).toBe('completed');
        }
        return store.setStatus(channelId, id, to, from, patch);
      };
      const queue = new RecordingQueue();
      const audit = new RecordingAudit();
      const outcome = await finalizeExport(message(exportId), finalizeDeps(stepDeps({ store: racing, queue, audit })), { receiveCount: 1 });
      expect(raced).toBe(true);
      expect(outcome.status).toBe('skipped');
      expect(queue.of('notify', exportId)).toEqual([]);
      expect(audit.calls).toEqual([]);
      expect(otherQueue.of('notify', exportId)).toHaveLength(1);
      expect(otherAudit.calls.map((e) => e.type)).toEqual(['completed']);
      const job = await getJob(exportId);
      expect([job.status, job.notifyEnqueued]).toEqual(['completed', true]);
      // One file: the completed run's, whose digest the job records (this run's own upload was
      // swept by the winner's follow-ups).
      expect((await storesFor(stack).objects.list(objectKeys.filePrefix(CHANNEL, exportId))).map((o) => o.key)).toEqual([job.objectKey]);
      expect(createHash('sha256').update((await storesFor(stack).objects.getBuffer(job.objectKey!))!).digest('hex')).toBe(job.sha256);
    });

    it("a run whose upload lands after another run completed deletes its own file: the stored one is the one the job describes", async () => {
      const exportId = 'la-uploaded-after-other';
      await exportReadyToFinalize(stack, CHANNEL, exportId, stepDeps());
      const { objects } = storesFor(stack);
      // The other run completes (follow-ups and their sweep included) while this one's upload is
      // still in flight; this upload then lands last, as a duplicate's could with a shared key.
      const late = Object.create(objects) as typeof objects;
      let raced = false;
      let lateKey: string | undefined;
      late.upload = async (key, body, options) => {
        lateKey = key;
        if (!raced) {
          raced = true;
          const other = await finalizeExport(message(exportId), finalizeDeps(stepDeps({ clock: { now: () => new Date(Date.now() + 1_000) } })), { receiveCount: 2 });
          expect(other.status).toBe('completed');
        }
        return objects.upload(key, body, options);
      };
      const outcome = await finalizeExport(message(exportId), finalizeDeps(stepDeps({ objects: late })), { receiveCount: 1 });
      expect(raced).toBe(true);
      expect(outcome.status).toBe('skipped');
      const job = await getJob(exportId);
      expect(job.status).toBe('completed');
      expect(lateKey).toBeDefined();
      expect(lateKey).not.toBe(job.objectKey);
      expect((await objects.list(objectKeys.filePrefix(CHANNEL, exportId))).map((o) => o.key)).toEqual([job.objectKey]);
      expect(createHash('sha256').update((await objects.getBuffer(job.objectKey!))!).digest('hex')).toBe(job.sha256);
    });
  });

  describe('claimLease: its own claim, committed though the answer was lost', () => {
    it('is the caller\'s lease (it waited on itself until the lease lapsed, past the retries SQS allows); another holder\'s is not', async () => {
      const exportId = 'la-claim';
      await storesFor(stack).store.createJob(makeJob({ exportId, channelId: CHANNEL, status: 'running' }));
      const { store, lost } = storeLosingAnswer(stack, (input) => input.UpdateExpression === 'SET #claim = :token');
      const token = await store.claimLease(CHANNEL, exportId, 'finalizeClaim');
      expect(lost.sends).toBe(2);
      expect(token).toBeDefined();
      // Held by that claim: another claimer gets nothing until the token given back releases it
      // (the release is conditional on the stored token, so this also proves it is the one stored).
      const other = storesFor(stack).store;
      expect(await other.claimLease(CHANNEL, exportId, 'finalizeClaim')).toBeUndefined();
      await store.releaseClaim(CHANNEL, exportId, 'finalizeClaim', token!);
      expect(await other.claimLease(CHANNEL, exportId, 'finalizeClaim')).toBeDefined();
    });
  });

  describe('notifier: a refusal is final, a dead-lettered notify is not', () => {
    const completedJob = (exportId: string): ExportJob => makeCompletedJob(exportId, CHANNEL);
    const message = (exportId: string): NotifyMessage => ({ type: 'notify', exportId, channelId: CHANNEL, event: 'export.completed' });
    /** A bot that answers `answers` in turn (the last one from then on), counting its posts. */
    const scriptedBot = (...answers: BotAnswer[]) => {
      const bot = {
        posts: 0,
        post: async (): Promise<BotAnswer> => answers[Math.min(++bot.posts, answers.length) - 1]!,
      };
      return bot;
    };
    const notifyDeps = (bot: NotifyDeps['bot'], over: Partial<NotifyDeps> = {}): NotifyDeps =>
      notifyDepsFor({ store: storesFor(stack).store, bot, linkSigningSecret: LINK_SECRET, attempts: 1, ...over });
    /** The same table, its clock past the refused post's lease (CLAIM_LEASE_MS): a notify that comes minutes later. */
    const laterStore = () => new DynamoExportStore(storesFor(stack).ddb, stack.tables.exports, () => new Date(Date.now() + CLAIM_LEASE_MS + 60_000));

    it('a later notify message (a finalize retry, a dead letter redelivered) posts nothing once the refused post\'s lease has lapsed', async () => {
      const exportId = 'la-refused';
      await storesFor(stack).store.createJob(completedJob(exportId));
      const bot = scriptedBot({ status: 400 }, { status: 200 });
      expect(await notifyExport(message(exportId), notifyDeps(bot))).toEqual({ status: 'rejected', attempts: 1 });

      // Before: the lease had lapsed, the claim succeeded and the refused event was posted again.
      const later = laterStore();
      expect(await notifyExport(message(exportId), notifyDeps(bot, { store: later }))).toEqual({ status: 'skipped', attempts: 0 });
      expect(bot.posts).toBe(1);
      // The store's lease is closed by the refusal too, not only the notifier's early return.
      expect(await later.claimLease(CHANNEL, exportId, 'notifyClaim')).toBeUndefined();
      const refused = await getJob(exportId);
      expect(refused.notifyError).toBe('the bot refused the event (export.completed) with HTTP 400; not retried');
      expect(refused.notifyRefusedAt).toBeDefined();
      expect(refused.notifiedAt).toBeUndefined();
    });

    it('a duplicate notify dead-lettered after a refusal leaves the refusal as it was', async () => {
      const exportId = 'la-refused-then-dlq';
      await storesFor(stack).store.createJob(completedJob(exportId));
      expect(await notifyExport(message(exportId), notifyDeps(scriptedBot({ status: 403 })))).toEqual({ status: 'rejected', attempts: 1 });
      expect(await handleDeadLetter(JSON.stringify(message(exportId)), stepDeps(), { queue: 'notify-dlq' })).toBe('already-final');
      expect((await getJob(exportId)).notifyError).toBe('the bot refused the event (export.completed) with HTTP 403; not retried');
    });

    it('a notify dead-lettered while the bot was down closes nothing: a duplicate keeps waiting on a live post, and a later one posts', async () => {
      const exportId = 'la-bot-was-down';
      const { store } = storesFor(stack);
      await store.createJob(completedJob(exportId));
      const body = JSON.stringify(message(exportId));
      expect(await handleDeadLetter(body, stepDeps(), { queue: 'notify-dlq' })).toBe('notify-failure-recorded');
      expect((await getJob(exportId)).notifyError).toMatch(/could not be told/);

      const bot = scriptedBot({ status: 200 });
      // Another delivery is posting: a duplicate must not take that dead letter's notifyError for
      // the bot's final answer. Before: it returned `skipped`, and had the post failed, nobody
      // would have posted.
      const held = await store.claimLease(CHANNEL, exportId, 'notifyClaim');
      expect(held).toBeDefined();
      await expect(notifyExport(message(exportId), notifyDeps(bot))).rejects.toBeInstanceOf(LeaseBusyError);
      await store.releaseClaim(CHANNEL, exportId, 'notifyClaim', held!);

      expect(await notifyExport(message(exportId), notifyDeps(bot))).toEqual({ status: 'sent', attempts: 1 });
      expect(bot.posts).toBe(1);
      expect((await getJob(exportId)).notifyRefusedAt).toBeUndefined();
    });
  });
});
