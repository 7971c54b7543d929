import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { KMSClient } from '@aws-sdk/client-kms';

/**
 * AWS clients, one per process. They are created lazily on first use rather than at import
 * time so the local stack can start the emulators on free ports and set the *_ENDPOINT
 * variables before any handler touches a client; after that they are reused across
 * invocations like module-scope clients.
 */
type Clients = { ddb: DynamoDBDocumentClient; s3: S3Client; sqs: SQSClient; kms: KMSClient };

let clients: Clients | undefined;

function localCredentials(endpoint: string | undefined) {
  // Emulators accept any credentials; fixed ones avoid the SDK's credential chain lookups.
  return endpoint ? { credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } } : {};
}

/** See the DynamoDB client below. */
export const DYNAMODB_MAX_ATTEMPTS = 8;

export function createClients(env: Record<string, string | undefined> = process.env): Clients {
  const region = env.AWS_REGION ?? 'us-east-1';
  const dynamoEndpoint = env.DYNAMODB_ENDPOINT;
  const s3Endpoint = env.S3_ENDPOINT;
  const sqsEndpoint = env.SQS_ENDPOINT;
  const ddb = DynamoDBDocumentClient.from(
    new DynamoDBClient({
      region,
      ...(dynamoEndpoint ? { endpoint: dynamoEndpoint } : {}),
      ...localCredentials(dynamoEndpoint),
      // Every chunk of an export updates one job item, and one item lives in one partition (at
      // most 1,000 write units a second): bursts of 40 chunk workers can be throttled. The
      // default 3 attempts give up within a second and fail the SQS record (5 receives, then the
      // DLQ fails the export); 8 with the SDK's backoff ride out a burst. (dynalite never
      // throttles, so only AWS shows this.)
      maxAttempts: DYNAMODB_MAX_ATTEMPTS,
    }),
    { marshallOptions: { removeUndefinedValues: true, convertClassInstanceToMap: false } },
  );
  const s3 = new S3Client({
    region,
    ...(s3Endpoint ? { endpoint: s3Endpoint, forcePathStyle: true } : {}),
    ...localCredentials(s3Endpoint),
    // Without this, streamed uploads get aws-chunked framing that s3rver stores verbatim.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const sqs = new SQSClient({ region, ...(sqsEndpoint ? { endpoint: sqsEndpoint } : {}), ...localCredentials(sqsEndpoint) });
  const kms = new KMSClient({ region });
  // The SDK's logger middleware builds a redacted copy of every request and response for its
  // logger even when that logger is the default no-op: measured at about 5% of a chunk's CPU
  // (every Query page walked twice). Nothing here reads SDK logs, so it is removed.
  for (const client of [ddb, s3, sqs, kms]) client.middlewareStack.remove('loggerMiddleware');
  return { ddb, s3, sqs, kms };
}

export function getClients(): Clients {
  clients ??= createClients();
  return clients;
}

/** For tests and the local stack when endpoints change (a new emulator set). */
export function resetClients(): void {
  clients?.ddb.destroy();
  clients?.s3.destroy();
  clients?.sqs.destroy();
  clients?.kms.destroy();
  clients = undefined;
}
