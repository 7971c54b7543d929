import { Readable, Writable } from 'node:stream';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { deriveEncryptionKeys } from '../../shared/xlsx/crypto';
import { writeEncryptedWorkbook } from '../../shared/xlsx/encrypted-workbook';
import { PartIntegrityError, WorkbookPlanError } from '../../shared/xlsx/errors';
import { renderWorkbook } from '../../shared/xlsx/package-xml';
import { renderPart } from '../../shared/xlsx/part';
import type { CellValue, ColumnSpec, Part, Row, SheetPlan } from '../../shared/xlsx/types';
import { planWorkbook, writeWorkbook } from '../../shared/xlsx/workbook';
import {
  HOSTILE_TEXTS,
  JS_WHITESPACE,
  XlsxPopulate,
  decryptWithXlsxPopulate,
  expectedText,
  memorySink,
  readWithExcelJs,
  wallClockAsUtc,
} from './engine-test-support';

const TZ = 'Asia/Seoul';
const COLUMNS: ColumnSpec[] = [
  { key: 'id', header: 'id', type: 'string' },
  { key: 'text', header: 'text <&> "header"', type: 'string' },
  { key: 'amount', header: 'amount', type: 'number' },
  { key: 'ok', header: 'ok', type: 'boolean' },
  { key: 'at', header: 'at', type: 'date', width: 22 },
  { key: 'secs', header: 'secs', type: 'duration' },
  { key: 'phone', header: 'phone', type: 'string' },
];

const BASE = Date.UTC(2025, 6, 1, 0, 0, 0);
function sampleRows(): Row[] {
  const rows: Row[] = [];
  HOSTILE_TEXTS.forEach((text, i) => {
    rows.push({
      id: String(i).padStart(6, '0'),
      text,
      amount: i % 3 === 0 ? -i * 1.5 : i * 1000.25,
      ok: i % 2 === 0,
      at: i % 3 === 0 ? new Date(BASE + i * 3_723_456) : i % 3 === 1 ? BASE + i * 86_400_000 : `2025-03-0${(i % 9) + 1}T23:59:58.5+09:00`,
      secs: i * 61,
      phone: i % 4 === 0 ? null : `010${String(i * 7).padStart(8, '0')}`,
    });
  });
  for (let i = 0; i < 500; i++) {
    rows.push({ id: `0${i}`, text: `row ${i} 한글 😀`, amount: i, ok: i % 5 === 0, at: BASE + i * 1000, secs: i, phone: '+821012345678' });
  }
  return rows;
}

function expectedCell(column: ColumnSpec, v: CellValue): CellValue {
  if (v === null || v === undefined) return null;
  switch (column.type) {
    case 'string':
      return expectedText(String(v));
    case 'date': {
      const ms = v instanceof Date ? v.getTime() : typeof v === 'number' ? v : Date.parse(String(v));
      return wallClockAsUtc(ms, TZ);
    }
    default:
      // Excel has no negative zero: -0 is written as 0.
      return Object.is(v, -0) ? 0 : v;
  }
}

function splitParts(rows: Row[], sizes: number[], columns = COLUMNS, withR = true): Part[] {
  const parts: Part[] = [];
  let at = 0;
  for (const size of sizes) {
    parts.push(renderPart(columns, rows.slice(at, at + size), { timeZone: TZ, startRow: withR ? at + 2 : undefined }));
    at += size;
  }
  if (at !== rows.length) throw new Error('sizes do not cover the rows');
  return parts;
}

function plan(name: string, parts: Part[], columns = COLUMNS): SheetPlan {
  return { name, columns, parts: parts.map(({ data: _data, ...meta }) => meta) };
}

function checkSheet(sheet: { rows: CellValue[][] }, columns: ColumnSpec[], rows: Row[]): void {
  expect(sheet.rows[0]).toEqual(columns.map((c) => c.header));
  expect(sheet.rows.length).toBe(rows.length + 1);
  rows.forEach((row, i) => {
    const got = sheet.rows[i + 1] ?? [];
    columns.forEach((c, j) => {
      const want = expectedCell(c, row[c.key]);
      const have = got[j] ?? null;
      if (want instanceof Date) {
        expect(have, `row ${i} ${c.key}`).toBeInstanceOf(Date);
        expect(Math.abs((have as Date).getTime() - want.getTime()), `row ${i} ${c.key}`).toBeLessThanOrEqual(1);
      } else expect(have, `row ${i} ${c.key}`).toEqual(want);
    });
  });
}

describe('writeWorkbook (unencrypted) read back by ExcelJS', () => {
  it('every type and every hostile text round-trips, on two sheets from separately rendered parts', async () => {
    const rows = sampleRows();
    const parts1 = splitParts(rows, [1, 10, rows.length - 11]);
    const small: ColumnSpec[] = [{ key: 'k', header: 'only', type: 'string' }];
    const rows2: Row[] = [{ k: '007' }, { k: null }, { k: 'last' }];
    const parts2 = splitParts(rows2, [3], small);
    const sheets = [plan('Cases data', parts1), plan("User's data", parts2, small)];
    const all = [parts1, parts2];
    const { out, bytes } = memorySink();
    const properties = { created: new Date(Date.UTC(2025, 0, 1)), title: 'T', creator: 'me' };
    const planned = planWorkbook(sheets, { properties });
    const result = await writeWorkbook({ sheets, readPart: async (s, p) => all[s]![p]!.data, out, properties });
    const zip = bytes();
    expect(result.size).toBe(zip.length);
    expect(planned.packageSize).toBe(zip.length);
    const book = await readWithExcelJs(zip);
    expect(book.map((s) => s.name)).toEqual(['Cases data', "User's data"]);
    checkSheet(book[0]!, COLUMNS, rows);
    checkSheet(book[1]!, small, rows2);
    expect(book[0]!.frozen).toMatchObject({ state: 'frozen', ySplit: 1, topLeftCell: 'A2' });
    expect(book[0]!.autoFilter).toBe(`A1:G${rows.length + 1}`);
  });

  it('xlsx-populate (unencrypted) reads the same cells', async () => {
    const rows = sampleRows().slice(0, 40);
    const parts = splitParts(rows, [20, 20]);
    const { out, bytes } = memorySink();
    await writeWorkbook({ sheets: [plan('S', parts)], readPart: async (_s, p) => parts[p]!.data, out });
    const wb = await XlsxPopulate.fromDataAsync(bytes());
    const sheet = wb.sheet(0);
    rows.forEach((row, i) => {
      expect(sheet.cell(i + 2, 1).value()).toBe(row.id);
      expect(sheet.cell(i + 2, 2).value() ?? null).toBe(expectedText(String(row.text)));
    });
  });

  it('streams parts given as async iterables, in small chunks, through a slow output (backpressure)', async () => {
    const rows = sampleRows();
    const parts = splitParts(rows, [200, rows.length - 200]);
    const chunks: Buffer[] = [];
    let writes = 0;
    const out = new Writable({
      highWaterMark: 1024,
      write(chunk: Buffer, _e, cb) {
        writes++;
        chunks.push(Buffer.from(chunk));
        setImmediate(cb);
      },
    });
    const readPart = async (_s: number, p: number) => Readable.from(chunkify(parts[p]!.data, 999));
    await writeWorkbook({ sheets: [plan('S', parts)], readPart, out });
    expect(writes).toBeGreaterThan(10);
    const book = await readWithExcelJs(Buffer.concat(chunks));
    checkSheet(book[0]!, COLUMNS, rows);
  });

  it('parts without r attributes stitch too (openpyxl-style readers), checked by inflating the entry', async () => {
    const rows = sampleRows().slice(0, 50);
    const parts = splitParts(rows, [25, 25], COLUMNS, false);
    const whole = splitParts(rows, [50], COLUMNS, false);
    const a = memorySink();
    const b = memorySink();
    const created = new Date(Date.UTC(2025, 0, 1));
    await writeWorkbook({ sheets: [plan('S', parts)], readPart: async (_s, p) => parts[p]!.data, out: a.out, properties: { created } });
    await writeWorkbook({ sheets: [plan('S', whole)], readPart: async (_s, p) => whole[p]!.data, out: b.out, properties: { created } });
    const { unzipSync } = await import('./zip-reader');
    expect(unzipSync(a.bytes())['xl/worksheets/sheet1.xml']!.toString()).toBe(unzipSync(b.bytes())['xl/worksheets/sheet1.xml']!.toString());
  });
});

function* chunkify(b: Buffer, size: number): Generator<Buffer> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}

describe('integrity and errors', () => {
  const rows = sampleRows().slice(0, 30);
  const parts = splitParts(rows, [30]);

  it('rejects a part longer than its metadata without writing the excess', async () => {
    const { out, bytes } = memorySink();
    const sheets = [plan('S', parts)];
    const readPart = async () => Buffer.concat([parts[0]!.data, Buffer.from([0, 1, 2])]);
    await expect(writeWorkbook({ sheets, readPart, out })).rejects.toBeInstanceOf(PartIntegrityError);
    expect(bytes().includes(Buffer.from([0, 1, 2]))).toBe(false);
  });

  it('rejects a part shorter than its metadata', async () => {
    const { out } = memorySink();
    const readPart = async () => Readable.from([parts[0]!.data.subarray(0, 10)]);
    await expect(writeWorkbook({ sheets: [plan('S', parts)], readPart, out })).rejects.toThrow(/10 bytes streamed/);
  });

  it('rejects when reading a part fails, and destroys the output', async () => {
    const { out } = memorySink();
    const readPart = async () => {
      throw new Error('NoSuchKey');
    };
    await expect(writeWorkbook({ sheets: [plan('S', parts)], readPart, out })).rejects.toThrow('NoSuchKey');
    expect(out.destroyed).toBe(true);
  });

  it('rejects when the output stream fails', async () => {
    const out = new Writable({
      write(_c, _e, cb) {
        cb(new Error('disk full'));
      },
    });
    await expect(writeWorkbook({ sheets: [plan('S', parts)], readPart: async () => parts[0]!.data, out })).rejects.toThrow(
      'disk full',
    );
  });

  it('refuses bad plans naming the field and the rule', () => {
    const bad = (sheets: SheetPlan[]): WorkbookPlanError => {
      try {
        planWorkbook(sheets);
      } catch (e) {
        return e as WorkbookPlanError;
      }
      throw new Error('accepted');
    };
    expect(bad([]).rule).toBe('min-1');
    expect(bad([plan('a/b', parts)]).field).toBe('sheets.0.name');
    expect(bad([plan('x'.repeat(32), parts)]).rule).toBe('length-1-31');
    expect(bad([plan('Same', parts), plan('same', parts)]).rule).toBe('unique');
    // Names the file could not hold as given: a lone surrogate would be written as '' (or
    // 'Data') while the filter's definedName quoted it differently.
    for (const name of ['\ud800', 'Data\udc00', '\udc00\ud800', 'a\ud83d', 'x\uffff', 'tab\there', 'cr\r', '\u0000']) {
      const e = bad([plan(name, parts)]);
      expect({ name, rule: e.rule, field: e.field }).toEqual({ name, rule: 'excel-sheet-name', field: 'sheets.0.name' });
    }
    expect(planWorkbook([plan('Data \ud83d\ude00', parts)]).sheets[0]!.name).toBe('Data \ud83d\ude00');
    expect(bad([{ name: 'S', columns: [], parts: [] }]).field).toBe('sheets.0.columns');
    const shifted = plan('S', parts);
    shifted.parts[0]!.firstRow = 5;
    expect(bad([shifted]).rule).toBe('contiguous-rows');
    const many = plan('S', parts);
    many.parts[0]!.rowCount = 1_048_576;
    delete many.parts[0]!.firstRow;
    expect(bad([many]).rule).toBe('max-rows');
  });
});

describe('properties.created', () => {
  const sheets = [plan('S', [], COLUMNS.slice(0, 1))];
  const coreXml = (created: Date): string => {
    const entry = planWorkbook(sheets, { properties: { created } }).entries.find((e) => e.name === 'docProps/core.xml');
    return zlib.inflateRawSync(entry!.body!).toString('utf8');
  };

  it.each([
    ['an Invalid Date', new Date(Number.NaN), 'valid-date'],
    ['not a Date', '2025-01-01T00:00:00Z' as unknown as Date, 'valid-date'],
    ['year 10000 (toISOString: +010000-...)', new Date(Date.UTC(10_000, 0, 1)), 'date-range'],
    ['a negative year (toISOString: -000001-...)', new Date(Date.UTC(-1, 0, 1)), 'date-range'],
    ['the last millisecond before 1980 (no ZIP date for it)', new Date(Date.UTC(1980, 0, 1) - 1), 'date-range'],
    ['the first millisecond after 9999', new Date(Date.UTC(9999, 11, 31, 23, 59, 59, 999) + 1), 'date-range'],
  ])('refuses %s naming properties.created and the rule', (_name, created, rule) => {
    let error: unknown;
    try {
      planWorkbook(sheets, { properties: { created } });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(WorkbookPlanError);
    expect({ field: (error as WorkbookPlanError).field, rule: (error as WorkbookPlanError).rule }).toEqual({
      field: 'properties.created',
      rule,
    });
  });

  it('writes the first and last accepted instants as four-digit W3CDTF', () => {
    expect(coreXml(new Date(Date.UTC(1980, 0, 1)))).toContain('<dcterms:created xsi:type="dcterms:W3CDTF">1980-01-01T00:00:00Z</dcterms:created>');
    expect(coreXml(new Date(Date.UTC(9999, 11, 31, 23, 59, 59, 999)))).toContain(
      '<dcterms:modified xsi:type="dcterms:W3CDTF">9999-12-31T23:59:59Z</dcterms:modified>',
    );
  });
});

describe('writeEncryptedWorkbook', () => {
  it('decrypts with xlsx-populate and reads back with ExcelJS; the wrong password is refused', async () => {
    const rows = sampleRows();
    const parts = splitParts(rows, [100, rows.length - 100]);
    const { params, packageKey } = await deriveEncryptionKeys('Secret123');
    const { out, bytes } = memorySink();
    const result = await writeEncryptedWorkbook({
      sheets: [plan('Data', parts)],
      readPart: async (_s, p) => parts[p]!.data,
      params,
      packageKey,
      out,
    });
    const file = bytes();
    expect(result.size).toBe(file.length);
    const wb = await XlsxPopulate.fromDataAsync(file, { password: 'Secret123' });
    expect(wb.sheet(0).name()).toBe('Data');
    expect(wb.sheet(0).cell('A2').value()).toBe('000000');
    const zip = await decryptWithXlsxPopulate(file, 'Secret123');
    expect(zip.length).toBe(result.packageSize);
    const book = await readWithExcelJs(zip);
    checkSheet(book[0]!, COLUMNS, rows);
    await expect(XlsxPopulate.fromDataAsync(file, { password: 'wrong-password' })).rejects.toThrow();
    expect(file.includes(Buffer.from('Secret123'))).toBe(false);
  });
});

describe('text of Unicode whitespace', () => {
  // xlsx-populate drops any text node matching /^\s+$/ unless it has xml:space="preserve", which
  // the engine once added only for ends <= U+0020: "\u00a0", "\u3000" or "\u2028" alone read
  // back as empty cells.
  it('reads back exactly with xlsx-populate, in data cells and in the header, encrypted', async () => {
    const texts = [
      ...JS_WHITESPACE,
      '\u00a0\u3000',
      '\u2028\u2029',
      '\ufeff\u00a0',
      '\u0001\u3000', // the control is removed, leaving the ideographic space alone
      ' \u00a0 ',
      '\u3000x',
      'x\u202f',
    ];
    const columns: ColumnSpec[] = [
      { key: 'n', header: 'n', type: 'number' },
      { key: 's', header: '\u3000', type: 'string' },
    ];
    const rows: Row[] = texts.map((s, i) => ({ n: i, s }));
    const parts = splitParts(rows, [10, rows.length - 10], columns);
    const { params, packageKey } = await deriveEncryptionKeys('Secret123');
    const { out, bytes } = memorySink();
    await writeEncryptedWorkbook({ sheets: [plan('Data', parts, columns)], readPart: async (_s, p) => parts[p]!.data, params, packageKey, out });
    const sheet = (await XlsxPopulate.fromDataAsync(bytes(), { password: 'Secret123' })).sheet(0);
    expect(sheet.cell('B1').value()).toBe('\u3000');
    const got = texts.map((_t, i) => sheet.cell(i + 2, 2).value() ?? null); // VT and FF are removed: empty cells
    expect(got).toEqual(texts.map((t) => expectedText(t)));
  });
});

describe('renderWorkbook', () => {
  it('names a sheet the same way in <sheet> and in its filter definedName, even unvalidated', () => {
    const xml = renderWorkbook([{ name: "Data\udc00's", columnCount: 2, dataRows: 3 }]);
    expect(xml).toContain('<sheet name="Data\'s" sheetId="1"');
    expect(xml).toContain(`>'Data''s'!$A$1:$B$4</definedName>`);
  });
});
