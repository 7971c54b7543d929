import { channelSettingsSchema, type ExportRequest } from '../../domain';
import type { ExportStore } from '../../ports/export-store';
import type { MessageQueue } from '../../ports/message-queue';
import type { ObjectStore } from '../../ports/object-store';
import type { WorkspaceSource } from '../../ports/source-data';
import { createDownloadToken, downloadLink, hashDownloadToken, InvalidDownloadTokenError, verifyDownloadToken } from '../download-link';
import type { ExportJob, JobRequest } from '../export-job';
import { buildChunkMessages, planChunks, storeSelectionBatches } from '../plan-chunks';
import { compileRequestPredicate, loadProfileSchemas, readsWorkspace, workspaceSk } from '../workspace-context';
import type { DownloadLinks, ExportDispatcher } from './deps';

/** Used when neither the request nor the channel settings name a zone (the product is Korean). */
export const FALLBACK_TIME_ZONE = 'Asia/Seoul';

/** The request as the job keeps it: no password, no reason (kept apart), no id list (S3 holds it). */
export function toJobRequest(request: ExportRequest): JobRequest {
  const { password: _password, reason: _reason, ...rest } = request;
  void _password;
  void _reason;
  if (rest.kind === 'contacts' && rest.scope === 'selection') {
    const { userIds, ...withoutIds } = rest;
    return { ...withoutIds, userIdsCount: userIds.length };
  }
  return rest;
}

/**
 * The pipeline side of requestExport. plan() runs before the job exists and stores a
 * selection's ids as S3 batches (the only place they live apart from the request); dispatch()
 * is the backend's planChunks (records the chunk count, enqueues the chunk messages) and needs
 * nothing but the job, so a dispatch cut short by a crash can be repeated from a status read.
 */
export function createPipelineDispatcher(deps: {
  store: ExportStore;
  objects: ObjectStore;
  queue: MessageQueue;
  workspace: WorkspaceSource;
  selectionBatch: number;
}): ExportDispatcher {
  return {
    async plan({ exportId, channelId, request }: { exportId: string; channelId: string; request: ExportRequest }) {
      const timeZone = request.timezone ?? (await channelTimeZone(deps.workspace, channelId));
      // Refuses now what the chunks would refuse minutes later (a filter naming a profile key the
      // workspace lacks or has archived, a segment gone or no longer valid): a 400/404 naming the
      // field instead of a failed export and a bot message. Requests whose rows do not depend on
      // the workspace read nothing more.
      if (readsWorkspace(request)) {
        const schemas = await loadProfileSchemas(deps.workspace, channelId);
        await compileRequestPredicate(request, { source: deps.workspace, channelId, schemas }, { now: new Date(), timeZone });
      }
      const jobRequest = toJobRequest(request);
      // The count is known before the job exists, so progress is right from the first poll.
      const provisional = { exportId, channelId, kind: request.kind, request: jobRequest, timeZone } as ExportJob;
      const chunksTotal =
        request.kind === 'contacts' && request.scope === 'selection'
          ? // Before the job is created: a job never exists without the ids its chunks read.
            await storeSelectionBatches(exportId, request.userIds, deps.objects, deps.selectionBatch)
          : buildChunkMessages(provisional, {}, deps.selectionBatch).length;
      return { jobRequest, timeZone, chunksTotal };
    },
    async dispatch(job: ExportJob): Promise<void> {
      await planChunks(job, {}, { store: deps.store, objects: deps.objects, queue: deps.queue, selectionBatch: deps.selectionBatch });
    },
  };
}

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
