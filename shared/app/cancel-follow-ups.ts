import { cooldownKey } from '../domain';
import type { AuditLog } from '../ports/audit-log';
import type { CooldownStore } from '../ports/cooldown-store';
import type { ExportJob } from './export-job';

/** The ports a cancel's follow-ups write to. Optional because the pipeline's StepDeps may lack them (tests); the API always has both. */
export type CancelFollowUpPorts = {
  audit?: AuditLog | undefined;
  cooldowns?: CooldownStore | undefined;
};

/** A canceled job as stored: the facts the follow-ups are built from. */
export type CanceledJob = Pick<ExportJob, 'exportId' | 'channelId' | 'managerId' | 'kind' | 'updatedAt'> &
  Partial<Pick<ExportJob, 'canceledAt' | 'cancelReason' | 'canceledFrom'>>;

/**
 * What a canceled export owes after its status changed: the `canceled` audit event and the
 * manager's cooldown back. One definition for the API's cancel and for every pipeline step that
 * later finds the export canceled: the API runs it right after the transition, but when it fails
 * there (an audit or cooldown table error, a 500) only a client retry would have finished it, and
 * the audit trail showed the export as `requested` for ever with the cooldown still held. Every
 * step is idempotent, so any number of callers, concurrently or not, record one fact:
 * - the audit event has a fixed sort key (a repeat is a no-op) and its time is the one stored with
 *   the transition, never `updatedAt` while there is a `canceledAt` (chunks still in flight move
 *   updatedAt after the cancel); jobs canceled before `canceledAt` existed fall back to it;
 * - `managerId` is the requester: the job does not record who canceled, and only the requester
 *   may cancel (cancelExport refuses anyone else), so it is the manager who canceled; the reason
 *   and origin are those the transition stored;
 * - the release is conditional on this export still holding the cooldown, so it never frees a
 *   newer export's hold (the key is the one the request took: cooldownKey of channel, manager, kind).
 *
 * Both steps are attempted whatever the other does (a failed audit append no longer keeps the
 * cooldown held), and both errors are thrown (the audit's first): an event missing is a gap in
 * the trail, and a hold left behind keeps the manager out for the whole window (C8), so the
 * pipeline's message is retried for either. `onReleaseError` only reports (the pipeline logs it).
 */
export async function runCancelFollowUps(
  ports: CancelFollowUpPorts,
  job: CanceledJob,
  options: { onReleaseError?: (error: unknown) => void } = {},
): Promise<void> {
  let auditError: unknown;
  if (ports.audit) {
    try {
      const at = job.canceledAt ?? job.updatedAt;
      const reason = job.cancelReason !== undefined ? { reason: job.cancelReason } : {};
      await ports.audit.append({ type: 'canceled', exportId: job.exportId, channelId: job.channelId, at, managerId: job.managerId, ...reason, ...job.canceledFrom });
    } catch (error) {
      auditError = error;
    }
  }
  let releaseError: unknown;
  if (ports.cooldowns) {
    try {
      await releaseExportCooldown(ports.cooldowns, job);
    } catch (error) {
      options.onReleaseError?.(error);
      releaseError = error;
    }
  }
  if (auditError !== undefined) throw auditError;
  if (releaseError !== undefined) throw releaseError;
}

/**
 * Gives back the cooldown hold an export took when it was requested (the key its request used:
 * channel, requesting manager, kind). Conditional on this export still being the holder, so it
 * never frees a newer export's hold. The one release for a cancel and a failure (pipeline-steps).
 */
export async function releaseExportCooldown(
  cooldowns: CooldownStore,
  job: Pick<ExportJob, 'channelId' | 'exportId' | 'managerId' | 'kind'>,
): Promise<void> {
  await cooldowns.release(cooldownKey(job.channelId, job.managerId, job.kind), job.exportId);
}
