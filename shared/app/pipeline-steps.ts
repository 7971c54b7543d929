import type { AuditEvent, AuditLog } from '../ports/audit-log';
import type { CooldownStore } from '../ports/cooldown-store';
import { CLAIM_LEASE_MS, type ExportStore, type LeaseFlag } from '../ports/export-store';
import type { MessageQueue } from '../ports/message-queue';
import type { ObjectStore } from '../ports/object-store';
import type { Clock } from '../ports/clock';
import type { PipelineLog } from '../ports/pipeline-log';
import { errorForLog } from '../error-for-log';
import { releaseExportCooldown, runCancelFollowUps } from './cancel-follow-ups';
import { notifyEventFor, unfinishedStatuses, type ExportJob, type JobError } from './export-job';
import { objectKeys, type FinalizeMessage, type FollowUpMessage, type NotifyMessage } from './messages';

export type StepDeps = {
  store: ExportStore;
  queue: MessageQueue;
  objects: ObjectStore;
  clock: Clock;
  audit?: AuditLog | undefined;
  /** Given, a failed export gives its manager's cooldown back (see failExport). */
  cooldowns?: CooldownStore | undefined;
  log: PipelineLog;
};

/** The job's ids, and its owner when the caller already holds the job (saves a read to release the cooldown). */
type FailingJob = Pick<ExportJob, 'exportId' | 'channelId'> & Partial<Pick<ExportJob, 'managerId' | 'kind'>>;

/**
 * The failure of an export whose stored pieces do not fit together (two overlapping deliveries of
 * a chunk left one's part, list or meta beside the other's): permanent, so the export fails with
 * a code the manager can act on.
 */
export const PART_MISMATCH: JobError = {
  code: 'PART_MISMATCH',
  message: 'the export could not be assembled consistently; request it again',
};

/**
 * Fails an export that is still in progress: the conditional transition decides, so one caller
 * records the failure; a completed or canceled export is left alone. Returns whether this call
 * made the transition.
 *
 * The steps owed after the transition (cooldown, audit, notify) can each fail or be cut short by
 * a crash, and a retry can no longer win the transition. So a caller that loses it finishes
 * whatever a failed or completed export still owes (`resumeFollowUps`): otherwise the bot would
 * never be told. Errors are thrown, so the caller's message is retried.
 */
export async function failExport(deps: StepDeps, job: FailingJob, error: JobError): Promise<boolean> {
  // Stored with the transition, so the audit event a retry re-appends says when it really failed.
  const failedAt = deps.clock.now().toISOString();
  const moved = await deps.store.setStatus(job.channelId, job.exportId, 'failed', unfinishedStatuses, { error, failedAt });
  if (!moved) {
    const current = await deps.store.getJob(job.channelId, job.exportId);
    if (current) await resumeFollowUps(deps, current);
    return false;
  }
  deps.log.warn('export failed', { exportId: job.exportId, code: error.code });
  try {
    await runFollowUps(deps, { ...job, status: 'failed', error, failedAt });
  } catch (followUpError) {
    throw new FollowUpsFailedError({ failedWith: error.code }, followUpError);
  }
  return true;
}

/**
 * This delivery made the export's final transition (failed, or the finalizer's completed), then a
 * follow-up threw (an audit, queue, release or sweep error): thrown so the message comes back and
 * the retry finishes them, carrying what this delivery did, so its handler still counts it (the
 * retry finds the export final and reports nothing: the failure or completion went uncounted).
 */
export class FollowUpsFailedError<T extends object = { failedWith?: string }> extends Error {
  constructor(
    readonly outcome: T,
    cause: unknown,
  ) {
    // The cause as a log line may carry it (errorForLog: an AWS service error's message, which
    // can name resources, is withheld), since the SQS handler logs this error's message.
    const said = errorForLog(cause);
    super(`the export's final transition was made, its follow-ups failed: ${said.name ?? 'Error'}: ${said.message}`, { cause });
    this.name = 'FollowUpsFailedError';
  }
}

/**
 * Finishes what a failed or completed export still owes when its notify was never enqueued (a
 * crash, or a thrown audit or send, after the final transition). Every step is idempotent; the
 * worst a concurrent run can cause is a second notify message, which the notifier's lease and
 * `notifiedAt` absorb. Does nothing for an export in any other state, or already announced.
 */
export async function resumeFollowUps(deps: StepDeps, job: ExportJob): Promise<void> {
  if (job.notifyEnqueued || (job.status !== 'failed' && job.status !== 'completed')) return;
  deps.log.info('finishing the steps after the final transition', { exportId: job.exportId, status: job.status });
  await runFollowUps(deps, { ...job, status: job.status });
}

/** What a failed or completed export owes, each step built from the job alone (see terminalAuditEvent). */
export type FinishedJob = FailingJob &
  Partial<Pick<ExportJob, 'error' | 'failedAt' | 'rowCount' | 'sha256' | 'fileSize' | 'fileName' | 'completedAt' | 'expiresAt' | 'fileSheets'>> & {
    status: 'failed' | 'completed';
  };

/**
 * `notifyEnqueued` is written last, and only once the audit event is in and a failed export's
 * cooldown is released: while it is unset a retry cannot tell how far the last run got, so it
 * redoes every step. An audit or release error no longer gets logged and dropped: the notify is
 * still sent (the bot need not wait for either table), then the error is thrown so the message
 * is retried and the retry appends the event or releases the hold (and sends a second notify,
 * which the notifier absorbs). A release dropped after one throttled call kept the manager out
 * for the whole window (C8) though the failed export delivered nothing.
 */
export async function runFollowUps(deps: StepDeps, job: FinishedJob): Promise<void> {
  // First, so a manager who sees "failed" can ask again at once (the status is already visible).
  const releaseError = job.status === 'failed' ? await releaseCooldown(deps, job) : undefined;
  const event = terminalAuditEvent(job, deps.clock);
  if (!event) deps.log.error('completed export lacks its file facts: no audit event', { exportId: job.exportId });
  let auditError: unknown;
  if (event && deps.audit) {
    try {
      await deps.audit.append(event);
    } catch (error) {
      auditError = error;
    }
  }
  const message: NotifyMessage = {
    type: 'notify',
    exportId: job.exportId,
    channelId: job.channelId,
    event: notifyEventFor(job.status),
  };
  await deps.queue.send('notify', message);
  if (auditError !== undefined) throw auditError;
  if (releaseError !== undefined) throw releaseError;
  await deps.store.updateProgress(job.channelId, job.exportId, { notifyEnqueued: true });
  // Last, and thrown like the pipeline's other sweeps: the message comes back and its retry
  // sweeps again (a finalize retry, a chunk delivery finding the export failed, a dead letter)
  // instead of leaving readable rows to the lifecycle rule's day. Logged and dropped, one
  // failed DeleteObjects did exactly that.
  await discardParts(deps, job);
}

/** Deletes files of the export by key (a losing finalizer run's upload, other runs' strays). */
export async function discardObject(deps: Pick<StepDeps, 'objects' | 'log'>, job: Pick<ExportJob, 'exportId'>, ...keys: string[]): Promise<void> {
  if (keys.length === 0) return;
  const deleted = await deps.objects.deleteKeys(keys);
  if (deleted > 0) deps.log.info('superseded file deleted', { exportId: job.exportId, objects: deleted });
}

/**
 * Deletes every object under the export's file prefix except `keep` (the completed file): uploads
 * of finalizer runs that crashed before completing, or lost to the one that completed. No link
 * reaches them. A run still uploading deletes its own once it sees the completion. Best effort
 * (logged): the exports/ lifecycle rule collects what this leaves.
 */
export async function discardOtherFiles(deps: Pick<StepDeps, 'objects' | 'log'>, job: Pick<ExportJob, 'channelId' | 'exportId'>, keep: string): Promise<void> {
  try {
    const stray = (await deps.objects.list(objectKeys.filePrefix(job.channelId, job.exportId))).filter((o) => o.key !== keep);
    await discardObject(deps, job, ...stray.map((o) => o.key));
  } catch (error) {
    deps.log.warn('stray files not deleted', { exportId: job.exportId, error: error instanceof Error ? error.name : 'unknown' });
  }
}

/**
 * Finishes what a canceled export still owes (the `canceled` audit event, the cooldown back:
 * runCancelFollowUps) when a pipeline step finds it canceled. The API does this right after the
 * transition, but a failure there was finished only by a client's retry of the cancel; every
 * step that sees the cancel afterwards (a late chunk delivery, the finalizer, a dead letter)
 * now finishes it too. Unlike resumeFollowUps this runs on first deliveries as well: there is no
 * notify to duplicate, and a run racing the API's own follow-ups costs a no-op write each. As in
 * runFollowUps, an audit or cooldown release error is thrown after both were attempted (the
 * message is retried, and the retry appends or releases). Does nothing for an export in any
 * other state.
 */
export async function resumeCancelFollowUps(deps: StepDeps, job: ExportJob): Promise<void> {
  if (job.status !== 'canceled') return;
  await runCancelFollowUps(deps, job, {
    onReleaseError: (error) => deps.log.warn('cooldown release failed', { exportId: job.exportId, error: errorForLog(error) }),
  });
}

/**
 * Deletes everything the export keeps under `parts/{exportId}/`: the parts (raw deflate of the
 * row XML, i.e. readable customer data), their metas, the cases' refs, id batches and a stored
 * definition. Idempotent: nothing there is not an error. Errors are thrown; each caller decides
 * whether its message is retried for it (the 1-day lifecycle rule is only the last resort).
 */
export async function discardParts(deps: Pick<StepDeps, 'objects' | 'log'>, job: Pick<ExportJob, 'exportId'>): Promise<number> {
  const deleted = await deps.objects.deletePrefix(objectKeys.partsPrefix(job.exportId));
  if (deleted > 0) deps.log.info('parts deleted', { exportId: job.exportId, objects: deleted });
  return deleted;
}

/**
 * The once-per-export audit event for a finished job, from the stored job only: the first run
 * and any retry append identical facts (the audit log keeps the first write of each anyway).
 * Jobs failed before `failedAt` existed fall back to the clock.
 */
export function terminalAuditEvent(job: FinishedJob, clock: Clock): AuditEvent | undefined {
  const ids = { exportId: job.exportId, channelId: job.channelId };
  if (job.status === 'failed') {
    const error = job.error ?? { code: 'EXPORT_FAILED', message: 'the export failed' };
    return { type: 'failed', ...ids, at: job.failedAt ?? clock.now().toISOString(), code: error.code, message: error.message };
  }
  if (job.rowCount === undefined || job.sha256 === undefined || job.completedAt === undefined) return undefined;
  return {
    type: 'completed',
    ...ids,
    at: job.completedAt,
    rowCount: job.rowCount,
    sha256: job.sha256,
    ...(job.fileSize !== undefined ? { fileSize: job.fileSize } : {}),
    ...(job.fileName !== undefined ? { fileName: job.fileName } : {}),
    ...(job.fileSheets !== undefined ? { sheets: job.fileSheets } : {}),
    ...(job.expiresAt !== undefined ? { linkExpiresAt: job.expiresAt } : {}),
  };
}

/**
 * C8 limits downloads ("one per 30 minutes"); a failed export delivered none, so the manager may
 * try again at once (e.g. with a narrower range after TOO_MANY_ROWS) instead of waiting out the
 * window. The release is conditional on this export still holding the cooldown, so it never frees
 * a newer export's hold. Returns the error instead of throwing it (logged here), so the caller
 * still audits and notifies before it throws for a retry.
 */
async function releaseCooldown(deps: StepDeps, failing: FailingJob): Promise<unknown> {
  if (!deps.cooldowns) return undefined;
  try {
    // A dead-lettered message carries only ids; chunks and the finalizer pass the job they hold.
    const owner = failing.managerId && failing.kind ? failing : await deps.store.getJob(failing.channelId, failing.exportId);
    if (!owner?.managerId || !owner.kind) return undefined;
    await releaseExportCooldown(deps.cooldowns, { channelId: failing.channelId, exportId: failing.exportId, managerId: owner.managerId, kind: owner.kind });
    return undefined;
  } catch (error) {
    deps.log.warn('cooldown release failed', { exportId: failing.exportId, error: errorForLog(error) });
    return error;
  }
}

/** Sends the finalize message, then records that it was sent (a retry seeing the flag sends nothing). */
export async function enqueueFinalize(deps: Pick<StepDeps, 'queue' | 'store'>, job: Pick<ExportJob, 'exportId' | 'channelId'>): Promise<void> {
  const message: FinalizeMessage = { type: 'finalize', exportId: job.exportId, channelId: job.channelId };
  await deps.queue.send('finalize', message);
  await deps.store.updateProgress(job.channelId, job.exportId, { finalizeEnqueued: true });
}

/**
 * The job a follow-up message (a revoke's, a cancel's) names, when it is in the status that
 * message finishes; otherwise logged and undefined: the transition never committed (the request
 * was refused, lost a race, or failed before it), so nothing is owed.
 */
export async function jobOwingFollowUp(
  deps: Pick<StepDeps, 'store' | 'log'>,
  message: Pick<FollowUpMessage, 'type' | 'channelId' | 'exportId'>,
  status: 'revoked' | 'canceled',
): Promise<ExportJob | undefined> {
  const job = await deps.store.getJob(message.channelId, message.exportId);
  if (job?.status === status) return job;
  deps.log.info(`${message.type} follow-up for an export that is not ${status}: nothing owed`, { exportId: message.exportId, status: job?.status });
  return undefined;
}

const LEASE_POLL_MS = 250;

/** The lease is held by another delivery that has not finished its step: retry this one later. */
export class LeaseBusyError extends Error {
  /** Read by the SQS handler (waitedOnHolder): the holder keeps the usual retry delay to finish. */
  readonly waitingOnHolder = true;
  /**
   * Read by the SQS handler (holderLeaseOf): the message's last receive comes after this long,
   * so a holder that died has lost its lease by then and that receive takes the step over.
   */
  readonly holderLeaseSeconds = Math.ceil(CLAIM_LEASE_MS / 1000);
  constructor(exportId: string, claim: LeaseFlag) {
    super(`export ${exportId}: ${claim} is held by another delivery; retrying later`);
    this.name = 'LeaseBusyError';
  }
}

/**
 * Takes the lease `claim`, trying again at every poll while another delivery holds it: returns
 * the token, or undefined once `isDone` says the step is finished (or the job is gone), and
 * throws LeaseBusyError when neither happens within `waitMs`. A holder that gives the lease
 * back is taken over at the next poll. Throwing rather than returning lets SQS bring the message
 * back after its retry delay, by when the holder has finished or (if it died) its lease has
 * lapsed (CLAIM_LEASE_MS); returning would leave the step undone for ever.
 *
 * The wait ends at whichever comes first of the wall clock passing `waitMs` (it bounds the
 * invocation's time) and the time slept reaching it (so an injected `sleep` that returns at once
 * still ends the wait).
 */
export async function acquireLease(
  deps: Pick<StepDeps, 'store'>,
  job: Pick<ExportJob, 'exportId' | 'channelId'>,
  claim: LeaseFlag,
  options: { isDone: (job: ExportJob) => boolean; waitMs: number; sleep?: (ms: number) => Promise<void> },
): Promise<string | undefined> {
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const deadline = Date.now() + options.waitMs;
  for (let slept = 0; ; slept += LEASE_POLL_MS) {
    const token = await deps.store.claimLease(job.channelId, job.exportId, claim);
    if (token !== undefined) return token;
    // Held, or already done: the claim's condition also fails once the step is recorded.
    const current = await deps.store.getJob(job.channelId, job.exportId);
    if (!current || options.isDone(current)) return undefined;
    if (slept >= options.waitMs || Date.now() >= deadline) throw new LeaseBusyError(job.exportId, claim);
    await sleep(LEASE_POLL_MS);
  }
}

/**
 * Deletes an export's encrypted file, if there is one: idempotent, and nothing to delete is not
 * an error. A finalize that uploaded the file and then kept failing (saving the token hash,
 * the completion) dead-letters with the file in place; failing the export deletes only
 * `parts/`, and no link can ever reach that file, so it would sit in the bucket (someone's
 * data) until the `exports/` lifecycle rule, linkTtlDays + 1 days later. Errors are thrown:
 * the dead letter is retried and, if that keeps failing, the DLQ age alarm says so. The api's
 * revoke deletes a revoked export's file with it too (ExportDispatcher.discardFile, which logs
 * an error instead: the revocation has taken effect whatever the deletion does).
 */
export async function discardExportFile(deps: Pick<StepDeps, 'objects' | 'log'>, job: Pick<ExportJob, 'channelId' | 'exportId'>): Promise<number> {
  const deleted = await deps.objects.deletePrefix(objectKeys.filePrefix(job.channelId, job.exportId));
  if (deleted > 0) deps.log.info('file of an export that will never be offered deleted', { exportId: job.exportId, objects: deleted });
  return deleted;
}
