import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { finalizeQueueMessageSchema } from '../../shared/app/messages';
import { finishFollowUp } from '../../shared/app/follow-ups';
import { finalizeExport, type FinalizeOutcome } from '../../shared/app/finalize-export';
import { FollowUpsFailedError } from '../../shared/app/pipeline-steps';
import { finalizeDeps, logger, metrics, pipelineLog } from '../../shared/adapters/aws/pipeline-deps';
import { countExportFailure, createSqsHandler, receiveCountOf } from '../../shared/adapters/aws/sqs-handler';

/** Finalizer Lambda: parts -> encrypted workbook -> S3, then completion, link and notify; and the follow-ups of revokes and cancels. */
export const handler = createSqsHandler('finalizer', async (record) => {
  const message = finalizeQueueMessageSchema.parse(JSON.parse(record.body));
  const log = pipelineLog(logger, message.exportId);
  // A revocation's or a cancel's follow-up (sent by the api, delayed past its request): the
  // finalizer's role already deletes files and parts, appends audit events and releases
  // cooldowns, so they ride this queue.
  if (message.type === 'revoke' || message.type === 'cancel') {
    const outcome = await finishFollowUp(message, await finalizeDeps(log));
    log.info(`${message.type} follow-up processed`, { outcome });
    return;
  }
  const started = Date.now();
  let outcome: FinalizeOutcome;
  try {
    outcome = await finalizeExport(message, await finalizeDeps(log), { receiveCount: receiveCountOf(record) });
  } catch (error) {
    // This run completed or failed the export and a follow-up then threw: counted now, since the
    // retry finds the export final and reports skipped.
    if (error instanceof FollowUpsFailedError) count(error.outcome as Partial<FinalizeOutcome>);
    throw error;
  }
  const seconds = (Date.now() - started) / 1000;
  metrics.addMetric('finalizeSeconds', MetricUnit.Seconds, seconds);
  count(outcome);
  log.info('finalize processed', { status: outcome.status, rowCount: outcome.rowCount, fileSize: outcome.fileSize, seconds });
});

function count(outcome: Partial<FinalizeOutcome>): void {
  if (outcome.status === 'completed') {
    metrics.addMetric('rowsExported', MetricUnit.Count, outcome.rowCount ?? 0);
    metrics.addMetric('exportBytes', MetricUnit.Bytes, outcome.fileSize ?? 0);
    metrics.addMetric('exportsCompleted', MetricUnit.Count, 1);
    if (outcome.exportSeconds !== undefined) metrics.addMetric('exportSeconds', MetricUnit.Seconds, outcome.exportSeconds);
  }
  if (outcome.failedWith !== undefined) countExportFailure(outcome.failedWith);
}
