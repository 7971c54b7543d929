import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { chunkMessageSchema } from '../../shared/app/messages';
import { processChunk } from '../../shared/app/process-chunk';
import { FollowUpsFailedError } from '../../shared/app/pipeline-steps';
import { chunkDeps, logger, metrics, pipelineLog } from '../../shared/adapters/aws/pipeline-deps';
import { countExportFailure, createSqsHandler, receiveCountOf } from '../../shared/adapters/aws/sqs-handler';

/** Chunk Lambda: one SQS record = one planned slice rendered into one part. */
export const handler = createSqsHandler('chunk', async (record) => {
  const message = chunkMessageSchema.parse(JSON.parse(record.body));
  const log = pipelineLog(logger, message.exportId);
  const started = Date.now();
  let outcome: Awaited<ReturnType<typeof processChunk>>;
  try {
    outcome = await processChunk(message, chunkDeps(log), { receiveCount: receiveCountOf(record) });
  } catch (error) {
    // This delivery failed the export and a follow-up then threw: counted now (the retry finds
    // the export failed and counts nothing).
    if (error instanceof FollowUpsFailedError && error.outcome.failedWith !== undefined) countExportFailure(error.outcome.failedWith);
    throw error;
  }
  metrics.addMetric('chunkSeconds', MetricUnit.Seconds, (Date.now() - started) / 1000);
  if (outcome.status === 'done') metrics.addMetric('rowsRendered', MetricUnit.Count, outcome.rows);
  if (outcome.status === 'duplicate') metrics.addMetric('duplicateChunks', MetricUnit.Count, 1);
  if (outcome.skippedRecords > 0) metrics.addMetric('skippedSourceRecords', MetricUnit.Count, outcome.skippedRecords);
  if (outcome.repairedRecords > 0) metrics.addMetric('repairedSourceRecords', MetricUnit.Count, outcome.repairedRecords);
  // Exports this delivery failed (its own transition): counted as the finalizer counts its own.
  if (outcome.failedWith !== undefined) countExportFailure(outcome.failedWith);
  log.info('chunk processed', { chunkId: message.chunkId, status: outcome.status, rows: outcome.rows, seconds: (Date.now() - started) / 1000 });
});
