import type { AuditLog } from '../ports/audit-log';
import type { CooldownStore } from '../ports/cooldown-store';
import { cooldownKey } from '../domain';
import type { ExportStore } from '../ports/export-store';
import type { MessageQueue } from '../ports/message-queue';
import type { ObjectStore } from '../ports/object-store';
import type { Clock } from '../ports/clock';
import type { PipelineLog } from '../ports/pipeline-log';
import type { ExportJob, JobError } from './export-job';
import { objectKeys, type FinalizeMessage, type NotifyMessage } from './messages';

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

/**
 * Fails an export that is still in progress: the conditional transition decides, so only one
 * caller records the failure, appends the audit event and tells the bot; a completed or
 * canceled export is left alone. Parts are deleted best-effort (the parts/ lifecycle rule
 * collects whatever is left).
 */
/** The job's ids, and its owner when the caller already holds the job (saves a read to release the cooldown). */
type FailingJob = Pick<ExportJob, 'exportId' | 'channelId'> & Partial<Pick<ExportJob, 'managerId' | 'kind'>>;

export async function failExport(deps: StepDeps, job: FailingJob, error: JobError): Promise<boolean> {
  const moved = await deps.store.setStatus(job.channelId, job.exportId, 'failed', ['queued', 'running', 'finalizing'], { error });
  if (!moved) return false;
  deps.log.warn('export failed', { exportId: job.exportId, code: error.code });
  // First, so a manager who sees "failed" can ask again at once (the status is already visible).
  await releaseCooldown(deps, job);
  await deps.audit
    ?.append({ type: 'failed', exportId: job.exportId, channelId: job.channelId, at: deps.clock.now().toISOString(), code: error.code, message: error.message })
    .catch((e: unknown) => deps.log.error('audit append failed', { exportId: job.exportId, error: String(e) }));
  await enqueueNotify(deps, job, 'export.failed');
  await deps.objects.deletePrefix(objectKeys.partsPrefix(job.exportId)).catch(() => undefined);
  return true;
}

/**
 * C8 limits downloads ("one per 30 minutes"); a failed export delivered none, so the manager may
 * try again at once (e.g. with a narrower range after TOO_MANY_ROWS) instead of waiting out the
 * window. The release is conditional on this export still holding the cooldown, so it never frees
 * a newer export's hold. Best-effort: at worst the window simply runs out.
 */
async function releaseCooldown(deps: StepDeps, failing: FailingJob): Promise<void> {
  if (!deps.cooldowns) return;
  try {
    // A dead-lettered message carries only ids; chunks and the finalizer pass the job they hold.
    const owner = failing.managerId && failing.kind ? failing : await deps.store.getJob(failing.channelId, failing.exportId);
    if (!owner?.managerId || !owner.kind) return;
    await deps.cooldowns.release(cooldownKey(failing.channelId, owner.managerId, owner.kind), failing.exportId);
  } catch (error) {
    deps.log.warn('cooldown release failed', { exportId: failing.exportId, error: String(error) });
  }
}

export async function enqueueNotify(
  deps: Pick<StepDeps, 'queue' | 'store'>,
  job: Pick<ExportJob, 'exportId' | 'channelId'>,
  event: NotifyMessage['event'],
): Promise<void> {
  const message: NotifyMessage = { type: 'notify', exportId: job.exportId, channelId: job.channelId, event };
  await deps.queue.send('notify', message);
  await deps.store.updateProgress(job.channelId, job.exportId, { notifyEnqueued: true });
}

/** Sends the finalize message, then records that it was sent (a retry seeing the flag sends nothing). */
export async function enqueueFinalize(deps: Pick<StepDeps, 'queue' | 'store'>, job: Pick<ExportJob, 'exportId' | 'channelId'>): Promise<void> {
  const message: FinalizeMessage = { type: 'finalize', exportId: job.exportId, channelId: job.channelId };
  await deps.queue.send('finalize', message);
  await deps.store.updateProgress(job.channelId, job.exportId, { finalizeEnqueued: true });
}
