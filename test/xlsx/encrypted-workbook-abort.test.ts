/**
 * What a failed encrypted export leaves behind. The sink's worker thread holds a copy of the
 * package key, so every way an export can stop (a part's stream failing, a part of the wrong
 * length, `out` dying between calls, the caller giving up) must end with that worker terminated
 * and the sink's key copies zeroed, not with a thread waiting for a write() that never comes.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  EncryptionStreamError,
  createEncryptingSink,
  deriveEncryptionKeys,
  encryptedFileSize,
  type EncryptionParams,
} from '../../shared/xlsx/crypto/index';
import { writeEncryptedWorkbook } from '../../shared/xlsx/encrypted-workbook';
import { PartIntegrityError } from '../../shared/xlsx/errors';
import type { ReadPart, SheetPlan } from '../../shared/xlsx/types';
import { collectingWritable, zipLikePayload } from './crypto-test-support';

/** Every encryptor the sink creates, with the key buffer it was given and its close() calls. */
const tracked = vi.hoisted(
  () =>
    [] as {
      engine: 'worker' | 'inline';
      /** The buffer the sink handed over: the sink's own copy of the package key. */
      key: Buffer;
      closeCalls: number;
      /** The promise the first close() returned (it resolves once a worker has exited). */
      closed: Promise<void> | undefined;
    }[],
);

// Wraps the real engines (nothing about them changes) so the test can see the sink close them;
// the production API stays as it is.
vi.mock('../../shared/xlsx/crypto/segment-encryptor', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../shared/xlsx/crypto/segment-encryptor')>();
  const track =
    (engine: 'worker' | 'inline', make: typeof real.createWorkerEncryptor): typeof real.createWorkerEncryptor =>
    (key, keyDataSalt) => {
      const encryptor = make(key, keyDataSalt);
      const entry: (typeof tracked)[number] = { engine, key, closeCalls: 0, closed: undefined };
      tracked.push(entry);
      return {
        encrypt: (plain, firstSegment) => encryptor.encrypt(plain, firstSegment),
        close: () => {
          entry.closeCalls += 1;
          const closing = encryptor.close();
          entry.closed ??= closing;
          return closing;
        },
      };
    };
  return {
    ...real,
    createWorkerEncryptor: track('worker', real.createWorkerEncryptor),
    createInlineEncryptor: track('inline', real.createInlineEncryptor),
  };
});

// writeEncryptedWorkbook takes the default engine choice (the worker from 8 MiB on, when there is
// more than one core): pretend there are two so a one-core CI machine tests the same path.
vi.mock('node:os', async (importOriginal) => ({
  ...(await importOriginal<typeof import('node:os')>()),
  availableParallelism: () => 2,
}));

const MIB = 1024 * 1024;
/** Above the sink's 8 MiB threshold, so writeEncryptedWorkbook encrypts in a worker thread. */
const PART_BYTES = 12 * MIB;

const ROOT = resolve(__dirname, '../..');
let keys: { params: EncryptionParams; packageKey: Buffer };
let dir: string;
beforeAll(async () => {
  keys = await deriveEncryptionKeys('Abort-Test', { spinCount: 1000 });
  dir = mkdtempSync(join(tmpdir(), 'xlsx-abort-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => {
  tracked.length = 0;
});

/** Threads of this process on Linux (a worker thread is one), else undefined. */
function threadCount(): number | undefined {
  return existsSync('/proc/self/task') ? readdirSync('/proc/self/task').length : undefined;
}

function discardingWritable(): Writable {
  return new Writable({
    write(_chunk, _encoding, callback) {
      callback();
    },
  });
}

function onlyEncryptor(): (typeof tracked)[number] {
  expect(tracked).toHaveLength(1);
  return tracked[0]!;
}

function isZeroed(buffer: Buffer): boolean {
  return buffer.every((byte) => byte === 0);
}

// The package's content is never read back here, only its length matters to the writer.
const sheets: SheetPlan[] = [
  {
    name: 'S',
    columns: [{ key: 'a', header: 'A', type: 'string' }],
    parts: [{ rawLength: PART_BYTES, compressedLength: PART_BYTES, crc32: 0, rowCount: 0 }],
  },
];

async function* chunks(total: number, thenThrow?: Error): AsyncGenerator<Uint8Array> {
  for (let sent = 0; sent < total; sent += MIB) yield Buffer.alloc(Math.min(MIB, total - sent), 0x20);
  if (thenThrow) throw thenThrow;
}

describe('writeEncryptedWorkbook after a failure mid-stream', () => {
  it.each([
    ['a part stream that throws after 9 MiB', () => new Error('S3 read failed'), (error: Error) => chunks(9 * MIB, error)],
    ['a part longer than its metadata (PartIntegrityError)', undefined, () => chunks(PART_BYTES + MIB)],
  ] as const)('%s: rejects with that error once the worker has stopped, its key copy zeroed', async (_name, makeError, stream) => {
    // Warm-up: a successful export starts and stops a worker (and whatever else the runtime
    // starts lazily), so the thread count after it is the baseline a failed export must return to.
    await writeEncryptedWorkbook({ sheets, readPart: async () => chunks(PART_BYTES), ...keys, out: discardingWritable() });
    expect(onlyEncryptor().engine).toBe('worker');
    tracked.length = 0;
    const baseline = threadCount();

    const original = makeError?.();
    const out = discardingWritable();
    const readPart: ReadPart = async () => stream(original ?? new Error('unused'));
    let caught: unknown;
    await writeEncryptedWorkbook({ sheets, readPart, ...keys, out }).catch((error: unknown) => {
      caught = error;
    });

    if (original) expect(caught).toBe(original);
    else expect(caught).toBeInstanceOf(PartIntegrityError);
    expect(out.destroyed).toBe(true);
    const encryptor = onlyEncryptor();
    expect(encryptor.engine).toBe('worker');
    // Closed, and closed already when the promise rejected: no event has to come later.
    expect(encryptor.closeCalls).toBe(1);
    await encryptor.closed;
    expect(isZeroed(encryptor.key)).toBe(true);
    // The caller's key is the caller's: only the sink's copies are wiped.
    expect(isZeroed(keys.packageKey)).toBe(false);
    // No thread left behind. Polled, and "at most": an exited worker's OS thread can linger in
    // /proc for a moment after its exit is reported, on a loaded machine the warm-up's too (CI
    // once saw 11 against a baseline of 12); a leaked worker never goes away.
    if (baseline !== undefined) await expect.poll(() => threadCount()! <= baseline, { timeout: 5_000 }).toBe(true);
  });
});

describe.each([true, false])('EncryptingSink.abort (worker engine: %s)', (parallel) => {
  it('rejects a queued write and every later call with the reason, wipes the key and stops the encryptor', async () => {
    const plain = zipLikePayload(3 * MIB, 1);
    const { out } = collectingWritable();
    const sink = createEncryptingSink({ ...keys, packageSize: plain.length + 10, out, parallel });
    await sink.write(plain.subarray(0, MIB));
    // Queued behind the first (its blocks may still be in flight) when abort() comes.
    const queued = sink.write(plain.subarray(MIB));
    const reason = new Error('caller gave up');
    await sink.abort(reason);

    const encryptor = onlyEncryptor();
    expect(encryptor.engine).toBe(parallel ? 'worker' : 'inline');
    expect(encryptor.closeCalls).toBe(1);
    expect(isZeroed(encryptor.key)).toBe(true);
    await expect(queued).rejects.toBe(reason);
    await expect(sink.write(Buffer.alloc(10))).rejects.toBe(reason);
    await expect(sink.finish()).rejects.toBe(reason);
    // Idempotent: a second abort neither throws nor closes again.
    await sink.abort(new Error('again'));
    expect(encryptor.closeCalls).toBe(1);
    expect(out.destroyed).toBe(false);
  });

  it('releases a write stuck on an `out` that never drains', async () => {
    let firstWrite!: () => void;
    const written = new Promise<void>((resolve) => {
      firstWrite = resolve;
    });
    // Takes the first chunk and never calls back: the sink waits for a 'drain' that never comes.
    const out = new Writable({
      highWaterMark: 1,
      write() {
        firstWrite();
      },
    });
    const sink = createEncryptingSink({ ...keys, packageSize: 2 * MIB, out, parallel });
    const stuck = sink.write(zipLikePayload(MIB, 4));
    await written;
    const reason = new Error('upload cancelled');
    await sink.abort(reason);
    await expect(stuck).rejects.toBe(reason);
    expect(isZeroed(onlyEncryptor().key)).toBe(true);
  });

  it('changes nothing after finish(): the file stays whole', async () => {
    const plain = zipLikePayload(MIB + 3, 2);
    const { out, result } = collectingWritable();
    const sink = createEncryptingSink({ ...keys, packageSize: plain.length, out, parallel });
    await sink.write(plain);
    await sink.finish();
    const before = result();
    await sink.abort(new Error('too late'));
    expect(before.length).toBe(encryptedFileSize(plain.length));
    expect(result().equals(before)).toBe(true);
    expect(onlyEncryptor().closeCalls).toBe(1);
    expect(out.destroyed).toBe(false);
  });

  it.each([
    ['destroyed with an error', (out: Writable) => out.destroy(new Error('connection reset'))],
    ['closed without one', (out: Writable) => out.destroy()],
  ])('stops the encryptor when `out` is %s between calls', async (_name, kill) => {
    const plain = zipLikePayload(2 * MIB, 3);
    const { out } = collectingWritable();
    out.on('error', () => undefined);
    const sink = createEncryptingSink({ ...keys, packageSize: plain.length, out, parallel });
    await sink.write(plain.subarray(0, MIB));
    // Not events.once(): it rejects on the 'error' this test provokes.
    const closed = new Promise((resolve) => out.once('close', resolve));
    kill(out);
    await closed;
    // No further call on the sink: `out` closing is all it gets.
    const encryptor = onlyEncryptor();
    expect(encryptor.closeCalls).toBe(1);
    await encryptor.closed;
    expect(isZeroed(encryptor.key)).toBe(true);
    await expect(sink.write(plain.subarray(MIB))).rejects.toBeInstanceOf(EncryptionStreamError);
    await expect(sink.finish()).rejects.toThrow();
  });
});

describe('worker encryptor close()', () => {
  it('settles in a process with nothing else to do, even when a result comes in after it', () => {
    // Its own process: the test runner keeps this one's event loop alive, which hid an unref()
    // by a late result that let the process exit before close() saw the worker exit (exit code
    // 13, an unsettled top-level await).
    const script = join(dir, 'close-race.mts');
    const encryptorModule = pathToFileURL(join(ROOT, 'shared/xlsx/crypto/segment-encryptor.ts')).href;
    writeFileSync(
      script,
      [
        `import { createWorkerEncryptor } from ${JSON.stringify(encryptorModule)};`,
        'const encryptor = createWorkerEncryptor(Buffer.alloc(32, 1), Buffer.alloc(16, 2));',
        'await encryptor.encrypt(Buffer.alloc(16), 0);',
        'encryptor.encrypt(Buffer.alloc(16), 1).catch(() => undefined);',
        // Blocks this thread (not a timer) so the worker posts that result before close():
        // it is then handled after close() began. If the worker is slower, the test is merely weaker.
        'Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);',
        'await encryptor.close();',
        "console.log('closed');",
      ].join('\n'),
    );
    const run = spawnSync(join(ROOT, 'node_modules/.bin/tsx'), [script], { cwd: ROOT, encoding: 'utf8' });
    expect({ status: run.status, stdout: run.stdout.trim(), stderr: run.stderr.trim() }).toEqual({
      status: 0,
      stdout: 'closed',
      stderr: '',
    });
  });
});
