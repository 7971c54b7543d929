import { Readable } from 'node:stream';
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { ObjectInfo, ObjectStore } from '../../ports/object-store';

function isNotFound(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e?.name === 'NoSuchKey' || e?.name === 'NotFound' || e?.$metadata?.httpStatusCode === 404;
}

function isAccessDenied(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e?.name === 'AccessDenied' || e?.name === 'Forbidden' || e?.$metadata?.httpStatusCode === 403;
}

/** Some keys of a DeleteObjects call were not deleted (S3 reports them in `Errors`, with a 200). */
export class S3DeleteError extends Error {
  readonly failed: number;
  readonly deleted: number;
  constructor(message: string, counts: { failed: number; deleted: number }) {
    super(message);
    this.name = 'S3DeleteError';
    this.failed = counts.failed;
    this.deleted = counts.deleted;
  }
}

export class S3ObjectStore implements ObjectStore {
  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
  ) {}

  async put(key: string, body: Buffer | string, options?: { contentType?: string; metadata?: Record<string, string> }): Promise<void> {
    await this.s3.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: key,
        Body: body,
        ContentType: options?.contentType ?? 'application/octet-stream',
        ...(options?.metadata ? { Metadata: options.metadata } : {}),
      }),
    );
  }

  async getBuffer(key: string): Promise<Buffer | null> {
    try {
      const result = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      const bytes = await result.Body?.transformToByteArray();
      return Buffer.from(bytes ?? new Uint8Array());
    } catch (error) {
      if (isNotFound(error) || (await this.missingBehind403(key, error))) return null;
      throw error;
    }
  }

  /**
   * S3 answers a missing key with 404 only to a caller allowed s3:ListBucket on the bucket; the
   * roles here hold ListBucket only for their prefixes (an `s3:prefix` condition a GET does not
   * carry), so a missing key can come back as 403. A list of exactly that key (allowed under the
   * role's prefix) tells the two apart: absent there, the key is missing; present, or the list
   * refused too, it is a real denial and the original error stands.
   */
  private async missingBehind403(key: string, error: unknown): Promise<boolean> {
    if (!isAccessDenied(error)) return false;
    try {
      const listed = await this.s3.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: key, MaxKeys: 1 }));
      return !(listed.Contents ?? []).some((o) => o.Key === key);
    } catch {
      return false;
    }
  }

  async getStream(key: string): Promise<Readable> {
    const result = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
    const body = result.Body;
    if (body instanceof Readable) return body;
    if (!body) throw new Error(`object ${key} has no body`);
    return Readable.from(Buffer.from(await body.transformToByteArray()));
  }

  async upload(key: string, body: Readable, options?: { contentType?: string; metadata?: Record<string, string> }): Promise<void> {
    const upload = new Upload({
      client: this.s3,
      params: {
        Bucket: this.bucket,
        Key: key,
        Body: body,
        ContentType: options?.contentType ?? 'application/octet-stream',
        ...(options?.metadata ? { Metadata: options.metadata } : {}),
      },
      // 8 MiB parts, 2 in flight: bounded memory whatever the file size.
      partSize: 8 * 1024 * 1024,
      queueSize: 2,
      leavePartsOnError: false,
    });
    await upload.done();
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const out: ObjectInfo[] = [];
    let token: string | undefined;
    do {
      const result = await this.s3.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) }),
      );
      for (const item of result.Contents ?? []) {
        if (item.Key) out.push({ key: item.Key, size: item.Size ?? 0 });
      }
      token = result.IsTruncated ? result.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  /**
   * Deletes every object under `prefix` and returns how many were deleted. DeleteObjects answers
   * 200 even when keys fail: they come back in `Errors` (Quiet only drops the successes). So a
   * batch with failures throws, naming how many keys failed and S3's error codes (never the keys:
   * they name exports and files), after the other batches were tried, so one bad key does not
   * keep the rest. Callers that clean up data (a canceled or failed export's parts, a file no
   * link will reach) must not report "deleted" and acknowledge while it stays.
   */
  async deletePrefix(prefix: string): Promise<number> {
    return this.deleteKeys((await this.list(prefix)).map((o) => o.key));
  }

  async deleteKeys(keys: readonly string[]): Promise<number> {
    let deleted = 0;
    let failed = 0;
    const codes = new Set<string>();
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      const result = await this.s3.send(
        new DeleteObjectsCommand({
          Bucket: this.bucket,
          Delete: { Objects: batch.map((key) => ({ Key: key })), Quiet: true },
        }),
      );
      const errors = result.Errors ?? [];
      // Keys are unique within a batch, so every key not reported failed was deleted.
      deleted += batch.length - errors.length;
      failed += errors.length;
      for (const e of errors) codes.add(e.Code ?? 'unknown');
    }
    if (failed > 0) {
      throw new S3DeleteError(`S3 DeleteObjects failed for ${failed} of ${keys.length} objects (${[...codes].sort().join(', ')}); ${deleted} deleted`, {
        failed,
        deleted,
      });
    }
    return deleted;
  }

  async head(key: string): Promise<{ size: number; metadata: Record<string, string> } | null> {
    try {
      const result = await this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { size: result.ContentLength ?? 0, metadata: result.Metadata ?? {} };
    } catch (error) {
      if (isNotFound(error) || (await this.missingBehind403(key, error))) return null;
      throw error;
    }
  }
}
