import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { DeleteCommand, GetCommand, PutCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import type { CooldownAcquireInput, CooldownAcquireResult, CooldownStore } from '../../ports/cooldown-store';

const storedSchema = z.object({ pk: z.string(), holder: z.string(), expiresAt: z.number(), acquiredAt: z.string().optional() });

/**
 * COOLDOWNS_TABLE: `pk` S, `holder`, `acquiredAt` (ISO), `expiresAt` (epoch ms, what the
 * condition compares), `ttl` (epoch s, only so DynamoDB eventually collects the garbage).
 */
export class DynamoCooldownStore implements CooldownStore {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async acquire(input: CooldownAcquireInput): Promise<CooldownAcquireResult> {
    const nowMs = input.now.getTime();
    const expiresAt = nowMs + input.durationSeconds * 1000;
    // Two attempts: a loser reads the winner's item to compute Retry-After; if that item was
    // released in between, the key is free again and one more conditional put decides.
    for (let attempt = 0; attempt < 2; attempt += 1) {
      try {
        await this.client.send(
          new PutCommand({
            TableName: this.tableName,
            Item: {
              pk: input.key,
              holder: input.holder,
              acquiredAt: input.now.toISOString(),
              expiresAt,
              ttl: Math.ceil(expiresAt / 1000),
            },
            // An expired item still present (TTL lag) counts as free; so does our own (a retry).
            ConditionExpression: 'attribute_not_exists(pk) OR expiresAt < :now OR holder = :holder',
            ExpressionAttributeValues: { ':now': nowMs, ':holder': input.holder },
          }),
        );
        return { acquired: true, retryAfterSeconds: 0 };
      } catch (error) {
        if (!(error instanceof ConditionalCheckFailedException) && (error as { name?: string }).name !== 'ConditionalCheckFailedException') {
          throw error;
        }
      }
      const current = await this.client.send(
        new GetCommand({ TableName: this.tableName, Key: { pk: input.key }, ConsistentRead: true }),
      );
      const parsed = storedSchema.safeParse(current.Item);
      if (parsed.success && parsed.data.expiresAt >= nowMs) {
        return {
          acquired: false,
          retryAfterSeconds: Math.max(1, Math.ceil((parsed.data.expiresAt - nowMs) / 1000)),
          holder: parsed.data.holder,
          ...(parsed.data.acquiredAt ? { acquiredAt: parsed.data.acquiredAt } : {}),
        };
      }
    }
    // Lost twice to items that disappeared: heavy churn; ask the client to come back shortly.
    return { acquired: false, retryAfterSeconds: 1 };
  }

  async release(key: string, holder: string): Promise<void> {
    try {
      await this.client.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: { pk: key },
          ConditionExpression: 'holder = :holder',
          ExpressionAttributeValues: { ':holder': holder },
        }),
      );
    } catch (error) {
      if ((error as { name?: string }).name === 'ConditionalCheckFailedException') return;
      throw error;
    }
  }
}
