import { createHmac } from 'node:crypto';
import type { BotWebhook } from '../ports/bot-webhook';
import type { Clock } from '../ports/clock';
import type { ExportStore } from '../ports/export-store';
import type { PipelineLog } from '../ports/pipeline-log';
import type { ExportJob } from './export-job';
import type { NotifyMessage } from './messages';
import { createDownloadToken, downloadLink } from './download-link';
import { acquireLease } from './pipeline-steps';

export type NotifyDeps = {
  store: ExportStore;
  bot: BotWebhook;
  clock: Clock;
  log: PipelineLog;
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

function formatKst(iso: string): string {
  // The product is Korean: show the expiry in Seoul time for the Korean text.
  return new Date(iso).toLocaleString('ko-KR', { timeZone: 'Asia/Seoul', hour12: false });
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
    ...(job.skippedRecords ? { skippedRecords: job.skippedRecords } : {}),
  };
  if (event === 'export.completed' && link && job.expiresAt) {
    const rows = (job.rowCount ?? 0).toLocaleString('en-US');
    // The configured lifetime (LINK_TTL_DAYS, 1-30), not a fixed 7: read back from the job.
    const days = Math.max(1, Math.round((Date.parse(job.expiresAt) - Date.parse(job.completedAt ?? job.expiresAt)) / 86_400_000));
    // The requester must learn that the file is not every record, not only a metric.
    const skipped = job.skippedRecords ?? 0;
    const skippedNote = skipped > 0
      ? {
          ko: `\n원본 데이터에 ID가 없는 레코드 ${skipped.toLocaleString('en-US')}건은 파일에서 제외되었습니다.`,
          en: `\n${skipped.toLocaleString('en-US')} source record${skipped === 1 ? '' : 's'} without an id ${skipped === 1 ? 'was' : 'were'} left out of the file.`,
        }
      : { ko: '', en: '' };
    return {
      ...base,
      link,
      expiresAt: job.expiresAt,
      error: null,
      message: {
        ko: `${label.ko} 파일(${rows}행)이 준비되었습니다. 아래 링크에서 내려받으세요: ${link}\n링크는 ${formatKst(job.expiresAt)}까지 ${days}일간 유효합니다. 파일 비밀번호는 요청할 때 입력한 비밀번호입니다.${skippedNote.ko}`,
        en: `Your ${label.en} file (${rows} rows) is ready: ${link}\nThe link works until ${job.expiresAt} (${days} day${days === 1 ? '' : 's'}). The file password is the one you entered when you requested it.${skippedNote.en}`,
      },
    };
  }
  const error = job.error ?? { code: 'EXPORT_FAILED', message: 'the export failed' };
  return {
    ...base,
    link: null,
    expiresAt: null,
    error,
    message: {
      ko: `${label.ko} 파일을 만들지 못했습니다 (${error.code}). 조건을 확인한 뒤 다시 요청해 주세요.`,
      en: `Your ${label.en} export failed (${error.code}: ${error.message}). Please check the request and try again.`,
    },
  };
}

export function signBody(body: string, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/**
 * Posts the event to the bot, signed (X-Signature over the exact body, which carries `sentAt`;
 * X-Timestamp repeats it so the bot can refuse stale or replayed deliveries), retrying with
 * exponential backoff; throws after the last attempt so SQS redelivers and, after
 * maxReceiveCount, the DLQ records it. The link token is computed here from the job (never
 * carried by the queue message).
 *
 * At least once, not exactly once: the post runs under the `notifyClaim` lease, so overlapping
 * deliveries (an SQS duplicate, a finalize retry re-sending the notify) post once, and
 * `notifiedAt` (which closes the lease) makes later ones post nothing. A crash after the bot
 * accepted and before `notifiedAt` is written still posts again once the lease lapses.
 */
export async function notifyExport(message: NotifyMessage, deps: NotifyDeps): Promise<{ status: 'sent' | 'skipped'; attempts: number }> {
  const job = await deps.store.getJob(message.channelId, message.exportId);
  if (!job) {
    deps.log.warn('notify for an unknown export: dropped', { exportId: message.exportId });
    return { status: 'skipped', attempts: 0 };
  }
  if (job.notifiedAt) return { status: 'skipped', attempts: 0 };
  let link: string | null = null;
  if (message.event === 'export.completed') {
    if (job.status !== 'completed' || !job.expiresAt) return { status: 'skipped', attempts: 0 };
    link = downloadLink(deps.publicBaseUrl, createDownloadToken({ exportId: job.exportId, expiresAt: new Date(job.expiresAt) }, deps.linkSigningSecret));
  }
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  // A holder's `notifiedAt` means it posted: this delivery has nothing left to do.
  const lease = await acquireLease(deps, job, 'notifyClaim', { isDone: (j) => !!j.notifiedAt, waitMs: deps.leaseWaitMs ?? 2_000, sleep });
  if (lease === undefined) return { status: 'skipped', attempts: 0 };

  const event = buildBotEvent(job, message.event, link);
  const attempts = deps.attempts ?? 3;
  let lastError = '';
  for (let attempt = 1; attempt <= attempts; attempt++) {
    let accepted = false;
    try {
      const sentAt = deps.clock.now();
      const timestamp = String(Math.floor(sentAt.getTime() / 1000));
      const body = JSON.stringify({ ...event, sentAt: sentAt.toISOString() });
      const { status } = await deps.bot.post(body, {
        'X-Signature': signBody(body, deps.botSigningSecret),
        'X-Timestamp': timestamp,
        'X-Event-Type': message.event,
      });
      accepted = status >= 200 && status < 300;
      if (!accepted) lastError = `bot answered ${status}`;
    } catch (error) {
      lastError = error instanceof Error ? error.name : 'request failed';
    }
    // Once the bot has it, the lease is kept even if recording fails: giving it back would let a
    // waiting duplicate post again at once; after the lease lapses a retry may (at least once).
    if (accepted) {
      await deps.store.updateProgress(job.channelId, job.exportId, { notifiedAt: deps.clock.now().toISOString() });
      deps.log.info('bot notified', { exportId: job.exportId, event: message.event, attempt });
      return { status: 'sent', attempts: attempt };
    }
    deps.log.warn('bot webhook attempt failed', { exportId: job.exportId, attempt, reason: lastError });
    if (attempt < attempts) await sleep((deps.backoffMs ?? 250) * 2 ** (attempt - 1));
  }
  // The bot never accepted: give the lease back so the redelivery can post at once.
  await deps.store
    .releaseClaim(job.channelId, job.exportId, 'notifyClaim', lease)
    .catch((e: unknown) => deps.log.warn('notify lease not given back', { exportId: job.exportId, error: e instanceof Error ? e.name : 'unknown' }));
  throw new Error(`bot webhook failed after ${attempts} attempts: ${lastError}`);
}
