import { caseRangeInstants } from '../domain/policies';
import { dispatchUnfinished, type ExportJob } from './export-job';
import type { ExportStore } from '../ports/export-store';
import type { MessageQueue } from '../ports/message-queue';
import type { ObjectStore } from '../ports/object-store';
import { compareUsersInExportOrder, daysInRange, USER_SHARDS } from './source-keys';
import { objectKeys, type ChunkMessage } from './messages';
import { enqueueFinalize } from './pipeline-steps';

export type PlanChunksDeps = {
  store: ExportStore;
  objects: ObjectStore;
  queue: MessageQueue;
  /** Ids per selection batch (one BatchGetItem-driven chunk each). */
  selectionBatch?: number;
};

/**
 * What the job itself does not hold: the selected ids (the job stores only their count). Without
 * them a selection is planned from the batches already stored (see storeSelectionBatches) and
 * the job's chunksTotal, so a dispatch interrupted after the job was created can be resumed
 * from the job alone.
 */
export type PlanSources = { userIds?: readonly string[] };

export type ChunkPlan = { chunksTotal: number; messages: ChunkMessage[] };

const DEFAULT_SELECTION_BATCH = 2000;

/** Ids in the documented export order, once each. */
export function sortUserIdsForExport(ids: Iterable<string>): string[] {
  return [...new Set(ids)].sort(compareUsersInExportOrder);
}

/**
 * Writes a selection's ids, in export order and once each, as the S3 batches its chunks read;
 * returns how many batches (= chunks). Deterministic, so writing them twice is harmless.
 */
export async function storeSelectionBatches(
  exportId: string,
  userIds: readonly string[],
  objects: ObjectStore,
  selectionBatch = DEFAULT_SELECTION_BATCH,
): Promise<number> {
  const batches = batchIds(sortUserIdsForExport(userIds), selectionBatch);
  await Promise.all(
    batches.map((batch, i) =>
      objects.put(objectKeys.userIdBatch(exportId, 'selection', i), JSON.stringify(batch), { contentType: 'application/json' }),
    ),
  );
  return batches.length;
}

export function batchIds(ids: readonly string[], size: number): string[][] {
  const batches: string[][] = [];
  for (let i = 0; i < ids.length; i += size) batches.push(ids.slice(i, i + size));
  return batches;
}

/**
 * Splits a new job into chunk messages, stores what messages cannot carry (id lists) in S3,
 * records the chunk count on the job and enqueues the chunks. Called by the API's
 * requestExport right after it created the job (status queued).
 *
 * - cases: one chunk per UTC day bucket touched by the request's range (in the request's time
 *   zone), each bounded to the exact instants, so concatenated parts are in creation order.
 * - contacts all/filter/segment/query: one chunk per USERS_TABLE key-range slice (shard),
 *   read in parallel; the filter/segment/query is applied by each chunk.
 * - contacts selection: the ids, sorted into export order and deduplicated, in batches read
 *   with BatchGetItem; each batch is an S3 object.
 * - contacts user: one chunk.
 *
 * Safe to call again for the same job (a retried API request): once the chunks are enqueued a
 * second call does nothing; before that it repeats the deterministic writes and sends (chunks
 * are idempotent, so a message sent twice costs a duplicate read, never a wrong count).
 */
export async function planChunks(job: ExportJob, sources: PlanSources, deps: PlanChunksDeps): Promise<ChunkPlan> {
  const messages = buildChunkMessages(job, sources, deps.selectionBatch ?? DEFAULT_SELECTION_BATCH);
  // A retried call must not reset a job that already runs (its chunk count may have grown
  // with the cases' users phase); it only finishes a send that a crash interrupted.
  const current = await deps.store.getJob(job.channelId, job.exportId);
  if (!current) throw new Error(`planChunks: export ${job.exportId} does not exist`);
  if (!dispatchUnfinished(current)) return { chunksTotal: current.chunksTotal, messages: [] };
  if (job.kind === 'contacts' && job.request.scope === 'selection' && sources.userIds) {
    // Written before any message that points at them is sent.
    await storeSelectionBatches(job.exportId, sources.userIds, deps.objects, deps.selectionBatch ?? DEFAULT_SELECTION_BATCH);
  }
  if (current.phase === undefined) {
    const sheet = job.kind === 'cases' ? 'cases' : 'users';
    // Conditional on no phase yet: a concurrent dispatch that read the job before either wrote
    // may already have planned it, and its cases may since have moved on to the users phase.
    // Either way the plan is the same (deterministic), so losing this write changes nothing.
    await deps.store.startMainPhase(job.channelId, job.exportId, {
      chunksTotal: messages.length,
      sheetChunks: job.kind === 'cases' ? { cases: messages.length, users: 0 } : { [sheet]: messages.length },
    });
  }
  if (messages.length === 0) {
    // Nothing to read (an empty selection): the finalizer writes a workbook with headers only.
    // Sent first, flagged second (as enqueueFinalize does everywhere): flagging first let a crash
    // or a lost answer between the two leave the flag set and nothing sent, and every resumed
    // dispatch then skipped the send, leaving the export queued for good. A second send (two
    // dispatches) is absorbed by the finalizer.
    if (!current.finalizeEnqueued) await enqueueFinalize(deps, job);
  } else {
    await deps.queue.sendMany('chunk', messages);
  }
  await deps.store.updateProgress(job.channelId, job.exportId, { chunksEnqueued: true });
  return { chunksTotal: messages.length, messages };
}

export function buildChunkMessages(job: ExportJob, sources: PlanSources, selectionBatch: number): ChunkMessage[] {
  const base = { type: 'chunk' as const, exportId: job.exportId, channelId: job.channelId };
  if (job.kind === 'cases') {
    const { from, to } = job.request;
    if (!from || !to) throw new Error('planChunks: a cases job needs request.from and request.to');
    const { startMs, endMsExclusive } = caseRangeInstants(from, to, job.request.timezone ?? job.timeZone);
    return daysInRange(new Date(startMs), new Date(endMsExclusive)).map((day, index) => {
      const dayStart = Date.parse(`${day}T00:00:00.000Z`);
      const fromMs = Math.max(dayStart, startMs);
      const toMs = Math.min(dayStart + 86_400_000, endMsExclusive);
      return {
        ...base,
        chunkId: `cases-${index}`,
        sheet: 'cases',
        index,
        source: { type: 'caseDay', day, fromIso: new Date(fromMs).toISOString(), toIso: new Date(toMs).toISOString() },
      };
    });
  }
  const scope = job.request.scope;
  if (scope === 'user') {
    const userId = job.request.userId;
    if (!userId) throw new Error('planChunks: scope "user" needs request.userId');
    return [{ ...base, chunkId: 'users-0', sheet: 'users', index: 0, source: { type: 'userIds', ids: [userId] } }];
  }
  if (scope === 'selection') {
    // With the ids: one chunk per batch; without: the batches are stored and the job counts them.
    const count = sources.userIds ? batchIds(sortUserIdsForExport(sources.userIds), selectionBatch).length : job.chunksTotal;
    if (!Number.isInteger(count)) throw new Error('planChunks: a selection needs its ids or the stored batch count (chunksTotal)');
    return Array.from({ length: count }, (_unused, index) => ({
      ...base,
      chunkId: `users-${index}`,
      sheet: 'users',
      index,
      source: { type: 'userIdsObject', key: objectKeys.userIdBatch(job.exportId, 'selection', index) },
    }));
  }
  return Array.from({ length: USER_SHARDS }, (_unused, shard) => ({
    ...base,
    chunkId: `users-${shard}`,
    sheet: 'users' as const,
    index: shard,
    source: { type: 'userShard' as const, shard },
  }));
}
