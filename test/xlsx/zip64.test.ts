import { Writable } from 'node:stream';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { crc32, crc32Combine } from '../../shared/xlsx/crc32';
import type { ColumnSpec, PartMeta } from '../../shared/xlsx/types';
import { planWorkbook, writeWorkbook } from '../../shared/xlsx/workbook';
import { readDirectory, readLocalHeader } from './zip-reader';

// A part of stored (uncompressed) deflate blocks holding spaces, XML whitespace between the
// header row and </sheetData>: more than 4 GiB raw AND compressed, generated on the fly from
// one reused 1 MiB buffer, so offsets after it pass 4 GiB too. Never held in memory.
const BLOCK_DATA = 65_535;
const BLOCKS_PER_CHUNK = 16;
const CHUNK = Buffer.alloc(BLOCKS_PER_CHUNK * (5 + BLOCK_DATA));
for (let b = 0; b < BLOCKS_PER_CHUNK; b++) {
  const at = b * (5 + BLOCK_DATA);
  CHUNK[at] = 0x00; // BFINAL=0, BTYPE=00 (stored); byte-aligned after the prologue's sync flush
  CHUNK.writeUInt16LE(BLOCK_DATA, at + 1);
  CHUNK.writeUInt16LE(~BLOCK_DATA & 0xffff, at + 3);
  CHUNK.fill(0x20, at + 5, at + 5 + BLOCK_DATA);
}
const RAW_PER_CHUNK = BLOCKS_PER_CHUNK * BLOCK_DATA;
const CHUNKS = 4100; // 4100 * 1,048,560 raw bytes = 4.30e9 > 2^32

function bigPartMeta(): PartMeta {
  const one = crc32(Buffer.alloc(RAW_PER_CHUNK, 0x20));
  let crc = 0;
  for (let i = 0; i < CHUNKS; i++) crc = crc32Combine(crc, one, RAW_PER_CHUNK);
  return { rawLength: CHUNKS * RAW_PER_CHUNK, compressedLength: CHUNKS * CHUNK.length, crc32: crc, rowCount: 0 };
}

async function* bigPart(): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < CHUNKS; i++) yield CHUNK;
}

/**
 * Counts every byte, keeps only the head and the tail, and independently inflates sheet1's
 * entry as it streams by (found by parsing its local header from the head), checking its CRC.
 */
class CheckingSink extends Writable {
  total = 0;
  private head = Buffer.alloc(0);
  private tailChunks: Buffer[] = [];
  private tailBytes = 0;
  private entryStart = -1;
  private entryEnd = -1;
  private inflater?: zlib.InflateRaw;
  rawCrc = 0;
  rawCount = 0;
  inflated?: Promise<void>;

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    const start = this.total;
    this.total += chunk.length;
    if (this.head.length < 1 << 16) {
      this.head = Buffer.concat([this.head, chunk.subarray(0, (1 << 16) - this.head.length)]);
      this.findEntry();
    }
    this.tailChunks.push(Buffer.from(chunk));
    this.tailBytes += chunk.length;
    while (this.tailBytes - this.tailChunks[0]!.length > 4 << 20) this.tailBytes -= this.tailChunks.shift()!.length;
    if (this.inflater && this.entryStart >= 0) {
      const from = Math.max(this.entryStart, start) - start;
      const to = Math.min(this.entryEnd, this.total) - start;
      if (to > from) {
        if (!this.inflater.write(chunk.subarray(from, to))) {
          this.inflater.once('drain', () => cb());
          return;
        }
      }
    }
    cb();
  }

  private findEntry(): void {
    if (this.inflater) return;
    const name = Buffer.from('xl/worksheets/sheet1.xml');
    for (let i = this.head.indexOf(Buffer.from([0x50, 0x4b, 0x03, 0x04])); i >= 0; i = this.head.indexOf(Buffer.from([0x50, 0x4b, 0x03, 0x04]), i + 1)) {
      if (i + 30 + name.length > this.head.length) return;
      if (!this.head.subarray(i + 30, i + 30 + name.length).equals(name)) continue;
      const extra = this.head.readUInt16LE(i + 28);
      if (i + 30 + name.length + extra > this.head.length) return;
      const local = readLocalHeader(this.head, i);
      this.entryStart = local.dataOffset;
      this.entryEnd = local.dataOffset + local.compressedSize;
      this.inflater = zlib.createInflateRaw({ chunkSize: 1 << 20 });
      this.inflater.on('data', (d: Buffer) => {
        this.rawCrc = zlib.crc32(d, this.rawCrc) >>> 0;
        this.rawCount += d.length;
      });
      this.inflated = new Promise((resolve, reject) => {
        this.inflater!.on('end', resolve);
        this.inflater!.on('error', reject);
      });
      return;
    }
  }

  finishInflate(): void {
    this.inflater?.end();
  }

  tail(): { buf: Buffer; start: number } {
    const buf = Buffer.concat(this.tailChunks);
    return { buf, start: this.total - buf.length };
  }
}

describe('ZIP64', () => {
  it('writes a > 4 GiB sheet entry with ZIP64 extra fields and end records, streamed, never in memory', async () => {
    const columns: ColumnSpec[] = [{ key: 'a', header: 'A', type: 'string' }];
    const meta = bigPartMeta();
    expect(meta.rawLength).toBeGreaterThan(2 ** 32);
    expect(meta.compressedLength).toBeGreaterThan(2 ** 32);
    const sheets = [
      { name: 'Big', columns, parts: [meta] },
      { name: 'After', columns, parts: [] },
    ];
    const layout = planWorkbook(sheets, { properties: { created: new Date(Date.UTC(2025, 0, 1)) } });
    const sink = new CheckingSink({ highWaterMark: 1 << 20 });
    const result = await writeWorkbook({
      sheets,
      readPart: async () => bigPart(),
      out: sink,
      properties: { created: new Date(Date.UTC(2025, 0, 1)) },
    });
    sink.finishInflate();
    await sink.inflated;

    expect(sink.total).toBe(layout.packageSize);
    expect(result.size).toBe(sink.total);
    expect(sink.total).toBeGreaterThan(2 ** 32);

    const { buf, start } = sink.tail();
    const dir = readDirectory(buf, start);
    expect(dir.zip64).toBe(true);
    expect(dir.cdOffset).toBeGreaterThan(2 ** 32);
    const big = dir.entries.find((e) => e.name === 'xl/worksheets/sheet1.xml')!;
    const after = dir.entries.find((e) => e.name === 'xl/worksheets/sheet2.xml')!;
    expect(big.versionNeeded).toBe(45);
    expect(big.uncompressedSize).toBeGreaterThan(meta.rawLength);
    expect(big.compressedSize).toBeGreaterThan(meta.compressedLength);
    // the independently inflated entry matches the central directory's size and CRC
    expect(sink.rawCount).toBe(big.uncompressedSize);
    expect(sink.rawCrc).toBe(big.crc32);
    // the entry after it starts beyond 4 GiB and its local header is where the directory says
    expect(after.localHeaderOffset).toBeGreaterThan(2 ** 32);
    const local = readLocalHeader(buf, after.localHeaderOffset - start);
    expect(local.name).toBe('xl/worksheets/sheet2.xml');
    expect(local.crc32).toBe(after.crc32);
    expect(dir.entries.map((e) => e.name)).toContain('[Content_Types].xml');
  });
});
