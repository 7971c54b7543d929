import { randomBytes } from 'node:crypto';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { crc32, crc32Combine } from '../../shared/xlsx/crc32';
import { CellValueError } from '../../shared/xlsx/errors';
import { columnWidth, displayWidth, renderSheetPrologue } from '../../shared/xlsx/package-xml';
import { createAsyncPartEncoder, createPartEncoder, renderPart } from '../../shared/xlsx/part';
import { compileRowRenderer } from '../../shared/xlsx/render-row';
import { createRowEncoder } from '../../shared/xlsx/row-encoder';
import { needsSpacePreserve, renderTextCell, sanitizeText } from '../../shared/xlsx/sanitize-text';
import { createExcelDateConverter, createOffsetLookup, formatExcelSerial } from '../../shared/xlsx/time-zone';
import type { ColumnSpec, Row } from '../../shared/xlsx/types';
import { HOSTILE_TEXTS, encodeBoth, expectedText, makeRows, wallClockAsUtc } from './engine-test-support';

describe('crc32 and crc32Combine', () => {
  it('matches the standard check value and continues across chunks', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    const data = randomBytes(10_000);
    expect(crc32(data.subarray(4321), crc32(data.subarray(0, 4321)))).toBe(crc32(data));
  });

  it('combines the CRCs of two pieces into the CRC of their concatenation', () => {
    for (let t = 0; t < 50; t++) {
      const a = randomBytes(Math.floor(Math.random() * 5000));
      const b = randomBytes(Math.floor(Math.random() * 5000));
      expect(crc32Combine(crc32(a), crc32(b), b.length)).toBe(crc32(Buffer.concat([a, b])));
    }
    const a = randomBytes(100);
    expect(crc32Combine(crc32(a), 0, 0)).toBe(crc32(a));
  });

  it('handles lengths far beyond 32 bits consistently', () => {
    // Direct check where the data fits in memory, then agreement of two different
    // decompositions of 2^33 + 2^20 + 5 zero bytes (past 32 bits, so no shift may truncate).
    expect(crcOfZeros(3 * (1 << 20) + 7)).toBe(crc32(Buffer.alloc(3 * (1 << 20) + 7)));
    const prefix = Buffer.from('prefix');
    const big = 2 ** 33 + (1 << 20) + 5;
    const c1 = crc32Combine(crc32Combine(crc32(prefix), crcOfZeros((1 << 20) + 5), (1 << 20) + 5), crcOfZeros(2 ** 33), 2 ** 33);
    const c2 = crc32Combine(crc32(prefix), crcOfZeros(big), big);
    expect(c1).toBe(c2);
    expect(c2).not.toBe(crc32Combine(crc32(prefix), crcOfZeros(big - 2 ** 32), big - 2 ** 32));
    expect(() => crc32Combine(1, 2, -1)).toThrow(RangeError);
    expect(() => crc32Combine(1, 2, 2 ** 53)).toThrow(RangeError);
  });
});

function crcOfZeros(n: number): number {
  // built from 1 MiB blocks by repeated doubling plus a remainder, without materialising n bytes
  const block = 1 << 20;
  let result = 0;
  let resultLen = 0;
  let pow = crc32(Buffer.alloc(block));
  let powLen = block;
  let k = Math.floor(n / block);
  while (k > 0) {
    if (k % 2 === 1) {
      result = crc32Combine(result, pow, powLen);
      resultLen += powLen;
    }
    pow = crc32Combine(pow, pow, powLen);
    powLen *= 2;
    k = Math.floor(k / 2);
  }
  const rest = n - resultLen;
  return rest > 0 ? crc32Combine(result, crc32(Buffer.alloc(rest)), rest) : result;
}

describe('sanitizeText', () => {
  it('strips what XML 1.0 forbids and keeps tab, LF, CR, DEL and valid pairs', () => {
    expect(sanitizeText('a\u0000b\u0008c\u000Bd\u001Fe')).toBe('abcde');
    expect(sanitizeText('t\tn\nr\r\u007F')).toBe('t\tn\nr\r\u007F');
    expect(sanitizeText('x\uD800y\uDC00z\uD83D\uDE00')).toBe('xyz\uD83D\uDE00');
    expect(sanitizeText('\uD83D')).toBe('');
    expect(sanitizeText('a\uFFFEb\uFFFFc')).toBe('abc');
  });

  it('cuts at 32,767 UTF-16 units without splitting a surrogate pair', () => {
    expect(sanitizeText('x'.repeat(40_000))).toHaveLength(32_767);
    const s = sanitizeText('a'.repeat(32_766) + '😀' + 'b');
    expect(s).toBe('a'.repeat(32_766));
    // stripping happens before the cut: forbidden characters do not use up the limit
    expect(sanitizeText('\u0001'.repeat(10) + 'y'.repeat(32_767))).toBe('y'.repeat(32_767));
  });

  it('agrees with the independent restatement on every hostile text', () => {
    for (const t of HOSTILE_TEXTS) expect(sanitizeText(t) || null).toBe(expectedText(t));
  });

  it('escapes markup and keeps CR as a character reference', () => {
    expect(renderTextCell('<a>&"]]>', '>')).toBe('><is><t>&lt;a&gt;&amp;"]]&gt;</t></is></c>');
    expect(renderTextCell('a\rb', '>')).toBe('><is><t>a&#13;b</t></is></c>');
    expect(renderTextCell(' x', '>')).toBe('><is><t xml:space="preserve"> x</t></is></c>');
    expect(renderTextCell('\u0001', '>')).toBe('');
  });

  it('adds xml:space="preserve" exactly when an end is <= U+0020 or matches /\\s/', () => {
    const wrong: number[] = [];
    for (let c = 0; c <= 0xffff; c++) {
      const want = c <= 0x20 || /\s/.test(String.fromCharCode(c));
      if (needsSpacePreserve(c, 0x41) !== want || needsSpacePreserve(0x41, c) !== want) wrong.push(c);
    }
    expect(wrong).toEqual([]);
    expect(needsSpacePreserve(0x41, 0x41)).toBe(false);
    expect(renderTextCell('\u3000', '>')).toBe('><is><t xml:space="preserve">\u3000</t></is></c>');
    expect(renderTextCell('x\u00a0', '>')).toBe('><is><t xml:space="preserve">x\u00a0</t></is></c>');
    expect(renderTextCell('x\u3000y', '>')).toBe('><is><t>x\u3000y</t></is></c>');
  });
});

describe('time zones', () => {
  const zones = ['Asia/Seoul', 'America/New_York', 'Europe/London', 'Australia/Lord_Howe', 'Asia/Kathmandu', 'UTC'];
  it('matches Intl for instants around DST transitions and at random, with the hour cache', () => {
    for (const zone of zones) {
      const toSerial = createExcelDateConverter(zone);
      const instants: number[] = [];
      // every 7 minutes through the 2025 spring and autumn transitions of both hemispheres
      for (const [y, m, d] of [[2025, 2, 8], [2025, 9, 4], [2025, 3, 5], [2025, 9, 25]] as const) {
        const start = Date.UTC(y, m, d);
        for (let t = start; t < start + 3 * 86_400_000; t += 7 * 60_000 + 13) instants.push(t);
      }
      for (let i = 0; i < 2000; i++) instants.push(Date.UTC(1990, 0, 1) + Math.floor(Math.random() * 60 * 365 * 86_400_000));
      for (const t of instants) {
        const expected = wallClockAsUtc(t, zone).getTime() / 86_400_000 + 25_569;
        expect(Math.abs(toSerial(t) - expected)).toBeLessThan(1e-9);
      }
    }
  });

  it('knows Lord Howe changes by 30 minutes at 02:00 local (15:30 UTC), inside a UTC hour', () => {
    const lookup = createOffsetLookup('Australia/Lord_Howe');
    const before = Date.UTC(2025, 9, 4, 15, 29);
    const after = Date.UTC(2025, 9, 4, 15, 31);
    expect(lookup(before)).toBe(10.5 * 3_600_000);
    expect(lookup(after)).toBe(11 * 3_600_000);
    const toSerial = createExcelDateConverter('Australia/Lord_Howe');
    expect(toSerial(before)).toBeCloseTo(wallClockAsUtc(before, 'Australia/Lord_Howe').getTime() / 86_400_000 + 25_569, 9);
    expect(toSerial(after)).toBeCloseTo(wallClockAsUtc(after, 'Australia/Lord_Howe').getTime() / 86_400_000 + 25_569, 9);
  });

  it('writes serials with ten fixed decimals that round-trip milliseconds', () => {
    expect(formatExcelSerial(Date.UTC(2025, 6, 1))).toBe('45839');
    expect(formatExcelSerial(Date.UTC(2025, 6, 1, 12))).toBe('45839.5');
    for (let i = 0; i < 1000; i++) {
      const local = Date.UTC(2025, 0, 1) + Math.floor(Math.random() * 86_400_000 * 400);
      const back = Math.round((Number(formatExcelSerial(local)) - 25_569) * 86_400_000);
      expect(back).toBe(local);
    }
  });

  it('rejects an unknown zone naming the field', () => {
    expect(() => createExcelDateConverter('Mars/Olympus')).toThrow(/timeZone/);
  });
});

const ALL_TYPES: ColumnSpec[] = [
  { key: 's', header: 'text', type: 'string' },
  { key: 'n', header: 'number', type: 'number' },
  { key: 'b', header: 'flag', type: 'boolean' },
  { key: 'd', header: 'when', type: 'date' },
  { key: 'u', header: 'secs', type: 'duration' },
  { key: 't', header: 'more text', type: 'string' },
];

describe('row rendering', () => {
  it('the byte encoder writes exactly what the reference string renderer renders', () => {
    const rows: Row[] = [
      ...makeRows(ALL_TYPES, 300),
      ...HOSTILE_TEXTS.map((t, i) => ({ s: t, t: HOSTILE_TEXTS[(i + 5) % HOSTILE_TEXTS.length]!, n: -0.1 * i, d: new Date(Date.UTC(2024, 1, 29, 23, 59, 59, 999)) })),
      { s: 123, t: true, d: '2025-07-01T09:30:00.123+09:00', n: Number.NaN, u: Number.POSITIVE_INFINITY },
      { s: new Date(Date.UTC(2025, 0, 2, 3, 4, 5)), d: '2025-03-30T01:30:00Z', n: 1e21, u: 2 ** 53 + 2 },
      ...[9, 10, 99, 100, 2_147_483_646, 2_147_483_647, 2_147_483_648, 2 ** 53 - 1, 0.1, -5, 1e-7].map((n, i) => ({
        n,
        u: n,
        d: Date.UTC(2025, 0, 1) + i * 86_399_999 + (i % 3) * 0.5,
      })),
      {},
    ];
    for (const startRow of [undefined, 2, 999_999]) {
      const encoder = createRowEncoder(ALL_TYPES, { timeZone: 'Europe/London', startRow });
      const render = compileRowRenderer(ALL_TYPES, { timeZone: 'Europe/London', startRow });
      const { encoded, rendered } = encodeBoth(encoder, render, rows);
      expect(encoded).toBe(rendered);
    }
  });

  it('renders each type as SpreadsheetML; text that looks like a formula stays text', () => {
    const render = compileRowRenderer(ALL_TYPES, { timeZone: 'Asia/Seoul', startRow: 7 });
    const xml = render({ s: '=1+1', n: 42, b: false, d: '2025-07-01T00:00:00Z', u: 90, t: '007' });
    expect(xml).toBe(
      '<row r="7"><c r="A7" t="inlineStr"><is><t>=1+1</t></is></c><c r="B7"><v>42</v></c>' +
        '<c r="C7" s="3" t="b"><v>0</v></c><c r="D7" s="2"><v>45839.375</v></c><c r="E7"><v>90</v></c>' +
        '<c r="F7" t="inlineStr"><is><t>007</t></is></c></row>',
    );
    expect(xml).not.toContain('<f>');
  });

  it('without r, empty cells before a value keep their place as <c/>; trailing ones are dropped', () => {
    const render = compileRowRenderer(ALL_TYPES, { timeZone: 'UTC' });
    expect(render({ s: null, n: undefined, b: true })).toBe('<row><c/><c/><c s="3" t="b"><v>1</v></c></row>');
    expect(render({ s: '', n: Number.NaN })).toBe('<row></row>');
  });

  it('rejects wrong types naming the column and the rule, without the value', () => {
    const encoder = createRowEncoder(ALL_TYPES, { timeZone: 'UTC', startRow: 2 });
    const bad = (row: Row): CellValueError => {
      try {
        encoder.encode(row);
      } catch (e) {
        return e as CellValueError;
      }
      throw new Error('no error');
    };
    const e1 = bad({ n: 'secret-ish 12' });
    expect(e1).toBeInstanceOf(CellValueError);
    expect(e1.field).toBe('n');
    expect(e1.message).toContain('"n"');
    expect(e1.message).not.toContain('secret');
    expect(bad({ b: 'yes' }).field).toBe('b');
    expect(bad({ d: '2025-07-01 09:00' }).rule).toBe('iso-8601-with-offset');
    expect(bad({ d: 'garbage' }).field).toBe('d');
    expect(bad({ d: Date.UTC(1899, 0, 1) }).rule).toBe('date-range');
    // a failed row leaves nothing behind and does not consume a row number
    encoder.encode({ n: 1 });
    expect(encoder.take().toString()).toBe('<row r="2"><c r="B2"><v>1</v></c></row>');
  });
});

describe('parts', () => {
  it('parts rendered separately concatenate into the same deflate stream content as one rendering', () => {
    const rows = makeRows(ALL_TYPES, 5000);
    for (const withR of [false, true]) {
      const whole = renderPart(ALL_TYPES, rows, { timeZone: 'Asia/Seoul', startRow: withR ? 2 : undefined });
      const cuts = [0, 1, 1700, 1701, 4999, 5000];
      const parts = cuts.slice(1).map((end, i) =>
        renderPart(ALL_TYPES, rows.slice(cuts[i], end), { timeZone: 'Asia/Seoul', startRow: withR ? 2 + cuts[i]! : undefined }),
      );
      const stitched = Buffer.concat([...parts.map((p) => p.data), zlib.deflateRawSync(Buffer.alloc(0))]);
      const inflated = zlib.inflateRawSync(stitched);
      const one = zlib.inflateRawSync(Buffer.concat([whole.data, zlib.deflateRawSync(Buffer.alloc(0))]));
      expect(inflated.equals(one)).toBe(true);
      expect(parts.reduce((n, p) => n + p.rawLength, 0)).toBe(whole.rawLength);
      expect(parts.reduce((n, p) => n + p.rowCount, 0)).toBe(5000);
      const crc = parts.reduce((c, p) => crc32Combine(c, p.crc32, p.rawLength), 0);
      expect(crc).toBe(crc32(one));
      expect(crc).toBe(whole.crc32);
      for (const p of parts) {
        expect(p.data.length).toBe(p.compressedLength);
        // sync flush: ends with an empty stored block and no final block
        if (p.rowCount > 0) expect(p.data.subarray(-4).toString('hex')).toBe('0000ffff');
      }
    }
  });

  it('the incremental encoder slices large parts and matches renderPart', () => {
    const rows = makeRows(ALL_TYPES, 20_000, 3);
    const enc = createPartEncoder(ALL_TYPES, { timeZone: 'UTC', startRow: 2 });
    for (const r of rows) enc.add(r);
    const a = enc.finish();
    const b = renderPart(ALL_TYPES, rows, { timeZone: 'UTC', startRow: 2 });
    expect(a.rawLength).toBeGreaterThan(2 * 1024 * 1024); // more than one slice
    expect(a.crc32).toBe(b.crc32);
    expect(a.firstRow).toBe(2);
    expect(zlib.inflateRawSync(Buffer.concat([a.data, zlib.deflateRawSync(Buffer.alloc(0))])).length).toBe(a.rawLength);
    expect(() => enc.add({})).toThrow(/finished/);
  });

  it('the async encoder (deflating on the thread pool) gives exactly the sync part', async () => {
    const rows = makeRows(ALL_TYPES, 30_000, 5);
    const sync = renderPart(ALL_TYPES, rows, { timeZone: 'UTC', startRow: 2 });
    const enc = createAsyncPartEncoder(ALL_TYPES, { timeZone: 'UTC', startRow: 2 });
    for (const r of rows) {
      const wait = enc.add(r);
      if (wait) await wait;
    }
    const part = await enc.finish();
    expect(part.rawLength).toBeGreaterThan(3 * 1024 * 1024);
    expect(part.data.equals(sync.data)).toBe(true);
    expect({ ...part, data: undefined }).toEqual({ ...sync, data: undefined });
    await expect(enc.finish()).rejects.toThrow(/finished/);
  });

  it('an empty part is empty', () => {
    const p = renderPart(ALL_TYPES, [], { timeZone: 'UTC' });
    expect(p).toMatchObject({ rawLength: 0, compressedLength: 0, crc32: 0, rowCount: 0 });
  });
});

// Both renderers must refuse the same values with the same rule, naming the column only.
describe('date values that cannot be written', () => {
  const DATE_COLUMNS: ColumnSpec[] = [
    { key: 'n', header: 'n', type: 'number' },
    { key: 'expires', header: 'Expires', type: 'date' },
  ];
  const failures = (value: Row['x'], timeZone = 'UTC'): { rule?: string; field?: string; message: string }[] =>
    [
      (row: Row) => createRowEncoder(DATE_COLUMNS, { timeZone, startRow: 2 }).encode(row),
      (row: Row) => compileRowRenderer(DATE_COLUMNS, { timeZone, startRow: 2 })(row),
    ].map((render) => {
      try {
        render({ n: 1, expires: value });
      } catch (e) {
        expect(e).toBeInstanceOf(CellValueError);
        const err = e as CellValueError;
        return { rule: err.rule, field: err.field, message: err.message };
      }
      throw new Error(`accepted ${String(value)}`);
    });

  it('refuses ISO text naming a day, hour, minute, second or offset that does not exist', () => {
    const texts = [
      '2023-02-29T12:00:00Z', // not a leap year: V8 reads it as 2023-03-01
      '2025-02-30T09:30:00+09:00',
      '2025-04-31T00:00:00Z',
      '2025-06-31T00:00Z',
      '1900-02-29T00:00:00Z', // 1900 was no leap year (Excel's phantom day is before the range)
      '2100-02-29T00:00:00+01:00',
      '2025-13-01T00:00:00Z',
      '2025-00-10T00:00:00Z',
      '2025-01-00T00:00:00Z',
      '2025-01-32T00:00:00Z',
      '2025-01-01T25:00:00Z',
      '2025-01-01T24:00:01Z',
      '2025-01-01T24:01Z',
      '2025-01-01T24:00:00.0001Z', // V8 drops digits past the millisecond, then accepts it
      '2025-01-01T23:60:00Z',
      '2025-01-01T23:59:60Z',
      '2025-01-01T00:00:00+24:00',
      '2025-01-01T00:00:00+05:60',
      '2025-01-01T00:00:00-0560',
    ];
    for (const text of texts) {
      for (const f of failures(text)) {
        expect({ text, ...f }).toMatchObject({ text, rule: 'valid-date', field: 'expires' });
        expect(f.message).toContain('"expires"');
        expect(f.message).not.toContain(text.slice(0, 10));
      }
    }
  });

  it('accepts the real days at the ends of months, leap days, and 24:00 as the end of a day', () => {
    const cases: [string, string][] = [
      ['2024-02-29T12:00:00Z', '45351.5'],
      ['2000-02-29T00:00:00Z', '36585'],
      ['2025-02-28T23:59:59.999Z', '45716.9999999884'],
      ['2025-04-30T00:00:00+14:00', '45776.4166666667'],
      ['2025-12-31T00:00:00-23:59', '46022.9993055556'],
      ['2025-01-31T24:00:00Z', '45689'],
      ['2025-01-31T24:00Z', '45689'],
      ['2025-01-31T24:00:00.000000000z', '45689'],
      ['2025-07-01t09:30:00+0900', '45839.0208333333'],
    ];
    const columns: ColumnSpec[] = [{ key: 'd', header: 'd', type: 'date' }];
    const encoder = createRowEncoder(columns, { timeZone: 'UTC' });
    const render = compileRowRenderer(columns, { timeZone: 'UTC' });
    for (const [text, serial] of cases) {
      const { encoded, rendered } = encodeBoth(encoder, render, [{ d: text }]);
      expect({ text, encoded }).toEqual({ text, encoded: `<row><c s="2"><v>${serial}</v></c></row>` });
      expect(rendered).toBe(encoded);
    }
  });

  it('refuses dates at and past the JavaScript Date limit as date-range, not a bare RangeError', () => {
    const values = [
      new Date(8.64e15),
      new Date(-8.64e15),
      8.64e15,
      8.64e15 - 3_600_000,
      -8.64e15,
      1e16,
      -1e16,
      Number.MAX_VALUE,
      -Number.MAX_VALUE,
      Date.UTC(10000, 0, 2),
      Date.UTC(1900, 1, 27) - 1,
    ];
    for (const zone of ['UTC', 'Pacific/Kiritimati', 'Pacific/Pago_Pago']) {
      for (const value of values) {
        for (const f of failures(value, zone)) {
          expect({ zone, value: String(value), rule: f.rule, field: f.field }).toEqual({
            zone,
            value: String(value),
            rule: 'date-range',
            field: 'expires',
          });
        }
      }
    }
  });

  it('decides the ends of the range by the wall-clock day in the zone', () => {
    const columns: ColumnSpec[] = [{ key: 'd', header: 'd', type: 'date' }];
    // Kiritimati is UTC+14, Pago Pago UTC-11 (fixed offsets since 1995 and 1911).
    const inRange: [number, string][] = [
      [Date.UTC(9999, 11, 31, 9, 59, 59, 999), 'Pacific/Kiritimati'],
      [Date.UTC(10000, 0, 1, 10, 59, 59, 999), 'Pacific/Pago_Pago'],
      [Date.UTC(9999, 11, 31, 23, 59, 59, 999), 'UTC'],
      // sub-millisecond input just below the last instant: a different double from the limit
      [253402300799999.9, 'UTC'],
      [Date.UTC(1900, 2, 1), 'UTC'],
    ];
    for (const [ms, timeZone] of inRange) {
      const { encoded, rendered } = encodeBoth(
        createRowEncoder(columns, { timeZone }),
        compileRowRenderer(columns, { timeZone }),
        [{ d: ms }, { d: new Date(ms) }],
      );
      expect(encoded).toMatch(/^<row><c s="2"><v>(2958465\.9|61<)/);
      expect(rendered).toBe(encoded);
    }
    expect(failures(Date.UTC(9999, 11, 31, 10), 'Pacific/Kiritimati')[0]!.rule).toBe('date-range');
    expect(failures(Date.UTC(10000, 0, 1, 11), 'Pacific/Pago_Pago')[0]!.rule).toBe('date-range');
    // 253402300799999.996 is the same double as 10000-01-01T00:00:00.000Z.
    expect(253402300799999.996).toBe(Date.UTC(10000, 0, 1));
    expect(failures(253402300799999.996).map((f) => f.rule)).toEqual(['date-range', 'date-range']);
    expect(failures(Date.UTC(1900, 1, 28, 23, 59, 59, 999)).map((f) => f.rule)).toEqual(['date-range', 'date-range']);
  });
});

describe('row numbers after a row that throws', () => {
  it('the reference renderer, like the encoder, gives the next row the number the failed one had', () => {
    const columns: ColumnSpec[] = [
      { key: 'n', header: 'N', type: 'number' },
      { key: 'd', header: 'D', type: 'date' },
    ];
    const encoder = createRowEncoder(columns, { timeZone: 'UTC', startRow: 2 });
    const render = compileRowRenderer(columns, { timeZone: 'UTC', startRow: 2 });
    const rows: Row[] = [{ n: 1 }, { n: 'bad' }, { n: 2, d: '2025-02-30T00:00:00Z' }, { n: 3 }, { d: 1e16 }, { n: 4 }];
    const encoded: string[] = [];
    const rendered: string[] = [];
    for (const row of rows) {
      try {
        encoder.encode(row);
        encoded.push(encoder.take().toString());
      } catch {
        encoded.push('threw');
      }
      try {
        rendered.push(render(row));
      } catch {
        rendered.push('threw');
      }
    }
    expect(rendered).toEqual([
      '<row r="2"><c r="A2"><v>1</v></c></row>',
      'threw',
      'threw',
      '<row r="3"><c r="A3"><v>3</v></c></row>',
      'threw',
      '<row r="4"><c r="A4"><v>4</v></c></row>',
    ]);
    expect(encoded).toEqual(rendered);
  });
});

describe('column widths', () => {
  const width = (header: string, type: ColumnSpec['type'] = 'number', explicit?: number): number =>
    columnWidth({ key: 'k', header, type, ...(explicit === undefined ? {} : { width: explicit }) });

  it('keeps ASCII header widths as they were (ceil(length x 1.2) + 2, at least the type default, at most 60)', () => {
    const cases: [string, ColumnSpec['type'], number][] = [
      ['id', 'string', 24],
      ['amount', 'number', 12],
      ['ok', 'boolean', 9],
      ['AAAAAAAAAA', 'number', 14],
      ['Amount (KRW)', 'number', 17],
      ['Customer lifetime value (KRW)', 'string', 37],
      ['tab\there', 'boolean', 12],
      ['x'.repeat(100), 'string', 60],
    ];
    expect(cases.map(([header, type]) => [header, type, width(header, type)])).toEqual(cases);
    // A given width is kept when the header fits it, and widened when it does not.
    expect(width('ok', 'string', 7.5)).toBe(7.5);
    expect(width('가'.repeat(40), 'string', 7.5)).toBe(60);
    expect(width('marketingConsentEmail', 'boolean', 10)).toBe(28);
    expect(width('id', 'string', 80)).toBe(80);
  });

  it('never makes a date column narrower than its date-time format needs (a narrower one shows #####)', () => {
    expect(width('at', 'date', 16)).toBe(20);
    expect(width('at', 'date', 25)).toBe(25);
    expect(width('profile.lastCheckoutCompletedAt', 'date', 16)).toBe(40);
  });

  it('gives Korean (full-width) headers two columns a character, up to the same cap', () => {
    // 결제(4) + space + 금액(4) + space + (원)(4) = 14 -> ceil(16.8) + 2; by UTF-16 units it was 13.
    expect(width('결제 금액 (원)')).toBe(19);
    expect(width('고객 연락처 전화번호', 'string')).toBe(26);
    expect(width('가'.repeat(20), 'string')).toBe(50); // 40 -> 50; by units 26
    expect(width('가'.repeat(25), 'string')).toBe(60); // 50 -> 62, capped; by units 32
    // Decomposed (NFD) Hangul, as macOS file names give it: the vowel and final jamo add nothing.
    expect(width('결제 금액 (원)'.normalize('NFD'))).toBe(19);
    expect(renderSheetPrologue([{ key: 'k', header: '결제 금액 (원)', type: 'number' }], 0, true)).toContain(
      '<col min="1" max="1" width="19" customWidth="1"/>',
    );
  });

  it('counts other East Asian wide text, mixed headers and fullwidth forms the same way; halfwidth kana stays narrow', () => {
    expect(width('Amount 금액')).toBe(16); // 7 + 4 = 11 -> ceil(13.2) + 2; by units 13
    expect(width('日本語の見出し')).toBe(19); // 14 -> ceil(16.8) + 2; by units 12
    expect(width('ＡＢＣＤＥＦ')).toBe(17); // fullwidth Latin: 12 -> ceil(14.4) + 2
    // Halfwidth katakana and their voicing marks: one column each, 13 -> 18, as by length.
    expect(width('ﾊﾝｶｸﾓｼﾞﾃﾞｽ ｶﾅ')).toBe(18);
  });

  it('counts an emoji (one or two UTF-16 units, or a sequence) as one wide character and combining marks as nothing', () => {
    expect(displayWidth('😀😀😀')).toBe(6);
    expect(width('👍🏽 OK 👍🏽')).toBe(12); // 2 + 1 + 2 + 1 + 2 = 8; by units it was 12 -> 17
    expect(width('👨‍👩‍👧 family 👨‍👩‍👧', 'string')).toBe(24); // 2 + 8 + 2 = 12 -> 17, so the default 24; by units 31
    expect(displayWidth('👨‍👩‍👧')).toBe(2);
    expect(displayWidth('❤️ 1️⃣ 🇰🇷')).toBe(8);
    // Astral but narrow (mathematical bold): one column each, not two units' worth.
    expect(width('𝐀𝐁𝐂 score')).toBe(13); // 3 + 6 = 9 -> ceil(10.8) + 2; by units 17
    // e + U+0301 is one é: 15 -> ceil(18) + 2; by units 16 -> 22.
    expect(width('Cafe\u0301 total bill')).toBe(20);
  });
});
