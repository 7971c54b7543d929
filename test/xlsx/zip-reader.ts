/**
 * A small ZIP reader for the tests, written from PKWARE APPNOTE independently of the writer:
 * end records (ZIP64 included), central directory with ZIP64 extra fields, local headers.
 */
import zlib from 'node:zlib';

export type CentralEntry = {
  name: string;
  versionNeeded: number;
  flags: number;
  method: number;
  crc32: number;
  compressedSize: number;
  uncompressedSize: number;
  localHeaderOffset: number;
};

export type ZipDirectory = {
  entries: CentralEntry[];
  zip64: boolean;
  cdOffset: number;
  cdSize: number;
};

/**
 * Parses the directory from the tail of a ZIP file. `tail` holds the last bytes of the file and
 * `tailStart` is the file offset of tail[0], so a multi-GiB file need not be in memory.
 */
export function readDirectory(tail: Buffer, tailStart = 0): ZipDirectory {
  let eocd = -1;
  for (let i = tail.length - 22; i >= Math.max(0, tail.length - 22 - 65_535); i--) {
    if (tail.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error('no end of central directory record');
  let count = tail.readUInt16LE(eocd + 10);
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);
  let zip64 = false;
  const locator = eocd - 20;
  if (locator >= 0 && tail.readUInt32LE(locator) === 0x07064b50) {
    zip64 = true;
    const recordOffset = Number(tail.readBigUInt64LE(locator + 8)) - tailStart;
    if (tail.readUInt32LE(recordOffset) !== 0x06064b50) throw new Error('bad zip64 end record');
    count = Number(tail.readBigUInt64LE(recordOffset + 32));
    cdSize = Number(tail.readBigUInt64LE(recordOffset + 40));
    cdOffset = Number(tail.readBigUInt64LE(recordOffset + 48));
  }
  const entries: CentralEntry[] = [];
  let p = cdOffset - tailStart;
  for (let n = 0; n < count; n++) {
    if (tail.readUInt32LE(p) !== 0x02014b50) throw new Error(`bad central header at ${p + tailStart}`);
    const nameLength = tail.readUInt16LE(p + 28);
    const extraLength = tail.readUInt16LE(p + 30);
    const commentLength = tail.readUInt16LE(p + 32);
    const e: CentralEntry = {
      name: tail.toString('utf8', p + 46, p + 46 + nameLength),
      versionNeeded: tail.readUInt16LE(p + 6),
      flags: tail.readUInt16LE(p + 8),
      method: tail.readUInt16LE(p + 10),
      crc32: tail.readUInt32LE(p + 16),
      compressedSize: tail.readUInt32LE(p + 20),
      uncompressedSize: tail.readUInt32LE(p + 24),
      localHeaderOffset: tail.readUInt32LE(p + 42),
    };
    let x = p + 46 + nameLength;
    const end = x + extraLength;
    while (x < end) {
      const id = tail.readUInt16LE(x);
      const size = tail.readUInt16LE(x + 2);
      if (id === 0x0001) {
        let y = x + 4;
        if (e.uncompressedSize === 0xffffffff) {
          e.uncompressedSize = Number(tail.readBigUInt64LE(y));
          y += 8;
        }
        if (e.compressedSize === 0xffffffff) {
          e.compressedSize = Number(tail.readBigUInt64LE(y));
          y += 8;
        }
        if (e.localHeaderOffset === 0xffffffff) e.localHeaderOffset = Number(tail.readBigUInt64LE(y));
      }
      x += 4 + size;
    }
    entries.push(e);
    p = end + commentLength;
  }
  return { entries, zip64, cdOffset, cdSize };
}

/** Local header fields at an offset inside `buf` (sizes resolved through a ZIP64 extra). */
export function readLocalHeader(buf: Buffer, at: number): { name: string; crc32: number; compressedSize: number; uncompressedSize: number; dataOffset: number; flags: number } {
  if (buf.readUInt32LE(at) !== 0x04034b50) throw new Error(`no local header at ${at}`);
  const nameLength = buf.readUInt16LE(at + 26);
  const extraLength = buf.readUInt16LE(at + 28);
  let compressedSize = buf.readUInt32LE(at + 18);
  let uncompressedSize = buf.readUInt32LE(at + 22);
  let x = at + 30 + nameLength;
  const end = x + extraLength;
  while (x < end) {
    if (buf.readUInt16LE(x) === 0x0001) {
      uncompressedSize = Number(buf.readBigUInt64LE(x + 4));
      compressedSize = Number(buf.readBigUInt64LE(x + 12));
    }
    x += 4 + buf.readUInt16LE(x + 2);
  }
  return {
    name: buf.toString('utf8', at + 30, at + 30 + nameLength),
    flags: buf.readUInt16LE(at + 6),
    crc32: buf.readUInt32LE(at + 14),
    compressedSize,
    uncompressedSize,
    dataOffset: end,
  };
}

/** Every entry inflated, checking sizes and CRCs against both headers. */
export function unzipSync(zip: Buffer): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const e of readDirectory(zip).entries) {
    const local = readLocalHeader(zip, e.localHeaderOffset);
    if (local.name !== e.name || local.crc32 !== e.crc32 || local.compressedSize !== e.compressedSize) {
      throw new Error(`local and central headers disagree for ${e.name}`);
    }
    const data = zlib.inflateRawSync(zip.subarray(local.dataOffset, local.dataOffset + e.compressedSize));
    if (data.length !== e.uncompressedSize) throw new Error(`size mismatch in ${e.name}`);
    if ((zlib.crc32(data) >>> 0) !== e.crc32) throw new Error(`crc mismatch in ${e.name}`);
    out[e.name] = data;
  }
  return out;
}
