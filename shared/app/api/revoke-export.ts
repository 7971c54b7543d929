import { ConflictError, parseRevokeRequest } from '../../domain';
import type { Principal } from '../../auth/principal';
import { revokeAuditEvents } from '../revoke-follow-ups';
import type { ExportJob } from '../export-job';
import type { ApiDeps } from './deps';
import { findVisibleJob } from './read-exports';
import { originPatch, type ClientInput } from './client';
import { toExportView, type ExportView } from './view';

/**
 * Only a completed export whose link still works has a link to withdraw. An export still being
 * built has none yet (it is canceled instead: a cancel also leaves no file); a failed, canceled or
 * lapsed one has none any more. Both are 409 EXPORT_NOT_REVOCABLE, told apart by `rule`.
 */
function refuseUnlessRevocable(job: ExportJob, now: Date): void {
  if (job.status === 'queued' || job.status === 'running' || job.status === 'finalizing') {
    throw new ConflictError(`the export is still ${job.status} and has no link yet; cancel it instead (POST /v1/exports/{id}/cancel)`, {
      code: 'EXPORT_NOT_REVOCABLE',
      field: 'exportId',
      rule: 'not-finished',
    });
  }
  const lapsed = job.status === 'completed' && job.expiresAt !== undefined && now.getTime() >= Date.parse(job.expiresAt);
  if (job.status !== 'completed' || lapsed) {
    const status = lapsed ? 'expired' : job.status;
    throw new ConflictError(`the export is ${status}: there is no link to revoke`, { code: 'EXPORT_NOT_REVOCABLE', field: 'exportId', rule: 'no-link' });
  }
}

/**
 * POST /v1/exports/{id}/revoke: withdraws a completed export's download link, for a link that
 * leaked (posted in the wrong room, forwarded). Rotating the link secret would kill every link,
 * and the file's password may be as short as 4 letters or digits, so a leaked file must stop
 * being served at once. In this order:
 * 1. the follow-up message (RevokeMessage, delayed FOLLOW_UP_DELAY_SECONDS), sent before
 *    the transition so that a request that dies or fails after it (a timeout, an audit outage,
 *    a client that never retries) still has its audit events appended and its file deleted; it
 *    finds nothing to do when the transition never committed;
 * 2. the conditional transition completed -> `revoked`, with `revokedAt`, `revokedBy`, the reason
 *    and where the request came from (`revokedFrom`) stored on the job: from then on the
 *    download answers 410 (it serves `completed` only), the views show no link and the notifier
 *    posts none;
 * 3. the audit trail and the file's deletion, now (finishRevoke): the message makes them certain,
 *    this makes them immediate.
 * An export already revoked answers 200 with the export as it is (idempotent: a retry, or a
 * second auditor), after finishing what the first request may have left undone; the reason,
 * actor and origin recorded stay the first revocation's (a second revoke is seen only in the
 * api's log lines, with its manager; its reason is not kept).
 */
export async function revokeExport(
  deps: ApiDeps,
  principal: Principal,
  exportId: string,
  body: unknown,
  client?: ClientInput,
): Promise<ExportView> {
  // The body first: a bad one is refused whatever the id names, with no table read.
  const { reason } = parseRevokeRequest(body);
  // The requester (no permission asked, as for a cancel: withdrawing a link only takes access
  // away, so a requester whose export:download was withdrawn must still be able to stop a leak)
  // or an audit:read holder of the channel (an auditor reacting to a leak); anyone else the
  // read's 404 (existence is not disclosed).
  const job = await findVisibleJob(deps, principal, exportId);
  const now = deps.clock.now();
  if (job.status === 'revoked') return finishAndShow(deps, job, now);
  refuseUnlessRevocable(job, now);
  await deps.dispatcher.scheduleFollowUp('revoke', job);
  const revokedAt = now.toISOString();
  const patch = { revokedAt, revokedBy: principal.managerId, revokeReason: reason, ...originPatch('revokedFrom', client) };
  if (!(await deps.store.setStatus(job.channelId, job.exportId, 'revoked', ['completed'], patch))) {
    // Another revoke got there first, or this very write committed and its answer was lost (the
    // SDK's retry then fails the condition on it): either way it is revoked, and that is a 200.
    const current = (await deps.store.getJob(job.channelId, job.exportId)) ?? job;
    if (current.status === 'revoked') return finishAndShow(deps, current, now);
    refuseUnlessRevocable(current, now);
    throw new ConflictError('the export changed state while revoking; try again', { code: 'EXPORT_BUSY', field: 'exportId', rule: 'state-changed' });
  }
  return finishAndShow(deps, { ...job, ...patch, status: 'revoked' }, now);
}

async function finishAndShow(deps: ApiDeps, revoked: ExportJob, now: Date): Promise<ExportView> {
  await finishRevoke(deps, revoked);
  const after = (await deps.store.getJob(revoked.channelId, revoked.exportId)) ?? revoked;
  // No link: the download serves completed exports only.
  return toExportView(after, deps.publicBaseUrl, undefined, now);
}

/**
 * What a revocation owes after its transition, every step idempotent so a retried revoke (which
 * finds the export revoked) finishes whatever a failed request left:
 * - the audit trail: the export's `completed` event first (a no-op when the finalizer appended
 *   it, as it almost always has; when its append had failed and its retry was still due, the
 *   retry now finds the export revoked and does nothing, and the trail would have lost the file's
 *   facts), then the `revoked` event (fixed sort key: one per export, whoever revokes again),
 *   built from what the transition stored, never from this retry;
 * - the file's deletion under the export's file prefix (and any parts/ left), attempted whatever the audit did (an
 *   audit outage must not keep a leaked file in the bucket), best effort (discardFile logs a
 *   failure by its name): the revocation stands without it, since the download refuses a revoked
 *   export by its status, and the `exports/` lifecycle rule is the backstop.
 * An audit error is thrown after the deletion (a 500; the retry appends it), as a cancel's is.
 * The cooldown is kept: the file was there to download, unlike a canceled or failed export's.
 */
async function finishRevoke(deps: ApiDeps, job: ExportJob): Promise<void> {
  let auditError: unknown;
  try {
    for (const event of revokeAuditEvents(job, deps.clock)) await deps.audit.append(event);
  } catch (error) {
    auditError = error;
  }
  await deps.dispatcher.discardFile(job);
  // parts/ too: the finalizer sweeps them after its completion, but a run killed in between is
  // retried only after the visibility timeout, and finding the export revoked then it announces
  // nothing; the rows would wait for the lifecycle rule. A no-op (one List) almost always.
  await deps.dispatcher.discardParts(job);
  if (auditError !== undefined) throw auditError;
}
