import { describe, expect, it } from 'vitest';
import { S3Client } from '@aws-sdk/client-s3';
import { S3ObjectStore } from '../../shared/adapters/aws/s3-object-store';

/**
 * On AWS a GET or HEAD of a missing key is a 404 only for a caller allowed s3:ListBucket on the
 * bucket; our roles hold ListBucket only under their prefixes (an s3:prefix condition that a GET
 * does not carry), so S3 answers 403 instead. Before, getBuffer/head threw AccessDenied for a
 * missing key, so a part deleted by a cancel or a definition gone after a day was retried into
 * a dead letter instead of being read as "missing". A fake S3 (a middleware) plays that IAM rule.
 */
function fakeS3(stored: Set<string>, opts: { denyGetOf?: string; denyList?: boolean } = {}) {
  const s3 = new S3Client({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } });
  const denied = () => Object.assign(new Error('Access Denied'), { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } });
  s3.middlewareStack.add(
    (_next, context) => async (args) => {
      const input = args.input as { Key?: string; Prefix?: string; MaxKeys?: number };
      if (context.commandName === 'GetObjectCommand' || context.commandName === 'HeadObjectCommand') {
        // Missing: 403, as for a role without an unconditional ListBucket. Present but denied: 403.
        if (!stored.has(input.Key ?? '') || input.Key === opts.denyGetOf) throw denied();
        const body = { transformToByteArray: async () => new TextEncoder().encode('data') };
        return { output: { Body: body, ContentLength: 4, Metadata: {}, $metadata: { httpStatusCode: 200 } }, response: {} };
      }
      if (context.commandName === 'ListObjectsV2Command') {
        if (opts.denyList) throw denied();
        const keys = [...stored].filter((k) => k.startsWith(input.Prefix ?? '')).sort().slice(0, input.MaxKeys ?? 1000);
        return { output: { Contents: keys.map((Key) => ({ Key, Size: 4 })), IsTruncated: false, $metadata: { httpStatusCode: 200 } }, response: {} };
      }
      throw new Error(`unexpected ${String(context.commandName)}`);
    },
    { step: 'initialize', name: 'fakeS3' },
  );
  return s3;
}

describe('S3ObjectStore: a missing key behind a 403', () => {
  const keys = new Set(['parts/e1/cases/000003.meta.json', 'parts/e1/cases/000004']);

  it('reads as missing (null) when the key is not there, though a longer key shares its prefix', async () => {
    const objects = new S3ObjectStore(fakeS3(keys), 'bucket');
    expect(await objects.getBuffer('parts/e1/cases/000003')).toBeNull();
    expect(await objects.head('parts/e1/cases/000003')).toBeNull();
    expect((await objects.getBuffer('parts/e1/cases/000004'))?.toString()).toBe('data');
  });

  it('stays an error when the key is there (a real denial) or the list is refused too', async () => {
    const denied = new S3ObjectStore(fakeS3(keys, { denyGetOf: 'parts/e1/cases/000004' }), 'bucket');
    await expect(denied.getBuffer('parts/e1/cases/000004')).rejects.toMatchObject({ name: 'AccessDenied' });
    const noList = new S3ObjectStore(fakeS3(keys, { denyList: true }), 'bucket');
    await expect(noList.getBuffer('parts/e1/cases/000003')).rejects.toMatchObject({ name: 'AccessDenied' });
    await expect(noList.head('parts/e1/cases/000003')).rejects.toMatchObject({ name: 'AccessDenied' });
  });
});
