import { ArnFormat, Duration, Stack } from 'aws-cdk-lib';
import type * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { API_CLEANUP_FAILURE_MESSAGES, API_CLEANUP_FAILURES_METRIC, BOT_REFUSALS_METRIC, CONFIG_ERRORS_METRIC, PIPELINE_FUNCTION_METRIC_NAMES, INTERNAL_FAILURE_CODES, INTERNAL_FAILURES_METRIC, METRICS_NAMESPACE, RECORD_FAILURES_METRIC, SERVICE_NAME } from '../../shared/metric-names';

export type ServiceAlarmsProps = {
  deadLetterQueues: Record<string, sqs.IQueue>;
  chunkQueue: sqs.IQueue;
  /** The finalize and notify work queues: their oldest message's age is alarmed too. */
  finalizeQueue?: sqs.IQueue;
  notifyQueue?: sqs.IQueue;
  dlqConsumer: lambda.IFunction;
  /** The SQS-driven functions (chunk, finalizer, notifier, dlq), by alarm name prefix. */
  pipelineFunctions: Record<string, lambda.IFunction>;
  alarmEmail?: string | undefined;
  /** The REST API: its 5xx answers are alarmed. */
  restApi?: apigw.RestApi;
  /** The api function's log group: its failed best-effort clean-ups are counted and alarmed. */
  apiLogGroup?: logs.ILogGroup;
  /** The API's web ACL (api-firewall.ts): its name and its rules' metric names. */
  firewall?: { webAclName: string; ruleMetricNames: readonly string[] };
};

/**
 * A manager waiting on a 1M-row export notices a stall within minutes; so should we. A chunk
 * message is counted in the age while its chunk runs, which may take up to the function's
 * 15-minute timeout (a large case day is one chunk), so the threshold is that run plus 15 minutes
 * of waiting, far above a normal backlog, and still well below the link-window scale where users
 * start re-requesting. A throttled or failed chunk otherwise showed only after the chunk queue's
 * 90-minute visibility timeout.
 */
export const OLDEST_CHUNK_AGE_ALARM_SECONDS = 30 * 60;

/**
 * The finalize queue's: a finalize runs up to its 15-minute timeout while its message is in
 * flight (and counted in the age), and follow-up messages wait 2 minutes before they can be
 * received; 30 minutes is past both. A throttled or failing finalizer otherwise waited 90
 * minutes a receive (the visibility timeout), about 7.5 hours before its dead letter alarmed, and a
 * disabled event source mapping let messages expire after 4 days without ever reaching a DLQ.
 */
export const OLDEST_FINALIZE_AGE_ALARM_SECONDS = 30 * 60;

/** The notify queue's: a delivery takes under a minute, but a bot's Retry-After may hold one 15 minutes. */
export const OLDEST_NOTIFY_AGE_ALARM_SECONDS = 20 * 60;

/**
 * The DLQ consumer handles and deletes a dead letter within seconds, so it shows in at most two
 * 5-minute periods (one straddling their boundary). A message in the DLQ in this many periods in a
 * row (10-15 minutes) is one the consumer keeps failing on, or is not receiving at all.
 */
export const DLQ_MESSAGES_ALARM_PERIODS = 3;

/** Alarms on the failure paths of the pipeline, all published to one SNS topic. */
export class ServiceAlarms extends Construct {
  readonly topic: sns.Topic;
  readonly alarms: cloudwatch.Alarm[] = [];

  constructor(scope: Construct, id: string, props: ServiceAlarmsProps) {
    super(scope, id);
    this.topic = new sns.Topic(this, 'Topic', { displayName: 'export-service alarms', enforceSSL: true });
    // The on-call address (cdk -c alarmEmail=…): without a subscriber every alarm below fires into
    // a topic nobody reads. (This line was lost once in a refactor; a stack test now holds it.)
    if (props.alarmEmail) this.topic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
    // enforceSSL makes CDK write a topic policy (its Deny of non-TLS publishes), and a topic policy
    // replaces SNS's default one, which is what let CloudWatch publish: without this statement every
    // alarm below would fire into a topic that refuses it. Only alarms of this account and region.
    const { account, region } = Stack.of(this);
    this.topic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AllowCloudWatchAlarmsToPublish',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [this.topic.topicArn],
        conditions: {
          StringEquals: { 'aws:SourceAccount': account },
          ArnLike: {
            'aws:SourceArn': Stack.of(this).formatArn({ service: 'cloudwatch', region, account, resource: 'alarm', resourceName: '*', arnFormat: ArnFormat.COLON_RESOURCE_NAME }),
          },
        },
      }),
    );
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

    // The DLQ consumer drains these queues within seconds, so a message that stays means the
    // consumer itself is failing: jobs are stuck in "running" and their managers were never told.
    // By count, visible + in flight (a message the consumer keeps failing is hidden for the 3-minute
    // visibility timeout almost all the time), as the Maximum per 5 minutes, in
    // DLQ_MESSAGES_ALARM_PERIODS periods in a row so a dead letter handled normally does not trip
    // it. Not by ApproximateAgeOfOldestMessage: SQS leaves out of that metric any message received
    // 3 or more times, so the dead letter the consumer keeps failing on (received every 3 minutes)
    // drops out of it after 6 minutes and an age alarm never fires for exactly this case. The count
    // also covers what the age alarm did (a consumer not receiving at all), so there is no age alarm.
    // A steady stream of dead letters for 15 minutes also trips it: worth a look just the same.
    for (const [name, queue] of Object.entries(props.deadLetterQueues)) {
      const sampled = { period: Duration.minutes(5), statistic: 'Maximum' };
      alarmAbove(
        `${name}DlqNotEmpty`,
        `${name} dead-letter queue has held messages for ${DLQ_MESSAGES_ALARM_PERIODS * 5} minutes: the DLQ consumer is failing on them or not receiving them`,
        new cloudwatch.MathExpression({
          expression: 'visible + inFlight',
          usingMetrics: {
            visible: queue.metricApproximateNumberOfMessagesVisible(sampled),
            inFlight: queue.metricApproximateNumberOfMessagesNotVisible(sampled),
          },
          label: `${name} DLQ messages (visible + in flight)`,
          period: Duration.minutes(5),
        }),
        0,
        DLQ_MESSAGES_ALARM_PERIODS,
      );
    }
    // The DLQ consumer's own count of records it failed (a partial batch failure, so its Errors stay
    // 0): a dead letter whose export is not yet marked failed, its manager not yet told. It comes back
    // after the 3-minute visibility timeout; this says so at the first failure, the alarm above once
    // it keeps failing.
    alarmAbove(
      'DlqRecordFailures',
      'the DLQ consumer failed dead letters: a given-up chunk or finalize whose export is not yet marked failed (its manager not told), a notification whose failure is not yet recorded, or a cancel/revoke follow-up not yet finished; its "record failed" log lines name the export',
      new cloudwatch.Metric({
        namespace: METRICS_NAMESPACE,
        metricName: RECORD_FAILURES_METRIC,
        dimensionsMap: { service: SERVICE_NAME, function: 'dlq' },
        period: Duration.minutes(5),
        statistic: 'Sum',
      }),
    );
    // Any dead letter at all is an export that failed after its retries: worth a look even when
    // the consumer handled it (the DLQ is then empty again long before the DlqNotEmpty alarms).
    alarmAbove(
      'DeadLettersHandled',
      'dead letters handled (the DLQ consumer ran): a chunk or finalize that kept failing (its export failed, the bot told), a notification the bot never took (recorded on the job), or a cancel/revoke follow-up tried once more; its "dead letter handled" log line gives the queue, the outcome and the export',
      props.dlqConsumer.metricInvocations({ period: Duration.minutes(5), statistic: 'Sum' }),
    );
    // A record the handler sees fail is a partial batch failure: the invocation succeeds and
    // Lambda's Errors stays 0, so the handler publishes its own count of failed records.
    alarmAbove(
      'FinalizerErrors',
      'finalizer records failed: a finalize (files are not being assembled) or a cancel/revoke follow-up (a trail entry or a deletion not yet done) will be retried; its "record failed" log lines name the export and the cause',
      new cloudwatch.Metric({
        namespace: METRICS_NAMESPACE,
        metricName: RECORD_FAILURES_METRIC,
        dimensionsMap: { service: SERVICE_NAME, function: 'finalizer' },
        period: Duration.minutes(5),
        statistic: 'Sum',
      }),
    );
    // One of our metrics summed over the functions that publish it, per 5 minutes.
    const sumOver = (metricName: string, functions: readonly string[], label: string) => {
      const usingMetrics = Object.fromEntries(
        functions.map((fn) => [
          `m_${fn}`,
          new cloudwatch.Metric({ namespace: METRICS_NAMESPACE, metricName, dimensionsMap: { service: SERVICE_NAME, function: fn }, period: Duration.minutes(5), statistic: 'Sum' }),
        ]),
      );
      return new cloudwatch.MathExpression({ expression: Object.keys(usingMetrics).join(' + '), usingMetrics, label, period: Duration.minutes(5) });
    };
    // Exports failed at once by a code that means the service went wrong (a part that does not
    // match its meta, encryption parameters that do not open, data expired before the export was
    // built): no retry and no dead letter follows, so no alarm above sees them. Chunk and
    // finalizer both count them (INTERNAL_FAILURES_METRIC).
    alarmAbove(
      'ExportsFailedInternally',
      `exports failed with ${INTERNAL_FAILURE_CODES.join(', ')}: the service, not the request, went wrong; the job's error and the chunk/finalizer logs (by exportId) say which`,
      sumOver(INTERNAL_FAILURES_METRIC, ['chunk', 'finalizer'], 'exports failed internally'),
    );
    // A bad setting fails every record of every batch (each comes back only after its queue's
    // visibility timeout, so hours pass before anything dead-letters): the chunk function and the
    // notifier had no alarm on their record failures, and their queues' age alarms fire only
    // 20-30 minutes later, without saying why.
    alarmAbove(
      'InvalidConfiguration',
      'a pipeline function refuses every batch for a missing or bad setting: its "invalid configuration" log line names the variable; records wait (queue visibility timeouts) until it is fixed',
      sumOver(CONFIG_ERRORS_METRIC, PIPELINE_FUNCTION_METRIC_NAMES, 'batches refused for configuration'),
    );
    // The other half: an invocation the handler never finished (a timeout, running out of
    // memory, a crash at cold start) publishes no custom metric at all (a bad setting does not
    // crash it: the handler counts every record of the batch in recordFailures and fails them),
    // and its records come back only after the whole visibility timeout (90 minutes for a chunk
    // or a finalize). Lambda counts those in the function's own Errors.
    // And an invocation Lambda never started: the mappings' maximum concurrency caps each
    // mapping but reserves nothing, so they (61 at once with the default chunkConcurrency) share
    // the account's regional pool with the api and everything else in the account, and a new
    // account's quota may be far smaller. A throttled receive reaches no handler (no retry delay,
    // no custom metric), still counts toward maxReceiveCount and, unless Lambda's own retries get
    // through, waits out the visibility timeout: a healthy export hours late, or dead-lettered.
    // Any throttle at all is the pool running out, so it alarms at once, before the age alarms.
    for (const [name, fn] of Object.entries(props.pipelineFunctions)) {
      alarmAbove(
        `${name}FunctionErrors`,
        `${name} invocations failed as a whole (timeout, out of memory or a crash): their records wait out the visibility timeout`,
        fn.metricErrors({ period: Duration.minutes(5), statistic: 'Sum' }),
      );
      alarmAbove(
        `${name}Throttles`,
        `${name} invocations were throttled (the account's Lambda concurrency is used up): each throttled receive counts toward the DLQ and its records may wait out the visibility timeout; check aws lambda get-account-settings`,
        fn.metricThrottles({ period: Duration.minutes(5), statistic: 'Sum' }),
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
    // The per-IP rules answer 429 without the request reaching API Gateway, so neither the
    // api's logs nor its metrics show it: a flood from one address, or real callers behind one
    // office NAT sharing a budget (then the limits need raising: context waf*RateLimitPerIp).
    // Per rule and summed, by the rules' own metric names, not the ACL-wide `ALL`.
    if (props.firewall && props.firewall.ruleMetricNames.length > 0) {
      const { region } = Stack.of(this);
      const { webAclName, ruleMetricNames } = props.firewall;
      const blocked = Object.fromEntries(
        ruleMetricNames.map((rule, i) => [
          `rule${i}`,
          new cloudwatch.Metric({
            namespace: 'AWS/WAFV2',
            metricName: 'BlockedRequests',
            dimensionsMap: { WebACL: webAclName, Region: region, Rule: rule },
            period: Duration.minutes(5),
            statistic: 'Sum',
          }),
        ]),
      );
      alarmAbove(
        'ApiRateLimited',
        'the web ACL answered requests 429 (per-IP rate limit): a flood from one address, or callers behind one NAT over the limit; see the BlockedRequests metric per rule',
        new cloudwatch.MathExpression({
          expression: Object.keys(blocked).join(' + '),
          usingMetrics: blocked,
          label: 'requests blocked by the per-IP rate rules',
          period: Duration.minutes(5),
        }),
      );
    }
    // The api maps every refusal to a 4xx; a 5xx is a bug or an outage behind it (an audit or
    // job table write failing, the function timing out): every download and export request then
    // fails, and the handler's failures are caught responses, not Lambda Errors, so none of the
    // pipeline alarms above sees them. API Gateway counts them all, its own 502/504 included.
    if (props.restApi) {
      alarmAbove(
        'ApiServerErrors',
        'the API answered 5xx (an internal error, a dependency such as the audit or job table failing, or a timeout): requests and downloads are failing',
        props.restApi.metricServerError({ period: Duration.minutes(5), statistic: 'Sum' }),
      );
    }
    // The api's best-effort clean-ups (a cancel or revoke follow-up not sent, a canceled or revoked
    // export's file or parts not deleted) only log a WARN line: the revocation or cancel stands,
    // but with the follow-up not sent only the request's own steps ran, and a file not deleted
    // waits for the follow-up or the lifecycle rule. The api publishes no metrics, so its lines
    // are counted by a metric filter.
    if (props.apiLogGroup) {
      const cleanups = new logs.MetricFilter(this, 'ApiCleanupFailuresFilter', {
        logGroup: props.apiLogGroup,
        metricNamespace: METRICS_NAMESPACE,
        metricName: API_CLEANUP_FAILURES_METRIC,
        filterPattern: logs.FilterPattern.any(...API_CLEANUP_FAILURE_MESSAGES.map((glob) => logs.FilterPattern.stringValue('$.message', '=', glob))),
        metricValue: '1',
      });
      alarmAbove(
        'ApiCleanupFailures',
        "the api could not send a cancel/revoke follow-up or delete a canceled or revoked export's file or parts (the revoke or cancel took effect; the api's WARN lines name the export and the error)",
        cleanups.metric({ period: Duration.minutes(5), statistic: 'Sum' }),
      );
    }
    // Each work queue's oldest message, by the minute, 3 minutes running over its threshold.
    const ageAlarms: [string, string, sqs.IQueue | undefined, number][] = [
      ['OldestChunkAge', 'chunk messages wait too long: workers are throttled, failing or at max concurrency', props.chunkQueue, OLDEST_CHUNK_AGE_ALARM_SECONDS],
      [
        'OldestFinalizeAge',
        'finalize messages (and cancel/revoke follow-ups) wait too long: the finalizer is throttled, failing or not receiving; files are not being made',
        props.finalizeQueue,
        OLDEST_FINALIZE_AGE_ALARM_SECONDS,
      ],
      [
        'OldestNotifyAge',
        'notify messages wait too long: the notifier is throttled, failing or not receiving, or the bot keeps asking to retry later; managers are not told',
        props.notifyQueue,
        OLDEST_NOTIFY_AGE_ALARM_SECONDS,
      ],
    ];
    for (const [alarmId, description, queue, seconds] of ageAlarms) {
      if (queue) alarmAbove(alarmId, description, queue.metricApproximateAgeOfOldestMessage({ period: Duration.minutes(1), statistic: 'Maximum' }), seconds, 3);
    }
  }
}
