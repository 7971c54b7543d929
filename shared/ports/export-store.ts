import { z } from 'zod';
import type { ExportJob, ExportStatus, JobError } from '../app/export-job';

/** Fields a status transition may set together with the new status. */
export type JobPatch = Partial<
  Pick<
    ExportJob,
    | 'chunksTotal'
    | 'rowCount'
    | 'fileName'
    | 'fileSize'
    | 'sha256'
    | 'objectKey'
    | 'completedAt'
    | 'failedAt'
    | 'canceledAt'
    | 'revokedAt'
    | 'revokedBy'
    | 'revokeReason'
    | 'expiresAt'
    | 'phase'
    | 'sheetChunks'
    | 'finalizeEnqueued'
    | 'notifyEnqueued'
    | 'usersEnqueued'
    | 'chunksEnqueued'
    | 'notifiedAt'
    | 'notifyError'
    | 'notifyErrorAt'
    | 'notifyRefusedAt'
    | 'notifyRefusedStatus'
  >
> & { error?: JobError };

export type ChunkDoneResult = {
  /** false when this chunk id was already in the completed set (a redelivery): count nothing. */
  firstTime: boolean;
  done: number;
  total: number;
  /** Rows of the main sheet so far (the size rule is checked against it). */
  rowsWritten: number;
};

/**
 * `*Enqueued` flags flip once. `*Claim` flags are leases: the claim succeeds while the matching
 * `*Enqueued` flag is unset and nobody holds a claim younger than CLAIM_LEASE_MS, so a retry
 * can take over from a crashed holder but never races a live one.
 */
/** Flags set once, for good (claimFlag). */
export type JobFlag = 'finalizeEnqueued' | 'notifyEnqueued' | 'usersEnqueued';
/** The leases that guard a chunk's next step (claimLease / releaseClaim), and the notifier's post (`notifyClaim`, closed by `notifiedAt` or `notifyRefusedAt`). */
export type LeaseFlag = 'finalizeClaim' | 'usersClaim' | 'notifyClaim';

export const CLAIM_LEASE_MS = 120_000;
/**
 * How long a delivery that finds the next step claimed waits for its holder, by default: long
 * enough for planning a users phase of a few hundred case chunks, short beside a chunk timeout
 * and far under the chunk queue's visibility timeout (6x the function timeout).
 */
export const DEFAULT_CLAIM_WAIT_MS = 5_000;

export type JobPage = { items: ExportJob[]; cursor?: string };

/**
 * An Idempotency-Key's record, kept 24 h. `requestHash` is an HMAC of the request with the
 * password's place taken by a slow, salted digest of it (shared/app/api/idempotency-hash.ts);
 * `passwordSalt` (base64, 16 bytes) is that digest's salt. A record without one was written by
 * the version before the slow digest (its hash covers the password with the HMAC alone).
 * Adapters validate a record read back with this schema.
 */
export const idempotencyRecordSchema = z.object({
  channelId: z.string().min(1),
  managerId: z.string().min(1),
  key: z.string().min(1),
  requestHash: z.string(),
  passwordSalt: z.base64().min(1).optional(),
  exportId: z.string().min(1),
  createdAt: z.string(),
});
export type IdempotencyRecord = z.infer<typeof idempotencyRecordSchema>;

export type DownloadTokenRecord = {
  tokenHash: string;
  exportId: string;
  channelId: string;
  expiresAt: string;
};

export interface ExportStore {
  /** Fails with ConflictError-like `false` when the id exists. */
  createJob(job: ExportJob): Promise<boolean>;
  /** null when missing or when the job belongs to another channel. */
  getJob(channelId: string, exportId: string): Promise<ExportJob | null>;
  /** The caller's exports, newest first, each read whole. The cursor is opaque. */
  listJobs(channelId: string, managerId: string, cursor: string | undefined, limit: number): Promise<JobPage>;
  /** Plain field update that does not touch the status (e.g. chunksTotal after planning). */
  updateProgress(channelId: string, exportId: string, patch: JobPatch): Promise<void>;
  /**
   * Adds chunkId to the job's completed-chunk SET, rowCount to rowsWritten and skippedRecords (if
   * any) to the job's skippedRecords, all only the first time this chunk id is seen; a redelivery
   * returns firstTime: false and changes nothing.
   */
  markChunkDone(channelId: string, exportId: string, chunkId: string, meta: { rowCount: number; skippedRecords?: number }): Promise<ChunkDoneResult>;
  /** Whether chunkId is already in the job's completed-chunk SET (false for a missing job or another channel's). */
  isChunkDone(channelId: string, exportId: string, chunkId: string): Promise<boolean>;
  /**
   * Conditional transition: succeeds (true) only when the current status is one of `from`
   * (and, when given, the extra flag condition holds). Lost races return false.
   */
  setStatus(
    channelId: string,
    exportId: string,
    to: ExportStatus,
    from: readonly ExportStatus[],
    patch?: JobPatch,
  ): Promise<boolean>;
  /**
   * Sets a boolean flag once (conditional on it not being true yet). Returns true for the one
   * caller that flipped it: the "exactly once" switch for enqueueing finalize/phase 2/notify.
   */
  claimFlag(channelId: string, exportId: string, flag: JobFlag): Promise<boolean>;
  /**
   * Takes a `*Claim` lease: only while its step is not sent and no other holder's lease is
   * younger than CLAIM_LEASE_MS. Returns the holder's token (for releaseClaim), or undefined
   * when the lease was not taken.
   */
  claimLease(channelId: string, exportId: string, flag: LeaseFlag): Promise<string | undefined>;
  /**
   * Gives a `*Claim` lease back before it lapses: its holder failed (and threw), so a waiting
   * delivery or the retry can take over at once instead of waiting CLAIM_LEASE_MS. Only the
   * holder's own lease goes: once it lapsed and another delivery took it, the token no longer
   * matches and nothing changes.
   */
  releaseClaim(channelId: string, exportId: string, flag: LeaseFlag, token: string): Promise<void>;
  /**
   * The first plan: sets chunksTotal, phase 'main' and sheetChunks, only while the job has no
   * phase yet; false when another dispatch of the same job (a retry sharing its Idempotency-Key,
   * two status reads resuming a stalled dispatch) planned it first. Unconditional, a late
   * dispatch could put back `main` over a users phase already under way: the finalizer would
   * then build the users sheet from none of its chunks.
   */
  startMainPhase(
    channelId: string,
    exportId: string,
    plan: Required<Pick<JobPatch, 'chunksTotal' | 'sheetChunks'>>,
  ): Promise<boolean>;
  /**
   * Cases only: moves the job from phase 'main' to 'users' and adds the user chunks to the
   * total, in one conditional write; false when another delivery already did, or the export
   * is no longer queued or running (canceled or failed meanwhile).
   */
  advanceToUsersPhase(channelId: string, exportId: string, userChunks: number): Promise<boolean>;
  saveDownloadToken(record: DownloadTokenRecord): Promise<void>;
  getDownloadToken(tokenHash: string): Promise<DownloadTokenRecord | null>;
  /** Conditional put; returns the record already stored under that key when there is one. */
  saveIdempotencyRecord(record: IdempotencyRecord, ttlSeconds: number): Promise<{ created: boolean; existing?: IdempotencyRecord }>;
  getIdempotencyRecord(channelId: string, managerId: string, key: string): Promise<IdempotencyRecord | null>;
  /**
   * Frees the key again, only while it still names `exportId`: for a request refused (4xx)
   * before its export existed, so a corrected body may use the same key.
   */
  releaseIdempotencyRecord(channelId: string, managerId: string, key: string, exportId: string): Promise<void>;
}
