import middy from '@middy/core';
import sqsPartialBatchFailure from '@middy/sqs-partial-batch-failure';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { logger, metrics } from './pipeline-deps';

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
    const failures = results.filter((r) => r.status === 'rejected').length;
    metrics.addDimension('function', functionName);
    metrics.addMetric('recordsProcessed', MetricUnit.Count, results.length - failures);
    if (failures > 0) metrics.addMetric('recordFailures', MetricUnit.Count, failures);
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
