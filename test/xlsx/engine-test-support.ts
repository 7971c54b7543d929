/** Helpers for the engine tests: in-memory sinks, expected values computed independently. */
import { Writable } from 'node:stream';
import { createRequire } from 'node:module';
import ExcelJS from 'exceljs';
import type { RowEncoder } from '../../shared/xlsx/row-encoder';
import type { CellValue, ColumnSpec, Part, Row } from '../../shared/xlsx/types';
import { localWallClockMs } from '../support/wall-clock';

const require = createRequire(import.meta.url);

/** The slice of xlsx-populate's API the tests use (it ships no type declarations). */
export type XlsxPopulateWorkbook = {
  sheet(index: number): {
    name(): string;
    cell(row: number, column: number): { value(): unknown };
    cell(address: string): { value(): unknown };
  };
};
export const XlsxPopulate = require('xlsx-populate') as {
  fromDataAsync(data: Buffer, opts?: { password?: string }): Promise<XlsxPopulateWorkbook>;
};

/** xlsx-populate's own decryptor, to get the plain ZIP for ExcelJS. */
export async function decryptWithXlsxPopulate(file: Buffer, password: string): Promise<Buffer> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const Encryptor = require('xlsx-populate/lib/Encryptor') as new () => {
    decryptAsync(data: Buffer, password: string): Promise<Buffer>;
  };
  return new Encryptor().decryptAsync(file, password);
}

/** A Writable that keeps everything written, in memory. */
export function memorySink(): { out: Writable; bytes: () => Buffer } {
  const chunks: Buffer[] = [];
  const out = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(Buffer.from(chunk));
      cb();
    },
  });
  return { out, bytes: () => Buffer.concat(chunks) };
}

/** Reads the sheets back with ExcelJS as arrays of rows (1-based columns dropped to 0-based). */
export async function readWithExcelJs(
  zip: Buffer,
): Promise<{ name: string; rows: CellValue[][]; frozen: unknown; autoFilter: unknown }[]> {
  const wb = new ExcelJS.Workbook();
  await wb.xlsx.load(zip as unknown as ArrayBuffer);
  return wb.worksheets.map((ws) => {
    const rows: CellValue[][] = [];
    ws.eachRow({ includeEmpty: true }, (row, n) => {
      const values = Array.from(row.values as unknown[]).slice(1).map((v) => normalizeExcelJs(v));
      rows[n - 1] = values;
    });
    return { name: ws.name, rows, frozen: ws.views[0], autoFilter: ws.autoFilter };
  });
}

function normalizeExcelJs(v: unknown): CellValue {
  if (v === undefined || v === null) return null;
  if (v instanceof Date || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
  if (typeof v === 'object' && v !== null && 'richText' in v) {
    return (v as { richText: { text: string }[] }).richText.map((r) => r.text).join('');
  }
  throw new Error(`unexpected ExcelJS value ${JSON.stringify(v)}`);
}

/** Wall-clock time of an instant in a zone, as a Date whose UTC fields show it (as ExcelJS reads serials). */
export function wallClockAsUtc(epochMs: number, timeZone: string): Date {
  return new Date(localWallClockMs(epochMs, timeZone));
}

/** The documented sanitising, restated independently of the implementation for the tests. */
export function expectedText(s: string): string | null {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        out += s[i]! + s[i + 1]!;
        i++;
        continue;
      }
    }
    if (c >= 0xd800 && c <= 0xdfff) continue;
    if (c < 0x20 && c !== 9 && c !== 10 && c !== 13) continue;
    if (c === 0xfffe || c === 0xffff) continue;
    out += s[i]!;
  }
  if (out.length > 32767) {
    const hi = out.charCodeAt(32766);
    out = out.slice(0, hi >= 0xd800 && hi <= 0xdbff ? 32766 : 32767);
  }
  return out.length === 0 ? null : out;
}

export const HOSTILE_TEXTS: string[] = [
  'plain',
  'ctrl\u0000a\u0001b\u0008c\u000Bd\u000Ce\u001Ff\u007F',
  'tab\there\nnew line\r\nCRLF\rlone CR',
  '😀 emoji 👍🏽 family 👨‍👩‍👧 flag 🇰🇷',
  '한국어 텍스트: 주문한 상품이 도착하지 않았어요',
  'مرحبا بالعالم ‏שלום עולם‎ mixed RTL',
  'x'.repeat(40_000),
  'a'.repeat(32_766) + '😀' + 'tail',
  '=SUM(A1:A2)',
  '+82 10 1234 5678',
  '-1+2',
  '@cmd',
  '=HYPERLINK("http://evil.example","click")',
  `<tag attr="v">&amp; 'quote' "dq"</tag>`,
  'cdata ]]> end',
  '',
  'lone \uD800 high and \uDC00 low and pair \uD83D\uDE00',
  'nonchars \uFFFE \uFFFF end',
  '  padded both sides  ',
  '\u0001',
  '_x0041_ stays literal',
];

/**
 * Every character JavaScript's /\s/ matches, found by asking the regex (not restated): xlsx-populate
 * drops a text node made only of these unless it has xml:space="preserve".
 */
export const JS_WHITESPACE: string[] = [];
for (let c = 0; c <= 0xffff; c++) if (/\s/.test(String.fromCharCode(c))) JS_WHITESPACE.push(String.fromCharCode(c));

export function stitch(parts: Part[]): Buffer {
  return Buffer.concat(parts.map((p) => p.data));
}

export function makeRows(columns: ColumnSpec[], count: number, seed = 1): Row[] {
  const rows: Row[] = [];
  for (let i = 0; i < count; i++) {
    const row: Record<string, CellValue> = {};
    for (const [j, c] of columns.entries()) {
      const k = (i * 31 + j * 7 + seed) % 11;
      if (k === 0) continue; // some empty cells, anywhere in the row
      switch (c.type) {
        case 'string':
          row[c.key] = HOSTILE_TEXTS[(i + j) % HOSTILE_TEXTS.length]!.slice(0, 200) + ` #${i}`;
          break;
        case 'number':
          row[c.key] = k % 2 ? i * 1.25 - 40 : i;
          break;
        case 'boolean':
          row[c.key] = k % 2 === 0;
          break;
        case 'date':
          row[c.key] = Date.UTC(2025, 0, 1) + i * 3_600_123 + j;
          break;
        case 'duration':
          row[c.key] = i * 17;
          break;
      }
    }
    rows.push(row);
  }
  return rows;
}

/**
 * Encodes `rows` with the row encoder and renders them with the reference renderer
 * (render-row.ts): the tests hold the two texts equal, byte for byte.
 */
export function encodeBoth(encoder: RowEncoder, render: (row: Row) => string, rows: readonly Row[]): { encoded: string; rendered: string } {
  let rendered = '';
  for (const r of rows) {
    encoder.encode(r);
    rendered += render(r);
  }
  return { encoded: encoder.take().toString('utf8'), rendered };
}
