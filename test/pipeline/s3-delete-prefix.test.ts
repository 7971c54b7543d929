import { describe, expect, it } from 'vitest';
import { S3Client } from '@aws-sdk/client-s3';
import { S3ObjectStore } from '../../shared/adapters/aws/s3-object-store';
import { discardExportFile } from '../../shared/app/pipeline-steps';
import type { PipelineLog } from '../../shared/ports/pipeline-log';

/**
 * S3ObjectStore.deletePrefix against a fake S3 (a middleware answering every command): DeleteObjects
 * answers 200 with Quiet even when keys fail, listing them in `Errors`. Before, those were ignored,
 * so the clean-up of a failed export's file logged "deleted" and acknowledged while the file stayed.
 */
function fakeS3(keys: string[], failing: (key: string) => boolean) {
  const stored = new Set(keys);
  const deleteCalls: number[] = [];
  const s3 = new S3Client({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } });
  s3.middlewareStack.add(
    (_next, context) => async (args) => {
      const input = args.input as { Prefix?: string; Delete?: { Objects: { Key: string }[] } };
      let output: Record<string, unknown> = {};
      if (context.commandName === 'ListObjectsV2Command') {
        const prefix = input.Prefix ?? '';
        output = { Contents: [...stored].filter((k) => k.startsWith(prefix)).map((Key) => ({ Key, Size: 1 })), IsTruncated: false };
      } else if (context.commandName === 'DeleteObjectsCommand') {
        const objects = input.Delete?.Objects ?? [];
        deleteCalls.push(objects.length);
        const errors = objects
          .filter((o) => failing(o.Key))
          .map((o) => ({ Key: o.Key, Code: 'InternalError', Message: 'We encountered an internal error. Please try again.' }));
        for (const o of objects) if (!failing(o.Key)) stored.delete(o.Key);
        output = errors.length > 0 ? { Errors: errors } : {};
      } else {
        throw new Error(`unexpected ${String(context.commandName)}`);
      }
      return { output: { ...output, $metadata: { httpStatusCode: 200 } }, response: {} };
    },
    { step: 'initialize', name: 'fakeS3' },
  );
  return { s3, stored, deleteCalls };
}

function recordingLog(lines: string[]): PipelineLog {
  const write = (message: string, extra?: Record<string, unknown>) => void lines.push(`${message} ${JSON.stringify(extra ?? {})}`);
  return { info: write, warn: write, error: write };
}

describe('S3ObjectStore.deletePrefix', () => {
  it('throws when DeleteObjects reports per-key errors, naming how many failed but no key; the file clean-up does not log "deleted"', async () => {
    const { s3, stored } = fakeS3(['exports/c1/e1/UserChatCase_x_e1.xlsx'], () => true);
    const objects = new S3ObjectStore(s3, 'bucket');
    const lines: string[] = [];
    const error = await discardExportFile({ objects, log: recordingLog(lines) }, { channelId: 'c1', exportId: 'e1' }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error?.name).toBe('S3DeleteError');
    expect(error?.message).toMatch(/failed for 1 of 1 objects \(InternalError\); 0 deleted/);
    expect(error?.message).not.toContain('UserChatCase');
    expect(lines).toEqual([]);
    expect([...stored]).toEqual(['exports/c1/e1/UserChatCase_x_e1.xlsx']);
  });

  it('a partial failure still tries every batch, then throws with the counts', async () => {
    const keys = Array.from({ length: 1500 }, (_u, i) => `parts/e2/users/${String(i).padStart(6, '0')}`);
    const { s3, stored, deleteCalls } = fakeS3(keys, (key) => key.endsWith('000007'));
    const objects = new S3ObjectStore(s3, 'bucket');
    await expect(objects.deletePrefix('parts/e2/')).rejects.toThrow(/failed for 1 of 1500 objects \(InternalError\); 1499 deleted/);
    // Both batches sent: the failing key in the first did not keep the second's.
    expect(deleteCalls).toEqual([1000, 500]);
    expect([...stored]).toEqual(['parts/e2/users/000007']);
  });

  it('returns the number of keys actually deleted when none failed', async () => {
    const { s3, stored } = fakeS3(['parts/e3/a', 'parts/e3/b', 'parts/other/c'], () => false);
    const objects = new S3ObjectStore(s3, 'bucket');
    expect(await objects.deletePrefix('parts/e3/')).toBe(2);
    expect(await objects.deletePrefix('parts/e3/')).toBe(0);
    expect([...stored]).toEqual(['parts/other/c']);
  });
});
