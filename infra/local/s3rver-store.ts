import { createHash, randomUUID } from 'node:crypto';
import { mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Readable } from 'node:stream';

/** What s3rver's filesystem store hands its putObject (lib/models/object.js), as far as we use it. */
type StoredObject = { bucket: string; key: string; metadata: Record<string, string>; content: Buffer | Readable };

/** The parts of s3rver's FilesystemStore (lib/stores/filesystem.js) the replacement uses. */
export type S3rverFilesystemStore = {
  getResourcePath(bucket: string, key: string, resource: string): string;
  putMetadata(bucket: string, key: string, metadata: Record<string, string>, md5: string): Promise<void>;
  putObject(object: StoredObject): Promise<{ size: number; md5: string }>;
};

/** Attempts at creating the object's folder and opening its file before the PUT fails (a 500, which SDKs retry). */
const OPEN_ATTEMPTS = 5;

/**
 * Opens `path` (a new file) for writing, creating its folder first, and again if it vanished in between:
 * s3rver's deleteObject removes a folder once its last object is gone, so a PUT racing the
 * delete of its folder's last object (a cancel deleting `parts/{id}/` while a chunk writes
 * there) finds no folder to open its file in.
 */
async function openCreatingFolder(path: string): Promise<FileHandle> {
  for (let attempt = 1; ; attempt++) {
    await mkdir(dirname(path), { recursive: true });
    try {
      return await open(path, 'w');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= OPEN_ATTEMPTS) throw error;
    }
  }
}

/**
 * Replaces the putObject of s3rver's filesystem store (s3rver 3.7), which opened the object's
 * file with a write stream that had no 'error' listener, after creating the folder: in the race
 * above the open failed and the unhandled 'error' event killed the whole process (the local
 * stack, or a test run). It also wrote in place, so a reader could see an object half-written,
 * and a PUT broken off left a truncated object behind. Like S3, this one shows an object only
 * once it is whole: the bytes go to a temporary file beside it (a name listings skip: it does
 * not end in `._S3rver_object`, and it keeps the folder from being removed meanwhile), which is
 * renamed over the object when complete; a failed or broken-off PUT leaves the previous object
 * as it was and rejects (a 500 the SDK retries). Then, as s3rver does, its md5 and metadata.
 */
export function hardenPutObject(store: S3rverFilesystemStore): void {
  store.putObject = async function putObject(this: S3rverFilesystemStore, object: StoredObject) {
    const path = this.getResourcePath(object.bucket, object.key, 'object');
    const temporary = `${path}.${randomUUID()}.tmp`;
    const file = await openCreatingFolder(temporary);
    const md5 = createHash('md5');
    let size = 0;
    try {
      try {
        if (Buffer.isBuffer(object.content)) {
          await file.writeFile(object.content);
          md5.update(object.content);
          size = object.content.length;
        } else {
          for await (const chunk of object.content) {
            const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
            md5.update(bytes);
            size += bytes.length;
            // writeFile on a handle writes all of it from the current position (write() may write less).
            await file.writeFile(bytes);
          }
        }
      } finally {
        await file.close();
      }
      await rename(temporary, path);
    } catch (error) {
      await rm(temporary, { force: true });
      throw error;
    }
    const digest = md5.digest('hex');
    await this.putMetadata(object.bucket, object.key, object.metadata, digest);
    return { size, md5: digest };
  };
}
