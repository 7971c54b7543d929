import type { NotificationOutcome } from '../../ports/audit-log';
import { describeProgress, fileWasMade, notifyEventFor, type ExportJob } from '../export-job';
import { refusalReason } from '../notify-export';

/** What the API shows of a job: never the encryption params, the wrapped key or the object key. */
export type ExportView = {
  exportId: string;
  kind: ExportJob['kind'];
  status: ExportJob['status'];
  requestedBy: { managerId: string; name: string };
  reason: string;
  scope: string;
  createdAt: string;
  updatedAt: string;
  progress: { chunksDone: number; chunksTotal: number; rowsWritten: number; percent: number };
  rowCount?: number;
  /** Source records left out for lack of an id (see ExportJob.skippedRecords); absent when none. */
  skippedRecords?: number;
  fileName?: string;
  fileSize?: number;
  sha256?: string;
  completedAt?: string;
  expiresAt?: string;
  link?: string;
  error?: { code: string; message: string };
  /** A revoked export's revocation (POST /v1/exports/{id}/revoke): when, by whom, why. */
  revokedAt?: string;
  revokedBy?: { managerId: string };
  revokeReason?: string;
  /** Whether the bot told the requester (see notificationView); absent until it answered or was given up on. */
  notification?: NotificationOutcome;
  links: { self: string; cancel?: string };
};

/**
 * The bot's outcome as the job records it, in the audit entry's shape, so a web client can tell
 * a manager the bot never reached them (the status, and for the requester the link, are still
 * here). A post that got through outranks an earlier dead letter (`notifyError` stays on the job
 * when a later notify succeeds). A dead letter's time is `notifyErrorAt`, the one its audit event
 * holds; a job dead-lettered before that field existed falls back to `updatedAt` (which a later
 * revoke moves). The event follows from the status: a failed export's notification is
 * `export.failed`, any other's `export.completed`.
 */
export function notificationView(
  job: Pick<ExportJob, 'status' | 'updatedAt' | 'notifiedAt' | 'notifyRefusedAt' | 'notifyRefusedStatus' | 'notifyError' | 'notifyErrorAt'>,
): NotificationOutcome | undefined {
  const event = notifyEventFor(job.status);
  if (job.notifiedAt) return { status: 'delivered', at: job.notifiedAt, event };
  if (!job.notifyRefusedAt && !job.notifyError) return undefined;
  // A refusal carries its status; a notifyError alone is the DLQ handler's (every retry failed).
  const reason = job.notifyRefusedAt ? refusalReason(job) : 'dead-lettered';
  return { status: 'failed', at: job.notifyRefusedAt ?? job.notifyErrorAt ?? job.updatedAt, event, ...(reason ? { reason } : {}) };
}

/** `self`, and `cancel` only while the export can still be canceled (also in a replayed 202). */
export function exportLinks(job: Pick<ExportJob, 'exportId' | 'status'>, baseUrl: string): ExportView['links'] {
  const self = `${baseUrl}/v1/exports/${encodeURIComponent(job.exportId)}`;
  const active = job.status === 'queued' || job.status === 'running' || job.status === 'finalizing';
  return { self, ...(active ? { cancel: `${self}/cancel` } : {}) };
}

/**
 * A completed export whose 7-day window has passed is shown as `expired` even before any
 * process rewrites the job (the file is deleted by the bucket's lifecycle rule): no link then.
 * A revoked export is never relabelled `expired` (only a `completed` one lapses): the auditor
 * must see that its link was withdrawn, and by whom. It keeps its file facts (which file went
 * out before the revocation), never a link.
 */
export function toExportView(stored: ExportJob, baseUrl: string, link: string | undefined, now?: Date): ExportView {
  const lapsed = stored.status === 'completed' && stored.expiresAt !== undefined && now !== undefined && now.getTime() >= Date.parse(stored.expiresAt);
  const job: ExportJob = lapsed ? { ...stored, status: 'expired' } : stored;
  const view: ExportView = {
    exportId: job.exportId,
    kind: job.kind,
    status: job.status,
    requestedBy: { managerId: job.managerId, name: job.managerName },
    reason: job.reason,
    scope: job.request.scope ?? (job.kind === 'cases' ? 'range' : 'all'),
    createdAt: job.createdAt,
    updatedAt: job.updatedAt,
    // From the stored job: relabelling it `expired` changes nothing about the work done.
    progress: describeProgress(stored),
    links: exportLinks(job, baseUrl),
  };
  if (job.rowCount !== undefined) view.rowCount = job.rowCount;
  if (job.skippedRecords !== undefined && job.skippedRecords > 0) view.skippedRecords = job.skippedRecords;
  if (fileWasMade(job.status)) {
    if (job.fileName !== undefined) view.fileName = job.fileName;
    if (job.fileSize !== undefined) view.fileSize = job.fileSize;
    if (job.sha256 !== undefined) view.sha256 = job.sha256;
    if (job.completedAt !== undefined) view.completedAt = job.completedAt;
    if (job.expiresAt !== undefined) view.expiresAt = job.expiresAt;
    if (link !== undefined && job.status === 'completed') view.link = link;
  }
  if (job.status === 'failed' && job.error) view.error = { code: job.error.code, message: job.error.message };
  if (job.status === 'revoked') {
    if (job.revokedAt !== undefined) view.revokedAt = job.revokedAt;
    if (job.revokedBy !== undefined) view.revokedBy = { managerId: job.revokedBy };
    if (job.revokeReason !== undefined) view.revokeReason = job.revokeReason;
  }
  const notification = notificationView(stored);
  if (notification) view.notification = notification;
  return view;
}
