import { channelSettingsSchema, type ExportRequest } from '../../domain';
import type { ExportStore } from '../../ports/export-store';
import type { MessageQueue } from '../../ports/message-queue';
import type { ObjectStore } from '../../ports/object-store';
import type { PipelineLog } from '../../ports/pipeline-log';
import type { WorkspaceSource } from '../../ports/source-data';
import { createDownloadToken, downloadLink, hashDownloadToken, InvalidDownloadTokenError, verifyDownloadToken } from '../download-link';
import { FILTER_IN_DEFINITION, type ExportJob, type JobRequest } from '../export-job';
import { buildChunkMessages, planChunks, storeSelectionBatches } from '../plan-chunks';
import { discardExportFile, discardParts } from '../pipeline-steps';
import { FOLLOW_UP_DELAY_SECONDS, type FollowUpMessage } from '../messages';
import { resolveJobDefinition, storeJobDefinition } from '../job-definition';
import { compileRequestPredicate, workspaceSk } from '../workspace-context';
import { errorForLog } from '../../error-for-log';
import type { DownloadLinks, ExportDispatcher } from './deps';

/** The follow-up send's bound: an SQS send answers in tens of milliseconds. */
export const FOLLOW_UP_SEND_TIMEOUT_MS = 3_000;

/** Used when neither the request nor the channel settings name a zone (the product is Korean). */
export const FALLBACK_TIME_ZONE = 'Asia/Seoul';

/**
 * The request as the job keeps it: no password, no reason (kept apart), no id list (S3 holds
 * it), and in place of a filter FILTER_IN_DEFINITION (the definition carries the filter: see
 * jobDefinitionSchema's `requestFilter`).
 */
export function toJobRequest(request: ExportRequest): JobRequest {
  const { password: _password, reason: _reason, ...rest } = request;
  void _password;
  void _reason;
  if ('filter' in rest && rest.filter !== undefined) return { ...rest, filter: FILTER_IN_DEFINITION };
  if (rest.kind === 'contacts' && rest.scope === 'selection') {
    const { userIds, ...withoutIds } = rest;
    return { ...withoutIds, userIdsCount: userIds.length };
  }
  return rest;
}

/**
 * The pipeline side of requestExport. plan() runs before the job exists: it reads the export's
 * definition (job-definition.ts) and stores a selection's ids as S3 batches (the only place they
 * live apart from the request); dispatch()
 * is the backend's planChunks (records the chunk count, enqueues the chunk messages) and needs
 * nothing but the job, so a dispatch cut short by a crash can be repeated from a status read.
 */
export function createPipelineDispatcher(deps: {
  store: ExportStore;
  objects: ObjectStore;
  queue: MessageQueue;
  workspace: WorkspaceSource;
  selectionBatch: number;
  log: PipelineLog;
  /** How long a follow-up send may take before the request goes on without it (FOLLOW_UP_SEND_TIMEOUT_MS). */
  followUpTimeoutMs?: number;
}): ExportDispatcher {
  return {
    async plan({ exportId, channelId, request }: { exportId: string; channelId: string; request: ExportRequest }) {
      const workspace = { source: deps.workspace, channelId };
      // One definition per export: the segment's conditions and the profile schemas are read
      // here, once, and kept with the job, so every chunk and the finalizer build the file from
      // the same copy (a cache in the chunks once served a segment edited seconds before, and
      // warm and cold chunks could disagree within one file).
      const [timeZone, resolved] = await Promise.all([
        request.timezone ?? channelTimeZone(deps.workspace, channelId),
        resolveJobDefinition(request, workspace),
      ]);
      // The request's filter goes with the definition, which is stored by size (inline or S3):
      // never a 100 KB filter in the job item that every chunk rewrites.
      const filter = 'filter' in request ? request.filter : undefined;
      const definition = filter === undefined ? resolved : { ...resolved, requestFilter: filter };
      // Refuses now what would fail every chunk (a filter naming a profile key the workspace
      // lacks or has archived): a 400 naming the field instead of a failed export and a bot
      // message. A segment gone or invalid was refused (404/400) by resolveJobDefinition.
      await compileRequestPredicate(request, definition, workspace, { now: new Date(), timeZone });
      const jobRequest = toJobRequest(request);
      // The count is known before the job exists, so progress is right from the first poll.
      const provisional = { exportId, channelId, kind: request.kind, request: jobRequest, timeZone } as ExportJob;
      const chunksTotal =
        request.kind === 'contacts' && request.scope === 'selection'
          ? // Before the job is created: a job never exists without the ids its chunks read.
            await storeSelectionBatches(exportId, request.userIds, deps.objects, deps.selectionBatch)
          : buildChunkMessages(provisional, {}, deps.selectionBatch).length;
      // Before the job is created, like a selection's ids: a definition too large for the job
      // item is an S3 object, and the job must never point at one that is not there yet.
      const pinned = await storeJobDefinition(exportId, definition, deps.objects);
      return { jobRequest, timeZone, chunksTotal, extra: pinned, ...(definition.segmentFilter !== undefined ? { segmentFilter: definition.segmentFilter } : {}) };
    },
    async dispatch(job: ExportJob): Promise<void> {
      await planChunks(job, {}, { store: deps.store, objects: deps.objects, queue: deps.queue, selectionBatch: deps.selectionBatch });
    },
    async discardParts(job: Pick<ExportJob, 'exportId'>): Promise<void> {
      // The error's name and message (deletePrefix's own error says how many keys failed, never
      // which); never the error itself: an SDK error can carry the request (the keys).
      await bestEffort(deps.log, 'parts of a canceled or revoked export not deleted: the parts/ lifecycle rule will', job, () => discardParts(deps, job), nameAndMessage);
    },
    async scheduleFollowUp(type: FollowUpMessage['type'], job: Pick<ExportJob, 'channelId' | 'exportId'>): Promise<void> {
      const message: FollowUpMessage = { type, exportId: job.exportId, channelId: job.channelId };
      // Bounded: the transition waits for this send, and a queue that hangs (the SDK's client sets
      // no request timeout) must not run the request into its own timeout with the revoke never
      // committed and the leaked link still working.
      const timeoutMs = deps.followUpTimeoutMs ?? FOLLOW_UP_SEND_TIMEOUT_MS;
      await bestEffort(deps.log, `${type} follow-up not sent: the request finishes it alone`, job, async () => {
        let timer: NodeJS.Timeout | undefined;
        try {
          await Promise.race([
            deps.queue.send('finalize', message, { delaySeconds: FOLLOW_UP_DELAY_SECONDS }),
            new Promise<never>((_resolve, reject) => {
              timer = setTimeout(() => reject(Object.assign(new Error(`no answer in ${timeoutMs} ms`), { name: 'FollowUpSendTimeout' })), timeoutMs);
            }),
          ]);
        } finally {
          clearTimeout(timer);
        }
      });
    },
    async discardFile(job: Pick<ExportJob, 'channelId' | 'exportId'>): Promise<void> {
      // The name only: an S3 error's message can name the bucket and the object keys.
      await bestEffort(deps.log, 'file of a revoked export not deleted: the exports/ lifecycle rule will', job, () => discardExportFile(deps, job));
    },
  };
}

/**
 * A step the request goes on without (a cancel or a revoke has taken effect whatever it does): a
 * failure is logged, with the export and what `describe` says of the error (its name by default),
 * and swallowed. The api's clean-up alarm counts these lines (API_CLEANUP_FAILURE_MESSAGES).
 */
async function bestEffort(
  log: PipelineLog,
  message: string,
  job: Pick<ExportJob, 'exportId'>,
  step: () => Promise<unknown>,
  describe: (error: unknown) => string = (error) => (error instanceof Error ? error.name : 'unknown'),
): Promise<void> {
  try {
    await step();
  } catch (error) {
    log.warn(message, { exportId: job.exportId, error: describe(error) });
  }
}

/** Name and message, an AWS service error's message withheld (it can name the keys: errorForLog). */
const nameAndMessage = (error: unknown): string => (error instanceof Error ? `${error.name}: ${errorForLog(error).message}` : 'unknown');

/** The channel's zone; settings that are missing or do not parse fall back to the default, not a failed request. */
async function channelTimeZone(workspace: WorkspaceSource, channelId: string): Promise<string> {
  const item = await workspace.getItem(channelId, workspaceSk.settings);
  const parsed = item ? channelSettingsSchema.safeParse({ channelId, ...item }) : undefined;
  return parsed?.success ? parsed.data.timeZone : FALLBACK_TIME_ZONE;
}

/**
 * Links are the pipeline's signed tokens (download-link.ts). The token names the export but not
 * the channel: the stored token hash does, and it also proves the finalizer really issued it.
 */
export function createDownloadLinks(deps: { store: ExportStore; secret: string; publicBaseUrl: string; now: () => Date }): DownloadLinks {
  return {
    async linkFor(job) {
      if (job.status !== 'completed' || !job.expiresAt) return undefined;
      const token = createDownloadToken({ exportId: job.exportId, expiresAt: new Date(job.expiresAt) }, deps.secret);
      return downloadLink(deps.publicBaseUrl, token);
    },
    async resolve(token) {
      try {
        verifyDownloadToken(token, deps.secret, deps.now());
      } catch (error) {
        if (error instanceof InvalidDownloadTokenError) return null;
        throw error;
      }
      const record = await deps.store.getDownloadToken(hashDownloadToken(token));
      return record ? { exportId: record.exportId, channelId: record.channelId, expiresAt: record.expiresAt } : null;
    },
  };
}
