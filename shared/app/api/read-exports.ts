import { z } from 'zod';
import { ConflictError, hasPermission, INPUT_ERRORS, NotFoundError, parseCancelRequest, PermissionDeniedError, requirePermission } from '../../domain';
import type { Principal } from '../../auth/principal';
import { runCancelFollowUps } from '../cancel-follow-ups';
import { dispatchUnfinished, terminalStatuses, unfinishedStatuses, type ExportJob } from '../export-job';
import type { ApiDeps } from './deps';
import { openCursor, pageLimitSchema, sealCursor } from './cursor';
import { invalidQuery } from './errors';
import { originPatch, type ClientInput } from './client';
import { toExportView, type ExportView } from './view';

/**
 * Who may see an export: its requester, and holders of `audit:read` in the same channel (an
 * auditor must be able to check what a trail entry refers to). Anyone else, including a
 * manager of another channel, gets 404: existence is not disclosed.
 */
function canSee(principal: Principal, job: ExportJob): boolean {
  return job.channelId === principal.channelId && (job.managerId === principal.managerId || hasPermission(principal, 'audit:read'));
}

/** The one 404 for an export a caller may not see: missing, malformed id or another channel's. */
export function exportNotFound(): NotFoundError {
  return new NotFoundError('no export with this id', { code: 'EXPORT_NOT_FOUND', field: 'exportId', rule: 'visible-export' });
}

/** What an export id can be (newExportId): anything else names no export. */
export const EXPORT_ID_PATTERN = /^[0-9a-f]{12,40}$/;
export const exportIdSchema = z.string().regex(EXPORT_ID_PATTERN);

/**
 * The export `exportId` names if the caller may see it (canSee), else the one 404. Asks for no
 * permission: each route decides that (a read asks for one, a cancel or a revoke does not).
 */
export async function findVisibleJob(deps: ApiDeps, principal: Principal, exportId: string): Promise<ExportJob> {
  // A malformed id cannot name an export: same 404 as a missing one, and no table read.
  if (!exportIdSchema.safeParse(exportId).success) throw exportNotFound();
  const job = await deps.store.getJob(principal.channelId, exportId);
  if (!job || !canSee(principal, job)) throw exportNotFound();
  return job;
}

async function loadVisibleJob(deps: ApiDeps, principal: Principal, exportId: string): Promise<ExportJob> {
  if (!hasPermission(principal, 'export:download') && !hasPermission(principal, 'audit:read')) {
    throw new PermissionDeniedError('the export:download or the audit:read permission is required to read exports (rule S5/C10)', {
      field: 'permissions',
      rule: 'S5/C10',
    });
  }
  return findVisibleJob(deps, principal, exportId);
}

/**
 * The export a cancel may stop. No permission is asked for (unlike loadVisibleJob): a cancel only
 * ends work and produces nothing, so a requester whose `export:download` was withdrawn while the
 * export ran must still be able to stop it (docs/api.md). Disclosure stays as for a read: another
 * channel's export, a missing or malformed id, and one the caller could not see are the one 404;
 * an auditor of the channel, who can see it, is told NOT_REQUESTER.
 */
async function loadCancelableJob(deps: ApiDeps, principal: Principal, exportId: string): Promise<ExportJob> {
  const job = await findVisibleJob(deps, principal, exportId);
  if (job.managerId === principal.managerId) return job;
  throw new PermissionDeniedError('only the manager who requested an export may cancel it', { code: 'NOT_REQUESTER', field: 'exportId', rule: 'requester-only' });
}

/**
 * A queued job whose chunks were never enqueued this long after it was created was cut short
 * between creating the job and dispatching it (the API call took at most ~30 s: API Gateway's
 * limit). Nothing else would ever move it.
 */
export const STALLED_DISPATCH_SECONDS = 60;

/**
 * Finishes an interrupted dispatch (dispatch is safe to repeat) and returns the job as it is
 * now. A failure here leaves the job as it was for the next read to try again: a status read
 * must not fail because the queue is briefly unavailable.
 */
async function resumeIfStalled(deps: ApiDeps, job: ExportJob): Promise<ExportJob> {
  if (!dispatchUnfinished(job)) return job;
  const ageSeconds = (deps.clock.now().getTime() - Date.parse(job.createdAt)) / 1000;
  if (!(ageSeconds > STALLED_DISPATCH_SECONDS)) return job;
  try {
    await deps.dispatcher.dispatch(job);
    return (await deps.store.getJob(job.channelId, job.exportId)) ?? job;
  } catch {
    return job;
  }
}

/**
 * The download link is the requester's alone (S5/C10): it needs no bearer, so handing it to an
 * auditor, or to a requester who has since lost `export:download`, would let them download.
 * Auditors see the facts of the file, not a way to fetch it.
 */
function mayDownload(principal: Principal, job: ExportJob): boolean {
  return job.managerId === principal.managerId && hasPermission(principal, 'export:download');
}

export async function getExport(deps: ApiDeps, principal: Principal, exportId: string): Promise<ExportView> {
  const job = await resumeIfStalled(deps, await loadVisibleJob(deps, principal, exportId));
  const link = job.status === 'completed' && mayDownload(principal, job) ? await deps.links.linkFor(job) : undefined;
  return toExportView(job, deps.publicBaseUrl, link, deps.clock.now());
}

export const listExportsQuerySchema = z.strictObject({
  limit: pageLimitSchema(20),
  // Any text: openCursor tells an empty, over-long or altered one INVALID_CURSOR, as every bad cursor.
  cursor: z.string().optional(),
});

/**
 * The caller's exports, newest first. The store's cursor is wrapped with an HMAC bound to the
 * caller, so a cursor is opaque, cannot be forged, and cannot be replayed by another manager.
 */
export async function listExports(
  deps: ApiDeps,
  principal: Principal,
  query: Record<string, string | undefined>,
): Promise<{ items: ExportView[]; cursor?: string }> {
  requirePermission(principal, 'export:download');
  const parsed = listExportsQuerySchema.safeParse(query, INPUT_ERRORS);
  if (!parsed.success) throw invalidQuery(parsed.error);
  const scope = `${principal.channelId}\0${principal.managerId}`;
  const storeCursor = parsed.data.cursor !== undefined ? openCursor(deps.hmacSecret, scope, parsed.data.cursor) : undefined;
  const page = await deps.store.listJobs(principal.channelId, principal.managerId, storeCursor, parsed.data.limit);
  const items = await Promise.all(
    page.items.map(async (listed) => {
      const job = await resumeIfStalled(deps, listed);
      return toExportView(job, deps.publicBaseUrl, job.status === 'completed' ? await deps.links.linkFor(job) : undefined, deps.clock.now());
    }),
  );
  return { items, ...(page.cursor ? { cursor: sealCursor(deps.hmacSecret, scope, page.cursor) } : {}) };
}

/**
 * POST /v1/exports/{id}/cancel: only the requester, with no permission asked (loadCancelableJob).
 * The pipeline checks the status before each stage, so no file and no link follow a cancel. The
 * cooldown is given back: nothing was downloaded, so the manager may ask again.
 *
 * Idempotent, as a revoke is: an export already canceled answers 200 with its first cancel's
 * facts, after finishing whatever that cancel's request left undone (parts/, the audit event, the
 * cooldown; every step is idempotent). A client whose first call timed out, a request whose own
 * committed write's answer was lost (the SDK's retry then fails the condition on it), and an
 * operator's "cancel again" all mean the same thing. Any other finished export is a 409.
 * The body is optional: `{ "reason": "…" }` is recorded with the cancel, with where the request
 * came from; a repeated cancel keeps the first one's.
 */
export async function cancelExport(
  deps: ApiDeps,
  principal: Principal,
  exportId: string,
  body?: unknown,
  client?: ClientInput,
): Promise<ExportView> {
  // The body first, as a revoke's: a bad one is refused whatever the id names, with no table read.
  const { reason } = parseCancelRequest(body);
  const job = await loadCancelableJob(deps, principal, exportId);
  if (job.status === 'canceled') return finishAndShowCancel(deps, job);
  // Before the transition, as a revoke's: received once this request has ended, it finishes the
  // cancel (parts/, the audit event, the cooldown) if this request or its retries do not, and
  // does nothing if the transition never committed. Only for an export the cancel can still
  // stop: a terminal one gets its 409 without a message.
  if (unfinishedStatuses.includes(job.status)) await deps.dispatcher.scheduleFollowUp('cancel', job);
  const patch = {
    canceledAt: deps.clock.now().toISOString(),
    ...(reason !== undefined ? { cancelReason: reason } : {}),
    ...originPatch('canceledFrom', client),
  };
  const canceled = await deps.store.setStatus(principal.channelId, exportId, 'canceled', unfinishedStatuses, patch);
  if (!canceled) {
    const current = (await deps.store.getJob(principal.channelId, exportId)) ?? job;
    if (current.status === 'canceled') return finishAndShowCancel(deps, current);
    if (terminalStatuses.includes(current.status)) {
      throw new ConflictError(`the export is already ${current.status} and cannot be canceled`, { code: 'EXPORT_TERMINAL', field: 'exportId', rule: 'in-progress' });
    }
    throw new ConflictError('the export changed state while canceling; try again', { code: 'EXPORT_BUSY', field: 'exportId', rule: 'state-changed' });
  }
  return finishAndShowCancel(deps, { ...job, ...patch, status: 'canceled' });
}

async function finishAndShowCancel(deps: ApiDeps, canceled: ExportJob): Promise<ExportView> {
  await finishCancel(deps, canceled);
  const after = (await deps.store.getJob(canceled.channelId, canceled.exportId)) ?? canceled;
  return toExportView(after, deps.publicBaseUrl, undefined);
}

/**
 * The cancel's follow-ups: the audit event and the cooldown release are runCancelFollowUps,
 * shared with the pipeline steps that find the export canceled later (they finish a cancel whose
 * request failed here and was never retried). Its audit event names the job's manager, who is
 * the caller: only the requester gets this far. Its errors are thrown (a 500; a retry finishes).
 *
 * parts/ goes first: it holds the rows rendered so far in the clear (raw deflate), and nothing
 * else deletes it for a canceled export (only a finished or failed one's follow-ups do), so it
 * would stay a day, until the lifecycle rule. First, so an audit outage that fails the request
 * does not keep the data. Best effort (the dispatcher logs a failure): the status has changed,
 * and a retried cancel, every late chunk delivery and the finalizer sweep it again.
 */
async function finishCancel(deps: ApiDeps, job: ExportJob): Promise<void> {
  await deps.dispatcher.discardParts(job);
  await runCancelFollowUps(deps, job);
}
