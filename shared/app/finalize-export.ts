import { createHash, randomBytes } from 'node:crypto';
import { PassThrough, pipeline, Transform } from 'node:stream';
import { crc32, writeEncryptedWorkbook, type EncryptionParams, type SheetPlan } from '../xlsx';
import type { KeyWrapper } from '../ports/key-wrapper';
import type { WorkspaceSource } from '../ports/source-data';
import { unfinishedStatuses, type ExportJob, type JobDefinition, type JobError, type SheetKey } from './export-job';
import { objectKeys, type CancelMessage, type FinalizeMessage } from './messages';
import { createDownloadToken, hashDownloadToken } from './download-link';
import { discardExportFile, discardObject, discardOtherFiles, discardParts, failExport, FollowUpsFailedError, jobOwingFollowUp, PART_MISMATCH, resumeCancelFollowUps, resumeFollowUps, runFollowUps, type StepDeps } from './pipeline-steps';
import type { StoredPartMeta } from './process-chunk';
import { formatCalendarDate, dayInZone } from '../domain/calendar';
import { DefinitionMissingError, loadJobDefinition } from './job-definition';
import { JobEncryptionError, readJobEncryptionParams } from './job-encryption';
import { acceptedPartFingerprints, SHEET_NAMES, sheetColumns, sheetsOf } from './workspace-context';
import { MAX_AUDIT_COLUMNS_BYTES, type AuditSheet } from '../ports/audit-log';

export type FinalizeDeps = StepDeps & {
  keyWrapper: KeyWrapper;
  /** Read only for a job created before definitions were pinned (uncached: see loadJobDefinition). */
  workspace: WorkspaceSource;
  linkSigningSecret: string;
  linkTtlDays: number;
};

export type FinalizeOutcome = {
  status: 'completed' | 'skipped' | 'failed';
  rowCount?: number;
  fileSize?: number;
  sha256?: string;
  /** Request to completion (the latency a manager sees). */
  exportSeconds?: number;
  /** The code this run failed the export with (its own transition): what the handler counts. */
  failedWith?: string;
};

/**
 * ASCII file names: every browser and mail client keeps them intact. A contacts file is named
 * for the day it was requested in the export's zone, like every date in it (and the cases file's
 * range): in UTC, a Seoul manager's 08:30 request was named for the day before.
 */
export function exportFileName(job: Pick<ExportJob, 'kind' | 'request' | 'exportId' | 'createdAt' | 'timeZone'>): string {
  if (job.kind === 'cases') return `UserChatCase_${job.request.from ?? ''}_${job.request.to ?? ''}_${job.exportId}.xlsx`;
  return `Contacts_${requestDay(job.createdAt, job.timeZone)}_${job.exportId}.xlsx`;
}

function requestDay(createdAt: string, timeZone: string): string {
  try {
    return formatCalendarDate(dayInZone(new Date(createdAt), timeZone));
  } catch {
    // A zone Intl does not know (never stored: checked at request time) names the UTC day.
    return createdAt.slice(0, 10);
  }
}

/** A stored part whose bytes are not the ones its meta describes (see StoredPartMeta.dataCrc32). */
export class PartMismatchError extends Error {
  constructor(part: string) {
    super(`part ${part} does not match its meta: two deliveries of its chunk overlapped`);
    this.name = 'PartMismatchError';
  }
}

/**
 * A part or its meta is not in S3. Either the export was canceled meanwhile (the cancel deletes
 * parts/ at once) and this run stops quietly, or it is a real fault and the message is retried.
 */
class PartMissingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PartMissingError';
  }
}

/**
 * True when a missing part is explained by the export ending while this run read parts: a cancel
 * (which deletes parts/ at once), or another run of this finalize that completed it (or a dead
 * letter that failed it) and swept parts/. Such a run stops quietly: a retry would only find the
 * export final, and the record failure it logged first counted toward FinalizerErrors.
 */
async function endedMeanwhile(deps: FinalizeDeps, job: ExportJob, error: unknown): Promise<boolean> {
  if (!(error instanceof PartMissingError)) return false;
  const now = await deps.store.getJob(job.channelId, job.exportId);
  if (now && now.status !== 'canceled' && !unfinishedStatuses.includes(now.status)) {
    // Nothing to delete: this run's upload was abandoned with its writer, under a key of its own
    // (runId), and the file there is the other run's.
    deps.log.info('export ended while its file was assembled by this run: stopped', { exportId: job.exportId, status: now.status });
    // A run or a dead letter that failed it may have died before its notify and the rest of its
    // follow-ups (a chunk delivery that finds it failed sweeps parts/ at once): finish them now
    // rather than leave them to the finalize queue's 90-minute visibility timeout. A no-op once
    // the notify was enqueued (a completing run sweeps parts/ only after that); a duplicate
    // notify from a concurrent run is absorbed by the notifier's lease and `notifiedAt`.
    await resumeFollowUps(deps, now);
    return true;
  }
  if (now?.status !== 'canceled') return false;
  deps.log.info('export canceled while its file was assembled: stopped', { exportId: job.exportId });
  // The writer failed, so the upload was abandoned; a file object is deleted all the same.
  await discardExportFile(deps, job);
  await discardParts(deps, job);
  // The cancel's audit event and cooldown release, should the API's attempt have failed.
  await resumeCancelFollowUps(deps, now);
  return true;
}

/**
 * Parts are read in order; fetching the next one while the engine consumes the current hides
 * S3's per-request latency (hundreds of parts at tens of ms each) at the cost of holding at
 * most two parts in memory.
 */
function createPrefetchingReader(
  deps: FinalizeDeps,
  exportId: string,
  sheetKeys: readonly SheetKey[],
  sheets: readonly SheetPlan[],
  dataCrcs: readonly (readonly (number | undefined)[])[],
): (sheetIndex: number, partIndex: number) => Promise<Buffer> {
  const pending = new Map<string, Promise<Buffer>>();
  const fetch = (sheetIndex: number, partIndex: number): Promise<Buffer> | undefined => {
    const sheet = sheetKeys[sheetIndex];
    if (!sheet || partIndex >= (sheets[sheetIndex]?.parts.length ?? 0)) return undefined;
    const id = `${sheetIndex}/${partIndex}`;
    let promise = pending.get(id);
    if (!promise) {
      promise = deps.objects.getBuffer(objectKeys.part(exportId, sheet, partIndex)).then((body) => {
        if (!body) throw new PartMissingError(`part ${sheet}/${partIndex} is missing`);
        const expected = dataCrcs[sheetIndex]?.[partIndex];
        // ~40 ms for 240 MB: cheap next to the encryption of the same bytes.
        if (expected !== undefined && crc32(body) !== expected) throw new PartMismatchError(`${sheet}/${partIndex}`);
        return body;
      });
      // A prefetch nobody awaits yet must not become an unhandled rejection.
      promise.catch(() => undefined);
      pending.set(id, promise);
    }
    return promise;
  };
  const next = (sheetIndex: number, partIndex: number): [number, number] | undefined => {
    if (partIndex + 1 < (sheets[sheetIndex]?.parts.length ?? 0)) return [sheetIndex, partIndex + 1];
    for (let s = sheetIndex + 1; s < sheets.length; s++) if ((sheets[s]?.parts.length ?? 0) > 0) return [s, 0];
    return undefined;
  };
  return async (sheetIndex, partIndex) => {
    const current = fetch(sheetIndex, partIndex);
    if (!current) throw new Error(`no part ${partIndex} in sheet ${sheetIndex}`);
    pending.delete(`${sheetIndex}/${partIndex}`);
    const following = next(sheetIndex, partIndex);
    if (following) fetch(following[0], following[1]);
    return current;
  };
}

async function readMetas(deps: FinalizeDeps, job: ExportJob, sheet: SheetKey, count: number): Promise<StoredPartMeta[]> {
  const metas: StoredPartMeta[] = [];
  for (let i = 0; i < count; i += 32) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(32, count - i) }, async (_u, k) => {
        const body = await deps.objects.getBuffer(objectKeys.partMeta(job.exportId, sheet, i + k));
        if (!body) throw new PartMissingError(`part ${sheet}/${i + k} has no meta: a chunk is missing`);
        return JSON.parse(body.toString('utf8')) as StoredPartMeta;
      }),
    );
    metas.push(...batch);
  }
  return metas;
}

/**
 * Whether every case part is the one the users phase was planned from (its meta's refsCrc32 is
 * the list CRC the plan used): a delivery that replaced a case chunk's part, meta and list after
 * the planning would otherwise give a "User data" sheet missing users its rows name. True where
 * nothing can be checked: no plan (written by an earlier version), a meta without refsCrc32.
 */
async function refsMatchPlan(deps: FinalizeDeps, job: ExportJob, metas: readonly StoredPartMeta[]): Promise<boolean> {
  const body = await deps.objects.getBuffer(objectKeys.refsPlan(job.exportId));
  if (!body) return true;
  const planned = (JSON.parse(body.toString('utf8')) as { refsCrc32?: unknown }).refsCrc32;
  if (!Array.isArray(planned)) return true;
  return metas.every((meta, i) => meta.refsCrc32 === undefined || planned[i] === meta.refsCrc32);
}

/**
 * A canceled export: nothing else runs after a cancel, and the cancel's own sweep of parts/ is
 * best effort and may predate a chunk's late write, so sweep again (thrown: the retry sweeps
 * again), drop a file an earlier run of this message may have uploaded, and finish the cancel
 * itself (audit event, cooldown), should the API's attempt have failed.
 */
async function finishCanceled(deps: StepDeps, job: ExportJob): Promise<FinalizeOutcome> {
  await discardExportFile(deps, job);
  await discardParts(deps, job);
  await resumeCancelFollowUps(deps, job);
  return { status: 'skipped' };
}

/**
 * The cancel follow-up message's handler (the finalizer's queue, and its dead letter): finishes a
 * cancel whatever its API request managed, as a finalize delivery that meets it does
 * (finishCanceled: the file if any, parts/, the audit event, the cooldown; errors thrown, so the
 * message comes back). An export that is not canceled (the request was refused, lost a race, or
 * failed before the transition) is left alone.
 */
export async function finishCancellation(message: CancelMessage, deps: StepDeps): Promise<'finished' | 'not-canceled'> {
  const job = await jobOwingFollowUp(deps, message, 'canceled');
  if (!job) return 'not-canceled';
  await finishCanceled(deps, job);
  return 'finished';
}

/**
 * Fails the export and says whether this run did: `skipped` when it was already final (another
 * run completed or failed it meanwhile), so the handler's exportFailures metric counts each
 * failed export once, not every run that met an already-finished one.
 */
async function failedHere(deps: FinalizeDeps, job: ExportJob, error: JobError): Promise<FinalizeOutcome> {
  return (await failExport(deps, job, error)) ? { status: 'failed', failedWith: error.code } : { status: 'skipped' };
}

/**
 * Stitches the parts into one encrypted workbook streamed into a multipart upload (sha256 and
 * size computed on the way), then records the file, the link token's hash and the completion,
 * tells the bot and deletes the parts. The conditional finalizing -> completed transition makes
 * a second run (a redelivered finalize message) a no-op; a canceled export is never completed.
 */
export async function finalizeExport(message: FinalizeMessage, deps: FinalizeDeps, delivery: { receiveCount: number }): Promise<FinalizeOutcome> {
  const job = await deps.store.getJob(message.channelId, message.exportId);
  if (!job) {
    deps.log.warn('finalize for an unknown export: dropped', { exportId: message.exportId });
    return { status: 'skipped' };
  }
  if (job.status === 'canceled') return finishCanceled(deps, job);
  if (job.status === 'failed') {
    // A run of this message may have uploaded the file and then failed before completing, while
    // the export was failed elsewhere (a chunk's dead letter) and that cleanup had already run:
    // no link will ever reach the file, so it goes now, not days later (canceled: finishCanceled).
    await discardExportFile(deps, job);
  }
  if (job.status === 'completed' || job.status === 'failed') {
    // A retry after a crash or a thrown step between the final transition and the notify send
    // (completed here, or failed by this finalizer) finishes the audit and the notify, and the
    // sweeps the crash cut short: parts/ (readable rows; a thrown sweep in runFollowUps brings
    // the message back for this) and, for a completed export, other runs' uploads (a run killed
    // after its completion never listed them: an earlier run's upload, the same file under the
    // same password with no link to it, stayed for the link's lifetime).
    if (delivery.receiveCount > 1) {
      await resumeFollowUps(deps, job);
      await discardParts(deps, job);
      if (job.status === 'completed' && job.objectKey) await discardOtherFiles(deps, job, job.objectKey);
    }
    return { status: 'skipped' };
  }
  if (job.status === 'revoked') {
    // Revoked before this retry came (a run killed after its completion is retried only after
    // the visibility timeout, and the export showed completed meanwhile): nothing is announced,
    // but parts/ still holds the rows in the clear, and nothing else will sweep them now.
    await discardParts(deps, job);
    return { status: 'skipped' };
  }
  if (!unfinishedStatuses.includes(job.status)) return { status: 'skipped' };
  if (job.chunksDone < job.chunksTotal) {
    // Never stitch (or claim "finalizing", which stops the remaining chunks) before every
    // chunk is in the completed set; the message comes back after its visibility timeout.
    throw new Error(`finalize before every chunk is done (${job.chunksDone}/${job.chunksTotal})`);
  }
  if (job.status !== 'finalizing' && !(await deps.store.setStatus(job.channelId, job.exportId, 'finalizing', ['queued', 'running']))) {
    // A refused transition does not mean another step won it: when DynamoDB commits it but the
    // answer is lost (a 500 after the commit, a reset connection), the SDK's retry finds the job
    // already `finalizing` and fails the condition. Returning then acknowledged the only finalize
    // message and left the export `finalizing` for ever. So read the job again: `finalizing`
    // (this run's write, or a concurrent run of the same message) is a state this run re-enters
    // as a retry after a crash does; anything else (canceled, failed, completed) ends it as before.
    const current = await deps.store.getJob(job.channelId, job.exportId);
    // Canceled between the read above and this transition: the same sweep as a cancel found on
    // arrival, or the parts (readable rows) would wait for the lifecycle rule if the cancel's own
    // best-effort sweep failed, with no message left to sweep them.
    if (current?.status === 'canceled') return finishCanceled(deps, current);
    if (current?.status !== 'finalizing') return { status: 'skipped' };
    deps.log.info('export already finalizing: carrying on', { exportId: job.exportId });
  }

  // The columns the chunks rendered with: the job's definition, read at the request. Gone from
  // S3 (kept a day under parts/): final, so the export fails now with its code, not after retries.
  let definition: JobDefinition;
  try {
    definition = await loadJobDefinition(job, deps);
  } catch (error) {
    if (!(error instanceof DefinitionMissingError)) throw error;
    deps.log.warn('export definition missing', { exportId: job.exportId, key: error.key });
    return failedHere(deps, job, { code: error.code, message: error.message });
  }
  const sheets: SheetPlan[] = [];
  const dataCrcs: (number | undefined)[][] = [];
  const sheetKeys = sheetsOf(job);
  for (const sheet of sheetKeys) {
    const columns = sheetColumns(job, sheet, definition);
    let metas: StoredPartMeta[];
    try {
      metas = await readMetas(deps, job, sheet, job.sheetChunks?.[sheet] ?? 0);
    } catch (error) {
      if (await endedMeanwhile(deps, job, error)) return { status: 'skipped' };
      throw error;
    }
    const accepted = acceptedPartFingerprints(columns);
    // With a pinned definition every part matches; a job from before it was pinned (its chunks
    // read the schema as it was then) or a part rendered by another code version may not.
    if (metas.some((m) => !accepted.has(m.columns))) {
      return failedHere(deps, job, {
        code: 'COLUMNS_CHANGED',
        // A pinned definition rules out a schema change: the parts came from another version.
        message:
          job.definition || job.definitionKey
            ? 'parts of this export were rendered by another version of the service (an update while it ran); request the export again'
            : 'the profile schema changed while the export ran; request the export again',
      });
    }
    if (job.kind === 'cases' && sheet === 'cases' && !(await refsMatchPlan(deps, job, metas))) {
      deps.log.error('case parts do not match the users phase plan', { exportId: job.exportId });
      return failedHere(deps, job, PART_MISMATCH);
    }
    sheets.push({
      name: SHEET_NAMES[sheet],
      columns,
      parts: metas.map((m) => ({ rawLength: m.rawLength, compressedLength: m.compressedLength, crc32: m.crc32, rowCount: m.rowCount })),
    });
    dataCrcs.push(metas.map((m) => m.dataCrc32));
  }
  const fileSheets = auditSheetsOf(sheets);
  const mainIndex = job.kind === 'cases' ? 0 : sheetKeys.indexOf('users');
  const rowCount = (sheets[mainIndex]?.parts ?? []).reduce((sum, p) => sum + p.rowCount, 0);

  const packageKey = await deps.keyWrapper.unwrap(job.encryption.wrappedKey, { exportId: job.exportId });
  // Sealed params open with the package key (a job from before they were sealed carries them
  // plain). Params that do not open for this export (sealed for another one, altered) or are not
  // valid never will: the export fails now with its code instead of coming back until the DLQ.
  let params: EncryptionParams;
  try {
    params = readJobEncryptionParams(job.encryption, packageKey, job.exportId);
  } catch (error) {
    packageKey.fill(0);
    if (!(error instanceof JobEncryptionError)) throw error;
    deps.log.error('encryption params unusable', { exportId: job.exportId, reason: error.reason, error: error.message });
    return failedHere(deps, job, { code: error.code, message: 'the export could not be encrypted; request it again' });
  }
  const fileName = exportFileName(job);
  const objectKey = objectKeys.file(job.channelId, job.exportId, randomBytes(8).toString('hex'), fileName);
  const hash = createHash('sha256');
  let fileSize = 0;
  const measure = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      fileSize += chunk.length;
      callback(null, chunk);
    },
  });
  const workbookOut = new PassThrough();
  // Either side failing must end the other: a writer that stops without ending the upload's
  // body leaves upload() pending for ever (no abort of the multipart upload, its buffers held by
  // the warm container); an upload that fails leaves the writer waiting for 'drain'. pipeline()
  // carries an error, or a destroy without one, from workbookOut into the upload's body.
  pipeline(workbookOut, measure, () => undefined);
  let failure: unknown;
  const fail = (error: unknown): void => {
    failure ??= error;
    const reason = error instanceof Error ? error : new Error(String(error));
    workbookOut.destroy(reason);
    measure.destroy(reason);
  };
  const startedAt = Date.now();
  try {
    // Both settled before the key is wiped and before returning: nothing keeps running (or
    // reading the key) after this call has failed.
    await Promise.all([
      writeEncryptedWorkbook({
        sheets,
        params,
        packageKey,
        out: workbookOut,
        properties: { title: fileName, creator: 'export-service', created: new Date(job.createdAt) },
        readPart: createPrefetchingReader(deps, job.exportId, sheetKeys, sheets, dataCrcs),
      }).catch(fail),
      deps.objects
        .upload(objectKey, measure, {
          contentType: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
          metadata: { 'export-id': job.exportId },
        })
        .catch(fail),
    ]);
  } finally {
    packageKey.fill(0);
  }
  if (failure instanceof PartMismatchError) {
    // Permanent: the pair stays mismatched on every retry. Nothing was completed (the upload
    // failed with the writer), so the export fails with a code the manager can act on.
    deps.log.error('part does not match its meta', { exportId: job.exportId, error: failure.message });
    return failedHere(deps, job, PART_MISMATCH);
  }
  if (failure !== undefined) {
    if (await endedMeanwhile(deps, job, failure)) return { status: 'skipped' };
    throw failure;
  }
  const sha256 = hash.digest('hex');
  deps.log.info('workbook written', { exportId: job.exportId, fileSize, rowCount, seconds: (Date.now() - startedAt) / 1000 });

  const completedAt = deps.clock.now();
  const expiresAt = new Date(completedAt.getTime() + deps.linkTtlDays * 86_400_000);
  const token = createDownloadToken({ exportId: job.exportId, expiresAt }, deps.linkSigningSecret);
  await deps.store.saveDownloadToken({
    tokenHash: hashDownloadToken(token),
    exportId: job.exportId,
    channelId: job.channelId,
    expiresAt: expiresAt.toISOString(),
  });
  const facts = {
    rowCount,
    fileName,
    fileSize,
    sha256,
    objectKey,
    completedAt: completedAt.toISOString(),
    expiresAt: expiresAt.toISOString(),
    fileSheets,
  };
  const completed = await deps.store.setStatus(job.channelId, job.exportId, 'completed', ['finalizing'], facts);
  const exportSeconds = (completedAt.getTime() - Date.parse(job.createdAt)) / 1000;
  const outcome: FinalizeOutcome = { status: 'completed', rowCount, fileSize, sha256, exportSeconds };
  if (completed) {
    // Audit "completed", notify, delete parts/. The audit event is built from the same stored
    // facts a retry (resumeFollowUps) reads back, so both append the same event. A follow-up
    // error carries this run's completion (the handler counts it; the retry reports skipped).
    try {
      await runFollowUps(deps, { ...job, ...facts, status: 'completed' });
    } catch (error) {
      throw new FollowUpsFailedError(outcome, error);
    }
    await discardOtherFiles(deps, job, objectKey);
  } else {
    const now = await deps.store.getJob(job.channelId, job.exportId);
    if (now?.status !== 'completed') {
      // Canceled or failed meanwhile: offer nothing.
      deps.log.info('export left finalizing before completion: file discarded', { exportId: job.exportId });
      await discardExportFile(deps, job);
      // Canceled while the file was written: the parts this run read are the export's rows in
      // the clear, and no follow-up of a canceled export deletes them (a failure's does).
      if (now?.status === 'canceled') {
        await discardParts(deps, job);
        await resumeCancelFollowUps(deps, now);
      }
      return { status: 'skipped' };
    }
    // Completed: by a concurrent run (a redelivered finalize message), or by this run's own
    // write whose answer was lost (the SDK's retry then fails the condition). Another run's
    // completion names its own object: this run's upload (perhaps of different bytes, if a
    // duplicate chunk delivery rewrote a part between the runs' reads) goes, so the file that
    // stays is the one the job's sha256, size and row count describe. In the second case nobody else would append the audit
    // event, send the notify or sweep parts/ (this message is acknowledged; returning here once
    // left the bot untold), so either way they are finished here from the stored job:
    // resumeFollowUps does nothing once `notifyEnqueued` is set, and a concurrent run still at
    // them costs at most a second notify message, which the notifier's lease absorbs.
    if (now.objectKey !== objectKey) await discardObject(deps, job, objectKey);
    await resumeFollowUps(deps, now);
    // `completedAt` is this run's own clock reading: another value means another run completed it.
    if (now.completedAt !== facts.completedAt) return { status: 'skipped' };
    deps.log.info('completion committed though its answer was lost', { exportId: job.exportId });
    await discardOtherFiles(deps, job, objectKey);
  }
  deps.log.info('export completed', { rowCount, fileSize, exportSeconds });
  return outcome;
}

/**
 * What the audit trail records of each sheet written (auditSheetSchema): name, data rows, and the
 * columns as the file's header row names them, with their digest: what an auditor can hold
 * against the file itself. The names are left out of every sheet (the digests and counts stay)
 * when together they would pass MAX_AUDIT_COLUMNS_BYTES: an audit item has 400 KB.
 */
export function auditSheetsOf(sheets: readonly Pick<SheetPlan, 'name' | 'columns' | 'parts'>[]): AuditSheet[] {
  const keyLists = sheets.map((sheet) => sheet.columns.map((column) => column.header));
  const listed = keyLists.reduce((bytes, keys) => bytes + Buffer.byteLength(JSON.stringify(keys), 'utf8'), 0) <= MAX_AUDIT_COLUMNS_BYTES;
  return sheets.map((sheet, i) => {
    const keys = keyLists[i] ?? [];
    return {
      name: sheet.name,
      rowCount: sheet.parts.reduce((sum, part) => sum + part.rowCount, 0),
      columnCount: keys.length,
      columnsSha256: createHash('sha256').update(JSON.stringify(keys)).digest('hex'),
      ...(listed ? { columns: keys } : {}),
    };
  });
}
