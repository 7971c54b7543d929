import type { AuditEvent } from '../ports/audit-log';
import type { Clock } from '../ports/clock';
import type { ExportJob } from './export-job';
import type { RevokeMessage } from './messages';
import { discardExportFile, discardParts, jobOwingFollowUp, terminalAuditEvent, type StepDeps } from './pipeline-steps';

/**
 * The audit events a revocation owes, in order, built from the stored job only (so the API's
 * request, its retry and the follow-up message all append the same facts):
 * - the export's `completed` event first: a no-op when the finalizer appended it, as it almost
 *   always has; when that append had failed and its retry was still due, the retry now finds the
 *   export revoked and does nothing, and the trail would have lost the file's facts;
 * - then the `revoked` event (fixed sort key: one per export, whoever revokes again), with when,
 *   who, why and from where as the transition stored them.
 */
export function revokeAuditEvents(job: ExportJob, clock: Clock): AuditEvent[] {
  const completed = terminalAuditEvent({ ...job, status: 'completed' }, clock);
  const revoked: AuditEvent = {
    type: 'revoked',
    exportId: job.exportId,
    channelId: job.channelId,
    // Jobs are written with all three; the fallbacks only keep a hand-edited item readable.
    at: job.revokedAt ?? job.updatedAt,
    managerId: job.revokedBy ?? job.managerId,
    reason: job.revokeReason ?? '',
    ...job.revokedFrom,
  };
  return completed ? [completed, revoked] : [revoked];
}

export type RevokeFollowUpOutcome = 'finished' | 'not-revoked';

/**
 * The revoke follow-up message's handler (the finalizer's queue, and its dead letter): finishes
 * a revocation whatever its API request managed. The file and parts/ are deleted first (they do
 * not wait for the audit table), then the audit events are appended; every step is idempotent
 * and every error thrown, so the message comes back until all of it is done. A job that is not
 * revoked (the transition never committed: the request was refused, lost a race, or failed
 * before it) is left alone: nothing was revoked, so nothing is owed.
 */
export async function finishRevocation(message: RevokeMessage, deps: StepDeps): Promise<RevokeFollowUpOutcome> {
  const job = await jobOwingFollowUp(deps, message, 'revoked');
  if (!job) return 'not-revoked';
  await discardExportFile(deps, job);
  await discardParts(deps, job);
  if (deps.audit) {
    for (const event of revokeAuditEvents(job, deps.clock)) await deps.audit.append(event);
  }
  return 'finished';
}
