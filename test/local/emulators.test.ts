import { CreateBucketCommand, DeleteObjectsCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { request } from 'node:http';
import { createRequire } from 'node:module';
import { BatchWriteItemCommand, CreateTableCommand, DynamoDBClient, QueryCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulators, type Emulators } from '../../infra/local/emulators';

describe('the local S3 emulator', () => {
  let emulators: Emulators;
  let s3: S3Client;
  const Bucket = 'emulator-race';
  beforeAll(async () => {
    emulators = await startEmulators();
    s3 = new S3Client({
      endpoint: emulators.s3Endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    });
    await s3.send(new CreateBucketCommand({ Bucket }));
  });
  afterAll(async () => {
    s3?.destroy();
    await emulators?.stop();
  });

  it("a PUT racing the delete of its folder's last object lands (s3rver's unhandled stream error crashed the process)", async () => {
    // What a cancel does to a running export: it deletes parts/{id}/ while a chunk writes there.
    // s3rver removes a folder once its last object is gone; its PUT then opened no file, and the
    // stream's unhandled 'error' event (which vitest reports as an error of this file) killed
    // `npm start`. Unpatched, ~90% of these rounds failed so.
    const rounds = 60;
    const escaped: unknown[] = [];
    const onUncaught = (error: unknown): void => void escaped.push(error);
    process.on('uncaughtException', onUncaught);
    try {
      for (let i = 0; i < rounds; i++) {
        await s3.send(new PutObjectCommand({ Bucket, Key: `parts/${i}/first`, Body: 'x' }));
        await Promise.all([
          s3.send(new DeleteObjectsCommand({ Bucket, Delete: { Objects: [{ Key: `parts/${i}/first` }] } })),
          s3.send(new PutObjectCommand({ Bucket, Key: `parts/${i}/second`, Body: Buffer.from(`body-${i}`) })),
        ]);
      }
    } finally {
      process.off('uncaughtException', onUncaught);
    }
    expect(escaped).toEqual([]);
    const listed = await s3.send(new ListObjectsV2Command({ Bucket, Prefix: 'parts/' }));
    expect((listed.Contents ?? []).map((o) => o.Key).sort()).toEqual(Array.from({ length: rounds }, (_u, i) => `parts/${i}/second`).sort());
    for (let i = 0; i < rounds; i += 7) {
      const got = await s3.send(new GetObjectCommand({ Bucket, Key: `parts/${i}/second` }));
      expect(await got.Body!.transformToString()).toBe(`body-${i}`);
    }
  });

  it('a PUT broken off leaves the previous object whole, and a new key unseen (s3rver wrote in place: readers saw half an object)', async () => {
    await s3.send(new PutObjectCommand({ Bucket, Key: 'cut/existing', Body: 'ORIGINAL-CONTENT' }));
    /** Sends `sent` bytes of a declared 100,000-byte body, then breaks the connection off. */
    const brokenPut = (key: string, sent: string) =>
      new Promise<void>((resolve) => {
        const url = new URL(`${emulators.s3Endpoint}/${Bucket}/${key}`);
        const req = request({ host: url.hostname, port: url.port, path: url.pathname, method: 'PUT', headers: { 'Content-Length': '100000' } });
        req.on('error', () => resolve());
        req.write(sent, () => setTimeout(() => {
          req.destroy();
          resolve();
        }, 100));
      });
    await brokenPut('cut/existing', 'PARTIAL-XX');
    await brokenPut('cut/new', 'HALF');
    // Give the emulator a moment to see the connection gone and clean up.
    await new Promise((r) => setTimeout(r, 300));
    const got = await s3.send(new GetObjectCommand({ Bucket, Key: 'cut/existing' }));
    expect(await got.Body!.transformToString()).toBe('ORIGINAL-CONTENT');
    const listed = await s3.send(new ListObjectsV2Command({ Bucket, Prefix: 'cut/' }));
    expect((listed.Contents ?? []).map((o) => o.Key)).toEqual(['cut/existing']);
  });

  it('a body is stored whole, with the ETag S3 gives it (the MD5 of the body)', async () => {
    const body = Buffer.alloc(300_000, 7);
    const put = await s3.send(new PutObjectCommand({ Bucket, Key: 'plain/object', Body: body }));
    // A single PUT's ETag is the MD5 of the body, quoted.
    const { createHash } = await import('node:crypto');
    expect(put.ETag).toBe(JSON.stringify(createHash('md5').update(body).digest('hex')));
    const got = await s3.send(new GetObjectCommand({ Bucket, Key: 'plain/object' }));
    expect(Buffer.from(await got.Body!.transformToByteArray()).equals(body)).toBe(true);
    expect(got.ContentLength).toBe(body.length);
  });
});

describe('the local DynamoDB emulator', () => {
  let emulators: Emulators;
  let ddb: DynamoDBClient;
  // The iterator base class of the abstract-level copy dynalite uses (as the shim finds it).
  const fromDynalite = createRequire(createRequire(import.meta.url).resolve('dynalite'));
  const common = Object.getPrototypeOf((fromDynalite('abstract-level') as { AbstractIterator: { prototype: object } }).AbstractIterator.prototype) as {
    close(): Promise<void>;
  };
  const originalClose = common.close;
  let closes = 0;
  beforeAll(async () => {
    emulators = await startEmulators();
    ddb = new DynamoDBClient({ endpoint: emulators.dynamoEndpoint, region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
    common.close = function (this: unknown) {
      closes++;
      return originalClose.call(this);
    };
  });
  afterAll(async () => {
    common.close = originalClose;
    ddb?.destroy();
    await emulators?.stop();
  });

  it('closes the iterator of a Query page cut at 1 MB (dynalite left each one open, holding memory until the database closed)', async () => {
    await ddb.send(
      new CreateTableCommand({
        TableName: 'pages',
        BillingMode: 'PAY_PER_REQUEST',
        KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }, { AttributeName: 'sk', KeyType: 'RANGE' }],
        AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }, { AttributeName: 'sk', AttributeType: 'S' }],
      }),
    );
    // 60 items of ~25 KB in one partition: ~1.5 MB, so the first page stops at 1 MB.
    const pad = 'p'.repeat(25_000);
    for (let batch = 0; batch < 60; batch += 20) {
      await ddb.send(
        new BatchWriteItemCommand({
          RequestItems: { pages: Array.from({ length: 20 }, (_u, i) => ({ PutRequest: { Item: { pk: { S: 'one' }, sk: { S: String(batch + i).padStart(3, '0') }, pad: { S: pad } } } })) },
        }),
      );
    }
    const before = closes;
    const first = await ddb.send(new QueryCommand({ TableName: 'pages', KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': { S: 'one' } } }));
    expect(first.LastEvaluatedKey).toBeDefined();
    expect(first.Items!.length).toBeLessThan(60);
    // The cut page's stream is destroyed as the answer goes out: its iterator closes then.
    await expect.poll(() => closes - before, { timeout: 2_000 }).toBeGreaterThanOrEqual(1);
  });
});
