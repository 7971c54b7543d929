import { Duration } from 'aws-cdk-lib';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

export type WorkQueueProps = {
  /** Timeout of the function that consumes this queue: the visibility timeout is derived from it. */
  consumerTimeout: Duration;
  /** Timeout of the dead-letter consumer (functions/dlq), for the DLQ's own visibility timeout. */
  dlqConsumerTimeout: Duration;
  /** Receives before a message moves to the DLQ. */
  maxReceiveCount?: number;
};

/**
 * AWS's guidance for Lambda event sources: visibility timeout at least 6x the function timeout,
 * so a message is not handed to a second worker while the first (with its batching window and
 * retries after throttling) is still on it.
 */
export const VISIBILITY_TIMEOUT_FACTOR = 6;

/** A work queue with its dead-letter queue and redrive policy, both TLS-only and SSE-encrypted. */
export class WorkQueue extends Construct {
  readonly queue: sqs.Queue;
  readonly deadLetterQueue: sqs.Queue;

  constructor(scope: Construct, id: string, props: WorkQueueProps) {
    super(scope, id);
    this.deadLetterQueue = new sqs.Queue(this, 'Dlq', {
      // The longest SQS allows: a failed export must stay inspectable after a long weekend.
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
      deadLetterQueue: {
        queue: this.deadLetterQueue,
        // Work is idempotent, so a few retries absorb throttling and cold-start timeouts; more
        // would only delay the "export failed" message the manager is waiting for.
        maxReceiveCount: props.maxReceiveCount ?? 4,
      },
    });
  }
}
