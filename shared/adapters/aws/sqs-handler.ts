import middy from '@middy/core';
import sqsPartialBatchFailure from '@middy/sqs-partial-batch-failure';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { ChangeMessageVisibilityCommand } from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { z } from 'zod';
import { ConfigError, getConfig, intSetting, onceFromEnv, type Config } from '../../config';
import { CONFIG_ERRORS_METRIC, EXPORT_FAILURES_METRIC, INTERNAL_FAILURE_CODES, INTERNAL_FAILURES_METRIC, RECORD_FAILURES_METRIC } from '../../metric-names';
import { getClients } from './clients';
import { logger, metrics } from './pipeline-deps';
import { errorForLog } from '../../error-for-log';
import { pipelineMessageSchema } from '../../app/messages';

const MAX_RETRY_DELAY_SECONDS = 900;

/**
 * Seconds until a failed record is received again: base, 2x base, 4x base ... capped at 15
 * minutes. Exponential so a dependency that is briefly down is not hammered, short enough that a
 * transient failure costs the manager seconds, not the 30-90 minute visibility timeouts (which
 * must be >= 6x the function timeout) that would otherwise apply.
 */
export function retryDelaySeconds(receiveCount: number, baseSeconds: number): number {
  return Math.min(MAX_RETRY_DELAY_SECONDS, baseSeconds * 2 ** Math.max(0, receiveCount - 1));
}

/**
 * The visibility a failed record gets. On its last receive (receiveCount >= the queue's
 * maxReceiveCount) nothing follows but the move to the DLQ, which SQS makes on the next receive
 * attempt: any wait would only delay the dead letter (the "export failed" the manager waits
 * for), so it is 0. Otherwise the backoff, or longer when the failure asked for a delay of its
 * own (a bot's Retry-After), both capped at 15 minutes.
 */
export function retryVisibilitySeconds(
  receiveCount: number,
  settings: {
    baseSeconds: number;
    maxReceiveCount: number;
    retryAfterSeconds?: number | undefined;
    waitingOnHolder?: boolean;
    /** How long the holder's lease lasts (LeaseBusyError's `holderLeaseSeconds`). */
    holderLeaseSeconds?: number | undefined;
  },
): number {
  // Except when this delivery only waited for another one that holds the step (a duplicate
  // delivery, LeaseBusyError): the dead letter would fail an export that delivery may be about
  // to finish, so the holder keeps the usual backoff of time before that happens.
  if (receiveCount >= settings.maxReceiveCount && !settings.waitingOnHolder) return 0;
  let backoff = retryDelaySeconds(receiveCount, settings.baseSeconds);
  // The next receive is the last: it must come after the holder's lease has lapsed, so that if
  // the holder died (a timeout, a crash) that receive takes the step over. With the backoff
  // alone, a small RETRY_BASE_SECONDS (under ~16 s with 4 receives, ~8 s with 5, and the 120 s lease; the
  // local stack's 1 s) spent every receive inside the dead holder's lease and dead-lettered the
  // export. Earlier receives keep the short backoff: a live holder usually finishes within it.
  if (settings.waitingOnHolder && settings.holderLeaseSeconds !== undefined && receiveCount === settings.maxReceiveCount - 1) {
    backoff = Math.max(backoff, Math.ceil(settings.holderLeaseSeconds) + 1);
  }
  if (settings.retryAfterSeconds === undefined) return backoff;
  return Math.min(MAX_RETRY_DELAY_SECONDS, Math.max(backoff, Math.ceil(settings.retryAfterSeconds)));
}

/**
 * A delay a failure asks for: an error with a finite, non-negative `retryAfterSeconds` (the
 * notifier's BotRetryLaterError). Read by shape, so this adapter depends on no use case.
 */
export function retryAfterOf(reason: unknown): number | undefined {
  if (typeof reason !== 'object' || reason === null) return undefined;
  const value = (reason as { retryAfterSeconds?: unknown }).retryAfterSeconds;
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : undefined;
}

/**
 * A delivery that gave up waiting for another holding the step's lease: an error with
 * `waitingOnHolder: true` (LeaseBusyError). Read by shape, like retryAfterOf.
 */
export function waitedOnHolder(reason: unknown): boolean {
  return typeof reason === 'object' && reason !== null && (reason as { waitingOnHolder?: unknown }).waitingOnHolder === true;
}

/** The lease length a LeaseBusyError carries (`holderLeaseSeconds`), read by shape; undefined otherwise. */
export function holderLeaseOf(reason: unknown): number | undefined {
  if (typeof reason !== 'object' || reason === null) return undefined;
  const value = (reason as { holderLeaseSeconds?: unknown }).holderLeaseSeconds;
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : undefined;
}

type WorkQueueName = 'chunk' | 'finalize' | 'notify';

/**
 * Each work queue's maxReceiveCount, as its redrive policy says (the CDK stack and the local
 * stack set these from the values they give the queues). Required, with no default: a value
 * that disagreed with the queue would put the "last receive" in the wrong place.
 */
const receiveLimitsSchema = z.object({
  CHUNK_MAX_RECEIVE_COUNT: intSetting(1, 1000),
  FINALIZE_MAX_RECEIVE_COUNT: intSetting(1, 1000),
  NOTIFY_MAX_RECEIVE_COUNT: intSetting(1, 1000),
});
export type ReceiveLimits = Record<WorkQueueName, number>;

export function parseReceiveLimits(env: Record<string, string | undefined>): ReceiveLimits {
  const result = receiveLimitsSchema.safeParse(env);
  if (!result.success) {
    const issues = result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new ConfigError(`invalid environment: ${issues}`);
  }
  return { chunk: result.data.CHUNK_MAX_RECEIVE_COUNT, finalize: result.data.FINALIZE_MAX_RECEIVE_COUNT, notify: result.data.NOTIFY_MAX_RECEIVE_COUNT };
}

const receiveLimits = onceFromEnv(parseReceiveLimits);

/** Read once per process, like getConfig(); resetReceiveLimits() is for a local stack restarted with other queues. */
export function getReceiveLimits(): ReceiveLimits {
  return receiveLimits.get();
}

export function resetReceiveLimits(): void {
  receiveLimits.reset();
}

type QueueUrls = Pick<Config, 'CHUNK_QUEUE_URL' | 'FINALIZE_QUEUE_URL' | 'NOTIFY_QUEUE_URL'>;

/** The work queue a record came from (by queue name), or undefined for a queue we don't own (a DLQ). */
function workQueueOf(arn: string, config: QueueUrls): { name: WorkQueueName; url: string } | undefined {
  const name = arn.slice(arn.lastIndexOf(':') + 1);
  const urls: Record<WorkQueueName, string> = { chunk: config.CHUNK_QUEUE_URL, finalize: config.FINALIZE_QUEUE_URL, notify: config.NOTIFY_QUEUE_URL };
  for (const queue of ['chunk', 'finalize', 'notify'] as const) {
    if (urls[queue].slice(urls[queue].lastIndexOf('/') + 1) === name) return { name: queue, url: urls[queue] };
  }
  return undefined;
}

/** The queue URL of a record's source queue (by queue name), or undefined for a queue we don't own (a DLQ). */
export function queueUrlForArn(arn: string, config: QueueUrls): string | undefined {
  return workQueueOf(arn, config)?.url;
}

/**
 * Best-effort: if it fails, the record simply comes back after the queue's visibility timeout.
 * `reasons[i]` is why `failed[i]` failed (optional): a failure that carries a Retry-After
 * (retryAfterOf) is not received again before it.
 */
export async function scheduleRetries(failed: SQSRecord[], reasons: readonly unknown[] = []): Promise<void> {
  if (failed.length === 0) return;
  const config = getConfig();
  const limits = getReceiveLimits();
  const { sqs } = getClients();
  await Promise.allSettled(
    failed.map(async (record, i) => {
      const queue = workQueueOf(record.eventSourceARN, config);
      if (!queue) return;
      const delay = retryVisibilitySeconds(receiveCountOf(record), {
        baseSeconds: config.RETRY_BASE_SECONDS,
        maxReceiveCount: limits[queue.name],
        retryAfterSeconds: retryAfterOf(reasons[i]),
        waitingOnHolder: waitedOnHolder(reasons[i]),
        holderLeaseSeconds: holderLeaseOf(reasons[i]),
      });
      try {
        await sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: queue.url, ReceiptHandle: record.receiptHandle, VisibilityTimeout: delay }));
      } catch (error) {
        logger.warn('could not shorten the retry delay', { messageId: record.messageId, error: errorForLog(error) });
      }
    }),
  );
}

/**
 * The shape every SQS function shares: records are processed concurrently, each settles on
 * its own, and @middy/sqs-partial-batch-failure turns rejections into batchItemFailures so
 * only the failed records come back (the event source mapping needs ReportBatchItemFailures).
 * Metrics are flushed after each invocation; log lines carry the function and message ids,
 * never the body's secrets (bodies hold none) or an error's data.
 */
export function createSqsHandler(
  functionName: string,
  processRecord: (record: SQSRecord, context: Context) => Promise<void>,
  /** The function's own settings beyond getConfig()'s, checked with them (throws ConfigError). */
  checkOwnConfig: (config: Config) => void = () => undefined,
) {
  const run = async (event: SQSEvent, context: Context): Promise<PromiseSettledResult<void>[]> => {
    const started = Date.now();
    // Read before any record runs: a missing or bad setting fails the invocation at once, naming
    // the variable, instead of surfacing only when a record first fails. The partial-batch
    // middleware turns the throw into every record failed, which Lambda counts as a success (its
    // Errors metric stays 0), so the failures are counted here, where the recordFailures alarms
    // read them; before, a bad setting failed every record for hours without an alarm.
    try {
      checkOwnConfig(getConfig());
      getReceiveLimits();
    } catch (error) {
      logger.error('invalid configuration: every record of the batch fails', { function: functionName, records: event.Records.length, error: errorForLog(error) });
      metrics.addDimension('function', functionName);
      metrics.addMetric(RECORD_FAILURES_METRIC, MetricUnit.Count, event.Records.length);
      metrics.addMetric(CONFIG_ERRORS_METRIC, MetricUnit.Count, 1);
      metrics.publishStoredMetrics();
      throw error;
    }
    const results = await Promise.allSettled(event.Records.map((record) => processRecord(record, context)));
    const failed: SQSRecord[] = [];
    const reasons: unknown[] = [];
    event.Records.forEach((record, i) => {
      const result = results[i];
      if (result?.status !== 'rejected') return;
      failed.push(record);
      reasons.push(result.reason);
    });
    const failures = failed.length;
    await scheduleRetries(failed, reasons);
    metrics.addDimension('function', functionName);
    metrics.addMetric('recordsProcessed', MetricUnit.Count, results.length - failures);
    if (failures > 0) metrics.addMetric(RECORD_FAILURES_METRIC, MetricUnit.Count, failures);
    metrics.addMetric('invocationSeconds', MetricUnit.Seconds, (Date.now() - started) / 1000);
    metrics.publishStoredMetrics();
    return results;
  };
  return middy<SQSEvent, SQSBatchResponse>()
    .use(
      sqsPartialBatchFailure({
        logger: (reason: unknown, record: SQSRecord) =>
          logger.error('record failed', {
            function: functionName,
            // The export the record names, so the line (the only error-level one for a retry or a
            // last failure before the DLQ) leads to it; records of a batch run concurrently.
            ...exportIdOf(record),
            messageId: record.messageId,
            receiveCount: record.attributes.ApproximateReceiveCount,
            error: errorForLog(reason),
          }),
      }),
    )
    .handler(run as unknown as (event: SQSEvent, context: Context) => Promise<SQSBatchResponse>);
}

/**
 * Counts an export a pipeline function failed: exportFailures always, and exportFailuresInternal
 * when the code means the service went wrong (INTERNAL_FAILURE_CODES), which an alarm reads: those
 * fail at once, with no retries or dead letter for another alarm to see.
 */
export function countExportFailure(code: string): void {
  metrics.addMetric(EXPORT_FAILURES_METRIC, MetricUnit.Count, 1);
  if (INTERNAL_FAILURE_CODES.includes(code)) metrics.addMetric(INTERNAL_FAILURES_METRIC, MetricUnit.Count, 1);
}

/** A field of a record's JSON body, whatever the body's shape; undefined when unreadable. */
function bodyField(record: Pick<SQSRecord, 'body'>, field: 'exportId' | 'type'): unknown {
  try {
    const parsed: unknown = JSON.parse(record.body);
    return typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>)[field] : undefined;
  } catch {
    return undefined;
  }
}

/** `{ exportId }` of a record whose body names one (every pipeline message does), else nothing. */
export function exportIdOf(record: Pick<SQSRecord, 'body'>): { exportId?: string } {
  const id = bodyField(record, 'exportId');
  return typeof id === 'string' && id.length > 0 && id.length <= 200 ? { exportId: id } : {};
}

const MESSAGE_TYPES: readonly string[] = pipelineMessageSchema.options.map((option) => option.shape.type.value);

/**
 * The type a record's body names when it is one of ours (chunk, finalize, notify, revoke, cancel),
 * else `unreadable`: a metric dimension, so never the body's own text (it could be anything).
 */
export function messageTypeOf(record: Pick<SQSRecord, 'body'>): string {
  const type = bodyField(record, 'type');
  return typeof type === 'string' && MESSAGE_TYPES.includes(type) ? type : 'unreadable';
}

export function receiveCountOf(record: SQSRecord): number {
  return Number(record.attributes.ApproximateReceiveCount ?? '1') || 1;
}
