import { NotFoundError } from '../../domain';
import type { Principal } from '../../auth/principal';
import type { ApiDeps } from './deps';
import { LinkGoneError } from './errors';
import { linkWindowDays, type ExportJob } from '../export-job';
import { clientFacts } from './client';
import type { AuditGoneCause } from '../../ports/audit-log';

export type DownloadRequest = {
  token: string;
  ip?: string;
  userAgent?: string;
  /** The caller when the request carried a valid bearer token of the export's channel. */
  principal?: Principal;
};

const TOKEN_SHAPE = /^[A-Za-z0-9._~-]{16,512}$/;

function unknownLink(): NotFoundError {
  return new NotFoundError('no download link with this token', { code: 'LINK_NOT_FOUND', field: 'token', rule: 'issued-link' });
}

/** The link's export, and why it can no longer be used (undefined while it can). */
type ResolvedLink = { job: ExportJob; gone?: { error: LinkGoneError; cause: AuditGoneCause } };

/** Token, job and window: what GET and HEAD both answer from. Reads only; audits nothing. */
async function resolveLink(deps: ApiDeps, token: string, now: Date): Promise<ResolvedLink> {
  if (!TOKEN_SHAPE.test(token)) throw unknownLink();
  const link = await deps.links.resolve(token);
  if (!link) throw unknownLink();
  const job = await deps.store.getJob(link.channelId, link.exportId);
  if (!job) throw unknownLink();
  const expiresAt = job.expiresAt ?? link.expiresAt;
  const gone = job.status !== 'completed' || !job.objectKey || now.getTime() >= Date.parse(expiresAt);
  if (!gone) return { job };
  const cause = goneCause(job);
  return { job, gone: { error: new LinkGoneError(goneMessage(cause, job, expiresAt)), cause } };
}

/**
 * Why the link no longer works, as the trail records a refused use: the status that ended it.
 * A completed export past its window is `expired` (the stored status may not say so yet), and
 * so is one whose file key is missing (only a hand-edited item lacks it).
 */
function goneCause(job: ExportJob): AuditGoneCause {
  switch (job.status) {
    case 'canceled':
    case 'revoked':
    case 'failed':
      return job.status;
    default:
      return 'expired';
  }
}

/** Why a link no longer works (goneCause: the one decision), as its holder needs to hear it. */
function goneMessage(cause: AuditGoneCause, job: ExportJob, expiresAt: string): string {
  switch (cause) {
    case 'canceled':
      return 'this export was canceled; it has no file';
    case 'revoked':
      // Withdrawn on purpose (a leaked link): said so, not "expired", so its holder asks the requester.
      return 'this download link was revoked; ask the requester for a new export';
    case 'failed':
      // A link exists once the file was uploaded; the export can still fail after that
      // (its completion not saved), and then the file is deleted: not an expiry.
      return 'this export failed after its file was made; the file was deleted: request a new export';
    case 'expired':
      return `this download link has expired (links work for ${daysText(linkWindowDays({ completedAt: job.completedAt, expiresAt }) ?? 7)}); request a new export`;
  }
}

/**
 * GET /v1/downloads/{token}: the stable 7-day link the bot posts. No bearer is needed (the link
 * is the capability); each use is audited, then the client is sent to a presigned S3 URL that
 * lives minutes, signed now with the function's current credentials (a URL signed at
 * completion would die with the session token long before 7 days).
 * The audit event is written before the redirect: a download that cannot be audited is refused.
 * It is written after the presign: a presign that fails serves nothing, and a `redirected`
 * event for it would tell the auditor the file went out when the client got a 500.
 */
export async function downloadFile(deps: ApiDeps, input: DownloadRequest): Promise<{ location: string }> {
  const now = deps.clock.now();
  const { job, gone } = await resolveLink(deps, input.token, now);
  const managerId = input.principal && input.principal.channelId === job.channelId ? input.principal.managerId : undefined;
  // Anyone holding the link chooses the User-Agent, and auditors read it (clientFacts cleans it).
  const who = { ...(managerId ? { managerId } : {}), ...clientFacts(input) };
  if (gone) {
    // Attempts after expiry are audited too, with why the link no longer worked: an auditor
    // wants to see who still tried, and whether the link had lapsed or had been withdrawn.
    const ids = { exportId: job.exportId, channelId: job.channelId };
    await deps.audit.append({ type: 'downloaded', ...ids, at: now.toISOString(), outcome: 'gone', goneBecause: gone.cause, ...who });
    throw gone.error;
  }
  const location = await deps.urlSigner.presignGet(job.objectKey as string, {
    expiresInSeconds: deps.presignSeconds,
    fileName: job.fileName ?? `${job.exportId}.xlsx`,
  });
  await deps.audit.append({ type: 'downloaded', exportId: job.exportId, channelId: job.channelId, at: now.toISOString(), outcome: 'redirected', ...who });
  return { location };
}

/**
 * HEAD /v1/downloads/{token}: link checkers and chat link previews send HEAD and read a 405 as
 * a broken link (RFC 9110 9.1: general-purpose servers must support HEAD). Answers what a GET
 * would for an unknown (404) or spent (410) link, and nothing for a valid one: no presigned URL
 * (a HEAD fetches nothing, so it gets no way to fetch) and no audit event (nothing was
 * downloaded; the trail records uses of the file, not looks at the link).
 */
export async function checkDownloadLink(deps: ApiDeps, token: string): Promise<void> {
  const { gone } = await resolveLink(deps, token, deps.clock.now());
  if (gone) throw gone.error;
}

function daysText(days: number): string {
  return days === 1 ? '1 day' : `${days} days`;
}
