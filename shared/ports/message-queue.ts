/** Where the pipeline sends work; message bodies are JSON with ids and ranges only, no data or secrets. */
export type QueueName = 'chunk' | 'finalize' | 'notify';

export interface MessageQueue {
  send(queue: QueueName, body: unknown): Promise<void>;
  /** Sends many (in batches of 10 under the hood). */
  sendMany(queue: QueueName, bodies: readonly unknown[]): Promise<void>;
}
