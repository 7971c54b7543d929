/**
 * Test support for the crypto tests: an independent compound-file (MS-CFB) reader written from
 * the spec, a Python msoffcrypto-tool bridge, and stream helpers. Nothing here decrypts data:
 * decryption is always left to independent tools (xlsx-populate, officecrypto-tool, msoffcrypto).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { expect, it } from 'vitest';

export const FREESECT = 0xffffffff;
export const ENDOFCHAIN = 0xfffffffe;
export const FATSECT = 0xfffffffd;
export const DIFSECT = 0xfffffffc;
export const NOSTREAM = 0xffffffff;

export interface CfbHeader {
  minorVersion: number;
  majorVersion: number;
  sectorShift: number;
  miniSectorShift: number;
  directorySectorCount: number;
  fatSectorCount: number;
  firstDirectorySector: number;
  miniStreamCutoff: number;
  firstMiniFatSector: number;
  miniFatSectorCount: number;
  firstDifatSector: number;
  difatSectorCount: number;
  headerDifat: number[];
}

export interface CfbEntry {
  id: number;
  name: string;
  type: number;
  color: number;
  left: number;
  right: number;
  child: number;
  start: number;
  size: number;
}

export interface CfbFile {
  header: CfbHeader;
  sectorSize: number;
  fatSectorLocations: number[];
  difatSectorLocations: number[];
  fat: Uint32Array;
  entries: CfbEntry[];
  chain(start: number): number[];
  /** Reads a stream by its path (only regions the byte source holds can be read). */
  readStream(path: readonly string[]): Buffer;
  findEntry(path: readonly string[]): CfbEntry;
  childrenOf(entry: CfbEntry): CfbEntry[];
}

/** Reads `length` bytes at `offset`; lets a test hand in only the head and tail of a huge file. */
export type ByteSource = (offset: number, length: number) => Buffer;

export function bufferSource(buffer: Buffer): ByteSource {
  return (offset, length) => {
    if (offset + length > buffer.length) throw new Error(`read past end: ${offset}+${length} > ${buffer.length}`);
    return buffer.subarray(offset, offset + length);
  };
}

function compareNames(a: string, b: string): number {
  if (a.length !== b.length) return a.length - b.length;
  const ua = a.toUpperCase();
  const ub = b.toUpperCase();
  return ua < ub ? -1 : ua > ub ? 1 : 0;
}

/** Parses a compound file and checks the invariants MS-CFB states; throws on any violation. */
export function readCompoundFile(read: ByteSource, fileSize: number): CfbFile {
  const h = read(0, 512);
  if (!h.subarray(0, 8).equals(Buffer.from('d0cf11e0a1b11ae1', 'hex'))) throw new Error('bad signature');
  if (!h.subarray(8, 24).equals(Buffer.alloc(16))) throw new Error('header CLSID must be zero');
  const header: CfbHeader = {
    minorVersion: h.readUInt16LE(24),
    majorVersion: h.readUInt16LE(26),
    sectorShift: h.readUInt16LE(30),
    miniSectorShift: h.readUInt16LE(32),
    directorySectorCount: h.readUInt32LE(40),
    fatSectorCount: h.readUInt32LE(44),
    firstDirectorySector: h.readUInt32LE(48),
    miniStreamCutoff: h.readUInt32LE(56),
    firstMiniFatSector: h.readUInt32LE(60),
    miniFatSectorCount: h.readUInt32LE(64),
    firstDifatSector: h.readUInt32LE(68),
    difatSectorCount: h.readUInt32LE(72),
    headerDifat: Array.from({ length: 109 }, (_, i) => h.readUInt32LE(76 + i * 4)),
  };
  if (h.readUInt16LE(28) !== 0xfffe) throw new Error('bad byte order mark');
  if (header.minorVersion !== 0x3e) throw new Error('minor version must be 0x3E');
  const expectedShift = header.majorVersion === 3 ? 9 : header.majorVersion === 4 ? 12 : -1;
  if (header.sectorShift !== expectedShift) throw new Error('sector shift does not match major version');
  if (header.miniSectorShift !== 6 || header.miniStreamCutoff !== 4096) throw new Error('bad mini sector settings');
  if (!h.subarray(34, 40).equals(Buffer.alloc(6))) throw new Error('reserved header bytes must be zero');
  if (header.majorVersion === 3 && header.directorySectorCount !== 0) throw new Error('v3 directory sector count must be 0');
  const sectorSize = 1 << header.sectorShift;
  if (header.majorVersion === 4 && !read(512, sectorSize - 512).equals(Buffer.alloc(sectorSize - 512))) {
    throw new Error('v4 header padding must be zero');
  }
  if ((fileSize - sectorSize) % sectorSize !== 0) throw new Error('file is not a whole number of sectors');
  const sectorCount = (fileSize - sectorSize) / sectorSize;
  const sector = (index: number): Buffer => {
    if (index >= sectorCount) throw new Error(`sector ${index} beyond end of file`);
    return read(sectorSize + index * sectorSize, sectorSize);
  };
  const perSector = sectorSize / 4;

  // FAT sector locations: 109 in the header, the rest in the DIFAT chain.
  const fatSectorLocations = header.headerDifat.slice(0, Math.min(109, header.fatSectorCount));
  if (header.headerDifat.slice(fatSectorLocations.length).some((v) => v !== FREESECT)) {
    throw new Error('unused header DIFAT entries must be FREESECT');
  }
  const difatSectorLocations: number[] = [];
  let next = header.firstDifatSector;
  while (next !== ENDOFCHAIN) {
    if (difatSectorLocations.length > header.difatSectorCount) throw new Error('DIFAT chain longer than header says');
    if (next === FREESECT && header.difatSectorCount === 0) break;
    difatSectorLocations.push(next);
    const s = sector(next);
    for (let i = 0; i < perSector - 1; i += 1) {
      const v = s.readUInt32LE(i * 4);
      if (fatSectorLocations.length < header.fatSectorCount) fatSectorLocations.push(v);
      else if (v !== FREESECT) throw new Error('unused DIFAT entries must be FREESECT');
    }
    next = s.readUInt32LE((perSector - 1) * 4);
  }
  if (difatSectorLocations.length !== header.difatSectorCount) throw new Error('DIFAT sector count mismatch');
  if (fatSectorLocations.length !== header.fatSectorCount) throw new Error('not every FAT sector is listed');

  const fat = new Uint32Array(header.fatSectorCount * perSector);
  fatSectorLocations.forEach((location, i) => {
    const s = sector(location);
    for (let j = 0; j < perSector; j += 1) fat[i * perSector + j] = s.readUInt32LE(j * 4);
  });
  if (fat.length < sectorCount) throw new Error('FAT does not cover the file');
  for (let i = sectorCount; i < fat.length; i += 1) {
    if (fat[i] !== FREESECT) throw new Error(`FAT entry ${i} beyond end of file must be FREESECT`);
  }
  for (const location of fatSectorLocations) if (fat[location] !== FATSECT) throw new Error('FAT sector not marked FATSECT');
  for (const location of difatSectorLocations) if (fat[location] !== DIFSECT) throw new Error('DIFAT sector not marked DIFSECT');

  const chainOf = (table: Uint32Array, start: number): number[] => {
    const out: number[] = [];
    let at = start;
    while (at !== ENDOFCHAIN) {
      if (at >= table.length || out.length > table.length) throw new Error(`broken chain at ${at}`);
      out.push(at);
      at = table[at] as number;
    }
    return out;
  };
  const chain = (start: number): number[] => chainOf(fat, start);

  const dirSectors = chain(header.firstDirectorySector);
  if (header.majorVersion === 4 && dirSectors.length !== header.directorySectorCount) throw new Error('directory sector count mismatch');
  const dir = Buffer.concat(dirSectors.map(sector));
  const entries: CfbEntry[] = [];
  for (let at = 0; at < dir.length; at += 128) {
    const nameLength = dir.readUInt16LE(at + 64);
    const type = dir.readUInt8(at + 66);
    const entry: CfbEntry = {
      id: at / 128,
      name: nameLength > 0 ? dir.subarray(at, at + nameLength - 2).toString('utf16le') : '',
      type,
      color: dir.readUInt8(at + 67),
      left: dir.readUInt32LE(at + 68),
      right: dir.readUInt32LE(at + 72),
      child: dir.readUInt32LE(at + 76),
      start: dir.readUInt32LE(at + 116),
      size: Number(dir.readBigUInt64LE(at + 120)),
    };
    if (type === 0) {
      const blank = Buffer.from(dir.subarray(at, at + 128));
      blank.fill(0, 68, 80);
      if (!blank.equals(Buffer.alloc(128)) || entry.left !== NOSTREAM || entry.right !== NOSTREAM || entry.child !== NOSTREAM) {
        throw new Error('unused directory entry must be zero with NOSTREAM links');
      }
    } else if (nameLength < 2 || nameLength > 64 || dir.readUInt16LE(at + nameLength - 2) !== 0) {
      throw new Error('bad directory entry name');
    }
    if (entry.color > 1) throw new Error('bad color');
    entries.push(entry);
  }
  const root = entries[0];
  if (!root || root.type !== 5 || root.name !== 'Root Entry') throw new Error('entry 0 must be the root');
  if (header.majorVersion === 3 && entries.some((e) => e.size > 0x80000000)) throw new Error('v3 stream above 2 GB');

  // Every storage's children form a binary search tree in MS-CFB order; every entry is reached once.
  const reached = new Set<number>([0]);
  const childrenOf = (storage: CfbEntry): CfbEntry[] => {
    const sorted: CfbEntry[] = [];
    const walk = (id: number): void => {
      if (id === NOSTREAM) return;
      const e = entries[id];
      if (!e || e.type === 0) throw new Error(`link to missing entry ${id}`);
      walk(e.left);
      sorted.push(e);
      walk(e.right);
    };
    walk(storage.child);
    for (let i = 1; i < sorted.length; i += 1) {
      if (compareNames((sorted[i - 1] as CfbEntry).name, (sorted[i] as CfbEntry).name) >= 0) {
        throw new Error(`siblings out of order under ${storage.name}`);
      }
    }
    return sorted;
  };
  const visit = (storage: CfbEntry): void => {
    for (const child of childrenOf(storage)) {
      if (reached.has(child.id)) throw new Error('entry reached twice');
      reached.add(child.id);
      if (child.type === 1) {
        if (child.start !== 0 || child.size !== 0) throw new Error('storage start/size must be zero');
        visit(child);
      } else if (child.type === 2) {
        if (child.child !== NOSTREAM) throw new Error('stream with children');
      } else throw new Error(`unexpected entry type ${child.type}`);
    }
  };
  visit(root);
  if (reached.size !== entries.filter((e) => e.type !== 0).length) throw new Error('unreachable directory entries');

  const miniFatRaw =
    header.miniFatSectorCount === 0 ? Buffer.alloc(0) : Buffer.concat(chain(header.firstMiniFatSector).map(sector));
  if (miniFatRaw.length !== header.miniFatSectorCount * sectorSize) throw new Error('MiniFAT sector count mismatch');
  const miniFat = new Uint32Array(miniFatRaw.length / 4);
  for (let i = 0; i < miniFat.length; i += 1) miniFat[i] = miniFatRaw.readUInt32LE(i * 4);
  const miniContainerSectors = root.size > 0 ? chain(root.start) : [];
  if (miniContainerSectors.length !== Math.ceil(root.size / sectorSize)) throw new Error('mini stream container length mismatch');

  const findEntry = (path: readonly string[]): CfbEntry => {
    let current = root;
    for (const name of path) {
      const found = childrenOf(current).find((c) => compareNames(c.name, name) === 0);
      if (!found) throw new Error(`no entry ${path.join('/')}`);
      current = found;
    }
    return current;
  };
  const readStream = (path: readonly string[]): Buffer => {
    const entry = findEntry(path);
    if (entry.type !== 2) throw new Error('not a stream');
    if (entry.size >= header.miniStreamCutoff) {
      const sectors = chain(entry.start);
      if (sectors.length !== Math.ceil(entry.size / sectorSize)) throw new Error('regular chain length mismatch');
      return Buffer.concat(sectors.map(sector)).subarray(0, entry.size);
    }
    if (entry.size === 0) return Buffer.alloc(0);
    const miniSectors = chainOf(miniFat, entry.start);
    if (miniSectors.length !== Math.ceil(entry.size / 64)) throw new Error('mini chain length mismatch');
    const parts = miniSectors.map((m) => {
      const offset = m * 64;
      const s = miniContainerSectors[Math.floor(offset / sectorSize)];
      if (s === undefined || offset + 64 > root.size) throw new Error('mini sector outside the mini stream');
      return sector(s).subarray(offset % sectorSize, (offset % sectorSize) + 64);
    });
    return Buffer.concat(parts).subarray(0, entry.size);
  };

  return { header, sectorSize, fatSectorLocations, difatSectorLocations, fat, entries, chain, readStream, findEntry, childrenOf };
}

/** A Writable that keeps everything it receives (for small files). */
export function collectingWritable(options: { highWaterMark?: number } = {}): { out: Writable; result: () => Buffer } {
  const chunks: Buffer[] = [];
  const out = new Writable({
    highWaterMark: options.highWaterMark ?? 16 * 1024,
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk);
      callback();
    },
  });
  return { out, result: () => Buffer.concat(chunks) };
}

/** Deterministic pseudo-random bytes (xorshift32), fast enough for hundreds of MB. */
export function pseudoRandomBytes(length: number, seed: number): Buffer {
  const words = new Uint32Array(Math.ceil(length / 4));
  let x = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i += 1) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  return Buffer.from(words.buffer, 0, length);
}

/**
 * Pseudo-random bytes framed like a ZIP (local-header signature first, end-of-central-directory
 * record last), because decryptors sniff for those to tell a wrong password from a right one.
 */
export function zipLikePayload(size: number, seed: number): Buffer {
  const data = pseudoRandomBytes(size, seed);
  if (size >= 26) data.writeUInt32LE(0x04034b50, 0);
  if (size >= 22) {
    data.fill(0, size - 22);
    data.writeUInt32LE(0x06054b50, size - 22);
  }
  return data;
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

// Debian's interpreter, not the default python3 on PATH (which lacks the apt packages).
// CRYPTO_TEST_PYTHON only exists to check the skip/fail behaviour without uninstalling anything.
const PYTHON = process.env.CRYPTO_TEST_PYTHON ?? '/usr/bin/python3';
// What these tests need is the one package: olefile, which olefileListing imports too, is a
// dependency of Debian's python3-msoffcrypto-tool and comes with it.
export const MSOFFCRYPTO_INSTALL_HINT = 'apt-get install -y python3-msoffcrypto-tool';

/** True when Debian's msoffcrypto-tool (and its olefile) can be imported by /usr/bin/python3. */
export function msoffcryptoAvailable(): boolean {
  const probe = spawnSync(PYTHON, ['-c', 'import msoffcrypto, olefile'], { encoding: 'utf8' });
  return probe.status === 0;
}

/**
 * The interop tests' gate: they run when the tool is there, skip with the install hint on a
 * developer machine without it, and must run (and fail without it) in CI.
 */
export function msoffcryptoGate() {
  const hasMsoffcrypto = msoffcryptoAvailable();
  if (!hasMsoffcrypto && !process.env.CI) {
    console.warn(`msoffcrypto interop tests skipped: ${MSOFFCRYPTO_INSTALL_HINT}`);
  }
  return {
    hasMsoffcrypto,
    interopIt: hasMsoffcrypto || process.env.CI ? it : it.skip,
    requireMsoffcrypto: () => expect(hasMsoffcrypto, `msoffcrypto-tool missing: ${MSOFFCRYPTO_INSTALL_HINT}`).toBe(true),
  };
}

// The password reaches Python through the environment, never argv, so it is not in `ps` output.
// Takes (input, output) path pairs so many files cost one interpreter start-up.
const DECRYPT_SCRIPT = `
import os, sys, msoffcrypto
args = sys.argv[1:]
for i in range(0, len(args), 2):
    with open(args[i], 'rb') as f:
        office = msoffcrypto.OfficeFile(f)
        office.load_key(password=os.environ['MSOFF_PASSWORD'], verify_password=True)
        with open(args[i + 1], 'wb') as o:
            office.decrypt(o, verify_integrity=True)
`;

export interface PythonResult {
  status: number | null;
  stderr: string;
}

/** Decrypts `input` to `output` with msoffcrypto-tool, verifying the password and the HMAC. */
export function msoffcryptoDecrypt(input: string, output: string, password: string): PythonResult {
  return msoffcryptoDecryptMany([[input, output]], password);
}

/** Decrypts every [input, output] pair in one Python process; fails at the first bad file. */
export function msoffcryptoDecryptMany(pairs: readonly (readonly [string, string])[], password: string): PythonResult {
  const run = spawnSync(PYTHON, ['-c', DECRYPT_SCRIPT, ...pairs.flat()], {
    encoding: 'utf8',
    env: { ...process.env, MSOFF_PASSWORD: password },
    maxBuffer: 16 * 1024 * 1024,
  });
  return { status: run.status, stderr: run.stderr };
}

const VERIFY_KEY_SCRIPT = `
import base64, json, os, sys
from msoffcrypto.method.ecma376_agile import ECMA376Agile
p = json.loads(sys.stdin.read())
pw = os.environ['MSOFF_PASSWORD']
salt = base64.b64decode(p['passwordSalt'])
ok = ECMA376Agile.verify_password(pw, salt, 'SHA512', base64.b64decode(p['encryptedVerifierHashInput']),
    base64.b64decode(p['encryptedVerifierHashValue']), p['spinCount'], 256)
key = ECMA376Agile.makekey_from_password(pw, salt, 'SHA512', base64.b64decode(p['encryptedKeyValue']), p['spinCount'], 256)
print(json.dumps({'verified': bool(ok), 'packageKeyHex': key.hex()}))
`;

/** Asks msoffcrypto-tool to verify the password and recover the package key from the params. */
export function msoffcryptoRecoverKey(params: object, password: string): { verified: boolean; packageKeyHex: string } {
  const run = spawnSync(PYTHON, ['-c', VERIFY_KEY_SCRIPT], {
    input: JSON.stringify(params),
    encoding: 'utf8',
    env: { ...process.env, MSOFF_PASSWORD: password },
  });
  if (run.status !== 0) throw new Error(`msoffcrypto key check failed: ${run.stderr}`);
  return JSON.parse(run.stdout) as { verified: boolean; packageKeyHex: string };
}

const OLEFILE_LISTING_SCRIPT = `
import hashlib, json, sys, olefile
ole = olefile.OleFileIO(sys.argv[1])
out = {}
for path in ole.listdir(streams=True, storages=False):
    name = '/'.join(path)
    data = ole.openstream(name).read()
    out[name] = {'size': ole.get_size(name), 'sha256': hashlib.sha256(data).hexdigest()}
print(json.dumps({'version': ole.dll_version, 'streams': out}))
`;

/** olefile's view of a compound file: every stream's size and sha256, keyed by its '/'-joined path. */
export function olefileListing(file: string): { version: number; streams: Record<string, { size: number; sha256: string }> } {
  const run = spawnSync(PYTHON, ['-c', OLEFILE_LISTING_SCRIPT, file], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  if (run.status !== 0) throw new Error(`olefile failed: ${run.stderr}`);
  return JSON.parse(run.stdout) as { version: number; streams: Record<string, { size: number; sha256: string }> };
}
