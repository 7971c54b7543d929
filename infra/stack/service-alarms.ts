import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

export type ServiceAlarmsProps = {
  deadLetterQueues: Record<string, sqs.IQueue>;
  chunkQueue: sqs.IQueue;
  finalizer: lambda.IFunction;
  dlqConsumer: lambda.IFunction;
  alarmEmail?: string | undefined;
};

/**
 * A manager waiting on a 1M-row export notices a stall within minutes; so should we. The chunk
 * age threshold is far above a normal backlog (100 chunks drain in a couple of minutes at full
 * concurrency) and well below the link-window scale where users start re-requesting.
 */
export const OLDEST_CHUNK_AGE_ALARM_SECONDS = 15 * 60;

/** Alarms on the failure paths of the pipeline, all published to one SNS topic. */
export class ServiceAlarms extends Construct {
  readonly topic: sns.Topic;
  readonly alarms: cloudwatch.Alarm[] = [];

  constructor(scope: Construct, id: string, props: ServiceAlarmsProps) {
    super(scope, id);
    this.topic = new sns.Topic(this, 'Topic', { displayName: 'export-service alarms', enforceSSL: true });
    if (props.alarmEmail) this.topic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
    const action = new cwActions.SnsAction(this.topic);
    const add = (alarm: cloudwatch.Alarm) => {
      alarm.addAlarmAction(action);
      this.alarms.push(alarm);
    };

    // The DLQ consumer drains these queues within seconds, so a visible message means the consumer
    // itself is failing: jobs are stuck in "running" and their managers were never told.
    for (const [name, queue] of Object.entries(props.deadLetterQueues)) {
      add(
        new cloudwatch.Alarm(this, `${name}DlqNotEmpty`, {
          alarmDescription: `${name} dead-letter queue holds messages the DLQ consumer could not handle`,
          metric: queue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1), statistic: 'Maximum' }),
          threshold: 0,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
          evaluationPeriods: 1,
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        }),
      );
    }
    // Any dead letter at all is an export that failed after its retries: worth a look even when
    // the consumer handled it (the queue is then empty again before the metric above samples it).
    add(
      new cloudwatch.Alarm(this, 'DeadLettersHandled', {
        alarmDescription: 'exports failed after all retries (the DLQ consumer ran)',
        metric: props.dlqConsumer.metricInvocations({ period: Duration.minutes(5), statistic: 'Sum' }),
        threshold: 0,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    );
    add(
      new cloudwatch.Alarm(this, 'FinalizerErrors', {
        alarmDescription: 'the finalizer failed (files are not being assembled)',
        metric: props.finalizer.metricErrors({ period: Duration.minutes(5), statistic: 'Sum' }),
        threshold: 0,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    );
    add(
      new cloudwatch.Alarm(this, 'OldestChunkAge', {
        alarmDescription: 'chunk messages wait too long: workers are throttled, failing or at max concurrency',
        metric: props.chunkQueue.metricApproximateAgeOfOldestMessage({ period: Duration.minutes(1), statistic: 'Maximum' }),
        threshold: OLDEST_CHUNK_AGE_ALARM_SECONDS,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 3,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    );
  }
}
