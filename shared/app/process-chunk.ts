import {
  createCaseRowMapper,
  createUserRowMapper,
  DomainError,
  safeParseCaseRecord,
  safeParseUserRecord,
  salvageCaseRecord,
  salvageUserRecord,
  tooManyRowsError,
  TooManyRowsError,
  type Predicate,
} from '../domain';
import { errorForLog } from '../error-for-log';
import { crc32, createPartEncoder, type ColumnSpec, type PartEncoder } from '../xlsx';
import { DEFAULT_CLAIM_WAIT_MS } from '../ports/export-store';
import type { CasesSource, RawItem, UsersSource, WorkspaceSource } from '../ports/source-data';
import type { ExportJob, JobDefinition, JobError } from './export-job';
import { objectKeys, type ChunkMessage } from './messages';
import { batchIds, sortUserIdsForExport } from './plan-chunks';
import { acquireLease, discardParts, enqueueFinalize, failExport, PART_MISMATCH, resumeCancelFollowUps, resumeFollowUps, type StepDeps } from './pipeline-steps';
import { ExportDataExpiredError, loadJobDefinition } from './job-definition';
import { compileRequestPredicate, loadDirectory, partFingerprint, sheetColumns } from './workspace-context';

export type ChunkDeps = StepDeps & {
  cases: CasesSource;
  users: UsersSource;
  /**
   * Read for the directory (case rows' team and manager names) and, for a job created before
   * definitions were pinned, its profile schemas and segment: so it may cache the directory
   * only (pipeline-deps.ts).
   */
  workspace: WorkspaceSource;
  /** The size rule (1,000,000 in production; tests lower it). */
  maxRows: number;
  selectionBatch?: number;
  /** How long a delivery finding the next step claimed waits for it (DEFAULT_CLAIM_WAIT_MS; see runClaimed). */
  claimWaitMs?: number;
};

export type ChunkOutcome = {
  status: 'done' | 'duplicate' | 'skipped' | 'failed';
  rows: number;
  /**
   * Records skipped because they have no identity (no id) or are not objects: counted on the
   * job as `skippedRecords`, never logged with values.
   */
  skippedRecords: number;
  /** Records the source schema rejected that were still written, with their odd values sanitised (record-salvage). */
  repairedRecords: number;
  finalizeEnqueued: boolean;
  usersPhasePlanned: boolean;
  /** The code this delivery failed the export with (its transition, not another's): what the handler counts. */
  failedWith?: string;
};

/** Part meta JSON stored beside each part: the engine's PartMeta plus the columns fingerprint. */
export type StoredPartMeta = {
  rawLength: number;
  compressedLength: number;
  crc32: number;
  rowCount: number;
  columns: string;
  /**
   * CRC-32 of the stored bytes themselves. Two overlapping deliveries of one chunk can still
   * interleave their writes (one's part, the other's meta); the finalizer checks every part
   * against this, so such a pair fails the export instead of making a file with a bad CRC.
   * Optional: metas written before it existed are not checked.
   */
  dataCrc32?: number;
  /**
   * Case parts only: CRC-32 of the referenced-user list stored beside the part (caseRefs). The
   * users phase is planned from those lists; a second delivery of the chunk that rendered other
   * cases (today's, say) could leave its list beside the first's part, or replace part, meta and
   * list after the users were planned. The users phase checks each list against this, records
   * what it used (refsPlan), and the finalizer checks every case meta against that record: a
   * "User data" sheet that misses a user a case row names fails the export (PART_MISMATCH).
   */
  refsCrc32?: number;
};

const ACTIVE = new Set(['queued', 'running']);
/** Never finalized: nothing under its parts/ will ever be read again, and the parts are readable row data. */
const ABANDONED = new Set(['canceled', 'failed']);

/**
 * One chunk: read its slice, filter, map to rows, render and deflate a part, store it under
 * its deterministic key, then add the chunk to the job's completed set. Every delivery that
 * finds the set complete goes on to the next step: phase 2 of a cases export (the referenced
 * users) or the finalize message. The step runs under a lease (runClaimed) that a failing
 * holder gives back and a dead one lets lapse, and is skipped once its "sent" flag is set, so
 * it is sent once however many deliveries get there; a crash or error between the set-add and
 * the send is finished by the retry, and a set-add whose answer was lost (the SDK's retry then
 * reads "already in the set") still leads on to the step.
 */
/** A domain error as the job keeps it: the row limit too for TOO_MANY_ROWS (the bot's text states it). */
function jobErrorOf(error: DomainError): JobError {
  return { code: error.code, message: error.message, ...(error instanceof TooManyRowsError ? { maxRows: error.maxRows } : {}) };
}

export async function processChunk(message: ChunkMessage, deps: ChunkDeps, delivery: { receiveCount: number }): Promise<ChunkOutcome> {
  const outcome: ChunkOutcome = { status: 'skipped', rows: 0, skippedRecords: 0, repairedRecords: 0, finalizeEnqueued: false, usersPhasePlanned: false };
  const job = await deps.store.getJob(message.channelId, message.exportId);
  if (!job) {
    deps.log.warn('chunk for an unknown export: dropped', { exportId: message.exportId, chunkId: message.chunkId });
    return outcome;
  }
  if (!ACTIVE.has(job.status)) {
    // Canceled, failed, already finalizing or finished (completed, revoked: resumeFollowUps
    // announces a completed export only, never a revoked one): a late or duplicate chunk has nothing to add. A
    // retry of the delivery that failed the export may still owe its announcement (its audit
    // append or notify send threw after the transition): finish it.
    deps.log.info('chunk skipped', { exportId: job.exportId, chunkId: message.chunkId, status: job.status });
    if (delivery.receiveCount > 1) await resumeFollowUps(deps, job);
    // The cancel (or failure) emptied parts/ once; a delivery that was rendering then may have
    // written since (see the check after the writes below). Every late delivery sweeps again, so
    // a write the first sweep missed, or a sweep that failed, does not stay for the lifecycle
    // rule's day. An error is thrown: the message comes back and sweeps again.
    if (ABANDONED.has(job.status)) await discardParts(deps, job);
    // A cancel whose audit append or cooldown release failed in the API is finished here (no
    // client retry is needed): after the sweep, so an audit error that retries the message
    // does not hold the data back.
    await resumeCancelFollowUps(deps, job);
    return outcome;
  }
  if (job.status === 'queued') await deps.store.setStatus(job.channelId, job.exportId, 'running', ['queued']);

  // A chunk already in the completed set keeps the part it was counted with: a redelivery that
  // rendered again could overwrite it with different bytes (the source may have changed) while
  // the finalizer reads it, and a same-length part with another CRC corrupts the file silently.
  // It still goes on to the next step, which its first delivery may not have finished. A first
  // delivery that crashed before marking the chunk left it out of the set: the retry renders.
  const alreadyDone = () => deps.store.isChunkDone(job.channelId, job.exportId, message.chunkId);
  if (await alreadyDone()) return completeChunk(message, deps, delivery, job, 0, outcome);

  // The job's own definition (segment conditions, profile schemas), never the workspace's
  // current state: every chunk of the export renders the same columns and evaluates the same
  // conditions, whichever container it runs in and whatever changed since the request.
  let encoder: PartEncoder;
  let columns: ColumnSpec[];
  const refs = new Set<string>();
  let rows: number;
  try {
    // Inside the try: a definition gone from S3 (EXPORT_DATA_EXPIRED) is final, like the rules below.
    const definition = await loadJobDefinition(job, deps);
    columns = sheetColumns(job, message.sheet, definition);
    encoder = createPartEncoder(columns, { timeZone: job.timeZone });
    rows = await renderSlice(job, message, deps, definition, encoder, refs, outcome);
  } catch (error) {
    // A domain error (too many rows, a stored filter the current rules reject, the segment of a
    // job from before definitions were pinned deleted since) fails the same way on every
    // retry: fail the export now with its code, instead of three retries and a generic dead
    // letter. Anything else is retried.
    if (error instanceof DomainError) {
      deps.log.warn('chunk hit a domain rule', { chunkId: message.chunkId, error: error.toJSON() });
      const failed = await failExport(deps, job, jobErrorOf(error));
      return { ...outcome, status: 'failed', ...(failed ? { failedWith: error.code } : {}) };
    }
    throw error;
  }
  const part = encoder.finish();
  const refsJson = job.kind === 'cases' && message.sheet === 'cases' ? JSON.stringify(sortUserIdsForExport(refs)) : undefined;
  const meta: StoredPartMeta = {
    rawLength: part.rawLength,
    compressedLength: part.compressedLength,
    crc32: part.crc32,
    rowCount: part.rowCount,
    columns: partFingerprint(columns),
    dataCrc32: crc32(part.data),
    ...(refsJson !== undefined ? { refsCrc32: crc32(Buffer.from(refsJson, 'utf8')) } : {}),
  };
  // Again, since rendering takes long enough for a slow first delivery and its redelivery to
  // overlap (a visibility timeout expiring mid-chunk): the one that marked the chunk first keeps
  // its part. This narrows the window to the writes below; it does not close it.
  if (await alreadyDone()) return completeChunk(message, deps, delivery, job, 0, outcome);
  // Data first (the part, a case part's user list), meta second, completion last: whoever sees
  // the chunk in the completed set finds its part, list and meta in place.
  await deps.objects.put(objectKeys.part(job.exportId, message.sheet, message.index), part.data);
  if (refsJson !== undefined) {
    await deps.objects.put(objectKeys.caseRefs(job.exportId, message.index), refsJson, { contentType: 'application/json' });
  }
  await deps.objects.put(objectKeys.partMeta(job.exportId, message.sheet, message.index), JSON.stringify(meta), {
    contentType: 'application/json',
  });
  // A cancel that landed while this chunk rendered has already emptied parts/, before these
  // writes: they would sit there (readable rows) until the lifecycle rule. The cancel changes the
  // status first and deletes second, and this read follows the writes, so either it sees the
  // cancel and deletes them here, or the cancel's deletion comes after them and takes them.
  const current = await deps.store.getJob(job.channelId, job.exportId);
  if (!current || ABANDONED.has(current.status)) {
    deps.log.info('export ended while the chunk ran: its part discarded', { exportId: job.exportId, chunkId: message.chunkId, status: current?.status });
    await discardParts(deps, job);
    if (current) await resumeCancelFollowUps(deps, current);
    return outcome;
  }
  if (current.status === 'completed' || current.status === 'revoked') {
    // A duplicate delivery that passed the checks above before the file was made: the finalizer
    // has swept parts/ (or is about to, after its completion), and these writes, landing after
    // that sweep, would sit there (readable rows) until the lifecycle rule. Completed (or
    // completed and then revoked), nothing reads parts/ any more: sweep again. Not while
    // finalizing: the finalizer is reading them, and sweeps them itself after completing (so
    // after these writes).
    deps.log.info('export completed while the chunk ran: its part discarded', { exportId: job.exportId, chunkId: message.chunkId });
    await discardParts(deps, job);
    return outcome;
  }
  return completeChunk(message, deps, delivery, job, rows, outcome);
}

/**
 * Adds the chunk to the completed set (a chunk already there changes nothing) and, once the set
 * is complete, runs the next step: the users phase of a cases export, then the finalize.
 */
async function completeChunk(
  message: ChunkMessage,
  deps: ChunkDeps,
  delivery: { receiveCount: number },
  job: ExportJob,
  rows: number,
  outcome: ChunkOutcome,
): Promise<ChunkOutcome> {
  // Only main-sheet rows count toward the size rule and the reported row count.
  const mainSheet = job.kind === 'cases' ? 'cases' : 'users';
  const counted = message.sheet === mainSheet ? rows : 0;
  // Skipped records count with the chunk's first completion only, like its rows: a redelivery adds nothing.
  const done = await deps.store.markChunkDone(job.channelId, job.exportId, message.chunkId, {
    rowCount: counted,
    skippedRecords: outcome.skippedRecords,
  });
  outcome.rows = rows;
  outcome.status = done.firstTime ? 'done' : 'duplicate';

  if (done.rowsWritten > deps.maxRows) {
    const error = tooManyRowsError(job.kind, done.rowsWritten, deps.maxRows);
    if (await failExport(deps, job, jobErrorOf(error))) outcome.failedWith = error.code;
    return { ...outcome, status: 'failed' };
  }
  // The next step (cases: plan the users phase; then: enqueue the finalize) is due from every
  // delivery that finds the set complete, not only from the one whose set-add completed it.
  // `firstTime` cannot single that one out: when DynamoDB commits the set-add but its answer is
  // lost (a 500 after the commit, a reset connection) the SDK sends the write again, the retry
  // fails the condition, and the delivery that did complete the set reads `firstTime: false`.
  // Requiring `firstTime` (or a receive count above 1) let that delivery return `duplicate`, its
  // message was deleted, and nobody ever sent the finalize: the export stayed `running`. Going on
  // is safe for any number of deliveries: the step runs under its lease and its set-once flag
  // (runClaimed), so it is sent once, and a delivery that finds it held waits or throws.
  const completes = done.done >= done.total;
  const retriedCaseChunk = delivery.receiveCount > 1 && job.kind === 'cases' && message.sheet === 'cases';
  if (!completes && !retriedCaseChunk) return outcome;

  let fresh = (await deps.store.getJob(job.channelId, job.exportId)) ?? job;
  if (!ACTIVE.has(fresh.status)) return finishIfCanceled(deps, fresh, outcome);
  if (fresh.kind === 'cases' && !fresh.usersEnqueued) {
    // Every case chunk must be done. Before the users phase is planned that is chunksDone ==
    // chunksTotal; once it is planned (the total has grown) but its chunks were not sent, no
    // user chunk has run, so it is chunksDone == the case chunk count.
    if (fresh.chunksDone < (fresh.sheetChunks?.cases ?? fresh.chunksTotal)) return outcome;
    const planning = fresh;
    outcome.usersPhasePlanned = await runClaimed(deps, planning, 'usersClaim', 'usersEnqueued', () => planUsersPhase(planning, deps, outcome));
    // Whoever ends the users step goes on to the finalize check, whether it planned the phase,
    // took it over, or waited for another holder: the user chunks are out before
    // `usersEnqueued` lands, so the last of them may complete the set in between, find the step
    // claimed and wait here. Returning would leave nobody to send the finalize. The holder's
    // write and the last chunk's set-add are each followed by this read, so at least one of
    // them sees both; the finalize claim keeps it to one send.
    const after = await deps.store.getJob(job.channelId, job.exportId);
    if (!after) return outcome;
    if (!ACTIVE.has(after.status)) return finishIfCanceled(deps, after, outcome);
    if (!after.usersEnqueued) return outcome;
    fresh = after;
  }
  // `done` was read before another delivery may have planned the users phase (which grows the
  // total): a late redelivered case chunk must not take that for "everything is done".
  if (fresh.chunksDone < fresh.chunksTotal) return outcome;
  if (!fresh.finalizeEnqueued) {
    outcome.finalizeEnqueued = await runClaimed(deps, fresh, 'finalizeClaim', 'finalizeEnqueued', () => enqueueFinalize(deps, fresh));
    if (outcome.finalizeEnqueued) deps.log.info('finalize enqueued', { exportId: fresh.exportId, rowsWritten: done.rowsWritten });
    // Not sent: another delivery sent it, or the export stopped while this one waited for the
    // lease. Only the second needs anything, and only a read tells them apart.
    else return finishIfCanceled(deps, (await deps.store.getJob(job.channelId, job.exportId)) ?? fresh, outcome);
  }
  return outcome;
}

/**
 * A cancel seen by a delivery after it marked its chunk. Once every chunk is marked, no later
 * chunk message will name the export, and a cancel landing now stops the finalize (or the users
 * phase) from being sent: this delivery is the last pipeline step that will ever see it. So it
 * does what a late chunk does for a cancel: sweeps parts/ (readable rows the cancel's best-effort
 * sweep may have missed) and finishes the cancel's audit event and cooldown release, which the
 * API may have failed to (a 500 nobody retried left the trail at `requested` for good and the
 * manager locked out for the window). Errors are thrown: the message comes back and finishes it.
 */
async function finishIfCanceled(deps: ChunkDeps, job: ExportJob, outcome: ChunkOutcome): Promise<ChunkOutcome> {
  if (job.status !== 'canceled') return outcome;
  deps.log.info('export canceled after the chunk was marked: finishing the cancel', { exportId: job.exportId });
  await discardParts(deps, job);
  await resumeCancelFollowUps(deps, job);
  return outcome;
}

/**
 * Runs `step` under the lease `claim`, so a slow delivery and its redelivery never both run it.
 * A failing step gives the lease back, so a waiting delivery (or the retry of its message)
 * takes over at once. A delivery that finds the lease held waits for it (acquireLease): it
 * returns once the holder has finished, takes over if the holder gave the lease back, and
 * throws LeaseBusyError if neither happens in time.
 */
async function runClaimed(
  deps: ChunkDeps,
  job: ExportJob,
  claim: 'usersClaim' | 'finalizeClaim',
  sent: 'usersEnqueued' | 'finalizeEnqueued',
  step: () => Promise<void>,
): Promise<boolean> {
  const token = await acquireLease(deps, job, claim, {
    isDone: (current) => !ACTIVE.has(current.status) || !!current[sent],
    waitMs: deps.claimWaitMs ?? DEFAULT_CLAIM_WAIT_MS,
  });
  if (token === undefined) return false;
  try {
    await step();
    return true;
  } catch (error) {
    await deps.store.releaseClaim(job.channelId, job.exportId, claim, token).catch((e: unknown) =>
      deps.log.warn('claim release failed', { exportId: job.exportId, claim, error: errorForLog(e) }),
    );
    throw error;
  }
}

async function renderSlice(
  job: ExportJob,
  message: ChunkMessage,
  deps: ChunkDeps,
  definition: JobDefinition,
  encoder: PartEncoder,
  refs: Set<string>,
  outcome: ChunkOutcome,
): Promise<number> {
  // One moment for the whole export, never the delivery's clock: relative dates (withinLastDays,
  // beforeDaysAgo) and the derived case state (the one-hour rule) would otherwise move between
  // chunks run minutes apart, or a retry 15 minutes later, and one file could hold a set no
  // single moment produces. The request time is when the definition was pinned, so the export is
  // what the manager asked for then.
  const now = new Date(job.createdAt);
  let rows = 0;
  const tooMany = () => {
    // One chunk alone over the limit: fail before holding more rows in memory.
    if (rows > deps.maxRows) {
      throw tooManyRowsError(job.kind, rows, deps.maxRows);
    }
  };
  const workspace = { source: deps.workspace, channelId: job.channelId };
  const source = message.source;
  if (source.type === 'caseDay') {
    const predicate = await compileRequestPredicate(job.request, definition, workspace, { now, timeZone: job.timeZone });
    // One odd field must not drop the case (S1): keep it with that value sanitised.
    const read = recordReader(safeParseCaseRecord, salvageCaseRecord, outcome);
    const toRow = createCaseRowMapper({
      now,
      channelId: job.channelId,
      // Display names only, so they may come from the chunk's short cache (pipeline-deps.ts).
      directory: await loadDirectory(deps.workspace, job.channelId),
      profileKeys: definition.chatProfileSchema.keys,
      timeZone: job.timeZone,
    });
    for await (const page of deps.cases.queryDay(job.channelId, source.day, source.fromIso, source.toIso)) {
      for (const raw of page) {
        const record = read(raw);
        if (!record || !predicate(record)) continue;
        encoder.add(toRow(record));
        if (typeof record.userId === 'string' && record.userId !== '') refs.add(record.userId);
        rows++;
      }
      tooMany();
    }
    return rows;
  }

  const toRow = createUserRowMapper(definition.userProfileSchema, { timeZone: job.timeZone });
  // One odd field must not drop the customer (C6 "all customers"): keep them, sanitised.
  const read = recordReader(safeParseUserRecord, salvageUserRecord, outcome);
  const addUsers = (page: readonly RawItem[], predicate: Predicate) => {
    for (const raw of page) {
      const record = read(raw);
      if (!record || !predicate(record)) continue;
      encoder.add(toRow(record));
      rows++;
    }
    tooMany();
  };

  if (source.type === 'userShard') {
    const predicate = await compileRequestPredicate(job.request, definition, workspace, { now, timeZone: job.timeZone });
    for await (const page of deps.users.queryShard(job.channelId, source.shard)) addUsers(page, predicate);
    return rows;
  }

  // Id batches (a selection, one user, or the users the cases reference): ids are already in
  // export order; BatchGetItem returns them in any order, so reorder by id.
  let ids: string[];
  if (source.type === 'userIds') ids = source.ids;
  else {
    const body = await deps.objects.getBuffer(source.key);
    // Under parts/ like the definition, so gone after a day for the same reason: final.
    if (!body) throw new ExportDataExpiredError('selection', source.key);
    ids = JSON.parse(body.toString('utf8')) as string[];
  }
  const found = await deps.users.getMany(job.channelId, ids);
  const byId = new Map<string, RawItem>();
  for (const user of found) {
    // Fetched by its key, yet the item holds no id: a record without identity, counted as the
    // reader counts one (the file says how many were left out), not dropped unseen.
    if (user.id === undefined || user.id === null || user.id === '') outcome.skippedRecords++;
    else byId.set(String(user.id), user);
  }
  const ordered: RawItem[] = [];
  for (const id of ids) {
    const user = byId.get(id);
    if (user) ordered.push(user);
  }
  addUsers(ordered, () => true);
  return rows;
}

/**
 * Parses a source record, or salvages one the schema rejects (record-salvage), counting each
 * salvaged record as repaired and each unsalvageable one as skipped. Undefined means skip it.
 */
function recordReader<T>(
  parse: (raw: unknown) => { success: true; data: T } | { success: false },
  salvage: (raw: unknown) => T | undefined,
  outcome: Pick<ChunkOutcome, 'skippedRecords' | 'repairedRecords'>,
): (raw: unknown) => T | undefined {
  return (raw) => {
    const parsed = parse(raw);
    if (parsed.success) return parsed.data;
    const salvaged = salvage(raw);
    if (salvaged === undefined) outcome.skippedRecords++;
    else outcome.repairedRecords++;
    return salvaged;
  };
}

/**
 * True when the export left queued/running while this delivery worked (a cancel deletes
 * parts/ under it): what it wrote is swept (a cancel's follow-ups do not run) and it stops.
 */
async function stoppedMeanwhile(deps: ChunkDeps, job: ExportJob): Promise<boolean> {
  const now = await deps.store.getJob(job.channelId, job.exportId);
  if (now && ACTIVE.has(now.status)) return false;
  deps.log.info('export stopped while its users phase was planned', { exportId: job.exportId, status: now?.status });
  // The cancel's audit event and cooldown release follow once the step returns (completeChunk
  // reads the job again and finds it canceled: finishIfCanceled).
  if (now?.status === 'canceled') await discardParts(deps, job);
  return true;
}

/**
 * Cases phase 2: the "User data" sheet holds exactly the users the exported cases reference,
 * once each. Every case chunk stored its referenced ids; the union, sorted into the documented
 * user order, becomes id batches (deterministic keys, so a retry rewrites the same objects).
 */
async function planUsersPhase(planning: ExportJob, deps: ChunkDeps, outcome: Pick<ChunkOutcome, 'failedWith'>): Promise<void> {
  // Read again under the claim: an earlier holder may have planned the phase and then failed
  // before sending (its lease lapsed or was given back). Its batches and refs record stand, and
  // user chunks may already run from them: planning again from the lists as they are now could
  // rewrite both under those chunks. Only the sends are repeated (deterministic keys and ids).
  const job = (await deps.store.getJob(planning.channelId, planning.exportId)) ?? planning;
  if (job.phase === 'users') {
    // Canceled or failed since: a stopped export plans and sends no more work.
    if (!ACTIVE.has(job.status)) {
      await stoppedMeanwhile(deps, job);
      return;
    }
    await sendUserChunks(job, job.sheetChunks?.users ?? 0, deps);
    await deps.store.updateProgress(job.channelId, job.exportId, { usersEnqueued: true });
    return;
  }
  const caseChunks = job.sheetChunks?.cases ?? 0;
  const all = new Set<string>();
  const used: number[] = [];
  for (let i = 0; i < caseChunks; i += 16) {
    const count = Math.min(16, caseChunks - i);
    const lists = await Promise.all(Array.from({ length: count }, (_u, k) => readCaseRefs(job, i + k, deps)));
    if (lists.some((list) => list === 'missing') && (await stoppedMeanwhile(deps, job))) return;
    for (const [k, list] of lists.entries()) {
      if (list === 'missing') throw new Error(`case chunk ${i + k}: referenced-user list or meta is missing`);
      if (list === 'mismatch') {
        // Two overlapping deliveries of this chunk left one's list beside the other's meta, and
        // waiting did not settle it: a users sheet built from it could miss users.
        deps.log.error('case refs do not match their part', { exportId: job.exportId, chunk: i + k });
        if (await failExport(deps, job, PART_MISMATCH)) outcome.failedWith = PART_MISMATCH.code;
        return;
      }
      used.push(list.crc);
      for (const id of list.ids) all.add(id);
    }
  }
  // What the users were planned from, for the finalizer to check the case parts it stitches against.
  await deps.objects.put(objectKeys.refsPlan(job.exportId), JSON.stringify({ refsCrc32: used }), { contentType: 'application/json' });
  const batches = batchIds(sortUserIdsForExport(all), deps.selectionBatch ?? 2000);
  await Promise.all(
    batches.map((batch, i) =>
      deps.objects.put(objectKeys.userIdBatch(job.exportId, 'users', i), JSON.stringify(batch), { contentType: 'application/json' }),
    ),
  );
  const advanced = await deps.store.advanceToUsersPhase(job.channelId, job.exportId, batches.length);
  // Canceled (or failed) while the batches were written: the batches just put are row data's
  // keys under parts/, which the cancel's sweep may have missed; no user chunk is sent.
  if (!advanced && (await stoppedMeanwhile(deps, job))) return;
  if (!advanced && job.usersEnqueued) return;
  deps.log.info('users phase planned', { exportId: job.exportId, users: all.size, chunks: batches.length });
  await sendUserChunks(job, batches.length, deps);
  await deps.store.updateProgress(job.channelId, job.exportId, { usersEnqueued: true });
}

/** Pauses before reading a case chunk's list and meta again when they disagree (a delivery still writing). */
const REFS_SETTLE_MS = [250, 750, 2000];

/**
 * A case chunk's referenced-user list, checked against its meta's refsCrc32. A mismatch may be a
 * second delivery caught between writing its list and its meta (list first, meta second): it is
 * read again after a pause, and only a mismatch that outlasts the pauses is reported.
 */
async function readCaseRefs(
  job: ExportJob,
  index: number,
  deps: ChunkDeps,
): Promise<{ ids: string[]; crc: number } | 'missing' | 'mismatch'> {
  for (let attempt = 0; ; attempt++) {
    const [body, metaBody] = await Promise.all([
      deps.objects.getBuffer(objectKeys.caseRefs(job.exportId, index)),
      deps.objects.getBuffer(objectKeys.partMeta(job.exportId, 'cases', index)),
    ]);
    if (!body || !metaBody) return 'missing';
    const crc = crc32(body);
    const meta = parseJson(metaBody) as StoredPartMeta | undefined;
    const ids = parseJson(body);
    if (meta && Array.isArray(ids) && (meta.refsCrc32 === undefined || meta.refsCrc32 === crc)) return { ids: ids as string[], crc };
    const pause = REFS_SETTLE_MS[attempt];
    if (pause === undefined) {
      // Text that never parses is no mismatch of two deliveries: let the message be retried.
      if (!meta || !Array.isArray(ids)) throw new Error(`case chunk ${index}: its referenced-user list or meta is not valid JSON`);
      return 'mismatch';
    }
    await new Promise((resolve) => setTimeout(resolve, pause));
  }
}

/**
 * JSON of a stored object, or undefined when it does not parse. S3 replaces an object atomically,
 * but the local emulator can serve one while it is being written: read again, like a mismatch.
 */
function parseJson(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

function sendUserChunks(job: ExportJob, count: number, deps: ChunkDeps): Promise<void> {
  // No user to list: nothing to send, and the finalize check after this step finds every chunk done.
  if (count === 0) return Promise.resolve();
  return deps.queue.sendMany(
    'chunk',
    Array.from({ length: count }, (_u, index): ChunkMessage => ({
      type: 'chunk',
      exportId: job.exportId,
      channelId: job.channelId,
      chunkId: `users-${index}`,
      sheet: 'users',
      index,
      source: { type: 'userIdsObject', key: objectKeys.userIdBatch(job.exportId, 'users', index) },
    })),
  );
}
