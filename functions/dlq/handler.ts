import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { handleDeadLetter } from '../../shared/app/handle-dead-letter';
import { baseDeps, logger, metrics, pipelineLog } from '../../shared/adapters/aws/pipeline-deps';
import { createSqsHandler } from '../../shared/adapters/aws/sqs-handler';

/** DLQ Lambda: subscribed to every DLQ; a dead letter fails its export and tells the bot. */
export const handler = createSqsHandler('dlq', async (record) => {
  const queue = record.eventSourceARN.split(':').pop() ?? 'unknown';
  let exportId = 'unknown';
  try {
    exportId = String((JSON.parse(record.body) as { exportId?: unknown }).exportId ?? 'unknown');
  } catch {
    // handleDeadLetter reports unreadable bodies
  }
  const log = pipelineLog(logger, exportId);
  const outcome = await handleDeadLetter(record.body, { ...baseDeps(), log }, { queue });
  metrics.addMetric('deadLetters', MetricUnit.Count, 1);
  if (outcome === 'failed-export') metrics.addMetric('exportFailures', MetricUnit.Count, 1);
  log.warn('dead letter handled', { queue, outcome });
});
