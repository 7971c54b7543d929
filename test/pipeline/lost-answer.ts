import { DynamoDBClient, type UpdateItemCommandInput } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { DynamoExportStore } from '../../shared/adapters/aws/dynamo-export-store';
import type { LocalStack } from '../../infra/local/stack';

/**
 * A DynamoExportStore on the emulator whose client loses DynamoDB's answer to the first
 * UpdateItem that `match` picks: the write commits, then the answer is replaced by a transient
 * network error (ECONNRESET, as a connection reset after the commit), and the SDK's own retry
 * middleware sends the same write again, as it does on AWS (standard mode, 3 attempts). What
 * the store sees is the retry's result: for a conditional write, a failed condition against its
 * own committed write.
 *
 * The error is thrown in the deserialize step, inside the retry loop, so nothing here stands in
 * for the SDK: `lost.sends` counts the matching writes that reached DynamoDB (the lost one and
 * the SDK's retry of it make 2).
 */
export function storeLosingAnswer(stack: LocalStack, match: (input: UpdateItemCommandInput) => boolean) {
  const client = new DynamoDBClient({
    region: 'us-east-1',
    endpoint: stack.env.DYNAMODB_ENDPOINT,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    maxAttempts: 3,
  });
  const lost = { answers: 0, sends: 0 };
  let armed = true;
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const input = args.input as UpdateItemCommandInput;
      const picked = context.commandName === 'UpdateItemCommand' && match(input);
      if (picked) lost.sends++;
      const result = await next(args);
      // One lost answer per store: the flag is claimed before the throw, so the retry goes through.
      if (picked && armed) {
        armed = false;
        lost.answers++;
        throw Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET', $metadata: {} });
      }
      return result;
    },
    { step: 'deserialize', name: 'loseOneAnswer' },
  );
  const ddb = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  return { store: new DynamoExportStore(ddb, stack.tables.exports), lost };
}

/** The UpdateItem of markChunkDone for `chunkId` (its conditional set-add). */
export const setAddOf =
  (chunkId: string) =>
  (input: UpdateItemCommandInput): boolean =>
    (input.UpdateExpression ?? '').startsWith('ADD doneChunks') && input.ExpressionAttributeValues?.[':id']?.S === chunkId;

/** The UpdateItem of setStatus moving the job to `to`. */
export const transitionTo =
  (to: string) =>
  (input: UpdateItemCommandInput): boolean =>
    (input.ConditionExpression ?? '').includes('#status IN') && input.ExpressionAttributeValues?.[':to']?.S === to;
