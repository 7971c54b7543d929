import middy from '@middy/core';
import sqsPartialBatchFailure from '@middy/sqs-partial-batch-failure';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { ChangeMessageVisibilityCommand } from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { getConfig, type Config } from '../../config';
import { RECORD_FAILURES_METRIC } from '../../metric-names';
import { getClients } from './clients';
import { logger, metrics } from './pipeline-deps';

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

/** The queue URL of a record's source queue (by queue name), or undefined for a queue we don't own (a DLQ). */
export function queueUrlForArn(arn: string, config: Pick<Config, 'CHUNK_QUEUE_URL' | 'FINALIZE_QUEUE_URL' | 'NOTIFY_QUEUE_URL'>): string | undefined {
  const name = arn.slice(arn.lastIndexOf(':') + 1);
  return [config.CHUNK_QUEUE_URL, config.FINALIZE_QUEUE_URL, config.NOTIFY_QUEUE_URL].find((url) => url.slice(url.lastIndexOf('/') + 1) === name);
}

/** Best-effort: if it fails, the record simply comes back after the queue's visibility timeout. */
export async function scheduleRetries(failed: SQSRecord[]): Promise<void> {
  if (failed.length === 0) return;
  const config = getConfig();
  const { sqs } = getClients();
  await Promise.allSettled(
    failed.map(async (record) => {
      const queueUrl = queueUrlForArn(record.eventSourceARN, config);
      if (!queueUrl) return;
      const delay = retryDelaySeconds(receiveCountOf(record), config.RETRY_BASE_SECONDS);
      try {
        await sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: queueUrl, ReceiptHandle: record.receiptHandle, VisibilityTimeout: delay }));
      } catch (error) {
        logger.warn('could not shorten the retry delay', { messageId: record.messageId, error: String(error) });
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
) {
  const run = async (event: SQSEvent, context: Context): Promise<PromiseSettledResult<void>[]> => {
    const started = Date.now();
    const results = await Promise.allSettled(event.Records.map((record) => processRecord(record, context)));
    const failed = event.Records.filter((_, i) => results[i]?.status === 'rejected');
    const failures = failed.length;
    await scheduleRetries(failed);
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
            messageId: record.messageId,
            receiveCount: record.attributes.ApproximateReceiveCount,
            error: reason instanceof Error ? { name: reason.name, message: reason.message } : String(reason),
          }),
      }),
    )
    .handler(run as unknown as (event: SQSEvent, context: Context) => Promise<SQSBatchResponse>);
}

export function receiveCountOf(record: SQSRecord): number {
  return Number(record.attributes.ApproximateReceiveCount ?? '1') || 1;
}
