import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { BOT_REFUSALS_METRIC, METRICS_NAMESPACE, RECORD_FAILURES_METRIC, SERVICE_NAME } from '../../shared/metric-names';

export type ServiceAlarmsProps = {
  deadLetterQueues: Record<string, sqs.IQueue>;
  chunkQueue: sqs.IQueue;
  dlqConsumer: lambda.IFunction;
  /** The SQS-driven functions (chunk, finalizer, notifier, dlq), by alarm name prefix. */
  pipelineFunctions: Record<string, lambda.IFunction>;
  alarmEmail?: string | undefined;
};

/**
 * A manager waiting on a 1M-row export notices a stall within minutes; so should we. The chunk
 * age threshold is far above a normal backlog (100 chunks drain in a couple of minutes at full
 * concurrency) and well below the link-window scale where users start re-requesting.
 */
export const OLDEST_CHUNK_AGE_ALARM_SECONDS = 15 * 60;

/** The DLQ consumer handles a dead letter within seconds; one still there after this is stuck. */
export const DLQ_OLDEST_MESSAGE_ALARM_SECONDS = 10 * 60;

/** Alarms on the failure paths of the pipeline, all published to one SNS topic. */
export class ServiceAlarms extends Construct {
  readonly topic: sns.Topic;
  readonly alarms: cloudwatch.Alarm[] = [];

  constructor(scope: Construct, id: string, props: ServiceAlarmsProps) {
    super(scope, id);
    this.topic = new sns.Topic(this, 'Topic', { displayName: 'export-service alarms', enforceSSL: true });
    if (props.alarmEmail) this.topic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
    const action = new cwActions.SnsAction(this.topic);
    // Every alarm here fires when its metric rises above a threshold (0: any at all), ignores
    // missing data (an idle service publishes none) and tells the topic.
    const alarmAbove = (alarmId: string, alarmDescription: string, metric: cloudwatch.IMetric, threshold = 0, evaluationPeriods = 1) => {
      const alarm = new cloudwatch.Alarm(this, alarmId, {
        alarmDescription,
        metric,
        threshold,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      alarm.addAlarmAction(action);
      this.alarms.push(alarm);
    };

    // The DLQ consumer drains these queues within seconds, so an old message means the consumer
    // itself is failing: jobs are stuck in "running" and their managers were never told. Age, not
    // the visible count: a message the consumer keeps failing is in flight almost all the time
    // (hidden for the visibility timeout, picked up a second after it reappears), which a
    // once-a-minute sample of the visible count would almost never catch.
    for (const [name, queue] of Object.entries(props.deadLetterQueues)) {
      alarmAbove(
        `${name}DlqNotEmpty`,
        `${name} dead-letter queue holds messages the DLQ consumer could not handle`,
        queue.metricApproximateAgeOfOldestMessage({ period: Duration.minutes(1), statistic: 'Maximum' }),
        DLQ_OLDEST_MESSAGE_ALARM_SECONDS,
      );
    }
    // Any dead letter at all is an export that failed after its retries: worth a look even when
    // the consumer handled it (the queue is then empty again before the metric above samples it).
    alarmAbove(
      'DeadLettersHandled',
      'exports failed after all retries (the DLQ consumer ran)',
      props.dlqConsumer.metricInvocations({ period: Duration.minutes(5), statistic: 'Sum' }),
    );
    // A record the handler sees fail is a partial batch failure: the invocation succeeds and
    // Lambda's Errors stays 0, so the handler publishes its own count of failed records.
    alarmAbove(
      'FinalizerErrors',
      'the finalizer failed (files are not being assembled)',
      new cloudwatch.Metric({
        namespace: METRICS_NAMESPACE,
        metricName: RECORD_FAILURES_METRIC,
        dimensionsMap: { service: SERVICE_NAME, function: 'finalizer' },
        period: Duration.minutes(5),
        statistic: 'Sum',
      }),
    );
    // The other half: an invocation the handler never finished (a timeout, running out of
    // memory, a crash at cold start such as a bad setting) publishes no custom metric at all,
    // and its records come back only after the whole visibility timeout (up to 90 minutes for a
    // finalize). Lambda counts those in the function's own Errors. No Throttles alarm: the event
    // source mappings cap concurrency themselves, and throttled chunk work shows in the chunk
    // queue's age below (or, after its retries, as a dead letter above).
    for (const [name, fn] of Object.entries(props.pipelineFunctions)) {
      alarmAbove(
        `${name}FunctionErrors`,
        `${name} invocations failed as a whole (timeout, out of memory or a crash): their records wait out the visibility timeout`,
        fn.metricErrors({ period: Duration.minutes(5), statistic: 'Sum' }),
      );
    }
    // A refused bot event is acknowledged (retrying a 4xx changes nothing), so it reaches no DLQ
    // and no error count: without this, a bot that stopped accepting our events goes unnoticed.
    alarmAbove(
      'BotRefusedEvents',
      'the bot refused export events for good (4xx): those managers were not told; check the webhook URL and signing secret',
      new cloudwatch.Metric({
        namespace: METRICS_NAMESPACE,
        metricName: BOT_REFUSALS_METRIC,
        dimensionsMap: { service: SERVICE_NAME, function: 'notifier' },
        period: Duration.minutes(5),
        statistic: 'Sum',
      }),
    );
    alarmAbove(
      'OldestChunkAge',
      'chunk messages wait too long: workers are throttled, failing or at max concurrency',
      props.chunkQueue.metricApproximateAgeOfOldestMessage({ period: Duration.minutes(1), statistic: 'Maximum' }),
      OLDEST_CHUNK_AGE_ALARM_SECONDS,
      3,
    );
  }
}
