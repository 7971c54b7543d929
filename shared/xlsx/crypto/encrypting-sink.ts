/**
 * Streams an ECMA-376 agile-encrypted compound file to `out` while the caller writes the
 * plaintext package. Memory is constant, whatever the package size: one 256 KiB plaintext block
 * (up to three in flight with the worker engine), one 64 KiB output batch and the running HMAC.
 */
import { createHmac, type Hmac } from 'node:crypto';
import { availableParallelism } from 'node:os';
import type { Writable } from 'node:stream';
import {
  BLOCK_BYTES,
  BLOCK_KEY_HMAC_KEY,
  BLOCK_KEY_HMAC_VALUE,
  KEY_BYTES,
  decryptAesCbc,
  deriveIv,
  encryptAesCbc,
  parseEncryptionParams,
  type EncryptionParams,
} from './agile-keys';
import {
  MAX_V3_STREAM_SIZE,
  buildHeader,
  buildTail,
  planCompoundFile,
  type CfbPlan,
  type CfbVersion,
} from './cfb-layout';
import { buildDataSpacesStreams } from './data-spaces';
import { ENCRYPTION_INFO_SIZE, buildEncryptionInfo } from './encryption-info';
import { SEGMENT_BYTES, createInlineEncryptor, createWorkerEncryptor, type SegmentEncryptor } from './segment-encryptor';
import { EncryptionInputError, EncryptionStreamError } from './errors';

/** Segments per block handed to the encryptor: 256 KiB, few messages, small memory. */
const PLAIN_BLOCK_BYTES = 64 * SEGMENT_BYTES;
/** Blocks being encrypted ahead of the one being HMAC'd and written (worker engine). */
const MAX_BLOCKS_IN_FLIGHT = 3;
/** Below this a worker's start-up (tens of ms) costs more than the overlap saves. */
const PARALLEL_THRESHOLD_BYTES = 8 * 1024 * 1024;
/** Bytes of the StreamSize prefix of the EncryptedPackage stream. */
const STREAM_SIZE_BYTES = 8;
/** Output is handed to `out` in batches of this size: few write calls, still O(1) memory. */
const OUTPUT_BATCH_BYTES = 64 * 1024;
/** The largest package we accept: far beyond any workbook, and its version 4 file still fits 32-bit sector numbers. */
export const MAX_PACKAGE_SIZE = 2 ** 43;

export interface EncryptedLayoutOptions {
  /**
   * Compound file version. Default: 3 (512-byte sectors) while the EncryptedPackage stream fits
   * the 2 GB that version 3 allows, else 4 (4096-byte sectors). Version 3 is what Excel itself
   * writes and what every reader handles; its DIFAT sectors appear from ~7 MB on, so that path is
   * exercised by ordinary exports, not only by rare giant ones. Its FAT costs 0.8% of the file.
   */
  cfbVersion?: CfbVersion;
}

export interface EncryptingSinkOptions extends EncryptedLayoutOptions {
  params: EncryptionParams;
  /** The 32-byte package key from `deriveEncryptionKeys` (after unwrapping). */
  packageKey: Buffer;
  /** Exact number of plaintext bytes (the ZIP package) the caller will write. */
  packageSize: number;
  /** Receives the encrypted file. Not ended by the sink: its owner ends it after `finish()`. */
  out: Writable;
  /**
   * Run AES in a worker thread so it overlaps the HMAC and the output. Default: on for packages
   * of 8 MiB or more when the machine has more than one core. The bytes are identical either way.
   */
  parallel?: boolean;
}

export interface EncryptingSink {
  /** Encrypts and forwards `chunk`; resolves once `out` can take more (backpressure). */
  write(chunk: Uint8Array): Promise<void>;
  /** Writes the rest of the file; rejects unless exactly `packageSize` bytes were written. */
  finish(): Promise<void>;
  /**
   * Gives the file up: pending and later calls reject with `reason`, the sink's key copies are
   * zeroed and the encryptor (its worker thread) is stopped; resolves once it has stopped. Never
   * rejects, may be called any number of times, and does nothing harmful after `finish()`. Like
   * the rest of the sink it leaves `out` alone: its owner destroys it.
   */
  abort(reason?: unknown): Promise<void>;
}

function validatePackageSize(packageSize: unknown): asserts packageSize is number {
  // An empty package is not a ZIP, and readers choke on an EncryptedPackage without segments.
  if (typeof packageSize !== 'number' || !Number.isSafeInteger(packageSize) || packageSize < 1 || packageSize > MAX_PACKAGE_SIZE) {
    throw new EncryptionInputError('packageSize', 'range', `packageSize must be an integer in 1..${MAX_PACKAGE_SIZE}`);
  }
}

function validateCfbVersion(version: unknown): asserts version is CfbVersion | undefined {
  if (version !== undefined && version !== 3 && version !== 4) {
    throw new EncryptionInputError('cfbVersion', 'enum', 'cfbVersion must be 3 or 4');
  }
}

function encryptedStreamSize(packageSize: number): number {
  return STREAM_SIZE_BYTES + Math.ceil(packageSize / BLOCK_BYTES) * BLOCK_BYTES;
}

/** Layout of the whole output file, computed from the package size alone. */
export function planEncryptedFile(packageSize: number, options: EncryptedLayoutOptions = {}): CfbPlan {
  validatePackageSize(packageSize);
  validateCfbVersion(options.cfbVersion);
  const streamSize = encryptedStreamSize(packageSize);
  const version = options.cfbVersion ?? (streamSize <= MAX_V3_STREAM_SIZE ? 3 : 4);
  if (version === 3 && streamSize > MAX_V3_STREAM_SIZE) {
    throw new EncryptionInputError('packageSize', 'max', 'a version 3 compound file holds at most 2 GB: use cfbVersion 4');
  }
  return planCompoundFile(
    [
      { path: ['EncryptedPackage'], size: streamSize },
      { path: ['EncryptionInfo'], size: ENCRYPTION_INFO_SIZE },
      ...buildDataSpacesStreams().map((stream) => ({ path: stream.path, size: stream.data.length })),
    ],
    version,
  );
}

/** Exact size in bytes of the encrypted file for a package of `packageSize` bytes. */
export function encryptedFileSize(packageSize: number, options: EncryptedLayoutOptions = {}): number {
  return planEncryptedFile(packageSize, options).fileSize;
}

/**
 * Owns the output side: batches bytes, honours backpressure and turns every stream failure into
 * a rejection of the current or next call.
 */
class OutputWriter {
  private batch: Buffer = Buffer.allocUnsafe(OUTPUT_BATCH_BYTES);
  private fill = 0;
  private failure: Error | undefined;
  /** Wakes whatever is waiting on `out` (drain, a write callback) with the failure. */
  private readonly waiters = new Set<() => void>();
  private readonly onError = (error: Error): void => {
    this.failure ??= new EncryptionStreamError('output stream failed', { cause: error });
    this.onDead();
  };
  private readonly onClose = (): void => {
    this.failure ??= new EncryptionStreamError('output stream closed before the file was complete');
    this.onDead();
  };
  written = 0;

  /**
   * `onDead` runs when `out` fails or closes before the sink is done with it: the file can no
   * longer be completed, and the caller may never make the call that would notice it.
   */
  constructor(
    private readonly out: Writable,
    private readonly onDead: () => void,
  ) {
    out.on('error', this.onError);
    out.on('close', this.onClose);
  }

  /** Why the output failed or was given up, if it was. */
  get failed(): Error | undefined {
    return this.failure;
  }

  detach(): void {
    this.out.off('error', this.onError);
    this.out.off('close', this.onClose);
  }

  fail(error: Error): void {
    this.failure ??= error;
  }

  /**
   * Fails the writer and releases a wait on `out` now: a stalled `out` may never drain nor call
   * back, and a caller that gave up must not have a call pending for ever.
   */
  abort(error: Error): void {
    this.fail(error);
    for (const wake of [...this.waiters]) wake();
  }

  check(): void {
    if (this.failure) throw this.failure;
    if (this.out.destroyed || this.out.writableEnded) {
      // A write that failed destroys `out` at once but emits 'error' a tick later: the reason
      // (ENOSPC…) is already in `out.errored`, and must not be lost behind "closed".
      const cause = this.out.errored;
      this.failure = cause
        ? new EncryptionStreamError('output stream failed', { cause })
        : new EncryptionStreamError('output stream is already closed');
      throw this.failure;
    }
  }

  /** The failure to report when `out` is seen dead: the recorded one, else the stream's own. */
  private deadFailure(fallback: string): Error {
    const cause = this.out.errored;
    return this.failure ?? new EncryptionStreamError(cause ? 'output stream failed' : fallback, cause ? { cause } : undefined);
  }

  async push(data: Buffer): Promise<void> {
    let offset = 0;
    while (offset < data.length) {
      // Flush lazily (only when more bytes follow) so the last batch is always left for flushAndSettle.
      if (this.fill === OUTPUT_BATCH_BYTES) await this.flush();
      const n = Math.min(OUTPUT_BATCH_BYTES - this.fill, data.length - offset);
      data.copy(this.batch, this.fill, offset, offset + n);
      this.fill += n;
      offset += n;
    }
  }

  async zeros(count: number): Promise<void> {
    let left = count;
    while (left > 0) {
      if (this.fill === OUTPUT_BATCH_BYTES) await this.flush();
      const n = Math.min(OUTPUT_BATCH_BYTES - this.fill, left);
      this.batch.fill(0, this.fill, this.fill + n);
      this.fill += n;
      left -= n;
    }
  }

  /**
   * Writes `data` to `out` without copying it; the caller gives up the buffer. Never used for
   * the file's last bytes, which stay in the batch for flushAndSettle.
   */
  async pushOwned(data: Buffer): Promise<void> {
    await this.flush();
    this.check();
    this.written += data.length;
    if (!this.out.write(data)) await this.waitFor('drain');
    this.check();
  }

  /** Hands the batch to `out`; waits for 'drain' when `out` is over its highWaterMark. */
  async flush(): Promise<void> {
    if (this.fill === 0) return;
    this.check();
    const chunk = this.takeBatch();
    if (!this.out.write(chunk)) await this.waitFor('drain');
    this.check();
  }

  /**
   * Writes the last batch and waits for its write callback: it runs once `out` has handled every
   * chunk, so a failure while writing the file's tail still rejects finish().
   */
  async flushAndSettle(): Promise<void> {
    this.check();
    const chunk = this.takeBatch();
    await new Promise<void>((resolve, reject) => {
      const cleanup = (): void => {
        this.out.off('error', onError);
        this.waiters.delete(onError);
      };
      const onError = (): void => {
        cleanup();
        reject(this.deadFailure('output stream failed'));
      };
      this.out.on('error', onError);
      this.waiters.add(onError);
      this.out.write(chunk, (error) => {
        cleanup();
        if (error) reject(this.failure ?? new EncryptionStreamError('output stream failed', { cause: error }));
        else resolve();
      });
    });
    this.check();
  }

  private takeBatch(): Buffer {
    const chunk = this.batch.subarray(0, this.fill);
    // `out` may keep the chunk queued, so the next batch needs a fresh buffer.
    this.batch = Buffer.allocUnsafe(OUTPUT_BATCH_BYTES);
    this.fill = 0;
    this.written += chunk.length;
    return chunk;
  }

  private waitFor(event: 'drain'): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const cleanup = (): void => {
        this.out.off(event, onEvent);
        this.out.off('error', onFailure);
        this.out.off('close', onFailure);
        this.waiters.delete(onFailure);
      };
      const onEvent = (): void => {
        cleanup();
        resolve();
      };
      const onFailure = (): void => {
        cleanup();
        reject(this.deadFailure('output stream closed while waiting for drain'));
      };
      this.out.once(event, onEvent);
      this.out.once('error', onFailure);
      this.out.once('close', onFailure);
      this.waiters.add(onFailure);
    });
  }
}

/** A worker is an optimisation only: where threads cannot start, encrypt in this thread. */
function startWorkerOrInline(packageKey: Buffer, keyDataSalt: Buffer): SegmentEncryptor {
  try {
    return createWorkerEncryptor(packageKey, keyDataSalt);
  } catch {
    return createInlineEncryptor(packageKey, keyDataSalt);
  }
}

export function createEncryptingSink(options: EncryptingSinkOptions): EncryptingSink {
  const params = parseEncryptionParams(options.params);
  if (!Buffer.isBuffer(options.packageKey) || options.packageKey.length !== KEY_BYTES) {
    throw new EncryptionInputError('packageKey', 'length', `packageKey must be a Buffer of ${KEY_BYTES} bytes`);
  }
  const { packageSize, out } = options;
  const plan = planEncryptedFile(packageSize, { cfbVersion: options.cfbVersion });
  if (!out || typeof out.write !== 'function') {
    throw new EncryptionInputError('out', 'type', 'out must be a Writable stream');
  }

  const packageKey = Buffer.from(options.packageKey);
  const keyDataSalt = Buffer.from(params.keyDataSalt, 'base64');
  const hmacKey = decryptAesCbc(packageKey, deriveIv(keyDataSalt, BLOCK_KEY_HMAC_KEY), Buffer.from(params.encryptedHmacKey, 'base64'));
  const hmac: Hmac = createHmac('sha512', hmacKey);
  hmacKey.fill(0);

  const [packagePlan, ...smallStreams] = plan.streams;
  if (!packagePlan) throw new Error('unreachable: plan without EncryptedPackage');
  // Stops the encryptor when `out` dies: the worker holds a copy of the package key, and a caller
  // whose `out` failed between calls may never call write() or finish() again to notice.
  const writer = new OutputWriter(out, () => {
    stopped = true;
    void dispose();
  });
  const parallel = options.parallel ?? (packageSize >= PARALLEL_THRESHOLD_BYTES && availableParallelism() > 1);
  const encryptor: SegmentEncryptor = parallel
    ? startWorkerOrInline(packageKey, keyDataSalt)
    : createInlineEncryptor(packageKey, keyDataSalt);
  // Plaintext is gathered into blocks of whole segments; up to MAX_BLOCKS_IN_FLIGHT blocks are
  // being encrypted while the oldest is HMAC'd and written, in order. Memory: a few blocks.
  const block = Buffer.allocUnsafe(PLAIN_BLOCK_BYTES);
  let blockFill = 0;
  let nextSegment = 0;
  const inFlight: Promise<Buffer[]>[] = [];
  let received = 0;
  let started = false;
  let finished = false;
  /** Set once abort() or a dead `out` stopped the sink: work cut short then reports why. */
  let stopped = false;
  let queue: Promise<void> = Promise.resolve();
  let disposed: Promise<void> | undefined;

  /**
   * Releases everything secret, once: zeroes the sink's key copy, stops listening to `out` and
   * closes the encryptor (which zeroes its own copy or terminates the worker holding one).
   */
  const dispose = (): Promise<void> => {
    disposed ??= (async () => {
      packageKey.fill(0);
      writer.detach();
      try {
        await encryptor.close();
      } catch {
        // Closing is best effort; the sink has failed or finished already and reports that.
      }
    })();
    return disposed;
  };

  const writeOldestBlock = async (): Promise<void> => {
    const pieces = await (inFlight.shift() as Promise<Buffer[]>);
    for (const piece of pieces) {
      hmac.update(piece);
      // Whole worker blocks go to `out` as they are; single segments are batched.
      if (piece.length >= OUTPUT_BATCH_BYTES) await writer.pushOwned(piece);
      else await writer.push(piece);
    }
  };

  /** Hands `plain` (whole segments; the last block may end short, on an AES block) to the encryptor. */
  const submitBlock = async (plain: Buffer): Promise<void> => {
    const firstSegment = nextSegment;
    nextSegment += Math.ceil(plain.length / SEGMENT_BYTES);
    const job = encryptor.encrypt(plain, firstSegment);
    // Awaited later, in order; this only stops an early failure from counting as unhandled.
    job.catch(() => undefined);
    inFlight.push(job);
    while (inFlight.length >= (parallel ? MAX_BLOCKS_IN_FLIGHT : 1)) await writeOldestBlock();
  };

  const start = async (): Promise<void> => {
    if (started) return;
    started = true;
    writer.check();
    await writer.push(buildHeader(plan));
    const streamSize = Buffer.alloc(STREAM_SIZE_BYTES);
    streamSize.writeBigUInt64LE(BigInt(packageSize), 0);
    hmac.update(streamSize);
    await writer.push(streamSize);
  };

  const writeChunk = async (chunk: Buffer): Promise<void> => {
    await start();
    let offset = 0;
    while (offset < chunk.length) {
      if (blockFill === 0 && chunk.length - offset >= PLAIN_BLOCK_BYTES) {
        // Whole blocks straight from the caller's buffer; encryptors do not keep it.
        await submitBlock(chunk.subarray(offset, offset + PLAIN_BLOCK_BYTES));
        offset += PLAIN_BLOCK_BYTES;
        continue;
      }
      const n = Math.min(PLAIN_BLOCK_BYTES - blockFill, chunk.length - offset);
      chunk.copy(block, blockFill, offset, offset + n);
      blockFill += n;
      offset += n;
      if (blockFill === PLAIN_BLOCK_BYTES) {
        blockFill = 0;
        // Reusable at once: encryptors never keep the buffer they are given.
        await submitBlock(block);
      }
    }
  };

  const finishFile = async (): Promise<void> => {
    await start();
    if (blockFill > 0) {
      // The final segment is padded to the AES block size; MS-OFFCRYPTO allows any padding bytes.
      const padded = Math.ceil(blockFill / BLOCK_BYTES) * BLOCK_BYTES;
      block.fill(0, blockFill, padded);
      await submitBlock(block.subarray(0, padded));
      blockFill = 0;
    }
    while (inFlight.length > 0) await writeOldestBlock();
    await writer.zeros(packagePlan.paddingAfter);

    const encryptedHmacValue = encryptAesCbc(packageKey, deriveIv(keyDataSalt, BLOCK_KEY_HMAC_VALUE), hmac.digest());
    const streams = [buildEncryptionInfo(params, encryptedHmacValue), ...buildDataSpacesStreams().map((s) => s.data)];
    for (const [index, data] of streams.entries()) {
      const planned = smallStreams[index];
      if (!planned || planned.size !== data.length) throw new Error('unreachable: stream size differs from its plan');
      await writer.push(data);
      await writer.zeros(planned.paddingAfter);
    }
    for (const piece of buildTail(plan)) await writer.push(piece);
    await writer.flushAndSettle();
    if (writer.written !== plan.fileSize) {
      throw new Error(`internal layout error: wrote ${writer.written} bytes, planned ${plan.fileSize}`);
    }
  };

  /** Serialises calls so a caller that forgets to await cannot interleave segments. */
  const enqueue = (task: () => Promise<void>): Promise<void> => {
    const run = queue
      .then(async () => {
        writer.check();
        await task();
      })
      .catch((error: unknown) => {
        // A task cut short because the sink was stopped (its encryptor closed under it) reports
        // why it was stopped, not the encryptor's "closed".
        throw (stopped ? writer.failed : undefined) ?? error;
      });
    queue = run.catch((error: unknown) => {
      writer.fail(error instanceof Error ? error : new EncryptionStreamError(String(error)));
      // A failed sink is dead: stop the worker now rather than at a finish() that may never come.
      void dispose();
    });
    return run;
  };

  return {
    write(chunk: Uint8Array): Promise<void> {
      if (finished) return Promise.reject(new EncryptionStreamError('write() after finish()'));
      if (!(chunk instanceof Uint8Array)) {
        return Promise.reject(new EncryptionInputError('chunk', 'type', 'chunk must be a Buffer or Uint8Array'));
      }
      received += chunk.length;
      if (received > packageSize) {
        const error = new EncryptionStreamError(`received more than packageSize (${packageSize}) bytes`);
        writer.fail(error);
        return Promise.reject(error);
      }
      const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      return enqueue(() => writeChunk(buffer));
    },
    finish(): Promise<void> {
      if (finished) return Promise.reject(new EncryptionStreamError('finish() called twice'));
      finished = true;
      if (received !== packageSize) {
        const error = new EncryptionStreamError(`received ${received} of packageSize ${packageSize} bytes`);
        writer.fail(error);
        void dispose();
        return Promise.reject(error);
      }
      return enqueue(finishFile).finally(dispose);
    },
    abort(reason?: unknown): Promise<void> {
      stopped = true;
      // An earlier failure stays the one reported; after finish() nothing reads it any more.
      writer.abort(
        reason instanceof Error ? reason : new EncryptionStreamError('aborted', reason === undefined ? undefined : { cause: reason }),
      );
      return dispose();
    },
  };
}
