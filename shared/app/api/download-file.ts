import { NotFoundError } from '../../domain';
import type { Principal } from '../../auth/principal';
import type { ApiDeps } from './deps';
import { LinkGoneError } from './errors';
import { linkWindowDays } from '../export-job';

export type DownloadRequest = {
  token: string;
  ip?: string;
  userAgent?: string;
  /** The caller when the request carried a valid bearer token of the export's channel. */
  principal?: Principal;
};

const TOKEN_SHAPE = /^[A-Za-z0-9._~-]{16,512}$/;

function unknownLink(): NotFoundError {
  return new NotFoundError('no download link with this token', { code: 'LINK_NOT_FOUND', field: 'token' });
}

/**
 * GET /v1/downloads/{token}: the stable 7-day link the bot posts. No bearer is needed (the link
 * is the capability); each use is audited, then the client is sent to a presigned S3 URL that
 * lives minutes, signed now with the function's current credentials (a URL signed at
 * completion would die with the session token long before 7 days).
 * The audit event is written before the redirect: a download that cannot be audited is refused.
 */
export async function downloadFile(deps: ApiDeps, input: DownloadRequest): Promise<{ location: string }> {
  if (!TOKEN_SHAPE.test(input.token)) throw unknownLink();
  const link = await deps.links.resolve(input.token);
  if (!link) throw unknownLink();
  const job = await deps.store.getJob(link.channelId, link.exportId);
  if (!job) throw unknownLink();
  const now = deps.clock.now();
  const managerId = input.principal && input.principal.channelId === job.channelId ? input.principal.managerId : undefined;
  const who = {
    ...(managerId ? { managerId } : {}),
    ...(input.ip ? { ip: input.ip.slice(0, 64) } : {}),
    ...(input.userAgent ? { userAgent: input.userAgent.slice(0, 512) } : {}),
  };
  const expiresAt = job.expiresAt ?? link.expiresAt;
  const gone = job.status !== 'completed' || !job.objectKey || now.getTime() >= Date.parse(expiresAt);
  if (gone) {
    // Attempts after expiry are audited too: an auditor wants to see who still tried.
    await deps.audit.append({ type: 'downloaded', exportId: job.exportId, channelId: job.channelId, at: now.toISOString(), outcome: 'gone', ...who });
    throw new LinkGoneError(
      job.status === 'canceled'
        ? 'this export was canceled; it has no file'
        : `this download link has expired (links work for ${daysText(linkWindowDays({ completedAt: job.completedAt, expiresAt }) ?? 7)}); request a new export`,
    );
  }
  await deps.audit.append({ type: 'downloaded', exportId: job.exportId, channelId: job.channelId, at: now.toISOString(), outcome: 'redirected', ...who });
  const location = await deps.urlSigner.presignGet(job.objectKey as string, {
    expiresInSeconds: deps.presignSeconds,
    fileName: job.fileName ?? `${job.exportId}.xlsx`,
  });
  return { location };
}

function daysText(days: number): string {
  return days === 1 ? '1 day' : `${days} days`;
}
