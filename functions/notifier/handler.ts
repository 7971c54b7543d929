import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { notifyMessageSchema } from '../../shared/app/messages';
import { notifyExport, NotifyOutcomeNotAuditedError, type NotifyOutcome } from '../../shared/app/notify-export';
import { checkNotifierConfig, logger, metrics, notifyDeps, pipelineLog } from '../../shared/adapters/aws/pipeline-deps';
import { createSqsHandler } from '../../shared/adapters/aws/sqs-handler';
import { BOT_REFUSALS_METRIC } from '../../shared/metric-names';

/** Notifier Lambda: signed webhook to the bot; throwing lets SQS redrive, then the DLQ. */
export const handler = createSqsHandler('notifier', async (record) => {
  const message = notifyMessageSchema.parse(JSON.parse(record.body));
  const log = pipelineLog(logger, message.exportId);
  const count = (status: NotifyOutcome['status']): void => {
    if (status === 'sent') metrics.addMetric('botNotifications', MetricUnit.Count, 1);
    // Acknowledged without retries, so neither counter above sees it: the alarm reads this one.
    else if (status === 'rejected') metrics.addMetric(BOT_REFUSALS_METRIC, MetricUnit.Count, 1);
  };
  try {
    count((await notifyExport(message, await notifyDeps(log))).status);
  } catch (error) {
    // The bot answered but the audit append failed (retried: the retry appends and posts nothing,
    // so it is counted now, by what the bot did).
    if (error instanceof NotifyOutcomeNotAuditedError) count(error.outcome.status);
    else metrics.addMetric('botNotificationFailures', MetricUnit.Count, 1);
    throw error;
  }
}, checkNotifierConfig);
