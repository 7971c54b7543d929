import { describe, expect, it } from 'vitest';
import type { LocalStack } from '../../infra/local/stack';
import type { ExportJob } from '../../shared/app/export-job';
import { objectKeys, type ChunkMessage } from '../../shared/app/messages';
import { buildChunkMessages } from '../../shared/app/plan-chunks';
import { processChunk, type ChunkDeps } from '../../shared/app/process-chunk';
import { LeaseBusyError } from '../../shared/app/pipeline-steps';
import type { JobPatch } from '../../shared/ports/export-store';
import { chunkDepsFor, storesFor, submitExport, useSeededStack } from './helpers';

const CHANNEL = 'pc-channel';

/**
 * processChunk against the emulators, with the interleavings that matter forced by gates on the
 * store: no timing luck, so each race runs the same way every time.
 */
describe('processChunk: the next step and redeliveries', () => {
  let stack: LocalStack;

  useSeededStack({ channelId: CHANNEL, users: 60, cases: 120, seed: 5 }, (started) => (stack = started));

  const chunkDeps = (over: Partial<ChunkDeps> = {}): ChunkDeps => chunkDepsFor(stack, over);

  /** The real queue, counting the finalize messages sent for one export. */
  const countingQueue = (exportId: string) => {
    const { queue } = storesFor(stack);
    const counter = { finalizes: 0 };
    const counted: ChunkDeps['queue'] = {
      send: async (kind, message) => {
        if (kind === 'finalize' && (message as { exportId?: string }).exportId === exportId) counter.finalizes++;
        return queue.send(kind, message);
      },
      sendMany: async (kind, messages) => queue.sendMany(kind, messages),
    } as ChunkDeps['queue'];
    return { queue: counted, counter };
  };

  /**
   * The store, with the users-phase holder's `usersEnqueued` write held until `open` (a throttled
   * write, a GC pause); `then: 'throw'` makes that write fail once released, as a holder that
   * errors after sending the user chunks.
   */
  const gatedStore = (then: 'write' | 'throw') => {
    const { store } = storesFor(stack);
    let open!: () => void;
    let reached!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const atGate = new Promise<void>((resolve) => (reached = resolve));
    const gated = Object.create(store) as typeof store;
    gated.updateProgress = async (channelId: string, exportId: string, patch: JobPatch) => {
      if (patch.usersEnqueued) {
        reached();
        await gate;
        if (then === 'throw') throw new Error('simulated DynamoDB throttling');
      }
      return store.updateProgress(channelId, exportId, patch);
    };
    return { store: gated, open, atGate };
  };

  /** The store, telling when a delivery found the users-phase claim held (and so waits on it). */
  const watchedStore = () => {
    const { store } = storesFor(stack);
    let seen!: () => void;
    const waiting = new Promise<void>((resolve) => (seen = resolve));
    const watched = Object.create(store) as typeof store;
    watched.claimLease = async (...args) => {
      const token = await store.claimLease(...args);
      if (args[2] === 'usersClaim' && token === undefined) seen();
      return token;
    };
    return { store: watched, waiting };
  };

  const usersMessage = (exportId: string, index: number): ChunkMessage => ({
    type: 'chunk',
    exportId,
    channelId: CHANNEL,
    chunkId: `users-${index}`,
    sheet: 'users',
    index,
    source: { type: 'userIdsObject', key: objectKeys.userIdBatch(exportId, 'users', index) },
  });

  /**
   * A cases export whose case chunks are all done but the last, whose delivery (the users-phase
   * holder) is started with the gated store and left at the gate, the user chunks already sent;
   * every user chunk but the last is done too.
   */
  async function holderAtGate(exportId: string, then: 'write' | 'throw') {
    const job = await submitExport(stack, { kind: 'cases', from: '2025-07-01', to: '2025-07-03', timezone: 'Asia/Seoul' }, { channelId: CHANNEL, exportId });
    const mainChunks = buildChunkMessages(job, {}, 2000);
    for (const m of mainChunks.slice(0, -1)) await processChunk(m, chunkDeps(), { receiveCount: 1 });
    const gated = gatedStore(then);
    const counting = countingQueue(exportId);
    const holder = processChunk(mainChunks[mainChunks.length - 1]!, chunkDeps({ store: gated.store, queue: counting.queue }), { receiveCount: 1 });
    // Keeps an early rejection from counting as unhandled; each test awaits `holder` itself.
    holder.catch(() => undefined);
    await gated.atGate;
    const planned = (await storesFor(stack).store.getJob(CHANNEL, exportId)) as ExportJob;
    expect(planned.phase).toBe('users');
    expect(planned.usersEnqueued).toBeUndefined();
    const userChunks = planned.sheetChunks?.users ?? 0;
    expect(userChunks).toBeGreaterThan(0);
    for (let i = 0; i < userChunks - 1; i++) await processChunk(usersMessage(exportId, i), chunkDeps(), { receiveCount: 1 });
    return { holder, open: gated.open, counter: counting.counter, counting, lastUsers: usersMessage(exportId, userChunks - 1) };
  }

  it('the last user chunk completing the set before the holder records usersEnqueued: finalize is sent once', async () => {
    const exportId = 'pc-race-wait';
    const { holder, open, counter, counting, lastUsers } = await holderAtGate(exportId, 'write');
    const watched = watchedStore();
    const last = processChunk(lastUsers, chunkDeps({ store: watched.store, queue: counting.queue, claimWaitMs: 30_000 }), { receiveCount: 1 });
    await watched.waiting;
    open();
    const [held, completed] = await Promise.all([holder, last]);

    expect(completed.status).toBe('done');
    expect(held.usersPhasePlanned).toBe(true);
    expect([held.finalizeEnqueued, completed.finalizeEnqueued].filter(Boolean)).toHaveLength(1);
    expect(counter.finalizes).toBe(1);
    const job = await storesFor(stack).store.getJob(CHANNEL, exportId);
    expect(job?.finalizeEnqueued).toBe(true);
    expect(job?.chunksDone).toBe(job?.chunksTotal);
  });

  it('the holder fails after sending the user chunks: the waiting last user chunk takes over and sends the finalize', async () => {
    const exportId = 'pc-race-takeover';
    const { holder, open, counter, counting, lastUsers } = await holderAtGate(exportId, 'throw');
    const watched = watchedStore();
    const last = processChunk(lastUsers, chunkDeps({ store: watched.store, queue: counting.queue, claimWaitMs: 30_000 }), { receiveCount: 1 });
    await watched.waiting;
    open();
    await expect(holder).rejects.toThrow(/simulated DynamoDB throttling/);
    const completed = await last;

    // Not left to the holder's retry (30 s later at best): the take-over finishes the export.
    expect(completed.usersPhasePlanned).toBe(true);
    expect(completed.finalizeEnqueued).toBe(true);
    expect(counter.finalizes).toBe(1);
    const job = await storesFor(stack).store.getJob(CHANNEL, exportId);
    expect(job?.usersEnqueued).toBe(true);
    expect(job?.finalizeEnqueued).toBe(true);
  });

  it('the last user chunk gave up waiting on the holder: the holder, once it records usersEnqueued, sends the finalize', async () => {
    const exportId = 'pc-race-holder';
    const { holder, open, counter, counting, lastUsers } = await holderAtGate(exportId, 'write');
    await expect(processChunk(lastUsers, chunkDeps({ queue: counting.queue, claimWaitMs: 300 }), { receiveCount: 1 })).rejects.toBeInstanceOf(
      LeaseBusyError,
    );
    expect((await storesFor(stack).store.getJob(CHANNEL, exportId))?.chunksDone).toBe(
      (await storesFor(stack).store.getJob(CHANNEL, exportId))?.chunksTotal,
    );
    open();
    const held = await holder;

    expect(held.usersPhasePlanned).toBe(true);
    expect(held.finalizeEnqueued).toBe(true);
    expect(counter.finalizes).toBe(1);
    // The last chunk's retry then finds nothing to do.
    const retried = await processChunk(lastUsers, chunkDeps({ queue: counting.queue }), { receiveCount: 2 });
    expect(retried.status).toBe('duplicate');
    expect(retried.finalizeEnqueued).toBe(false);
    expect(counter.finalizes).toBe(1);
  });

  describe('a redelivered chunk', () => {
    /** The users source with every name changed (the source moved on since the first delivery), counting its reads. */
    const renamedUsers = () => {
      const real = chunkDeps().users;
      const reads = { count: 0 };
      const users: ChunkDeps['users'] = {
        async *queryShard(channelId, shard) {
          reads.count++;
          for await (const page of real.queryShard(channelId, shard)) yield page.map((u) => ({ ...u, name: `renamed ${String(u.id)}` }));
        },
        getMany: async (channelId, ids) => {
          reads.count++;
          return (await real.getMany(channelId, ids)).map((u) => ({ ...u, name: `renamed ${String(u.id)}` }));
        },
      };
      return { users, reads };
    };

    /** A contacts export and one of its shard chunks that holds users. */
    async function contactsChunk(exportId: string): Promise<{ job: ExportJob; message: ChunkMessage; stored: () => Promise<string> }> {
      const job = await submitExport(stack, { kind: 'contacts', scope: 'all' }, { channelId: CHANNEL, exportId });
      const { objects } = storesFor(stack);
      const messages = buildChunkMessages(job, {}, 2000);
      const users = chunkDeps().users;
      let message: ChunkMessage | undefined;
      for (const m of messages) {
        if (m.source.type !== 'userShard') continue;
        let count = 0;
        for await (const page of users.queryShard(CHANNEL, m.source.shard)) count += page.length;
        if (count > 0) {
          message = m;
          break;
        }
      }
      if (!message) throw new Error('no shard with users');
      const { sheet, index } = message;
      const stored = async () =>
        [
          (await objects.getBuffer(objectKeys.part(exportId, sheet, index)))?.toString('base64'),
          (await objects.getBuffer(objectKeys.partMeta(exportId, sheet, index)))?.toString('utf8'),
        ].join('|');
      return { job, message, stored };
    }

    it('already in the completed set keeps the stored part and meta, reads no source, and still counts once', async () => {
      const { message, stored } = await contactsChunk('pc-redeliver-done');
      const first = await processChunk(message, chunkDeps(), { receiveCount: 1 });
      expect(first.status).toBe('done');
      expect(first.rows).toBeGreaterThan(0);
      const before = await stored();

      const renamed = renamedUsers();
      const again = await processChunk(message, chunkDeps({ users: renamed.users }), { receiveCount: 2 });
      expect(again.status).toBe('duplicate');
      expect(renamed.reads.count).toBe(0);
      expect(await stored()).toBe(before);
      const job = await storesFor(stack).store.getJob(CHANNEL, 'pc-redeliver-done');
      expect(job?.chunksDone).toBe(1);
      expect(job?.rowsWritten).toBe(first.rows);
    });

    it('whose first delivery crashed after writing the part, before marking it: renders and marks it', async () => {
      const { message, stored } = await contactsChunk('pc-redeliver-crashed');
      const { store } = storesFor(stack);
      const crashing = Object.create(store) as typeof store;
      crashing.markChunkDone = async () => {
        throw new Error('simulated crash before the set-add');
      };
      await expect(processChunk(message, chunkDeps({ store: crashing }), { receiveCount: 1 })).rejects.toThrow(/simulated crash/);
      const before = await stored();

      const renamed = renamedUsers();
      const retried = await processChunk(message, chunkDeps({ users: renamed.users }), { receiveCount: 2 });
      expect(retried.status).toBe('done');
      expect(renamed.reads.count).toBe(1);
      // The retry's own rendering is what gets counted: part and meta match it.
      expect(await stored()).not.toBe(before);
      const job = await store.getJob(CHANNEL, 'pc-redeliver-crashed');
      expect(job?.chunksDone).toBe(1);
      expect(job?.rowsWritten).toBe(retried.rows);
    });

    it('that finished rendering after another delivery marked the chunk does not overwrite its part', async () => {
      const { message, stored } = await contactsChunk('pc-redeliver-overlap');
      // A slow first delivery and its redelivery overlap: the redelivery marks the chunk while
      // the slow one is still reading its slice.
      const real = chunkDeps().users;
      let release!: () => void;
      let reading!: () => void;
      const hold = new Promise<void>((resolve) => (release = resolve));
      const started = new Promise<void>((resolve) => (reading = resolve));
      const slowUsers: ChunkDeps['users'] = {
        async *queryShard(channelId, shard) {
          reading();
          await hold;
          for await (const page of real.queryShard(channelId, shard)) yield page.map((u) => ({ ...u, name: `slow ${String(u.id)}` }));
        },
        getMany: (channelId, ids) => real.getMany(channelId, ids),
      };
      const slow = processChunk(message, chunkDeps({ users: slowUsers }), { receiveCount: 1 });
      await started;
      const fast = await processChunk(message, chunkDeps(), { receiveCount: 2 });
      expect(fast.status).toBe('done');
      const marked = await stored();
      release();
      expect((await slow).status).toBe('duplicate');
      expect(await stored()).toBe(marked);
    });
  });
});
