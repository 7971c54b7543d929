import { createHmac } from 'node:crypto';
import type { AuditLog } from '../ports/audit-log';
import type { BotAnswer, BotWebhook } from '../ports/bot-webhook';
import type { Clock } from '../ports/clock';
import type { ExportStore } from '../ports/export-store';
import type { PipelineLog } from '../ports/pipeline-log';
import { linkWindowDays, notifyEventFor, type ExportJob, type JobError } from './export-job';
import type { NotifyMessage } from './messages';
import { createDownloadToken, downloadLink } from './download-link';
import { acquireLease } from './pipeline-steps';

export type { BotAnswer } from '../ports/bot-webhook';

export type NotifyDeps = {
  store: ExportStore;
  bot: BotWebhook;
  clock: Clock;
  log: PipelineLog;
  /**
   * Where the outcome (`notified` / `notify-failed`) is appended, as StepDeps' is for the other
   * events: the job item holding `notifiedAt` can change and expires, the trail is kept for good.
   */
  audit?: AuditLog | undefined;
  botSigningSecret: string;
  linkSigningSecret: string;
  publicBaseUrl: string;
  /** Attempts within one invocation before throwing (SQS then redrives, and the DLQ ends it). */
  attempts?: number;
  /** Base backoff; doubled per attempt. */
  backoffMs?: number;
  sleep?: (ms: number) => Promise<void>;
  /**
   * How long a delivery that finds another one posting waits for it (default 2 s) before
   * throwing LeaseBusyError so SQS brings it back (acquireLease).
   */
  leaseWaitMs?: number;
};

export type BotEvent = {
  type: 'export.completed' | 'export.failed';
  exportId: string;
  channelId: string;
  managerId: string;
  kind: 'cases' | 'contacts';
  rowCount: number | null;
  /** Source records left out of the file for lack of an id; present only when there were some. */
  skippedRecords?: number;
  fileName: string | null;
  link: string | null;
  expiresAt: string | null;
  error: { code: string; message: string } | null;
  message: { ko: string; en: string };
  /** When this attempt was sent (also X-Timestamp): inside the signed body, so a bot can refuse replays. */
  sentAt?: string;
};

function kindLabel(kind: ExportJob['kind']): { ko: string; en: string } {
  return kind === 'cases' ? { ko: '상담 통계(케이스별)', en: 'case statistics' } : { ko: '고객 연락처', en: 'customer contacts' };
}

/**
 * The expiry as the requester reads the file's times: in the export's zone (the channel's, or the
 * one the request named), named after it, `2025-07-08 12:00 (Asia/Seoul)`. One numeric form for
 * both languages (a bot that wants the instant reads the event's `expiresAt`).
 * Seconds are left out: links expire on the second the finalizer chose, not a round minute, so the
 * minute shown is cut, never rounded up past the real expiry.
 */
export function formatExpiry(iso: string, timeZone: string): string {
  const parts = new Intl.DateTimeFormat('en-CA', {
    timeZone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  }).formatToParts(new Date(iso));
  const part = (type: Intl.DateTimeFormatPartTypes): string => parts.find((p) => p.type === type)?.value ?? '';
  return `${part('year')}-${part('month')}-${part('day')} ${part('hour')}:${part('minute')} (${timeZone})`;
}

/** The job's zone when it is one Intl knows (jobs are written with a checked zone); Seoul otherwise, the product's. */
function expiryZone(job: ExportJob): string {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: job.timeZone });
    return job.timeZone;
  } catch {
    return 'Asia/Seoul';
  }
}

type Text = { ko: string; en: string };

/**
 * Why an export failed and what to do, per error code, in words a manager reads: the stored
 * `error.message` is for the trail and the API (English, the rule named), and quoting it made
 * the English text repeat its advice and left the Korean one with a bare code. The request caused
 * TOO_MANY_ROWS, and a filter or segment the chunks found no longer valid (FILTER_*, SEGMENT_*:
 * the same request fails again); every other code is ours or the data's, and telling the manager
 * to check a request that was fine only sends them looking for a mistake.
 */
function failureText(job: ExportJob, error: JobError): { reason: Text; advice: Text } {
  const again: Text = {
    ko: '같은 조건으로 다시 요청해 주세요. 계속 실패하면 오류 코드와 함께 서비스 담당자에게 알려 주세요.',
    en: 'Please request it again as it was; if it keeps failing, report the error code to the service\'s support.',
  };
  switch (error.code) {
    case 'TOO_MANY_ROWS': {
      const max = error.maxRows?.toLocaleString('en-US');
      const cases = job.kind === 'cases';
      return {
        reason: max
          ? { ko: `행이 한 파일에 담을 수 있는 최대 ${max}행을 넘습니다.`, en: `It has more than ${max} rows, the most one file may hold.` }
          : { ko: '행이 한 파일에 담을 수 있는 수를 넘습니다.', en: 'It has more rows than one file may hold.' },
        advice: {
          ko: `${cases ? '기간이나 필터를' : '필터나 선택 범위를'} 좁혀 다시 요청해 주세요.`,
          en: `Please narrow the ${cases ? 'date range or the filter' : 'filter or the selection'} and try again.`,
        },
      };
    }
    case 'COLUMNS_CHANGED':
      return {
        reason: {
          ko: '파일을 만드는 동안 서비스가 업데이트되었거나 프로필 항목이 바뀌어 열이 맞지 않습니다.',
          en: 'The service was updated, or the profile fields changed, while it was being built, so its columns no longer match.',
        },
        advice: { ko: '같은 조건으로 다시 요청해 주세요.', en: 'Please request it again as it was.' },
      };
    case 'EXPORT_DATA_EXPIRED':
      return {
        reason: {
          ko: '요청 후 1일 안에 만들어지지 않아, 만드는 데 필요한 요청 정보가 더 이상 보관되어 있지 않습니다.',
          en: 'It was not built within a day of the request, and what building it needs is no longer kept.',
        },
        advice: again,
      };
    case 'INTERRUPTED':
      return { reason: { ko: '파일을 만드는 중에 서비스가 멈추었습니다.', en: 'The service stopped while the file was being built.' }, advice: again };
    case 'PART_MISMATCH':
      return { reason: { ko: '파일의 조각들이 서로 맞지 않아 하나로 합치지 못했습니다.', en: 'Its pieces did not fit together into one consistent file.' }, advice: again };
    case 'ENCRYPTION_PARAMS_INVALID':
      return { reason: { ko: '파일을 암호화하지 못했습니다.', en: 'The file could not be encrypted.' }, advice: again };
    case 'PIPELINE_FAILED':
      return { reason: { ko: '파일을 만드는 중에 오류가 되풀이되었습니다.', en: 'Building the file failed again and again.' }, advice: again };
    default:
      if (/^(FILTER|SEGMENT)_/.test(error.code)) {
        const what = error.code.startsWith('SEGMENT_') ? { ko: '세그먼트', en: 'segment' } : { ko: '필터', en: 'filter' };
        return {
          reason: {
            ko: `요청한 ${what.ko} 조건을 더 이상 적용할 수 없습니다 (${error.message}).`,
            en: `The request's ${what.en} can no longer be applied (${error.message}).`,
          },
          advice: { ko: '조건을 확인한 뒤 다시 요청해 주세요.', en: 'Please check the request and try again.' },
        };
      }
      return { reason: { ko: '파일을 만드는 중에 문제가 생겼습니다.', en: `${capitalise(error.message)}.` }, advice: again };
  }
}

function capitalise(text: string): string {
  const trimmed = text.trim().replace(/[.\s]+$/, '');
  return trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
}

/** The bot event: ready-to-post text in Korean and English, and the link (LINK_TTL_DAYS) when completed. */
export function buildBotEvent(job: ExportJob, event: NotifyMessage['event'], link: string | null): BotEvent {
  const label = kindLabel(job.kind);
  const base = {
    type: event,
    exportId: job.exportId,
    channelId: job.channelId,
    managerId: job.managerId,
    kind: job.kind,
    rowCount: job.rowCount ?? null,
    fileName: job.fileName ?? null,
  };
  if (event === 'export.completed' && link && job.expiresAt) {
    const rows = (job.rowCount ?? 0).toLocaleString('en-US');
    // The configured lifetime (LINK_TTL_DAYS, 1-30), not a fixed 7: read back from the job.
    const days = linkWindowDays(job) ?? 1;
    const expiry = formatExpiry(job.expiresAt, expiryZone(job));
    // The requester must learn that the file is not every record, not only a metric.
    const skipped = job.skippedRecords ?? 0;
    const skippedNote = skipped > 0
      ? {
          ko: `\n원본 데이터에 ID가 없는 레코드 ${skipped.toLocaleString('en-US')}건은 파일에서 제외되었습니다.`,
          en: `\n${skipped.toLocaleString('en-US')} source record${skipped === 1 ? '' : 's'} without an id ${skipped === 1 ? 'was' : 'were'} left out of the file.`,
        }
      : { ko: '', en: '' };
    // The link last, on a line of its own: the seeds have the manager click the download at the
    // bottom of the bot's message, and "below" must be true.
    return {
      ...base,
      ...(job.skippedRecords ? { skippedRecords: job.skippedRecords } : {}),
      link,
      expiresAt: job.expiresAt,
      error: null,
      message: {
        ko: `${label.ko} 파일(${rows}행)이 준비되었습니다. 링크는 ${expiry}까지 ${days}일간 유효합니다. 파일 비밀번호는 요청할 때 입력한 비밀번호입니다.${skippedNote.ko}\n아래 링크에서 내려받으세요:\n${link}`,
        en: `Your ${label.en} file (${rows} ${job.rowCount === 1 ? 'row' : 'rows'}) is ready. The link works for ${days} day${days === 1 ? '' : 's'}, until ${expiry}. The file password is the one you entered when you requested it.${skippedNote.en}\nDownload it here:\n${link}`,
      },
    };
  }
  const error = job.error ?? { code: 'EXPORT_FAILED', message: 'the export failed' };
  const { reason, advice } = failureText(job, error);
  return {
    ...base,
    link: null,
    expiresAt: null,
    error: { code: error.code, message: error.message },
    message: {
      ko: `${label.ko} 파일을 만들지 못했습니다. ${reason.ko} ${advice.ko} (오류 코드: ${error.code})`,
      en: `Your ${label.en} export failed. ${reason.en} ${advice.en} (Error code: ${error.code})`,
    },
  };
}

/**
 * The X-Signature of a delivery: HMAC-SHA256 over `<X-Timestamp>.<body>`. The timestamp is
 * signed, not only sent beside the body, so a bot that checks the header's freshness (the
 * obvious check) cannot be fooled by an old delivery replayed with a new X-Timestamp.
 */
export function signDelivery(timestamp: string, body: string, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/**
 * Whether an answer can never turn into an acceptance by posting the same signed event again:
 * a 4xx says the request itself is wrong (bad signature, unknown route, refused payload), so
 * the 15 posts of 3 attempts x 5 receives would only repeat it before the DLQ. 408 (the bot
 * timed out reading us) and 429 (rate limited) are the 4xx that invite a retry.
 */
export function isPermanentRejection(status: number): boolean {
  return status >= 400 && status < 500 && status !== 408 && status !== 429;
}

/**
 * Retry-After (RFC 9110: delay-seconds or an HTTP-date) in whole seconds from `now`, or
 * undefined when absent or unreadable. A date in the past is 0. Not capped here: the SQS
 * handler caps it with the rest of the retry delay (it owns the queue's limits).
 */
export function parseRetryAfter(value: string | undefined, now: Date): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text);
  // Only the date forms: Date.parse would also read '1.5' or '-3' as (odd) dates.
  if (!/[a-z]/i.test(text)) return undefined;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, Math.ceil((at - now.getTime()) / 1000));
}

/**
 * The bot asked to be left alone for a while (429, or a Retry-After on another retryable
 * answer). Thrown instead of trying again within this invocation: the SQS handler reads
 * `retryAfterSeconds` and makes the message visible again no sooner (see scheduleRetries), so
 * the wait costs no Lambda time.
 */
export class BotRetryLaterError extends Error {
  constructor(
    message: string,
    readonly retryAfterSeconds: number | undefined,
  ) {
    super(message);
    this.name = 'BotRetryLaterError';
  }
}

/** `notifyError` of a refusal: the status only, never the answer's body (which could echo the link). */
function refusalError(event: NotifyMessage['event'], status: number): string {
  return `the bot refused the event (${event}) with HTTP ${status}; not retried`;
}

/** `HTTP {status}` of a refusal recorded on a job (`notifyRefusedStatus`), the reason both the audit event and the view give. */
export function refusalReason(job: Pick<ExportJob, 'notifyRefusedStatus'>): string | undefined {
  return job.notifyRefusedStatus === undefined ? undefined : `HTTP ${job.notifyRefusedStatus}`;
}

/**
 * Appends the audit event of the outcome already on the job: `notified` for `notifiedAt`,
 * `notify-failed` for `notifyRefusedAt`, each with the time recorded on the job (not a retry's).
 * Idempotent (fixed sort keys), so it is safe on every delivery that finds the outcome: the one
 * that recorded it appends right after, and when that append fails the message comes back and
 * the retry appends it (notifyExport's start), as does a dead letter of it (handleDeadLetter).
 * Errors are thrown, so the message is retried.
 */
export async function appendNotifyOutcome(
  deps: { audit?: AuditLog | undefined; log: PipelineLog },
  job: Pick<ExportJob, 'exportId' | 'channelId' | 'notifiedAt' | 'notifyRefusedAt' | 'notifyRefusedStatus'>,
  event: NotifyMessage['event'],
): Promise<void> {
  if (!deps.audit) return;
  const ids = { exportId: job.exportId, channelId: job.channelId };
  if (job.notifiedAt) {
    await deps.audit.append({ type: 'notified', ...ids, at: job.notifiedAt, event });
    return;
  }
  if (!job.notifyRefusedAt) return;
  const reason = refusalReason(job);
  // Not thrown: no retry can restore a status that was never recorded (the refusal is always
  // recorded with it, so this is a job this code did not write).
  if (reason === undefined) {
    deps.log.error('bot refusal recorded without its status: no audit event', { exportId: job.exportId });
    return;
  }
  await deps.audit.append({ type: 'notify-failed', ...ids, at: job.notifyRefusedAt, event, reason });
}

/**
 * The bot answered (and the job recorded it) but the audit append failed: thrown so the message
 * is retried, carrying what the bot did. The retry only appends and returns `skipped`, so without
 * this the handler would count a refusal as a failed delivery and the refusal alarm (which reads
 * the `rejected` count) would never hear of it.
 */
export class NotifyOutcomeNotAuditedError extends Error {
  constructor(
    readonly outcome: NotifyOutcome,
    options: { cause: unknown },
  ) {
    super(`the bot's answer (${outcome.status}) is recorded on the job but not yet in the audit trail`, options);
    this.name = 'NotifyOutcomeNotAuditedError';
  }
}

async function appendOrCarry(
  deps: NotifyDeps,
  job: Parameters<typeof appendNotifyOutcome>[1],
  event: NotifyMessage['event'],
  outcome: NotifyOutcome,
): Promise<void> {
  try {
    await appendNotifyOutcome(deps, job, event);
  } catch (error) {
    throw new NotifyOutcomeNotAuditedError(outcome, { cause: error });
  }
}

export type NotifyOutcome = {
  /** `rejected`: the bot refused the event for good (a 4xx); recorded as notifyRefusedAt + notifyError, not retried. */
  status: 'sent' | 'skipped' | 'rejected';
  attempts: number;
};

/**
 * Posts the event to the bot, signed (X-Signature over X-Timestamp and the exact body, which
 * carries `sentAt` too, so the bot can refuse stale or replayed deliveries). The link token is
 * computed here from the job (never carried by the queue message). What happens next depends
 * on the answer:
 * - 2xx: `notifiedAt` is recorded;
 * - a permanent 4xx (isPermanentRejection): `notifyRefusedAt` and `notifyError` (the status,
 *   never the answer's body) are recorded and the message is acknowledged: no retry, no DLQ,
 *   and no later notify message for the export posts again;
 * - 429, or any retryable answer with Retry-After: no more attempts now; BotRetryLaterError
 *   carries the bot's delay to the SQS handler;
 * - 5xx, 408, 3xx, a network error: up to `attempts` tries with exponential backoff, then a
 *   throw, so SQS redelivers and, after maxReceiveCount, the DLQ records it.
 *
 * At least once, not exactly once: the post runs under the `notifyClaim` lease, so overlapping
 * deliveries (an SQS duplicate, a finalize retry re-sending the notify) post once, and
 * `notifiedAt` or `notifyRefusedAt` (either closes the lease) makes later ones post nothing. A
 * crash after the bot answered and before that is written still posts again once the lease lapses.
 *
 * The outcome is appended to the audit trail (`notified` / `notify-failed`) after it is recorded
 * on the job, never before: an audit error then cannot cost the bot's post nor cause a second
 * one. It is thrown (the message comes back), and the retry finds the outcome on the job and
 * appends the event without posting (appendNotifyOutcome).
 */
export async function notifyExport(message: NotifyMessage, deps: NotifyDeps): Promise<NotifyOutcome> {
  const job = await deps.store.getJob(message.channelId, message.exportId);
  if (!job) {
    deps.log.warn('notify for an unknown export: dropped', { exportId: message.exportId });
    return { status: 'skipped', attempts: 0 };
  }
  // Told, or refused for good: either is the bot's final answer to this export's one event. A
  // refusal used to leave only `notifyError`, which closed nothing: a later notify message (a
  // finalize retry, a redelivered dead letter) posted the refused event again once the refused
  // post's lease had lapsed.
  if (job.notifiedAt || job.notifyRefusedAt) {
    // The delivery that recorded it may have failed to append its audit event (and thrown so
    // this retry comes): append it now, without posting again. A no-op when it is in already.
    // The event is the one that was told, read from the status (only a failed export is told
    // `export.failed`), not this message's: a hand-sent one may name the other.
    await appendNotifyOutcome(deps, job, notifyEventFor(job.status));
    return { status: 'skipped', attempts: 0 };
  }
  // The event must be the one the export's status calls for: the pipeline always sends that one,
  // but an operator re-sending a notification by hand can name the other, and "your export
  // failed" posted for a file the manager can download (or the reverse, silently dropped) is
  // worse than nothing. A completed export revoked (its link withdrawn, e.g. after a leak) or
  // expired before its notification posts nothing at all either: the requester learns of it from
  // the export's view. Acknowledged, not retried: no retry changes the status.
  const due = job.status === 'completed' || job.status === 'failed' ? notifyEventFor(job.status) : undefined;
  if (message.event !== due) {
    // A revoke before a pending post is the expected race (info); any other mismatch is a
    // hand-sent message naming the wrong event, which the operator must see (warn).
    const expected = message.event === 'export.completed' && job.status === 'revoked';
    deps.log[expected ? 'info' : 'warn']('notify event does not match the export: nothing posted', { exportId: job.exportId, event: message.event, status: job.status });
    return { status: 'skipped', attempts: 0 };
  }
  let link: string | null = null;
  if (message.event === 'export.completed') {
    if (!job.expiresAt) {
      deps.log.error('completed export without its expiry: nothing posted', { exportId: job.exportId });
      return { status: 'skipped', attempts: 0 };
    }
    // Stored as `completed` until something rewrites it, an export whose link has lapsed is
    // `expired` (the view says so): a notification re-sent by hand days later must not say "ready"
    // with a link that answers 410.
    if (Date.parse(job.expiresAt) <= deps.clock.now().getTime()) {
      deps.log.warn('notify for an export whose link has expired: nothing posted', { exportId: job.exportId, expiresAt: job.expiresAt });
      return { status: 'skipped', attempts: 0 };
    }
    link = downloadLink(deps.publicBaseUrl, createDownloadToken({ exportId: job.exportId, expiresAt: new Date(job.expiresAt) }, deps.linkSigningSecret));
  }
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  // A holder's `notifiedAt` means it posted; a `notifyRefusedAt` recorded while this delivery
  // waited means the holder got the bot's final answer (a refusal): either way nothing is left to
  // do. Not `notifyError`: the DLQ handler sets it when the bot was only down, and this delivery
  // may still get through.
  let waited = false;
  const lease = await acquireLease(deps, job, 'notifyClaim', {
    // A completed export revoked while this delivery waited has nothing left to post either.
    isDone: (j) => !!j.notifiedAt || !!j.notifyRefusedAt || (message.event === 'export.completed' && j.status !== 'completed'),
    waitMs: deps.leaseWaitMs ?? 2_000,
    sleep: (ms) => {
      waited = true;
      return sleep(ms);
    },
  });
  if (lease === undefined) return { status: 'skipped', attempts: 0 };
  // Best effort: a lease not given back lapses by itself (CLAIM_LEASE_MS).
  const giveBackLease = () =>
    deps.store
      .releaseClaim(job.channelId, job.exportId, 'notifyClaim', lease)
      .catch((e: unknown) => deps.log.warn('notify lease not given back', { exportId: job.exportId, error: e instanceof Error ? e.name : 'unknown' }));
  // A revocation must not be followed by a post of the withdrawn link. The job read above may be
  // seconds old once this delivery has waited for the lease (the holder gave it back after
  // failing), and each attempt can take up to the bot's answer limit (10 s) plus the backoff: the
  // status is read again after a wait and before every attempt after the first (a soak found a
  // 503 answered after a revoke followed by a post of the dead link 250 ms later). Without a
  // wait, the first attempt's read is milliseconds old. Only a completed export's post carries a
  // link, so only it is checked.
  const revokedMeanwhile = async (attempt: number): Promise<boolean> => {
    if (link === null) return false;
    const now = await deps.store.getJob(job.channelId, job.exportId);
    if (now?.status === 'completed') return false;
    await giveBackLease();
    deps.log.info('export no longer completed (revoked): nothing posted', { exportId: job.exportId, status: now?.status, attempt });
    return true;
  };
  if (waited && (await revokedMeanwhile(1))) return { status: 'skipped', attempts: 0 };

  const event = buildBotEvent(job, message.event, link);
  const attempts = deps.attempts ?? 3;
  let lastError = '';
  let retryLater: { seconds: number | undefined } | undefined;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    if (attempt > 1 && (await revokedMeanwhile(attempt))) return { status: 'skipped', attempts: attempt - 1 };
    let answer: BotAnswer | undefined;
    try {
      const sentAt = deps.clock.now();
      const timestamp = String(Math.floor(sentAt.getTime() / 1000));
      const body = JSON.stringify({ ...event, sentAt: sentAt.toISOString() });
      answer = await deps.bot.post(body, {
        'X-Signature': signDelivery(timestamp, body, deps.botSigningSecret),
        'X-Timestamp': timestamp,
        'X-Event-Type': message.event,
        // The same on every attempt and redelivery of this event (the signature and timestamp
        // are not): what a bot dedupes on, without parsing the body first.
        'X-Event-Id': `${message.event}/${message.exportId}`,
      });
    } catch (error) {
      lastError = error instanceof Error ? error.name : 'request failed';
    }
    // Once the bot has it, the lease is kept even if recording fails: giving it back would let a
    // waiting duplicate post again at once; after the lease lapses a retry may (at least once).
    if (answer && answer.status >= 200 && answer.status < 300) {
      const notifiedAt = deps.clock.now().toISOString();
      await deps.store.updateProgress(job.channelId, job.exportId, { notifiedAt });
      deps.log.info('bot notified', { exportId: job.exportId, event: message.event, attempt });
      // After `notifiedAt`: if this throws, the retry appends it without posting (see above).
      const sent: NotifyOutcome = { status: 'sent', attempts: attempt };
      await appendOrCarry(deps, { ...job, notifiedAt }, message.event, sent);
      return sent;
    }
    if (answer && isPermanentRejection(answer.status)) {
      // Final: `notifyRefusedAt` closes the lease for good (as `notifiedAt` does), so a duplicate
      // waiting on it stops and no later notify message posts the event again, and the message is
      // acknowledged. Only the status is recorded: the answer's body could echo the signed event,
      // link included.
      const refused = {
        notifyError: refusalError(message.event, answer.status),
        notifyRefusedAt: deps.clock.now().toISOString(),
        notifyRefusedStatus: answer.status,
      };
      await deps.store.updateProgress(job.channelId, job.exportId, refused);
      deps.log.error('bot refused the notification: not retried', { exportId: job.exportId, event: message.event, status: answer.status, attempt });
      // After `notifyRefusedAt`, as for a post: a retry appends it and posts nothing.
      const rejected: NotifyOutcome = { status: 'rejected', attempts: attempt };
      await appendOrCarry(deps, { ...job, ...refused }, message.event, rejected);
      return rejected;
    }
    if (answer) {
      lastError = `bot answered ${answer.status}`;
      const seconds = parseRetryAfter(answer.retryAfter, deps.clock.now());
      // A rate limit is not lifted by trying again 250 ms later, and a Retry-After is the bot
      // saying when to come back: leave the wait to SQS instead of spending the Lambda on it.
      if (answer.status === 429 || seconds !== undefined) {
        retryLater = { seconds };
        deps.log.warn('bot asked to retry later', { exportId: job.exportId, attempt, status: answer.status, retryAfterSeconds: seconds });
        break;
      }
    }
    deps.log.warn('bot webhook attempt failed', { exportId: job.exportId, attempt, reason: lastError });
    if (attempt < attempts) await sleep((deps.backoffMs ?? 250) * 2 ** (attempt - 1));
  }
  // The bot never accepted: give the lease back so the redelivery can post at once.
  await giveBackLease();
  if (retryLater) {
    const after = retryLater.seconds === undefined ? '' : ` (retry after ${retryLater.seconds} s)`;
    throw new BotRetryLaterError(`bot webhook: ${lastError}${after}`, retryLater.seconds);
  }
  throw new Error(`bot webhook failed after ${attempts} attempts: ${lastError}`);
}
