import type { Readable } from 'node:stream';

export type ObjectInfo = { key: string; size: number };

/** The bits of S3 the pipeline needs: parts, meta JSON, selections and the final files. */
export interface ObjectStore {
  put(key: string, body: Buffer | string, options?: { contentType?: string; metadata?: Record<string, string> }): Promise<void>;
  /** null when the object does not exist. */
  getBuffer(key: string): Promise<Buffer | null>;
  getStream(key: string): Promise<Readable>;
  /**
   * Streams `body` into the object with a multipart upload (parts are uploaded as the stream
   * produces them, so memory stays flat); resolves when the object exists.
   */
  upload(key: string, body: Readable, options?: { contentType?: string; metadata?: Record<string, string> }): Promise<void>;
  list(prefix: string): Promise<ObjectInfo[]>;
  /**
   * Deletes every object under `prefix`; resolves with how many were deleted. Rejects when any
   * could not be (S3's batch delete reports those without failing): callers treat clean-up
   * of customer data as done only when it is.
   */
  deletePrefix(prefix: string): Promise<number>;
  /** Deletes these objects (a missing one counts as deleted, as S3 does); rejects as deletePrefix does. */
  deleteKeys(keys: readonly string[]): Promise<number>;
  head(key: string): Promise<{ size: number; metadata: Record<string, string> } | null>;
}
