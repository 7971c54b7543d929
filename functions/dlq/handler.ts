import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { handleDeadLetter } from '../../shared/app/handle-dead-letter';
import { FollowUpsFailedError } from '../../shared/app/pipeline-steps';
import { baseDeps, logger, metrics, pipelineLog } from '../../shared/adapters/aws/pipeline-deps';
import { countExportFailure, createSqsHandler, exportIdOf, messageTypeOf } from '../../shared/adapters/aws/sqs-handler';
import { DEAD_LETTERS_METRIC, EXPORT_FAILURES_METRIC } from '../../shared/metric-names';

/** DLQ Lambda: subscribed to every DLQ; a dead letter fails its export and tells the bot. */
export const handler = createSqsHandler('dlq', async (record) => {
  const queue = record.eventSourceARN.split(':').pop() ?? 'unknown';
  const exportId = exportIdOf(record).exportId ?? 'unknown';
  const log = pipelineLog(logger, exportId);
  let outcome: Awaited<ReturnType<typeof handleDeadLetter>>;
  try {
    outcome = await handleDeadLetter(record.body, { ...baseDeps(), log }, { queue });
  } catch (error) {
    // The dead letter failed its export and a follow-up then threw: counted now (the redelivery
    // finds the export failed: already-final).
    if (error instanceof FollowUpsFailedError && error.outcome.failedWith !== undefined) countExportFailure(error.outcome.failedWith);
    throw error;
  }
  // One data point per dead letter by function, as before (graphs and queries read it so), and
  // one by what it carried and what came of it: the alarm counts invocations, this tells a
  // failed export from a bot that never took its notification.
  metrics.addMetric(DEAD_LETTERS_METRIC, MetricUnit.Count, 1);
  const single = metrics.singleMetric();
  single.addDimensions({ function: 'dlq', message: messageTypeOf(record), outcome });
  single.addMetric(DEAD_LETTERS_METRIC, MetricUnit.Count, 1);
  if (outcome === 'failed-export') metrics.addMetric(EXPORT_FAILURES_METRIC, MetricUnit.Count, 1);
  log.warn('dead letter handled', { queue, outcome });
});
