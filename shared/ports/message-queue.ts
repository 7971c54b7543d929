/** Where the pipeline sends work; message bodies are JSON with ids and ranges only, no data or secrets. */
export type QueueName = 'chunk' | 'finalize' | 'notify';

export type SendOptions = {
  /** Seconds before the message can be received (SQS DelaySeconds, 0-900). */
  delaySeconds?: number;
};

export interface MessageQueue {
  send(queue: QueueName, body: unknown, options?: SendOptions): Promise<void>;
  /** Sends many (in batches of 10 under the hood). */
  sendMany(queue: QueueName, bodies: readonly unknown[]): Promise<void>;
}
