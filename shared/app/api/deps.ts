import type { ExportJob, JobRequest } from '../export-job';
import type { FollowUpMessage } from '../messages';
import type { ExportRequest, PolicyConfig } from '../../domain';
import type { AuditLog } from '../../ports/audit-log';
import type { Clock } from '../../ports/clock';
import type { CooldownStore } from '../../ports/cooldown-store';
import type { ExportStore } from '../../ports/export-store';
import type { KeyWrapper } from '../../ports/key-wrapper';

/** The engine's key derivation, injected so unit tests can use a small spin count. */
export type DeriveKeys = (password: string) => Promise<{ params: Record<string, unknown>; packageKey: Buffer }>;

/**
 * Planning and enqueueing the chunks of an export: the pipeline's side (planChunks + the
 * chunk queue). `plan` runs before the job exists and must be repeatable for the same exportId
 * (a retry re-plans); `dispatch` enqueues the job's chunk messages and may run twice (chunk
 * processing is idempotent).
 */
export interface ExportDispatcher {
  plan(input: { exportId: string; channelId: string; request: ExportRequest }): Promise<{
    jobRequest: JobRequest;
    timeZone: string;
    chunksTotal: number;
    extra?: Partial<Pick<ExportJob, 'phase' | 'sheetChunks' | 'definition' | 'definitionKey'>>;
    /** Scope `segment`: the segment's conditions as pinned now, for the audit trail (C4). */
    segmentFilter?: unknown;
  }>;
  /**
   * Enqueues the job's chunks from what the job holds (a selection's ids were stored by plan()).
   * Safe to repeat: a dispatch that already finished does nothing.
   */
  dispatch(job: ExportJob): Promise<void>;
  /**
   * Deletes what the pipeline keeps of the export under parts/ (rendered rows, id batches, the
   * stored definition) once it will never be finalized (a cancel) or nothing reads them any more
   * (a revoke). Safe to repeat. Never throws: a failure is logged and left to the pipeline's
   * later sweeps and the lifecycle rule, so the clean-up cannot turn a cancel or a revoke that
   * took effect into an error.
   */
  discardParts(job: Pick<ExportJob, 'exportId'>): Promise<void>;
  /**
   * Sends a revocation's or a cancel's follow-up message (finishRevocation, finishCancellation),
   * to be received once the request has ended (FOLLOW_UP_DELAY_SECONDS). Never throws: a revoke
   * or a cancel must take effect even when the queue is down; a failure is logged by the error's
   * name, and the request's own follow-ups, or a retried request's, then stand alone.
   */
  scheduleFollowUp(type: FollowUpMessage['type'], job: Pick<ExportJob, 'channelId' | 'exportId'>): Promise<void>;
  /**
   * Deletes the export's encrypted file(s) under its file prefix (`objectKeys.filePrefix`) once
   * its link is revoked. Safe to repeat. Never throws: the revocation already took effect (the
   * download refuses a revoked export by its status), so a failure is logged by the error's name
   * only and left to a retried revoke and the bucket's `exports/` lifecycle rule.
   */
  discardFile(job: Pick<ExportJob, 'channelId' | 'exportId'>): Promise<void>;
}

/** Download links: `${PUBLIC_BASE_URL}/v1/downloads/{token}` (the pipeline mints them). */
export interface DownloadLinks {
  /** The link of a completed job, or undefined when it has none (yet). */
  linkFor(job: ExportJob): Promise<string | undefined>;
  /** The export a token points to, or null for a token that is unknown, forged or malformed. */
  resolve(token: string): Promise<{ exportId: string; channelId: string; expiresAt: string } | null>;
}

/** Short-lived presigned GET of the file object (S3). */
export interface DownloadUrlSigner {
  presignGet(objectKey: string, options: { expiresInSeconds: number; fileName: string }): Promise<string>;
}

export type ApiDeps = {
  store: ExportStore;
  audit: AuditLog;
  cooldowns: CooldownStore;
  keyWrapper: KeyWrapper;
  dispatcher: ExportDispatcher;
  links: DownloadLinks;
  urlSigner: DownloadUrlSigner;
  deriveKeys: DeriveKeys;
  clock: Clock;
  policy: PolicyConfig;
  /**
   * Server-side secret for HMACs the API keeps (request-body hashes for idempotency, list
   * cursors). Never leaves the process.
   */
  hmacSecret: Buffer;
  /**
   * Keys an Idempotency-Key record from the version before the slow password digest (no salt,
   * kept 24 h) may have been hashed with: before the api had a secret of its own, the key
   * derived from the link signing secret. Only compared against, never used to write; a replay
   * across that deploy still finds its record instead of a 422. Empty once unneeded.
   */
  legacyIdempotencySecrets?: readonly Buffer[];
  /** Random bytes (export ids, idempotency salts): tests may make it deterministic. */
  random: (bytes: number) => Buffer;
  /** Base of the API for `Location` and links (no trailing slash). */
  publicBaseUrl: string;
  /** How long the presigned S3 URL behind a download redirect lives. */
  presignSeconds: number;
  /**
   * A cooldown older than this whose export does not exist belongs to a request that crashed
   * between taking the cooldown and creating the job: it may be taken over. Longer than the
   * API's timeout (API Gateway: 29 s), so a request still running is never robbed.
   */
  staleCooldownSeconds: number;
};
