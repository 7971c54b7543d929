import officeCrypto from 'officecrypto-tool';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  EncryptionInputError,
  EncryptionStreamError,
  MAX_PACKAGE_SIZE,
  createEncryptingSink,
  deriveEncryptionKeys,
  encryptedFileSize,
  planEncryptedFile,
  type EncryptionParams,
} from '../../shared/xlsx/crypto/index';
import { createInlineEncryptor, createWorkerEncryptor } from '../../shared/xlsx/crypto/segment-encryptor';
import {
  DIFSECT,
  ENDOFCHAIN,
  FATSECT,
  bufferSource,
  collectingWritable,
  msoffcryptoGate,
  msoffcryptoDecrypt,
  msoffcryptoDecryptMany,
  olefileListing,
  pseudoRandomBytes,
  readCompoundFile,
  sha256,
  zipLikePayload,
  type ByteSource,
} from './crypto-test-support';

const PASSWORD = 'Packag3Key';
const { hasMsoffcrypto, interopIt, requireMsoffcrypto } = msoffcryptoGate();

type Keys = { params: EncryptionParams; packageKey: Buffer };
let keys: Keys;
let dir: string;

beforeAll(async () => {
  // A low spin count keeps these layout tests quick; the agile tests cover the default.
  keys = await deriveEncryptionKeys(PASSWORD, { spinCount: 1000 });
  dir = mkdtempSync(join(tmpdir(), 'crypto-cfb-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function encryptBuffer(plain: Buffer, chunk = 5000, cfbVersion?: 3 | 4, parallel?: boolean): Promise<Buffer> {
  const { out, result } = collectingWritable();
  const sink = createEncryptingSink({ ...keys, packageSize: plain.length, out, cfbVersion, parallel });
  for (let offset = 0; offset < plain.length; offset += chunk) await sink.write(plain.subarray(offset, offset + chunk));
  await sink.finish();
  return result();
}

/** Smallest package size for which `predicate(plan)` holds (it must be monotone in the size). */
function firstSizeWhere(predicate: (size: number) => boolean, low: number, high: number): number {
  let lo = low;
  let hi = high;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (predicate(mid)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

const readUnicodeLpP4 = (data: Buffer, at: number): { text: string; next: number } => {
  const length = data.readUInt32LE(at);
  const text = data.subarray(at + 4, at + 4 + length).toString('utf16le');
  return { text, next: at + 4 + length + ((4 - (length % 4)) % 4) };
};

describe('compound file layout', () => {
  const v3FirstTwoFatSectors = firstSizeWhere((s) => planEncryptedFile(s).fatSectors >= 2, 1, 1 << 20);
  const v3FirstDifat = firstSizeWhere((s) => planEncryptedFile(s).difatSectors >= 1, 1, 1 << 26);
  const sizes = [
    1, 15, 16, 17, 22, 100, 503, 504, 505,
    4080, // EncryptedPackage stream 4088 bytes: still in the mini stream
    4081, // 4104 bytes: the first regular stream
    4095, 4096, 4097, 8184, 8185,
    v3FirstTwoFatSectors - 1, v3FirstTwoFatSectors,
    v3FirstDifat - 1, v3FirstDifat,
  ];

  it('places the thresholds where MS-CFB says', () => {
    expect(planEncryptedFile(4080).streams[0]?.inMiniStream).toBe(true);
    expect(planEncryptedFile(4081).streams[0]?.inMiniStream).toBe(false);
    // One FAT sector maps 128 sectors of 512 bytes; the header holds 109 FAT sector numbers.
    expect(planEncryptedFile(v3FirstDifat - 1).fatSectors).toBe(109);
    expect(planEncryptedFile(v3FirstDifat).fatSectors).toBe(110);
    expect(v3FirstDifat).toBeGreaterThan(7_000_000);
    expect(v3FirstDifat).toBeLessThan(7_200_000);
  });

  it.each(sizes)('writes exactly encryptedFileSize() bytes and a valid compound file for %i bytes', async (size) => {
    const plain = zipLikePayload(size, size);
    const file = await encryptBuffer(plain, 1 + (size % 9973));
    expect(file.length).toBe(encryptedFileSize(size));
    const cfb = readCompoundFile(bufferSource(file), file.length);
    const streamSize = 8 + Math.ceil(size / 16) * 16;
    const packageEntry = cfb.findEntry(['EncryptedPackage']);
    expect(packageEntry.size).toBe(streamSize);
    const stream = cfb.readStream(['EncryptedPackage']);
    expect(stream.readBigUInt64LE(0)).toBe(BigInt(size));
    // Ciphertext never leaks the plaintext.
    if (size >= 64) expect(stream.includes(plain.subarray(0, 32))).toBe(false);
    expect(cfb.difatSectorLocations.length).toBe(planEncryptedFile(size).difatSectors);
  });

  interopIt('files of all those sizes decrypt byte-exact with msoffcrypto-tool, HMAC verified', async () => {
    requireMsoffcrypto();
    // Sizes below 22 bytes cannot end in a ZIP end record, which msoffcrypto insists on.
    const checked = sizes.filter((size) => size >= 22);
    for (const size of checked) {
      writeFileSync(join(dir, `size-${size}.bin`), await encryptBuffer(zipLikePayload(size, size), 1 + (size % 7919)));
    }
    const pairs = checked.map((size) => [join(dir, `size-${size}.bin`), join(dir, `size-${size}.out`)] as const);
    expect(msoffcryptoDecryptMany(pairs, PASSWORD)).toEqual({ status: 0, stderr: '' });
    for (const size of checked) {
      expect(readFileSync(join(dir, `size-${size}.out`)).equals(zipLikePayload(size, size)), `size ${size}`).toBe(true);
    }
  });

  it('matches encryptedFileSize for version 4 files too', async () => {
    for (const size of [1, 4080, 4081, 70_000]) {
      const file = await encryptBuffer(zipLikePayload(size, 3), 4096, 4);
      expect(file.length).toBe(encryptedFileSize(size, { cfbVersion: 4 }));
      expect(readCompoundFile(bufferSource(file), file.length).header.directorySectorCount).toBe(1);
    }
  });

  it('holds the directory tree, DataSpaces streams and header fields MS-OFFCRYPTO and MS-CFB require', async () => {
    const file = await encryptBuffer(zipLikePayload(50_000, 9));
    const cfb = readCompoundFile(bufferSource(file), file.length);
    expect(cfb.header.majorVersion).toBe(3);
    expect(cfb.sectorSize).toBe(512);
    expect(cfb.entries.filter((e) => e.type !== 0).every((e) => e.color === 1)).toBe(true);

    const root = cfb.entries[0];
    if (!root) throw new Error('no root');
    expect(cfb.childrenOf(root).map((e) => e.name)).toEqual(['\u0006DataSpaces', 'EncryptionInfo', 'EncryptedPackage']);
    const dataSpaces = cfb.findEntry(['\u0006DataSpaces']);
    expect(cfb.childrenOf(dataSpaces).map((e) => e.name)).toEqual(['Version', 'DataSpaceMap', 'DataSpaceInfo', 'TransformInfo']);
    expect(cfb.childrenOf(cfb.findEntry(['\u0006DataSpaces', 'TransformInfo'])).map((e) => e.name)).toEqual([
      'StrongEncryptionTransform',
    ]);

    const version = cfb.readStream(['\u0006DataSpaces', 'Version']);
    const feature = readUnicodeLpP4(version, 0);
    expect(feature.text).toBe('Microsoft.Container.DataSpaces');
    expect([...version.subarray(feature.next)]).toEqual([1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0]);

    const map = cfb.readStream(['\u0006DataSpaces', 'DataSpaceMap']);
    expect(map.readUInt32LE(0)).toBe(8);
    expect(map.readUInt32LE(4)).toBe(1);
    expect(map.readUInt32LE(8)).toBe(map.length - 8); // entry length includes its own field
    expect(map.readUInt32LE(12)).toBe(1); // one reference component
    expect(map.readUInt32LE(16)).toBe(0); // of type stream
    const component = readUnicodeLpP4(map, 20);
    expect(component.text).toBe('EncryptedPackage');
    const spaceName = readUnicodeLpP4(map, component.next);
    expect(spaceName.text).toBe('StrongEncryptionDataSpace');
    expect(spaceName.next).toBe(map.length);

    const definition = cfb.readStream(['\u0006DataSpaces', 'DataSpaceInfo', 'StrongEncryptionDataSpace']);
    expect(definition.readUInt32LE(0)).toBe(8);
    expect(definition.readUInt32LE(4)).toBe(1);
    const transformRef = readUnicodeLpP4(definition, 8);
    expect(transformRef.text).toBe('StrongEncryptionTransform');
    expect(transformRef.next).toBe(definition.length);

    const primary = cfb.readStream(['\u0006DataSpaces', 'TransformInfo', 'StrongEncryptionTransform', '\u0006Primary']);
    const transformId = readUnicodeLpP4(primary, 8);
    expect(primary.readUInt32LE(0)).toBe(transformId.next); // TransformLength: bytes before TransformName
    expect(primary.readUInt32LE(4)).toBe(1);
    expect(transformId.text).toBe('{FF9A3F03-56EF-4613-BDD5-5A41C1D07246}');
    const transformName = readUnicodeLpP4(primary, transformId.next);
    expect(transformName.text).toBe('Microsoft.Container.EncryptionTransform');
    const rest = primary.subarray(transformName.next);
    expect([...rest]).toEqual([1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0]);

    // The file streams front to back: EncryptedPackage first, then mini stream, MiniFAT, FAT, directory.
    const packageChain = cfb.chain(cfb.findEntry(['EncryptedPackage']).start);
    expect(packageChain[0]).toBe(0);
    expect(packageChain).toEqual(packageChain.map((_, i) => i));
    const miniChain = cfb.chain(root.start);
    expect(miniChain[0]).toBe(packageChain.length);
    expect(cfb.header.firstMiniFatSector).toBe(packageChain.length + miniChain.length);
    expect(cfb.fatSectorLocations[0]).toBe(cfb.header.firstMiniFatSector + cfb.header.miniFatSectorCount);
    expect(cfb.header.firstDirectorySector).toBeGreaterThan(cfb.fatSectorLocations.at(-1) ?? Infinity);
    expect(cfb.header.firstDifatSector).toBe(ENDOFCHAIN);
  });
});

/** Yields `size` pseudo-random bytes ending in a ZIP end record, never holding more than one chunk. */
async function* generatePackage(size: number, chunk: number, hash: ReturnType<typeof createHash>): AsyncGenerator<Buffer> {
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  let produced = 0;
  for (let index = 0; produced < size - 22; index += 1) {
    const data = pseudoRandomBytes(Math.min(chunk, size - 22 - produced), index + 1);
    if (index === 0) data.writeUInt32LE(0x04034b50, 0);
    produced += data.length;
    hash.update(data);
    yield data;
  }
  hash.update(eocd);
  yield eocd;
}

describe('independent reader', () => {
  interopIt('olefile sees the same streams, sizes and bytes as the in-test reader', async () => {
    requireMsoffcrypto();
    for (const [size, version] of [[70_000, 3], [3000, 3], [70_000, 4]] as const) {
      const file = await encryptBuffer(zipLikePayload(size, 11), 4096, version);
      const path = join(dir, `olefile-${size}-${version}.bin`);
      writeFileSync(path, file);
      const listing = olefileListing(path);
      expect(listing.version).toBe(version);
      const cfb = readCompoundFile(bufferSource(file), file.length);
      const names = Object.keys(listing.streams).sort();
      expect(names).toEqual(
        [
          '\u0006DataSpaces/DataSpaceInfo/StrongEncryptionDataSpace',
          '\u0006DataSpaces/DataSpaceMap',
          '\u0006DataSpaces/TransformInfo/StrongEncryptionTransform/\u0006Primary',
          '\u0006DataSpaces/Version',
          'EncryptedPackage',
          'EncryptionInfo',
        ].sort(),
      );
      for (const name of names) {
        const mine = cfb.readStream(name.split('/'));
        expect({ name, size: mine.length, sha256: sha256(mine) }).toEqual({ name, ...listing.streams[name] });
      }
    }
  });
});

describe('large files', () => {
  interopIt('streams a file with a two-sector DIFAT chain that msoffcrypto-tool decrypts byte-exact', async () => {
    requireMsoffcrypto();
    // Two DIFAT sectors hold 109 + 127 FAT sectors; go past that.
    const size = firstSizeWhere((s) => planEncryptedFile(s).difatSectors >= 2, 1, 1 << 26) + 12_345;
    const input = join(dir, 'large.xlsx');
    const output = join(dir, 'large-out.xlsx');
    const out = createWriteStream(input);
    const sink = createEncryptingSink({ ...keys, packageSize: size, out });
    const plainHash = createHash('sha256');
    for await (const chunk of generatePackage(size, 65_537, plainHash)) await sink.write(chunk);
    await sink.finish();
    out.end();
    await finished(out);

    expect(statSync(input).size).toBe(encryptedFileSize(size));
    const cfb = readCompoundFile(bufferSource(readFileSync(input)), statSync(input).size);
    expect(cfb.header.difatSectorCount).toBe(2);
    expect(cfb.difatSectorLocations).toHaveLength(2);
    expect(cfb.fatSectorLocations.length).toBeGreaterThan(109 + 127);
    expect(msoffcryptoDecrypt(input, output, PASSWORD)).toEqual({ status: 0, stderr: '' });
    const decryptedHash = createHash('sha256');
    for await (const piece of createReadStream(output)) decryptedHash.update(piece as Buffer);
    expect(decryptedHash.digest('hex')).toBe(plainHash.digest('hex'));
  });

  it('lays out a version 4 file past 109 FAT sectors (DIFAT) without holding it in memory', async () => {
    const size = firstSizeWhere((s) => planEncryptedFile(s, { cfbVersion: 4 }).difatSectors >= 1, 1, 2 ** 31) + 777;
    // 109 FAT sectors x 1024 entries x 4096 bytes: about 436 MiB.
    expect(size).toBeGreaterThan(435 * 1024 * 1024);
    const fileSize = encryptedFileSize(size, { cfbVersion: 4 });
    const headBytes = 4096;
    const tailBytes = 2 * 1024 * 1024;
    const head = Buffer.alloc(headBytes);
    const tail = Buffer.alloc(tailBytes);
    let received = 0;
    let peakMemory = 0;
    // Keeps only the head and the tail of the file: the middle is EncryptedPackage sectors.
    const out = new Writable({
      highWaterMark: 256 * 1024,
      write(chunk: Buffer, _encoding, callback) {
        for (let i = 0; i < chunk.length; ) {
          const at = received + i;
          if (at < headBytes) {
            const n = Math.min(headBytes - at, chunk.length - i);
            chunk.copy(head, at, i, i + n);
            i += n;
          } else if (at >= fileSize - tailBytes) {
            const n = chunk.length - i;
            chunk.copy(tail, at - (fileSize - tailBytes), i, i + n);
            i += n;
          } else {
            i += Math.min(fileSize - tailBytes - at, chunk.length - i);
          }
        }
        received += chunk.length;
        callback();
      },
    });
    const sink = createEncryptingSink({ ...keys, packageSize: size, out, cfbVersion: 4 });
    const block = pseudoRandomBytes(1024 * 1024 + 3, 42);
    const started = performance.now();
    for (let written = 0; written < size; ) {
      const n = Math.min(block.length, size - written);
      await sink.write(block.subarray(0, n));
      written += n;
      if (written % (32 * block.length) < block.length) {
        const usage = process.memoryUsage();
        peakMemory = Math.max(peakMemory, usage.heapUsed + usage.arrayBuffers);
      }
    }
    await sink.finish();
    const seconds = (performance.now() - started) / 1000;
    console.info(
      `encrypted ${(size / 2 ** 20).toFixed(0)} MiB in ${seconds.toFixed(2)} s = ${(size / 2 ** 20 / seconds).toFixed(0)} MiB/s; ` +
        `peak heap+buffers ${(peakMemory / 2 ** 20).toFixed(0)} MiB`,
    );
    expect(received).toBe(fileSize);
    // Far below the package size: nothing proportional to the data is retained.
    expect(peakMemory).toBeLessThan(256 * 1024 * 1024);

    const source: ByteSource = (offset, length) => {
      if (offset + length <= headBytes) return head.subarray(offset, offset + length);
      if (offset >= fileSize - tailBytes) return tail.subarray(offset - (fileSize - tailBytes), offset - (fileSize - tailBytes) + length);
      throw new Error(`test did not keep bytes at ${offset}`);
    };
    const cfb = readCompoundFile(source, fileSize);
    expect(cfb.header.majorVersion).toBe(4);
    expect(cfb.header.fatSectorCount).toBeGreaterThan(109);
    expect(cfb.header.difatSectorCount).toBe(1);
    expect(cfb.fat[cfb.difatSectorLocations[0] as number]).toBe(DIFSECT);
    expect(cfb.fat[cfb.fatSectorLocations[109] as number]).toBe(FATSECT);
    const packageEntry = cfb.findEntry(['EncryptedPackage']);
    expect(packageEntry.size).toBe(8 + Math.ceil(size / 16) * 16);
    const chain = cfb.chain(packageEntry.start);
    expect(chain.length).toBe(Math.ceil(packageEntry.size / 4096));
    expect(chain.at(-1)).toBe(chain.length - 1);
    expect(cfb.readStream(['EncryptionInfo']).subarray(0, 4)).toEqual(Buffer.from([4, 0, 4, 0]));
  });

  it('plans the largest accepted package and refuses a larger one by name', () => {
    const plan = planEncryptedFile(MAX_PACKAGE_SIZE);
    expect(plan.version).toBe(4);
    expect(plan.totalSectors).toBeLessThan(0xfffffffa);
    expect(plan.fileSize).toBeGreaterThan(MAX_PACKAGE_SIZE);
    expect(() => encryptedFileSize(MAX_PACKAGE_SIZE + 1)).toThrow(
      expect.objectContaining({ name: 'EncryptionInputError', field: 'packageSize' }),
    );
  });

  it('switches to version 4 by itself when EncryptedPackage passes the 2 GB version 3 limit', () => {
    expect(planEncryptedFile(2 ** 31 - 64).version).toBe(3);
    expect(planEncryptedFile(2 ** 31).version).toBe(4);
    expect(() => planEncryptedFile(2 ** 31, { cfbVersion: 3 })).toThrow(EncryptionInputError);
  });
});

describe.each([false, true])('output stream handling (worker engine: %s)', (parallel) => {
  it('respects backpressure of a slow stream with a tiny highWaterMark and still writes a correct file', async () => {
    // Several 256 KiB blocks, so the sink has to wait for drain many times in either engine.
    const plain = zipLikePayload(1_500_000, 5);
    const chunks: Buffer[] = [];
    let writesWhileFull = 0;
    let drains = 0;
    const out = new Writable({
      highWaterMark: 16,
      write(chunk: Buffer, _encoding, callback) {
        chunks.push(chunk);
        setImmediate(callback);
      },
    });
    const originalWrite = out.write.bind(out);
    out.write = ((...args: Parameters<Writable['write']>) => {
      if (out.writableNeedDrain) writesWhileFull += 1;
      return originalWrite(...args);
    }) as Writable['write'];
    out.on('drain', () => {
      drains += 1;
    });
    const sink = createEncryptingSink({ ...keys, packageSize: plain.length, out, parallel });
    for (let offset = 0; offset < plain.length; offset += 7777) await sink.write(plain.subarray(offset, offset + 7777));
    await sink.finish();
    const file = Buffer.concat(chunks);
    expect(writesWhileFull).toBe(0);
    expect(drains).toBeGreaterThan(3);
    expect(file.length).toBe(encryptedFileSize(plain.length));
    expect((await officeCrypto.decrypt(file, { password: PASSWORD })).equals(plain)).toBe(true);
  });

  it('rejects write() or finish() when the stream fails mid-way, and finish() always', async () => {
    // Large enough that output flows while writes continue, even with blocks in flight in a worker.
    const plain = zipLikePayload(2_000_000, 6);
    let seen = 0;
    const out = new Writable({
      highWaterMark: 1024,
      write(chunk: Buffer, _encoding, callback) {
        seen += chunk.length;
        setImmediate(() => callback(seen > 100_000 ? new Error('disk full') : null));
      },
    });
    const sink = createEncryptingSink({ ...keys, packageSize: plain.length, out, parallel });
    let writeError: unknown;
    for (let offset = 0; offset < plain.length && !writeError; offset += 50_000) {
      await sink.write(plain.subarray(offset, offset + 50_000)).catch((error: unknown) => {
        writeError = error;
      });
    }
    expect(writeError).toBeInstanceOf(EncryptionStreamError);
    expect((writeError as Error).cause).toMatchObject({ message: 'disk full' });
    await expect(sink.finish()).rejects.toBeInstanceOf(Error);
  });

  it('rejects finish() when the stream fails while the tail is written', async () => {
    const plain = zipLikePayload(20_000, 7);
    const fileSize = encryptedFileSize(plain.length);
    let seen = 0;
    const out = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        seen += chunk.length;
        callback(seen >= fileSize ? new Error('connection reset') : null);
      },
    });
    const sink = createEncryptingSink({ ...keys, packageSize: plain.length, out, parallel });
    await sink.write(plain);
    await expect(sink.finish()).rejects.toThrow(EncryptionStreamError);
  });

  it('rejects when the stream is already destroyed', async () => {
    const { out } = collectingWritable();
    out.destroy();
    const sink = createEncryptingSink({ ...keys, packageSize: 10, out, parallel });
    await expect(sink.write(Buffer.alloc(10))).rejects.toThrow(EncryptionStreamError);
    await expect(sink.finish()).rejects.toThrow();
  });
});

describe('encryption engines', () => {
  it.each([1, 4097, 262_144, 262_145, 1_000_003])(
    'the worker engine writes the same bytes as the inline engine (%i bytes)',
    async (size) => {
      const plain = zipLikePayload(size, size);
      const inline = await encryptBuffer(plain, 65_537, undefined, false);
      const worker = await encryptBuffer(plain, 4096, undefined, true);
      expect(worker.length).toBe(inline.length);
      expect(sha256(worker)).toBe(sha256(inline));
      // officecrypto-tool insists on a ZIP signature, which needs at least 26 bytes.
      if (size >= 26) expect((await officeCrypto.decrypt(worker, { password: PASSWORD })).equals(plain)).toBe(true);
    },
  );

  it('leaves the caller\'s buffers intact (the worker gets copies, never the caller\'s memory)', async () => {
    const size = 4 * 262_144;
    const chunk = Buffer.allocUnsafeSlow(size); // owns its ArrayBuffer: transferable if we were careless
    pseudoRandomBytes(size, 12).copy(chunk);
    const before = sha256(chunk);
    const { out } = collectingWritable();
    const sink = createEncryptingSink({ ...keys, packageSize: size, out, parallel: true });
    await sink.write(chunk);
    await sink.finish();
    expect(chunk.length).toBe(size);
    expect(sha256(chunk)).toBe(before);
  });

  it('rejects work still pending when the worker engine is closed', async () => {
    const encryptor = createWorkerEncryptor(keys.packageKey, Buffer.alloc(16, 1));
    const outcome = encryptor.encrypt(Buffer.alloc(4 * 1024 * 1024), 0).then(
      () => new Error('resolved after close'),
      (error: unknown) => error,
    );
    await encryptor.close();
    expect(await outcome).toMatchObject({ name: 'EncryptionStreamError', message: 'encryptor closed' });
    await expect(encryptor.encrypt(Buffer.alloc(16), 0)).rejects.toThrow(EncryptionStreamError);
  });

  it('refuses work once the inline engine is closed, rather than encrypt with its zeroed key', async () => {
    const encryptor = createInlineEncryptor(keys.packageKey, Buffer.alloc(16, 1));
    await encryptor.encrypt(Buffer.alloc(16), 0);
    await encryptor.close();
    await expect(encryptor.encrypt(Buffer.alloc(16), 1)).rejects.toThrow(EncryptionStreamError);
  });

  interopIt('a worker-engine file decrypts byte-exact with msoffcrypto-tool', async () => {
    requireMsoffcrypto();
    const plain = zipLikePayload(3_000_017, 77);
    const file = await encryptBuffer(plain, 100_003, undefined, true);
    const input = join(dir, 'worker.bin');
    writeFileSync(input, file);
    expect(msoffcryptoDecrypt(input, join(dir, 'worker.out'), PASSWORD)).toEqual({ status: 0, stderr: '' });
    expect(readFileSync(join(dir, 'worker.out')).equals(plain)).toBe(true);
  });
});

describe('sink contract', () => {
  it('rejects more bytes than packageSize', async () => {
    const { out } = collectingWritable();
    const sink = createEncryptingSink({ ...keys, packageSize: 100, out });
    await sink.write(Buffer.alloc(60));
    await expect(sink.write(Buffer.alloc(41))).rejects.toThrow(/more than packageSize \(100\)/);
    await expect(sink.finish()).rejects.toThrow();
  });

  it('rejects fewer bytes than packageSize at finish()', async () => {
    const { out } = collectingWritable();
    const sink = createEncryptingSink({ ...keys, packageSize: 100, out });
    await sink.write(Buffer.alloc(99));
    await expect(sink.finish()).rejects.toThrow(/received 99 of packageSize 100/);
  });

  it('rejects use after finish()', async () => {
    const { out } = collectingWritable();
    const sink = createEncryptingSink({ ...keys, packageSize: 4, out });
    await sink.write(Buffer.from('abcd'));
    await sink.finish();
    await expect(sink.write(Buffer.alloc(1))).rejects.toThrow(/after finish/);
    await expect(sink.finish()).rejects.toThrow(/twice/);
  });

  it('serialises writes a caller did not await', async () => {
    const plain = zipLikePayload(50_000, 8);
    const { out, result } = collectingWritable({ highWaterMark: 64 });
    const sink = createEncryptingSink({ ...keys, packageSize: plain.length, out });
    const pending: Promise<void>[] = [];
    for (let offset = 0; offset < plain.length; offset += 999) pending.push(sink.write(plain.subarray(offset, offset + 999)));
    await Promise.all(pending);
    await sink.finish();
    expect((await officeCrypto.decrypt(result(), { password: PASSWORD })).equals(plain)).toBe(true);
  });

  it.each([
    [{ packageSize: 0 }, 'packageSize'],
    [{ packageSize: -5 }, 'packageSize'],
    [{ packageSize: 1.5 }, 'packageSize'],
    [{ packageSize: Number.NaN }, 'packageSize'],
    [{ packageKey: Buffer.alloc(16) }, 'packageKey'],
    [{ cfbVersion: 5 }, 'cfbVersion'],
    [{ out: {} }, 'out'],
    [{ paramsPatch: { keyDataSalt: 'AAAA' } }, 'params.keyDataSalt'],
    [{ paramsPatch: { spinCount: 0 } }, 'params.spinCount'],
    [{ paramsPatch: { encryptedKeyValue: undefined } }, 'params.encryptedKeyValue'],
    [{ paramsPatch: { extra: 'x' } }, 'params'],
  ])('refuses bad options %j naming %s', (patch, field) => {
    const { out } = collectingWritable();
    const { paramsPatch, ...rest } = patch as { paramsPatch?: Record<string, unknown> } & Record<string, unknown>;
    const options = {
      params: { ...keys.params, ...paramsPatch } as EncryptionParams,
      packageKey: keys.packageKey,
      packageSize: 10,
      out,
      ...rest,
    } as Parameters<typeof createEncryptingSink>[0];
    let error: unknown;
    try {
      createEncryptingSink(options);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(EncryptionInputError);
    expect((error as EncryptionInputError).field).toBe(field);
    expect((error as Error).message).not.toContain(keys.packageKey.toString('base64'));
  });

  it('gives identical sizes whatever the chunking, and sha256 differs per key', async () => {
    const plain = zipLikePayload(12_345, 10);
    const a = await encryptBuffer(plain, 1);
    const b = await encryptBuffer(plain, 12_345);
    expect(a.length).toBe(b.length);
    // Same key and salt: same bytes whatever the chunking (the layout never depends on it).
    expect(sha256(a)).toBe(sha256(b));
  });
});
