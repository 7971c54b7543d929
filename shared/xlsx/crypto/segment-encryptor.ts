/**
 * Encrypts runs of 4096-byte segments (MS-OFFCRYPTO 2.3.4.15). Two interchangeable engines:
 * in the calling thread, or in one worker thread so AES-CBC of the next block overlaps the
 * HMAC-SHA512 and I/O of the previous one (both are serial by nature, so on two cores this is
 * the only way to run them side by side).
 */
import { createCipheriv, hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { BLOCK_BYTES, SALT_BYTES } from './agile-keys';
import { EncryptionStreamError } from './errors';

export const SEGMENT_BYTES = 4096;

export interface SegmentEncryptor {
  /**
   * Encrypts `plain` (whole 4096-byte segments, except that the last may be any multiple of 16)
   * whose first segment has index `firstSegment`. `plain` is not used after the call returns
   * (the worker engine copies or takes it synchronously). The ciphertext comes back as one or
   * more buffers in order; results resolve in call order.
   */
  encrypt(plain: Buffer, firstSegment: number): Promise<Buffer[]>;
  close(): Promise<void>;
}

/**
 * Encrypts a run of segments with ONE cipher object. Each segment is CBC with its own IV, so
 * the chain cannot simply continue across segments; but CBC encrypts a block as E(P xor prev),
 * where prev is the previous ciphertext block (or the IV). Feeding the cipher, as the first
 * block of segment k, P xor IV_k xor C_last(k-1) gives E(P xor IV_k): exactly what a fresh
 * cipher with IV_k would produce. Creating a cipher (key schedule, context) per 4 KiB segment
 * cost about 40% of the encryption time; this costs one 16-byte xor per segment instead.
 */
function encryptSegments(key: Buffer, ivInput: Buffer, plain: Buffer, firstSegment: number): Buffer {
  const out = Buffer.allocUnsafe(plain.length);
  if (plain.length === 0) return out;
  ivInput.writeUInt32LE(firstSegment, SALT_BYTES);
  const cipher = createCipheriv('aes-256-cbc', key, hash('sha512', ivInput, 'buffer').subarray(0, BLOCK_BYTES));
  cipher.setAutoPadding(false);
  const firstBlock = Buffer.allocUnsafe(BLOCK_BYTES);
  for (let offset = 0, index = firstSegment; offset < plain.length; offset += SEGMENT_BYTES, index += 1) {
    const end = Math.min(offset + SEGMENT_BYTES, plain.length);
    if (offset === 0) {
      cipher.update(plain.subarray(0, end)).copy(out, 0);
      continue;
    }
    ivInput.writeUInt32LE(index, SALT_BYTES);
    const iv = hash('sha512', ivInput, 'buffer');
    for (let i = 0; i < BLOCK_BYTES; i++) firstBlock[i] = plain[offset + i]! ^ iv[i]! ^ out[offset - BLOCK_BYTES + i]!;
    cipher.update(firstBlock).copy(out, offset);
    if (end > offset + BLOCK_BYTES) cipher.update(plain.subarray(offset + BLOCK_BYTES, end)).copy(out, offset + BLOCK_BYTES);
  }
  cipher.final();
  return out;
}

function ivInputFor(keyDataSalt: Buffer): Buffer {
  const ivInput = Buffer.alloc(SALT_BYTES + 4);
  keyDataSalt.copy(ivInput, 0);
  return ivInput;
}

function checkLength(plain: Buffer): void {
  if (plain.length % BLOCK_BYTES !== 0) throw new RangeError('segment data must be a multiple of the AES block size');
}

export function createInlineEncryptor(packageKey: Buffer, keyDataSalt: Buffer): SegmentEncryptor {
  const key = Buffer.from(packageKey);
  const ivInput = ivInputFor(keyDataSalt);
  let closed = false;
  return {
    encrypt(plain, firstSegment) {
      checkLength(plain);
      // The key is zeroed by now: encrypting would still "work", with an all-zero key.
      if (closed) return Promise.reject(new EncryptionStreamError('encryptor closed'));
      return Promise.resolve([encryptSegments(key, ivInput, plain, firstSegment)]);
    },
    close() {
      closed = true;
      key.fill(0);
      return Promise.resolve();
    },
  };
}

// CommonJS source for an eval worker: no separate file to resolve or bundle (tsx, vitest, esbuild).
// It mirrors encryptSegments as text because bundlers and test runners rename imports inside
// functions; the tests check that both engines produce identical bytes.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createCipheriv, hash } = require('node:crypto');
const key = Buffer.from(workerData.key);
const ivInput = Buffer.from(workerData.ivInput);
parentPort.on('message', (job) => {
  const plain = Buffer.from(job.plain);
  const out = Buffer.allocUnsafeSlow(plain.length);
  if (plain.length > 0) {
    ivInput.writeUInt32LE(job.firstSegment, 16);
    const cipher = createCipheriv('aes-256-cbc', key, hash('sha512', ivInput, 'buffer').subarray(0, 16));
    cipher.setAutoPadding(false);
    const firstBlock = Buffer.allocUnsafe(16);
    for (let offset = 0, index = job.firstSegment; offset < plain.length; offset += 4096, index += 1) {
      const end = Math.min(offset + 4096, plain.length);
      if (offset === 0) {
        cipher.update(plain.subarray(0, end)).copy(out, 0);
        continue;
      }
      ivInput.writeUInt32LE(index, 16);
      const iv = hash('sha512', ivInput, 'buffer');
      for (let i = 0; i < 16; i++) firstBlock[i] = plain[offset + i] ^ iv[i] ^ out[offset - 16 + i];
      cipher.update(firstBlock).copy(out, offset);
      if (end > offset + 16) cipher.update(plain.subarray(offset + 16, end)).copy(out, offset + 16);
    }
    cipher.final();
  }
  parentPort.postMessage(out.buffer, [out.buffer]);
});
`;

export function createWorkerEncryptor(packageKey: Buffer, keyDataSalt: Buffer): SegmentEncryptor {
  // Own-buffer copy: cloning a pooled Buffer would copy its whole 8 KiB pool slab along.
  const keyForWorker = Uint8Array.from(packageKey);
  let worker: Worker;
  try {
    worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { key: keyForWorker, ivInput: Uint8Array.from(ivInputFor(keyDataSalt)) },
    });
  } finally {
    // The constructor has cloned workerData into the worker's start message already; this copy
    // would otherwise linger in this thread's heap until collected.
    keyForWorker.fill(0);
  }
  const pending: { resolve: (value: Buffer[]) => void; reject: (error: Error) => void }[] = [];
  let failure: Error | undefined;
  let closed = false;
  // Only keep the process alive while a result is awaited: an abandoned sink must not hang it.
  worker.unref();

  const failAll = (error: Error): void => {
    failure ??= error;
    for (const job of pending.splice(0)) job.reject(failure);
  };
  worker.on('message', (result: ArrayBuffer) => {
    // A result of work rejected by close(): nobody awaits it, and unref() here would let the
    // process exit before the termination close() awaits is reported.
    if (closed) return;
    const job = pending.shift();
    if (pending.length === 0) worker.unref();
    job?.resolve([Buffer.from(result)]);
  });
  worker.on('error', (error) => failAll(new EncryptionStreamError('encryption worker failed', { cause: error })));
  worker.on('exit', () => {
    if (!closed) failAll(new EncryptionStreamError('encryption worker exited'));
  });

  return {
    encrypt(plain, firstSegment) {
      checkLength(plain);
      if (failure) return Promise.reject(failure);
      if (closed) return Promise.reject(new EncryptionStreamError('encryptor closed'));
      return new Promise<Buffer[]>((resolve, reject) => {
        pending.push({ resolve, reject });
        worker.ref();
        // Always a private copy, transferred: the caller may reuse or keep `plain`.
        const copy = Buffer.allocUnsafeSlow(plain.length);
        plain.copy(copy);
        worker.postMessage({ plain: copy.buffer, firstSegment }, [copy.buffer as ArrayBuffer]);
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      failAll(new EncryptionStreamError('encryptor closed'));
      await worker.terminate();
    },
  };
}
