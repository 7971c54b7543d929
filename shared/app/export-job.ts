import { z } from 'zod';
import { profileSchemaSchema } from '../domain/records';
import { auditSheetSchema } from '../ports/audit-log';

/** A request's origin as stored on the job (shared/app/api/client.ts cuts and cleans it). */
const clientFactsSchema = z.object({ ip: z.string().max(64).optional(), userAgent: z.string().optional() });

/**
 * The export job as stored in EXPORTS_TABLE and passed between the API, the chunk handlers,
 * the finalizer and the notifier. It never holds the password, nor anything to test password
 * guesses against: the engine's EncryptionParams are stored sealed under the package key, and
 * the package key wrapped by the KeyWrapper (KMS on AWS, a local AES key in the local stack).
 * See jobEncryptionSchema.
 */

export const exportKindSchema = z.enum(['cases', 'contacts']);
export type ExportKind = z.infer<typeof exportKindSchema>;

export const exportStatusSchema = z.enum([
  'queued',
  'running',
  'finalizing',
  'completed',
  'failed',
  'canceled',
  'expired',
  /** A completed export whose link was withdrawn (POST /v1/exports/{id}/revoke): no link, no file. */
  'revoked',
]);
export type ExportStatus = z.infer<typeof exportStatusSchema>;

/**
 * Terminal states never change again (a canceled export never becomes completed), with one
 * exception: a completed export may be revoked (its leaked link withdrawn), and a revoked one
 * never changes again.
 */
export const terminalStatuses: readonly ExportStatus[] = ['completed', 'failed', 'canceled', 'expired', 'revoked'];
/**
 * Whether the export's file was made: completed, or what only a completed export becomes
 * (expired, revoked). Its work stays done and its file facts stay shown; only the link goes.
 */
export function fileWasMade(status: ExportStatus): boolean {
  return status === 'completed' || status === 'expired' || status === 'revoked';
}

/** Statuses with work still to do: what a fail or a cancel moves from. */
export const unfinishedStatuses: readonly ExportStatus[] = ['queued', 'running', 'finalizing'];

/**
 * A job whose chunk messages were not all sent and which can still run: its dispatch may be
 * repeated (chunksEnqueued is written only after the last batch; sent chunks may already have
 * moved it to `running`).
 */
export function dispatchUnfinished(job: Pick<ExportJob, 'chunksEnqueued' | 'status'>): boolean {
  return !job.chunksEnqueued && !terminalStatuses.includes(job.status);
}

export const contactsScopeSchema = z.enum(['all', 'filter', 'segment', 'query', 'selection', 'user']);
export type ContactsScope = z.infer<typeof contactsScopeSchema>;

/**
 * The validated request minus every secret. Its filter is not here: it travels with the
 * definition (`requestFilter`), stored inline or in S3 by size; `filter` is read only on jobs
 * created before that. Large selections are not stored inline: `userIdsCount` and `userIdsKey`
 * (an S3 object of the id list) instead, because a DynamoDB item is at most 400 KB and an SQS
 * message at most 256 KB.
 */
export const jobRequestSchema = z
  .object({
    kind: exportKindSchema,
    scope: contactsScopeSchema.optional(),
    from: z.string().optional(),
    to: z.string().optional(),
    timezone: z.string().optional(),
    filter: z.unknown().optional(),
    query: z.string().optional(),
    segmentId: z.string().optional(),
    userId: z.string().optional(),
    userIdsCount: z.number().int().nonnegative().optional(),
    userIdsKey: z.string().optional(),
  })
  .loose();
export type JobRequest = z.infer<typeof jobRequestSchema>;

/**
 * How the job carries the file's encryption to the finalizer (see job-encryption.ts).
 * - `sealedParams`: the engine's EncryptionParams (shared/xlsx/crypto), AES-256-GCM-sealed under
 *   a key derived from the package key and bound to the exportId. The params hold the password
 *   verifier and the encrypted package key: stored in the clear, anyone who can read the table
 *   could test password guesses offline and, with the password, get the package key without KMS.
 *   Sealed, only a holder of the package key (the finalizer, through KMS) can read them.
 * - `wrappedKey`: the package key wrapped by the KeyWrapper, bound to the exportId.
 * What every job created from now on stores; the API never returns either field.
 */
export const sealedJobEncryptionSchema = z.object({
  sealedParams: z.string().min(1),
  wrappedKey: z.string().min(1),
});
export type SealedJobEncryption = z.infer<typeof sealedJobEncryptionSchema>;

/**
 * BACKWARD COMPATIBILITY ONLY: jobs created before params were sealed hold them in the clear
 * (`params`, validated by the engine when the finalizer uses them). Such a job still finalizes;
 * nothing writes this form any more (requestExport builds a SealedJobEncryption). Keep it
 * while the table holds items of that version: the store parses every job it reads, finished
 * ones too (kept 400 days by default), so dropping it would break reading and listing them. The
 * finalizer's plain-params path matters only while one of them can still finalize.
 */
export const legacyJobEncryptionSchema = z.object({
  params: z.record(z.string(), z.unknown()),
  wrappedKey: z.string().min(1),
});
export type LegacyJobEncryption = z.infer<typeof legacyJobEncryptionSchema>;

/**
 * Sealed first: an item that somehow had both fields is read as sealed (its plain copy dropped),
 * never the other way round.
 */
export const jobEncryptionSchema = z.union([sealedJobEncryptionSchema, legacyJobEncryptionSchema]);
export type JobEncryption = z.infer<typeof jobEncryptionSchema>;

export const jobErrorSchema = z.object({
  code: z.string(),
  message: z.string(),
  /** TOO_MANY_ROWS only: the limit that was passed (MAX_ROWS), which the bot's texts state. */
  maxRows: z.number().int().positive().optional(),
});
export type JobError = z.infer<typeof jobErrorSchema>;

/**
 * Sheets of the workbook and how many chunks each has. For cases the "users" count is unknown
 * until every case chunk is done (the User data sheet holds exactly the referenced users), so
 * it starts at 0 and phase 2 fills it in.
 */
export const sheetKeySchema = z.enum(['cases', 'users']);
export type SheetKey = z.infer<typeof sheetKeySchema>;

export const jobPhaseSchema = z.enum(['main', 'users']);
export type JobPhase = z.infer<typeof jobPhaseSchema>;

/**
 * One definition per export: what decides its rows and its columns, read once when it is
 * requested and kept with the job, so every chunk and the finalizer use the same copy whatever
 * the workspace does meanwhile (a segment edited or deleted, a profile key added or archived).
 * - `segmentFilter` (scope `segment` only): the segment's conditions as they were at the request.
 *   A segment is saved conditions, not saved results (C4): the conditions are fixed here, the
 *   rows are still evaluated by the chunks against the data as it is when they read it.
 * - the two profile schemas: they decide the `profile.*` columns of both sheets, the cells'
 *   types, which keys are archived (C5), and the field kinds of a filter or quick search.
 * The directory (team and manager names) is not part of it: names are display values, not a
 * definition, and a chunk may read them from a short cache.
 */
/**
 * What a job's `request.filter` holds when the request's filter is in its definition
 * (`requestFilter`): a filter no version's schema accepts (a key no filter has). A chunk of a
 * version from before the move reads only `request.filter` and drops `requestFilter`; with no
 * filter there it would export every row, and with this one it fails the export
 * (FILTER_INVALID) instead. Versions mix while a deploy updates functions one by one, and a
 * rollback runs old chunks on new jobs. This version never reads it when `requestFilter` is set.
 */
export const FILTER_IN_DEFINITION = Object.freeze({ join: 'and', groups: [], storedIn: 'definition.requestFilter' });

export const jobDefinitionSchema = z.object({
  segmentFilter: z.unknown().optional(),
  /**
   * The request's own filter (scope `filter`, or a cases filter), in the domain's JSON form. Kept
   * here, not in `request`, so it shares the definition's storage rule: inline while the whole
   * definition fits DEFINITION_INLINE_MAX_BYTES, else in the definition's S3 object. In the job
   * item a filter near its 100,000-byte cap made every chunk's rewrite of the item cost ~150
   * write units. Jobs created before this keep theirs in `request.filter`.
   */
  requestFilter: z.unknown().optional(),
  userProfileSchema: profileSchemaSchema,
  chatProfileSchema: profileSchemaSchema,
});
export type JobDefinition = z.infer<typeof jobDefinitionSchema>;

export const exportJobSchema = z.object({
  exportId: z.string().min(1),
  channelId: z.string().min(1),
  managerId: z.string().min(1),
  managerName: z.string(),
  kind: exportKindSchema,
  request: jobRequestSchema,
  reason: z.string(),
  status: exportStatusSchema,
  createdAt: z.string(),
  updatedAt: z.string(),
  chunksTotal: z.number().int().nonnegative(),
  chunksDone: z.number().int().nonnegative(),
  rowsWritten: z.number().int().nonnegative(),
  rowCount: z.number().int().nonnegative().optional(),
  /**
   * Source records left out of the file because they have no identity (no id) or are not
   * objects; absent when none. Records with odd values are written, sanitised (record-salvage).
   */
  skippedRecords: z.number().int().nonnegative().optional(),
  fileName: z.string().optional(),
  fileSize: z.number().int().nonnegative().optional(),
  sha256: z.string().optional(),
  objectKey: z.string().optional(),
  completedAt: z.string().optional(),
  /** When the export failed: the audit "failed" event a retry re-appends carries this time, not the retry's. */
  failedAt: z.string().optional(),
  /** When the cancel moved it to canceled: what the audit's `canceled` event says, on every retry. */
  canceledAt: z.string().optional(),
  /**
   * The revocation of a completed export's link (POST /v1/exports/{id}/revoke), stored with the
   * transition to `revoked`: when, by whom (the requester or an auditor of the channel) and why.
   * The audit's `revoked` event is built from these on every retry, so a retry records the first
   * revocation's facts, not its own.
   */
  revokedAt: z.string().optional(),
  revokedBy: z.string().min(1).optional(),
  revokeReason: z.string().optional(),
  /** Where the revoke request came from (the audit's `revoked` event gives it, as it does for a download). */
  revokedFrom: clientFactsSchema.optional(),
  /** Why the requester canceled, when the cancel's body said; stored with the transition, like the revoke's. */
  cancelReason: z.string().optional(),
  /** Where the cancel request came from. */
  canceledFrom: clientFactsSchema.optional(),
  expiresAt: z.string().optional(),
  /**
   * The file's sheets as the finalizer wrote them (name, rows, columns): the audit's `completed`
   * event carries them, built from the job on every retry like the file's other facts.
   */
  fileSheets: z.array(auditSheetSchema).optional(),
  error: jobErrorSchema.optional(),
  encryption: jobEncryptionSchema,
  timeZone: z.string(),
  /**
   * The export's definition (see jobDefinitionSchema), inline when its JSON is at most
   * DEFINITION_INLINE_MAX_BYTES (job-definition.ts), which keeps the item far below DynamoDB's
   * 400 KB; a larger one is an S3 object under `parts/{exportId}/` named by its digest
   * (`definitionKey`), written before the job exists. Neither is set on jobs created before the
   * definition was pinned: their chunks and finalizer read the workspace (uncached).
   */
  definition: jobDefinitionSchema.optional(),
  definitionKey: z.string().min(1).optional(),
  /** Pipeline bookkeeping (set by planChunks / the chunk handler, not by the API). */
  phase: jobPhaseSchema.optional(),
  sheetChunks: z.object({ cases: z.number().int().nonnegative(), users: z.number().int().nonnegative() }).partial().optional(),
  finalizeEnqueued: z.boolean().optional(),
  notifyEnqueued: z.boolean().optional(),
  usersEnqueued: z.boolean().optional(),
  chunksEnqueued: z.boolean().optional(),
  /** Set by the notifier after the bot accepted the event: a redelivered notify posts nothing twice. */
  notifiedAt: z.string().optional(),
  /**
   * What went wrong telling the bot: set by the DLQ handler when the bot could not be told (the
   * notify DLQ), and by the notifier when the bot refused the event (with `notifyRefusedAt`).
   */
  notifyError: z.string().optional(),
  /**
   * When the DLQ handler recorded `notifyError` (every retry failed): the time the view and the
   * audit's `notify-failed` both give. Jobs from before it have none (the view falls back to
   * `updatedAt`, which a later revoke moves).
   */
  notifyErrorAt: z.string().optional(),
  /**
   * When the bot refused the event for good (a 4xx other than 408/429): like `notifiedAt` it
   * closes the notify lease, so no later notify message (a finalize retry, a redelivered dead
   * letter) posts the refused event again. Not `notifyError`, which the DLQ handler also sets
   * when the bot was merely down and a later notify may still get through.
   */
  notifyRefusedAt: z.string().optional(),
  /** The HTTP status of that refusal: what the audit event and the view report (`HTTP nnn`). */
  notifyRefusedStatus: z.int().min(400).max(599).optional(),
});
export type ExportJob = z.infer<typeof exportJobSchema>;

/**
 * Progress as the API reports it; percent is whole numbers and reaches 100 only when the file was
 * written: completed, or expired or revoked (only a completed export becomes either, and its work
 * stays done).
 * Chunks make 95% (the finalize the rest). A cases export has two phases whose second is sized
 * only when the first ends (the "User data" chunks are planned from the referenced users), so
 * counting chunks alone would drop (20/21 = 90% became 21/24 = 83%): its case chunks make 0-80%
 * and its user chunks 80-95%, and the figure never goes back.
 */
export function describeProgress(
  job: Pick<ExportJob, 'chunksDone' | 'chunksTotal' | 'rowsWritten' | 'status' | 'kind' | 'phase' | 'sheetChunks'>,
): {
  chunksDone: number;
  chunksTotal: number;
  rowsWritten: number;
  percent: number;
} {
  const percent = fileWasMade(job.status) ? 100 : Math.min(99, Math.floor(chunkShare(job) * 95));
  return { chunksDone: job.chunksDone, chunksTotal: job.chunksTotal, rowsWritten: job.rowsWritten, percent };
}

/** 0..1: the share of the chunk work done (see describeProgress). */
function chunkShare(job: Pick<ExportJob, 'chunksDone' | 'chunksTotal' | 'kind' | 'phase' | 'sheetChunks'>): number {
  const caseChunks = job.sheetChunks?.cases;
  if (job.kind !== 'cases' || caseChunks === undefined || caseChunks <= 0) {
    return job.chunksTotal > 0 ? Math.min(1, job.chunksDone / job.chunksTotal) : 0;
  }
  const CASES_SHARE = 80 / 95;
  if (job.phase !== 'users') return CASES_SHARE * Math.min(1, job.chunksDone / caseChunks);
  const userChunks = job.sheetChunks?.users ?? 0;
  const usersDone = Math.max(0, job.chunksDone - caseChunks);
  return CASES_SHARE + (1 - CASES_SHARE) * (userChunks > 0 ? Math.min(1, usersDone / userChunks) : 1);
}

/**
 * The link window an export was given (LINK_TTL_DAYS when it completed, 1-30), in whole days,
 * read back from the job; undefined before it completed.
 */
export function linkWindowDays(job: { completedAt?: string | undefined; expiresAt?: string | undefined }): number | undefined {
  if (!job.completedAt || !job.expiresAt) return undefined;
  return Math.max(1, Math.round((Date.parse(job.expiresAt) - Date.parse(job.completedAt)) / 86_400_000));
}

/** Sortable by time (like a ULID): 12 hex chars of milliseconds + 16 random hex chars. */
export function newExportId(now: Date, random: (bytes: number) => Buffer): string {
  return now.getTime().toString(16).padStart(12, '0') + random(8).toString('hex');
}

/**
 * The event an export's notification tells, from its status alone: only a failed export is told
 * `export.failed`, any other (completed, and later revoked or expired) `export.completed`. The
 * notifier, the dead-letter handler, the follow-ups and the view all decide it here, never from a
 * message (a hand-sent one may name the other).
 */
export function notifyEventFor(status: ExportJob['status']): 'export.completed' | 'export.failed' {
  return status === 'failed' ? 'export.failed' : 'export.completed';
}
