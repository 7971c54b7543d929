import { z } from 'zod';
import { notifyEventFor, unfinishedStatuses } from './export-job';
import { pipelineMessageSchema } from './messages';
import { appendNotifyOutcome } from './notify-export';
import { discardExportFile, discardParts, failExport, resumeCancelFollowUps, type StepDeps } from './pipeline-steps';
import { finishFollowUp } from './follow-ups';

export type DeadLetterOutcome =
  | 'failed-export'
  | 'already-final'
  | 'chunk-already-done'
  | 'notify-failure-recorded'
  | 'unknown-export'
  | 'unreadable';

/**
 * A message that exhausted its retries. For chunk and finalize messages the export is marked
 * failed (unless it already completed or was canceled), a file already uploaded for it is
 * deleted, and the bot is told through the notify queue; a canceled one gets the cancel's
 * follow-ups instead (resumeCancelFollowUps). For a notify message the bot is what
 * failed, so it cannot be told: the failure is recorded on the job (`notifyError`) and in the
 * audit trail (`notify-failed`, reason `dead-lettered`), and nothing is enqueued again, so a dead
 * bot cannot make a loop. A bot that refused an event outright (a 4xx) never gets here: the
 * notifier records that itself.
 */
export async function handleDeadLetter(body: string, deps: StepDeps, source: { queue: string }): Promise<DeadLetterOutcome> {
  let raw: unknown;
  let parsed;
  try {
    raw = JSON.parse(body);
    parsed = pipelineMessageSchema.safeParse(raw);
  } catch {
    parsed = undefined;
  }
  if (!parsed?.success) {
    // A chunk or finalize message its own step could not read (the step threw on it every time,
    // which is how it got here): if it still names its export, that export can never finish
    // (nothing else will send the message again) and stays running for ever, its cooldown held,
    // its manager never told. Failed like any other given-up step. Nothing else in it is trusted.
    const named = namedExportSchema.safeParse(raw);
    if (!named.success) {
      deps.log.error('unreadable dead letter', { queue: source.queue });
      return 'unreadable';
    }
    const outcome = await failGivenUp(deps, named.data, `a ${named.data.type} message of this export could not be read`);
    // Said once the outcome is known: an export already final (or unknown) was not failed here.
    deps.log.error(outcome === 'failed-export' ? 'unreadable dead letter: its export is failed' : 'unreadable dead letter', {
      queue: source.queue,
      exportId: named.data.exportId,
    });
    return outcome === 'failed-export' ? outcome : 'unreadable';
  }
  const message = parsed.data;
  if (message.type === 'notify') {
    // A duplicate notify message can dead-letter while another delivery did post (it kept
    // finding that delivery's lease held): the bot was told, so there is no failure to record.
    const job = await deps.store.getJob(message.channelId, message.exportId);
    if (!job) {
      // No such export in that channel (deleted, forged, another channel's id): nothing to
      // record it on. Acknowledged: a record that threw here would come back for 14 days.
      deps.log.warn('dead-lettered notify for an unknown export: dropped', { exportId: message.exportId, queue: source.queue });
      return 'unknown-export';
    }
    if (job.notifiedAt || job.notifyRefusedAt) {
      deps.log.info('dead-lettered duplicate notify: the bot was already told', { exportId: message.exportId });
      // The last message that may ever name this outcome: a notifier whose audit append kept
      // failing after it recorded `notifiedAt` (or the refusal) dead-letters here, and nothing
      // else would append the event. Thrown on error: the dead letter stays and is alarmed.
      await appendNotifyOutcome(deps, job, notifyEventFor(job.status));
      return 'already-final';
    }
    // One time for the job and the trail, kept by a redelivery (whose audit append is a no-op when
    // the first one's got in): the view and the audit entry show the same moment.
    // Only while that dead letter's `notifyError` is there: a notification re-sent by hand after
    // it was cleared that dead-letters again is a new failure, with its own time.
    const at = (job.notifyError !== undefined ? job.notifyErrorAt : undefined) ?? deps.clock.now().toISOString();
    // The event the export's status calls for, as the notifier decides it: a hand-sent message
    // may name the other one, and the trail must not record a failure to tell what was never due.
    const event = notifyEventFor(job.status);
    await deps.store.updateProgress(message.channelId, message.exportId, {
      notifyError: `the bot could not be told (${event}) after every retry`,
      notifyErrorAt: at,
    });
    deps.log.error('bot notification dead-lettered', { exportId: message.exportId, event });
    // After `notifyError`, as the notifier does: an audit error is thrown so the dead letter comes
    // back, and its retry records both again (each write is idempotent).
    await deps.audit?.append({
      type: 'notify-failed',
      exportId: message.exportId,
      channelId: message.channelId,
      at,
      event,
      reason: 'dead-lettered',
    });
    return 'notify-failure-recorded';
  }
  if (message.type === 'revoke' || message.type === 'cancel') {
    // A revocation's or a cancel's follow-up that kept failing (the audit table, the cooldown
    // table or S3 down for minutes): the export stays revoked or canceled whatever happens here
    // (a dead letter never fails a final export), so it is tried once more; an error is thrown,
    // and the dead letter comes back for 14 days, alarmed, until it is done.
    const outcome = await finishFollowUp(message, deps);
    deps.log.warn(`dead-lettered ${message.type} follow-up handled`, { exportId: message.exportId, outcome });
    return 'already-final';
  }
  if (message.type === 'chunk') {
    // A chunk already in the completed set gave up in a later step, or was a duplicate delivery
    // that kept failing: its rows are counted and its part stored. The export fails only if it
    // is now stuck (every chunk done, and neither the users phase nor the finalize sent): other
    // chunks still to complete will run the next step themselves, and a sent finalize carries it.
    const job = await deps.store.getJob(message.channelId, message.exportId);
    if (job && unfinishedStatuses.includes(job.status) && (await deps.store.isChunkDone(job.channelId, job.exportId, message.chunkId))) {
      // Chunks still to complete carry it only if they were sent: a cases export's user chunks
      // are counted into the total before they are sent, so until `usersEnqueued` a pending
      // total may be messages that never existed (the step that sends them is what gave up).
      const usersUnsent = job.kind === 'cases' && job.phase === 'users' && !job.usersEnqueued;
      const moving = job.status === 'finalizing' || job.finalizeEnqueued === true || (job.chunksDone < job.chunksTotal && !usersUnsent);
      if (moving) {
        deps.log.warn('dead-lettered chunk was already done: the export goes on', { exportId: job.exportId, chunkId: message.chunkId });
        return 'chunk-already-done';
      }
    }
  }
  const stage = message.type === 'chunk' ? `chunk ${message.chunkId}` : 'finalize';
  return failGivenUp(deps, message, `the ${stage} step kept failing`);
}

/** The ids of a chunk or finalize message whose other fields do not read (see above). */
const namedExportSchema = z.object({
  type: z.enum(['chunk', 'finalize']),
  channelId: z.string().min(1).max(200),
  exportId: z.string().min(1).max(200),
});

/**
 * Fails the export a given-up chunk or finalize message names, and cleans up after it: its
 * file if the finalizer had uploaded one, and for an export canceled meanwhile the cancel's
 * leftovers instead.
 */
async function failGivenUp(
  deps: StepDeps,
  message: { channelId: string; exportId: string },
  what: string,
): Promise<DeadLetterOutcome> {
  let failed = false;
  let followUpError: unknown;
  try {
    failed = await failExport(deps, message, {
      code: 'PIPELINE_FAILED',
      message: `${what} and was given up; request the export again`,
    });
  } catch (error) {
    // The transition may have committed and a follow-up thrown (an audit outage): the data
    // goes first, the error after, so the file and the rows do not wait for the audit table.
    followUpError = error;
  }
  // After the transition, so a finalizer still running loses its completion and deletes what it
  // uploads itself. Without a transition of this call's own (a redelivered dead letter, or a
  // follow-up that threw) the status is read: a completed export's file is its download.
  const current = failed ? undefined : await deps.store.getJob(message.channelId, message.exportId);
  const status = failed ? 'failed' : current?.status;
  if (status === 'failed' || status === 'canceled') {
    await discardExportFile(deps, message);
    // parts/ (readable rows): a cancel swept them only on a best-effort basis and a failure's
    // follow-ups may have thrown before their sweep, and this dead letter may be the last
    // message that will ever name the export: sweep again rather than leave them to the
    // lifecycle rule.
    await discardParts(deps, message);
  }
  if (followUpError !== undefined) throw followUpError;
  // For the same reason it finishes the cancel itself (its audit event, the cooldown back) if
  // the API's attempt failed: failExport left the canceled export alone (canceled is not a
  // status it moves from), so it is never marked failed.
  if (current?.status === 'canceled') await resumeCancelFollowUps(deps, current);
  return failed ? 'failed-export' : 'already-final';
}
