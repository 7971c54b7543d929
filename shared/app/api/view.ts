import { describeProgress, type ExportJob } from '../export-job';

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
  links: { self: string; cancel?: string };
};

/** `self`, and `cancel` only while the export can still be canceled (also in a replayed 202). */
export function exportLinks(job: Pick<ExportJob, 'exportId' | 'status'>, baseUrl: string): ExportView['links'] {
  const self = `${baseUrl}/v1/exports/${encodeURIComponent(job.exportId)}`;
  const active = job.status === 'queued' || job.status === 'running' || job.status === 'finalizing';
  return { self, ...(active ? { cancel: `${self}/cancel` } : {}) };
}

/**
 * A completed export whose 7-day window has passed is shown as `expired` even before any
 * process rewrites the job (the file is deleted by the bucket's lifecycle rule): no link then.
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
  if (job.status === 'completed' || job.status === 'expired') {
    if (job.fileName !== undefined) view.fileName = job.fileName;
    if (job.fileSize !== undefined) view.fileSize = job.fileSize;
    if (job.sha256 !== undefined) view.sha256 = job.sha256;
    if (job.completedAt !== undefined) view.completedAt = job.completedAt;
    if (job.expiresAt !== undefined) view.expiresAt = job.expiresAt;
    if (link !== undefined && job.status === 'completed') view.link = link;
  }
  if (job.status === 'failed' && job.error) view.error = { code: job.error.code, message: job.error.message };
  return view;
}
