import { Duration } from 'aws-cdk-lib';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

export type WorkQueueProps = {
  /** Timeout of the function that consumes this queue: the visibility timeout is derived from it. */
  consumerTimeout: Duration;
  /** Timeout of the dead-letter consumer (functions/dlq), for the DLQ's own visibility timeout. */
  dlqConsumerTimeout: Duration;
  /** Receives before a message moves to the DLQ (default DEFAULT_MAX_RECEIVE_COUNT). */
  maxReceiveCount?: number;
};

/**
 * Work is idempotent, so a few retries absorb throttling and cold-start timeouts; more would only
 * delay the "export failed" message the manager is waiting for. 5, not fewer: AWS's Lambda
 * guidance for SQS event sources asks for at least 5, because an invocation Lambda could not
 * start (the account's concurrency pool exhausted: the mappings' maximum concurrency does not
 * reserve anything) still counts as a receive: with 4, a few throttles in a row could
 * dead-letter a healthy export. With the SQS handler's retry delays (30 s, 60 s, 120 s, 240 s,
 * then none on the last receive) a message that keeps failing reaches its DLQ about 7.5 minutes
 * after its first failure. A throttled receive never reaches the handler, so it gets no short
 * delay: unless Lambda's own retries of the invoke succeed, it comes back after the whole
 * visibility timeout (the Throttles alarms in service-alarms.ts say so at once).
 */
export const DEFAULT_MAX_RECEIVE_COUNT = 5;

/**
 * AWS's guidance for Lambda event sources: visibility timeout at least 6x the function timeout,
 * so a message is not handed to a second worker while the first (with its batching window and
 * retries after throttling) is still on it. Lambda's 15-minute maximum gives 90 minutes, well
 * under the 12 hours SQS allows (a stack test holds every queue to that).
 */
export const VISIBILITY_TIMEOUT_FACTOR = 6;

/** A work queue with its dead-letter queue and redrive policy, both TLS-only and SSE-encrypted. */
export class WorkQueue extends Construct {
  readonly queue: sqs.Queue;
  readonly deadLetterQueue: sqs.Queue;
  /** The redrive policy's count; the consumers get it too (`*_MAX_RECEIVE_COUNT`), to know a record's last receive. */
  readonly maxReceiveCount: number;

  constructor(scope: Construct, id: string, props: WorkQueueProps) {
    super(scope, id);
    this.maxReceiveCount = props.maxReceiveCount ?? DEFAULT_MAX_RECEIVE_COUNT;
    this.deadLetterQueue = new sqs.Queue(this, 'Dlq', {
      // Not an archive: the dlq function consumes and deletes every dead letter within seconds
      // (what stays is the job's failed status or notifyError and the audit "failed" event).
      // The retention matters only for a dead letter that function keeps failing on: it stays
      // here, raising its DlqNotEmpty alarm, until the function is fixed. The longest SQS allows, so
      // a broken consumer noticed after a long weekend has lost nothing.
      retentionPeriod: Duration.days(14),
      visibilityTimeout: Duration.seconds(props.dlqConsumerTimeout.toSeconds() * VISIBILITY_TIMEOUT_FACTOR),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });
    this.queue = new sqs.Queue(this, 'Queue', {
      visibilityTimeout: Duration.seconds(props.consumerTimeout.toSeconds() * VISIBILITY_TIMEOUT_FACTOR),
      // Longer than the link window is pointless; 4 days covers an outage of the consumers.
      retentionPeriod: Duration.days(4),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: this.maxReceiveCount },
    });
  }
}
