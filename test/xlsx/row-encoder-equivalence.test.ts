import { describe, expect, it } from 'vitest';
import { columnsFor, generateRow, type Shape } from '../../bench/rows';
import { compileRowRenderer } from '../../shared/xlsx/render-row';
import { createRowEncoder } from '../../shared/xlsx/row-encoder';
import { createLocalTimeConverter, createOffsetLookup } from '../../shared/xlsx/time-zone';
import type { ColumnSpec, Row } from '../../shared/xlsx/types';
import { encodeBoth, JS_WHITESPACE } from './engine-test-support';

// The encoder's fast paths (cached cells, fused openers, digit tables) against the reference
// renderer on the benchmark's realistic rows, with and without r, in zones with and without DST.
describe('row encoder on realistic rows', () => {
  for (const shape of ['case', 'contact'] as Shape[]) {
    for (const timeZone of ['Asia/Seoul', 'America/New_York', 'Australia/Lord_Howe']) {
      it(`${shape} rows in ${timeZone} equal the reference renderer byte for byte`, () => {
        const columns = columnsFor(shape);
        const rows: Row[] = [];
        for (let i = 0; i < 6000; i++) rows.push(generateRow(shape, i));
        for (const startRow of [undefined, 2]) {
          const encoder = createRowEncoder(columns, { timeZone, startRow });
          const render = compileRowRenderer(columns, { timeZone, startRow });
          const { encoded, rendered } = encodeBoth(encoder, render, rows);
          expect(encoded).toBe(rendered);
        }
      });
    }
  }
});

const NUMBER_COLUMNS: ColumnSpec[] = [{ key: 'n', header: 'n', type: 'number' }];

const numberEncoder = createRowEncoder(NUMBER_COLUMNS, { timeZone: 'UTC' });
/** The number in the cell `<c><v>…</v></c>` as the encoder writes it. */
function encodedNumber(v: number): string {
  const encoder = numberEncoder;
  encoder.encode({ n: v });
  const xml = encoder.take().toString('latin1');
  return xml.slice('<row><c><v>'.length, -'</v></c></row>'.length);
}

describe('number cells', () => {
  it('are written exactly as String(v) (with -0 as 0)', () => {
    const values = [
      0, -0, 1, -1, 0.1, 0.2, 0.29, 0.3, -0.1, 0.01, 0.05, 0.99, 1.1, 1.5, 2.25, 10.1, 99.99, 123.45, -123.45,
      1e-7, 1e-6, 5e-7, 1.005, 1.015, 1.255, 8.345, 0.07, 4.35, 1e21, 1e22, -1e21, 9_999_999.99, 10_000_000.01,
      -9_999_999.99, 1e7 - 0.01, 1e7 + 0.5, 2 ** 31 + 0.5, 2 ** 53 + 2, -(2 ** 53), Number.MAX_VALUE, Number.MIN_VALUE,
      Number.EPSILON, 1 / 3, 2 / 3, 0.1 + 0.2, 1234567.8, 1234567.89, 1234567.891, 0.000001, 0.0000001,
    ];
    // Every cent and tenth from -2000.00 to 2000.00, and pseudo-random values at several scales.
    for (let c = -200_000; c <= 200_000; c++) values.push(c / 100);
    for (let c = -20_000; c <= 20_000; c++) values.push(c / 10, c * 0.01, c * 0.1);
    let x = 0x2545f491;
    for (let i = 0; i < 100_000; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      const u = (x >>> 0) / 4294967296;
      values.push(Math.round(u * 1e9) / 100, Math.round(u * 1e5) / 100, u * 1e7, (u - 0.5) * 2e7, u, Math.round(u * 1e9) / 10);
    }
    for (const v of values) {
      const expected = Object.is(v, -0) ? '0' : String(v);
      const got = encodedNumber(v);
      if (got !== expected) expect({ v, got }).toEqual({ v, got: expected });
    }
  });
});

describe('local time converter cache', () => {
  it('gives exactly ms + the zone offset at that instant, including hours that share a cache slot', () => {
    const HOUR = 3_600_000;
    const SLOT_SPAN = 2 ** 16 * HOUR; // hours this far apart map to the same slot
    for (const zone of ['Australia/Lord_Howe', 'America/New_York', 'Europe/London', 'Asia/Seoul']) {
      const toLocal = createLocalTimeConverter(zone);
      const offsetAt = createOffsetLookup(zone);
      const instants: number[] = [];
      // Every 10 minutes through two years with DST changes (Lord Howe: :30 UTC transitions) ...
      for (let t = Date.UTC(2024, 0, 1); t < Date.UTC(2026, 0, 1); t += 600_000 + 7) instants.push(t);
      // ... then instants that alternate between colliding hours, and pre-1970 / far-future ones.
      for (let k = 0; k < 2000; k++) {
        const base = Date.UTC(2025, 3, 5, 15, 0, 0) + (k % 50) * 1_799_999;
        instants.push(base, base - SLOT_SPAN, base + SLOT_SPAN, base - 3 * SLOT_SPAN, base + 0.5);
      }
      for (const t of instants) {
        const expected = t + offsetAt(t);
        const got = toLocal(t);
        if (got !== expected) expect({ zone, t, got }).toEqual({ zone, t, got: expected });
      }
    }
  });
});

describe('date cells', () => {
  it('write the same ten-digit fractions as the reference renderer (trailing zeros dropped)', () => {
    const columns: ColumnSpec[] = [{ key: 'd', header: 'd', type: 'date' }];
    const encoder = createRowEncoder(columns, { timeZone: 'UTC' });
    const render = compileRowRenderer(columns, { timeZone: 'UTC' });
    const day = Date.UTC(2025, 6, 1);
    const rows: Row[] = [];
    // Every second of a day (fractions with 1 to 10 significant digits), then ms and sub-ms steps.
    for (let s = 0; s < 86_400; s++) rows.push({ d: day + s * 1000 });
    for (let ms = 0; ms < 20_000; ms++) rows.push({ d: day + ms * 4321 + (ms % 7) * 0.25 });
    rows.push({ d: day + 86_400_000 - 0.001 }, { d: day + 86_400_000 - 0.01 }, { d: day + 4.32 }, { d: day + 0.0004 });
    // Serial days around the five-digit fast path (10000..99999) and the ends of the range.
    for (const serial of [61, 62, 999, 1000, 9999, 10_000, 10_001, 45_000, 99_999, 100_000, 2_958_465]) {
      const ms = (serial - 25_569) * 86_400_000;
      rows.push({ d: ms }, { d: ms + 43_200_000 }, { d: ms + 86_399_999 });
    }
    const { encoded, rendered } = encodeBoth(encoder, render, rows);
    expect(encoded).toBe(rendered);
  });
});

// The value reader is generated code: keys must stay data, and errors and empty cells must
// behave as in the reference renderer, with and without r.
describe('generated cell loop', () => {
  const HOSTILE_KEYS: ColumnSpec[] = [
    { key: 'a"b', header: 'q', type: 'string' },
    { key: "x'];throw 1;//", header: 'inj', type: 'number' },
    { key: '\\', header: 'bs', type: 'date' },
    { key: '\u2028line\n', header: 'ls', type: 'boolean' },
    { key: '${1}`', header: 'tpl', type: 'duration' },
    { key: '__proto__x', header: 'p', type: 'string' },
  ];
  it('reads keys with quotes, backslashes and line separators as plain property names', () => {
    const rows: Row[] = [
      { 'a"b': 'one', "x'];throw 1;//": 1.5, '\\': 0, '\u2028line\n': true, '${1}`': 7, __proto__x: 'z' },
      { "x'];throw 1;//": -2, '${1}`': Number.NaN, __proto__x: '\u0001' },
      {},
    ];
    for (const startRow of [undefined, 2]) {
      const encoder = createRowEncoder(HOSTILE_KEYS, { timeZone: 'UTC', startRow });
      const render = compileRowRenderer(HOSTILE_KEYS, { timeZone: 'UTC', startRow });
      const { encoded, rendered } = encodeBoth(encoder, render, rows);
      expect(encoded).toBe(rendered);
    }
  });

  const COLUMNS: ColumnSpec[] = [
    { key: 's', header: 's', type: 'string' },
    { key: 'n', header: 'n', type: 'number' },
    { key: 'b', header: 'b', type: 'boolean' },
    { key: 'd', header: 'd', type: 'date' },
    { key: 't', header: 't', type: 'string' },
  ];
  it('a wrong type after written cells and gaps leaves nothing behind, without r too', () => {
    for (const startRow of [undefined, 2]) {
      const encoder = createRowEncoder(COLUMNS, { timeZone: 'UTC', startRow });
      const render = compileRowRenderer(COLUMNS, { timeZone: 'UTC', startRow });
      const bad: Row[] = [
        { s: 'x', b: 'yes' },
        { s: 'x', n: null, b: 1 as unknown as boolean },
        { n: 3, b: true, d: 'garbage' },
        { s: 'x', n: true as unknown as number },
      ];
      for (const row of bad) {
        expect(() => encoder.encode(row)).toThrow(/column "(n|b|d)"/);
        expect(encoder.length).toBe(0);
      }
      const good: Row = { s: null, n: 1, d: 0, t: '\u0002' };
      encoder.encode(good);
      expect(encoder.take().toString()).toBe(render(good));
    }
  });

  it('text empty after sanitising counts as a gap, and trailing gaps are dropped', () => {
    const encoder = createRowEncoder(COLUMNS, { timeZone: 'UTC' });
    const render = compileRowRenderer(COLUMNS, { timeZone: 'UTC' });
    const rows: Row[] = [
      { s: '\u0000', n: 1 },
      { s: '\u0000', n: Number.NaN, b: false },
      { n: Number.POSITIVE_INFINITY, t: '\u0003\u0004' },
      { s: '', n: null, b: undefined, d: null, t: 'end' },
      { s: 'a', t: '' },
    ];
    for (let pass = 0; pass < 2; pass++) {
      // the second pass takes the text cache's path for the same values
      const { encoded, rendered } = encodeBoth(encoder, render, rows);
      expect(encoded).toBe(rendered);
    }
    expect(render({ s: '\u0000', n: 1 })).toBe('<row><c/><c><v>1</v></c></row>');
  });
});

// xml:space="preserve" goes on text that starts or ends with any /\s/ character, not only those
// <= U+0020; both renderers must make the same decision on the fast path (plain text), the
// sanitising path (text to strip, escape or cut) and the cached path (the second pass).
describe('text cells starting or ending with whitespace', () => {
  const wide = JS_WHITESPACE.filter((w) => w.charCodeAt(0) >= 0xa0);
  const cut = 'a'.repeat(32_766);
  const preserved: string[] = [
    ...wide,
    ...wide.map((w) => w + 'x'),
    ...wide.map((w) => 'x' + w),
    '\u00a0\u3000\u2028',
    '\u0001\u00a0', // the control is stripped, leaving only U+00A0
    '\u3000&amp',
    '<\u2029',
    cut + '\u3000' + 'cut off', // the cut leaves the ideographic space last
    ' \u00a0 ',
    '\t',
  ];
  // Not /\s/ at either end (zero-width space, NEL, Mongolian vowel separator, word joiner, an
  // ideographic comma, spaces inside only): no preserve, as before.
  const plain: string[] = ['\u200b', '\u0085x', 'x\u180e', '\u2060', '한글', 'x\u3001', 'x\u3000\u00a0y', '\u0001x\u2028y\u0002'];

  it.each([undefined, 2])('add xml:space="preserve" in both renderers, startRow %s', (startRow) => {
    const columns: ColumnSpec[] = [{ key: 's', header: 's', type: 'string' }];
    const encoder = createRowEncoder(columns, { timeZone: 'UTC', startRow });
    const render = compileRowRenderer(columns, { timeZone: 'UTC', startRow });
    const rows: Row[] = [...preserved, ...plain].map((s) => ({ s }));
    for (let pass = 0; pass < 2; pass++) {
      const { encoded, rendered } = encodeBoth(encoder, render, rows);
      expect(encoded).toBe(rendered);
      const opens = encoded.match(/<is><t[^>]*>/g)!;
      expect(opens).toEqual([...preserved.map(() => '<is><t xml:space="preserve">'), ...plain.map(() => '<is><t>')]);
    }
  });
});
