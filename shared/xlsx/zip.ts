/**
 * ZIP structures (PKWARE APPNOTE 6.3) for a package whose entry sizes and CRCs are all known
 * before writing: local headers carry real sizes (no data descriptors), and ZIP64 extra
 * fields and end records appear only where a value does not fit in 32 bits.
 */

const U32_LIMIT = 0xffffffff;
const U16_LIMIT = 0xffff;
const METHOD_DEFLATE = 8;
const VERSION_DEFLATE = 20;
const VERSION_ZIP64 = 45;

export type ZipEntryMeta = {
  name: string;
  crc32: number;
  compressedSize: number;
  uncompressedSize: number;
};

export type ZipEntryPlaced = ZipEntryMeta & { offset: number };

export type DosDateTime = { time: number; date: number };

/** MS-DOS date/time fields (2-second resolution, 1980..2107), from UTC components. */
export function toDosDateTime(d: Date): DosDateTime {
  const year = Math.min(Math.max(d.getUTCFullYear(), 1980), 2107);
  return {
    time: (d.getUTCHours() << 11) | (d.getUTCMinutes() << 5) | Math.floor(d.getUTCSeconds() / 2),
    date: ((year - 1980) << 9) | ((d.getUTCMonth() + 1) << 5) | d.getUTCDate(),
  };
}

function needsZip64Sizes(e: ZipEntryMeta): boolean {
  return e.compressedSize >= U32_LIMIT || e.uncompressedSize >= U32_LIMIT;
}

/** The local file header, with a ZIP64 extra field (both sizes, as APPNOTE 4.5.3 requires) if needed. */
export function encodeLocalHeader(e: ZipEntryMeta, when: DosDateTime): Buffer {
  const name = Buffer.from(e.name, 'utf8');
  const zip64 = needsZip64Sizes(e);
  const extraLength = zip64 ? 20 : 0;
  const b = Buffer.alloc(30 + name.length + extraLength);
  b.writeUInt32LE(0x04034b50, 0);
  b.writeUInt16LE(zip64 ? VERSION_ZIP64 : VERSION_DEFLATE, 4);
  b.writeUInt16LE(nameFlags(e.name), 6);
  b.writeUInt16LE(METHOD_DEFLATE, 8);
  b.writeUInt16LE(when.time, 10);
  b.writeUInt16LE(when.date, 12);
  b.writeUInt32LE(e.crc32 >>> 0, 14);
  b.writeUInt32LE(zip64 ? U32_LIMIT : e.compressedSize, 18);
  b.writeUInt32LE(zip64 ? U32_LIMIT : e.uncompressedSize, 22);
  b.writeUInt16LE(name.length, 26);
  b.writeUInt16LE(extraLength, 28);
  name.copy(b, 30);
  if (zip64) {
    const x = 30 + name.length;
    b.writeUInt16LE(0x0001, x);
    b.writeUInt16LE(16, x + 2);
    b.writeBigUInt64LE(BigInt(e.uncompressedSize), x + 4);
    b.writeBigUInt64LE(BigInt(e.compressedSize), x + 12);
  }
  return b;
}

// Bit 11 marks UTF-8 names; our names are ASCII, but set it if one ever is not.
function nameFlags(name: string): number {
  return /^[\x20-\x7e]*$/.test(name) ? 0 : 0x0800;
}

/** Central directory, then (if needed) ZIP64 end record and locator, then the end record. */
export function encodeCentralDirectory(entries: readonly ZipEntryPlaced[], cdOffset: number, when: DosDateTime): Buffer {
  const records: Buffer[] = [];
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf8');
    // APPNOTE 4.5.3: in the central header, only the fields that overflow go into the extra field, in this order.
    const extras: number[] = [];
    if (e.uncompressedSize >= U32_LIMIT) extras.push(e.uncompressedSize);
    if (e.compressedSize >= U32_LIMIT) extras.push(e.compressedSize);
    if (e.offset >= U32_LIMIT) extras.push(e.offset);
    const zip64 = extras.length > 0 || needsZip64Sizes(e);
    const extraLength = extras.length > 0 ? 4 + 8 * extras.length : 0;
    const b = Buffer.alloc(46 + name.length + extraLength);
    b.writeUInt32LE(0x02014b50, 0);
    b.writeUInt16LE(zip64 ? VERSION_ZIP64 : VERSION_DEFLATE, 4); // made by: MS-DOS attributes
    b.writeUInt16LE(zip64 ? VERSION_ZIP64 : VERSION_DEFLATE, 6);
    b.writeUInt16LE(nameFlags(e.name), 8);
    b.writeUInt16LE(METHOD_DEFLATE, 10);
    b.writeUInt16LE(when.time, 12);
    b.writeUInt16LE(when.date, 14);
    b.writeUInt32LE(e.crc32 >>> 0, 16);
    b.writeUInt32LE(Math.min(e.compressedSize, U32_LIMIT), 20);
    b.writeUInt32LE(Math.min(e.uncompressedSize, U32_LIMIT), 24);
    b.writeUInt16LE(name.length, 28);
    b.writeUInt16LE(extraLength, 30);
    // comment length, disk number start, internal and external attributes stay 0
    b.writeUInt32LE(Math.min(e.offset, U32_LIMIT), 42);
    name.copy(b, 46);
    if (extraLength > 0) {
      let x = 46 + name.length;
      b.writeUInt16LE(0x0001, x);
      b.writeUInt16LE(8 * extras.length, x + 2);
      x += 4;
      for (const v of extras) {
        b.writeBigUInt64LE(BigInt(v), x);
        x += 8;
      }
    }
    records.push(b);
  }
  const cdSize = records.reduce((n, r) => n + r.length, 0);
  const zip64End = entries.length >= U16_LIMIT || cdSize >= U32_LIMIT || cdOffset >= U32_LIMIT;
  if (zip64End) {
    const z = Buffer.alloc(56 + 20);
    z.writeUInt32LE(0x06064b50, 0);
    z.writeBigUInt64LE(44n, 4); // size of the rest of this record
    z.writeUInt16LE(VERSION_ZIP64, 12);
    z.writeUInt16LE(VERSION_ZIP64, 14);
    // this disk, disk with the central directory: 0
    z.writeBigUInt64LE(BigInt(entries.length), 24);
    z.writeBigUInt64LE(BigInt(entries.length), 32);
    z.writeBigUInt64LE(BigInt(cdSize), 40);
    z.writeBigUInt64LE(BigInt(cdOffset), 48);
    // locator
    z.writeUInt32LE(0x07064b50, 56);
    z.writeUInt32LE(0, 60);
    z.writeBigUInt64LE(BigInt(cdOffset + cdSize), 64);
    z.writeUInt32LE(1, 72);
    records.push(z);
  }
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(Math.min(entries.length, U16_LIMIT), 8);
  end.writeUInt16LE(Math.min(entries.length, U16_LIMIT), 10);
  end.writeUInt32LE(Math.min(cdSize, U32_LIMIT), 12);
  end.writeUInt32LE(Math.min(cdOffset, U32_LIMIT), 16);
  records.push(end);
  return Buffer.concat(records);
}
