import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { notifyMessageSchema } from '../../shared/app/messages';
import { notifyExport } from '../../shared/app/notify-export';
import { logger, metrics, notifyDeps, pipelineLog } from '../../shared/adapters/aws/pipeline-deps';
import { createSqsHandler } from '../../shared/adapters/aws/sqs-handler';

/** Notifier Lambda: signed webhook to the bot; throwing lets SQS redrive, then the DLQ. */
export const handler = createSqsHandler('notifier', async (record) => {
  const message = notifyMessageSchema.parse(JSON.parse(record.body));
  const log = pipelineLog(logger, message.exportId);
  try {
    const result = await notifyExport(message, await notifyDeps(log));
    if (result.status === 'sent') metrics.addMetric('botNotifications', MetricUnit.Count, 1);
  } catch (error) {
    metrics.addMetric('botNotificationFailures', MetricUnit.Count, 1);
    throw error;
  }
});
