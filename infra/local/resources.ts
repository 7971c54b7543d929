import { CreateTableCommand, DescribeTableCommand, type CreateTableCommandInput, type DynamoDBClient, type KeySchemaElement } from '@aws-sdk/client-dynamodb';
import { CreateBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import { CreateQueueCommand, GetQueueAttributesCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { JOB_INDEX_NAME, JOB_INDEX_PROJECTION } from '../../shared/adapters/aws/export-table-layout';

/** Table names of the local stack; the key schemas are the ones docs/contracts.md fixes for the CDK stack. */
export const LOCAL_TABLES = {
  exports: 'exports',
  cooldowns: 'cooldowns',
  audit: 'audit',
  cases: 'cases',
  users: 'users',
  workspace: 'workspace',
} as const;

export const LOCAL_BUCKET = 'export-bucket';

/**
 * `gsi1`: the table has its index on `gsi1pk`/`gsi1sk`, named `gsi1Name` (`gsi1` unless said);
 * `gsi1KeysOnly`: it projects keys only (KEYS_ONLY), as the CDK stack declares it; else ALL.
 */
export type TableSpec = { name: string; sortKey: boolean; gsi1: boolean; gsi1Name?: string; gsi1KeysOnly?: boolean };

/** The exports table (jobs, tokens, idempotency keys) under `name`, its index as the CDK stack's. */
export function exportsTableSpec(name: string): TableSpec {
  // The name the store queries, not a second 'gsi1': moving the list to another index (docs/deploy.md,
  // "Changing a table's index") changes the constant, and the local table must follow it.
  return { name, sortKey: true, gsi1: true, gsi1Name: JOB_INDEX_NAME, gsi1KeysOnly: JOB_INDEX_PROJECTION === 'KEYS_ONLY' };
}

const TABLE_SPECS: TableSpec[] = [
  exportsTableSpec(LOCAL_TABLES.exports),
  { name: LOCAL_TABLES.cooldowns, sortKey: false, gsi1: false },
  { name: LOCAL_TABLES.audit, sortKey: true, gsi1: true },
  { name: LOCAL_TABLES.cases, sortKey: true, gsi1: false },
  { name: LOCAL_TABLES.users, sortKey: true, gsi1: false },
  { name: LOCAL_TABLES.workspace, sortKey: true, gsi1: false },
];

/** The CreateTable input for a table of the agreed shape (`pk`[, `sk`][, GSI `gsi1`]), on demand. */
export function tableInput(spec: TableSpec): CreateTableCommandInput {
  const keySchema: KeySchemaElement[] = [{ AttributeName: 'pk', KeyType: 'HASH' }];
  const attributes = [{ AttributeName: 'pk', AttributeType: 'S' as const }];
  if (spec.sortKey) {
    keySchema.push({ AttributeName: 'sk', KeyType: 'RANGE' });
    attributes.push({ AttributeName: 'sk', AttributeType: 'S' });
  }
  if (spec.gsi1) {
    attributes.push({ AttributeName: 'gsi1pk', AttributeType: 'S' }, { AttributeName: 'gsi1sk', AttributeType: 'S' });
  }
  return {
    TableName: spec.name,
    KeySchema: keySchema,
    AttributeDefinitions: attributes,
    BillingMode: 'PAY_PER_REQUEST',
    ...(spec.gsi1
      ? {
          GlobalSecondaryIndexes: [
            {
              IndexName: spec.gsi1Name ?? 'gsi1',
              KeySchema: [
                { AttributeName: 'gsi1pk', KeyType: 'HASH' },
                { AttributeName: 'gsi1sk', KeyType: 'RANGE' },
              ],
              Projection: { ProjectionType: spec.gsi1KeysOnly ? 'KEYS_ONLY' : 'ALL' },
            },
          ],
        }
      : {}),
  };
}

async function tableExists(ddb: DynamoDBClient, name: string): Promise<boolean> {
  try {
    await ddb.send(new DescribeTableCommand({ TableName: name }));
    return true;
  } catch (error) {
    if ((error as { name?: string }).name === 'ResourceNotFoundException') return false;
    throw error;
  }
}

/** Creates the tables that do not exist yet (npm start reuses the ones on disk). */
export async function createTables(ddb: DynamoDBClient): Promise<void> {
  for (const spec of TABLE_SPECS) {
    if (await tableExists(ddb, spec.name)) continue;
    await ddb.send(new CreateTableCommand(tableInput(spec)));
  }
  // dynalite keeps new tables CREATING for createTableMs; wait until all are ACTIVE.
  for (const spec of TABLE_SPECS) {
    for (let i = 0; i < 100; i++) {
      const result = await ddb.send(new DescribeTableCommand({ TableName: spec.name }));
      if (result.Table?.TableStatus === 'ACTIVE') break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

export async function createBucket(s3: S3Client, bucket: string): Promise<void> {
  try {
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  } catch (error) {
    const name = (error as { name?: string }).name;
    if (name !== 'BucketAlreadyOwnedByYou' && name !== 'BucketAlreadyExists') throw error;
  }
}

export type QueueSettings = {
  /** Seconds a received message stays invisible (AWS: >= 6x the function timeout). */
  visibilityTimeout: number;
  /** Receives before SQS moves a message to the queue's DLQ. */
  maxReceiveCount: number;
};

export type LocalQueue = { name: string; url: string; arn: string; dlqUrl: string; dlqArn: string };
export type LocalQueues = { chunk: LocalQueue; finalize: LocalQueue; notify: LocalQueue };

async function createQueue(sqs: SQSClient, name: string, attributes: Record<string, string>): Promise<{ url: string; arn: string }> {
  const created = await sqs.send(new CreateQueueCommand({ QueueName: name, Attributes: attributes }));
  const url = created.QueueUrl;
  if (!url) throw new Error(`queue ${name} has no URL`);
  const attrs = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['QueueArn'] }));
  const arn = attrs.Attributes?.QueueArn;
  if (!arn) throw new Error(`queue ${name} has no ARN`);
  return { url, arn };
}

/** Each work queue gets its own DLQ with a redrive policy, as in the CDK stack. */
export async function createQueues(sqs: SQSClient, settings: Record<keyof LocalQueues, QueueSettings>): Promise<LocalQueues> {
  const make = async (name: keyof LocalQueues): Promise<LocalQueue> => {
    const dlq = await createQueue(sqs, `${name}-dlq`, { VisibilityTimeout: '30', MessageRetentionPeriod: '1209600' });
    const queue = await createQueue(sqs, name, {
      VisibilityTimeout: String(settings[name].visibilityTimeout),
      RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlq.arn, maxReceiveCount: settings[name].maxReceiveCount }),
    });
    return { name, url: queue.url, arn: queue.arn, dlqUrl: dlq.url, dlqArn: dlq.arn };
  };
  return { chunk: await make('chunk'), finalize: await make('finalize'), notify: await make('notify') };
}
