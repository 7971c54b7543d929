import { CellValueError } from './errors';
import {
  assertDateRange,
  BOOLEAN_FALSE_TAIL,
  BOOLEAN_TRUE_TAIL,
  columnLetters,
  EMPTY_CELL,
  isInheritedKey,
  MAX_INSTANT_MS_EXCLUSIVE,
  MIN_INSTANT_MS,
  STYLE_DATE_TIME,
  TEXT_EXPECTED,
  toEpochMs,
  wrongType as wrongTypeError,
  type RowRenderOptions,
} from './render-row';
import { escapeXmlText, NEEDS_WORK, needsSpacePreserve, sanitizeText } from './sanitize-text';
import { createLocalTimeConverter, DAY_MS, EXCEL_UNIX_EPOCH_DAYS, FRACTION_SCALE } from './time-zone';
import { MAX_CELL_CHARS, type CellValue, type ColumnSpec, type Row } from './types';

/**
 * The hot path: rows straight to UTF-8 bytes in one growing buffer, with no intermediate
 * strings. Building XML by string concatenation and then encoding it spent most of its time
 * flattening V8 cons-strings and collecting them; writing bytes is several times faster.
 * The output is byte-for-byte what `compileRowRenderer` (render-row.ts) renders; a test
 * holds the two together.
 */
export type RowEncoder = {
  encode(row: Row): void;
  /** Bytes encoded since the last `take`. */
  readonly length: number;
  /** The bytes encoded since the last call, as a view valid until the next `encode`. */
  take(): Buffer;
  /**
   * The bytes encoded since the last call, in a buffer the caller keeps (for async use); the
   * encoder continues in `replacement` (e.g. a buffer the caller is done with) or a new one.
   */
  takeOwned(replacement?: Buffer): Buffer;
};

// Plain Uint8Arrays (not Buffers) so the copy loop in put() sees one element kind: monomorphic.
const ascii = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));

const ROW_OPEN = ascii('<row>');
const ROW_OPEN_R = ascii('<row r="');
const ROW_OPEN_R_END = ascii('">');
const ROW_CLOSE = ascii('</row>');
const GAP = ascii(EMPTY_CELL);

/**
 * What follows a cell's `<c` (with `r`, its `<c r="B7"`), per kind of cell. Without `r` the
 * `<c` carries no per-cell data, so it is folded into these constants: one copy per opening
 * instead of two.
 */
type CellOpeners = {
  text: Uint8Array;
  textPreserve: Uint8Array;
  number: Uint8Array;
  date: Uint8Array;
  boolTrue: Uint8Array;
  boolFalse: Uint8Array;
};
function cellOpeners(prefix: string): CellOpeners {
  return {
    text: ascii(prefix + ' t="inlineStr"><is><t>'),
    textPreserve: ascii(prefix + ' t="inlineStr"><is><t xml:space="preserve">'),
    number: ascii(prefix + '><v>'),
    date: ascii(prefix + ` s="${STYLE_DATE_TIME}"><v>`),
    boolTrue: ascii(prefix + BOOLEAN_TRUE_TAIL),
    boolFalse: ascii(prefix + BOOLEAN_FALSE_TAIL),
  };
}
/** After `<c r="B7"` (the reference is written per cell). */
const OPENERS_AFTER_REF = cellOpeners('');
/** Whole openings for cells without `r`. */
const OPENERS_NO_REF = cellOpeners('<c');

const KIND_STRING = 0;
const KIND_NUMBER = 1;
const KIND_BOOLEAN = 2;
const KIND_DATE = 3;

const INITIAL_CAPACITY = 1 << 20;

/**
 * ASCII digits of 0..9999, four per number, zero-padded ("0042"), so a date's ten fraction
 * digits take three divisions instead of ten. (Integers keep putUint's digit loop: their values
 * here are mostly small, and the table measured no faster for them.)
 */
const DIGITS4 = new Uint8Array(40_000);
/** How many of a group's four digits remain once trailing zeros are dropped ("1200" -> 2). */
const SIGNIFICANT4 = new Uint8Array(10_000);
for (let i = 0; i < 10_000; i++) {
  const d = String(i).padStart(4, '0');
  for (let k = 0; k < 4; k++) DIGITS4[i * 4 + k] = d.charCodeAt(k);
  SIGNIFICANT4[i] = d.replace(/0+$/, '').length;
}

/** Text up to this length is looked up in its column's cache of encoded cells. */
const TEXT_CACHE_MAX_CHARS = 64;
/** Distinct values kept per column: enough for enumerations, bounded for everything else. */
const TEXT_CACHE_MAX_ENTRIES = 512;
/** After this many lookups a column keeps its cache only if at least half of them hit. */
const TEXT_CACHE_PROBE = 2048;
/**
 * A column that has hit under 1 in 8 of its first this many lookups (ids, URLs, free text)
 * turns its cache off at once instead of paying misses and copies up to TEXT_CACHE_PROBE.
 * Enumerations pass easily: even 512 evenly used values hit ~20% of 256 lookups.
 */
const TEXT_CACHE_EARLY_PROBE = 256;
const EMPTY_BYTES = new Uint8Array(0);

// Buffer.prototype.write validates its arguments in JS before calling the native utf8Write;
// on the hottest call here (every text cell) that wrapper cost ~9% of encoding. utf8Write is
// what write() calls internally; fall back to write() if a runtime ever lacks it.
type Utf8Write = (this: Buffer, s: string, offset: number) => number;
const nativeUtf8Write = (Buffer.prototype as unknown as { utf8Write?: Utf8Write }).utf8Write;
const utf8Write: Utf8Write =
  typeof nativeUtf8Write === 'function'
    ? nativeUtf8Write
    : function (this: Buffer, s: string, offset: number): number {
        return this.write(s, offset, 'utf8');
      };

/**
 * A reader that copies the columns' values of a row into an array with one named property
 * load per column. Loading `row[keys[i]]` in a loop is a megamorphic keyed load (tens of ns
 * each, the largest single cost per cell); generated code gives each column its own
 * monomorphic load site. Keys enter the source only as JSON string literals.
 * A key every object inherits (`constructor`, `toString`, `__proto__`: see isInheritedKey)
 * is read as an own property only, as the reference renderer reads it, so a row without it
 * gives an empty cell rather than Object.prototype's member. The choice is made here, per
 * column, so ordinary keys keep their plain load and pay nothing for it.
 */
function compileValueReader(keys: readonly string[]): (row: Row, out: CellValue[]) => void {
  const body = keys
    .map((k, i) => {
      const lit = JSON.stringify(k);
      return isInheritedKey(k) ? `out[${i}] = hasOwn(row, ${lit}) ? row[${lit}] : undefined;` : `out[${i}] = row[${lit}];`;
    })
    .join('\n');
  // eslint-disable-next-line no-new-func -- see above: a measured hot-path win, input is escaped
  const factory = new Function('hasOwn', `return function readValues(row, out) {\n${body}\n};`) as (
    hasOwn: (o: object, k: PropertyKey) => boolean,
  ) => (row: Row, out: CellValue[]) => void;
  // Passed in rather than named in the source: the generated code must not depend on what
  // the global `Object` is when it runs.
  return factory(Object.hasOwn);
}

export function createRowEncoder(columns: readonly ColumnSpec[], options: RowRenderOptions): RowEncoder {
  const toLocal = createLocalTimeConverter(options.timeZone);
  const n = columns.length;
  const keys = columns.map((c) => c.key);
  const kinds = Int32Array.from(columns, (c) =>
    c.type === 'string' ? KIND_STRING : c.type === 'boolean' ? KIND_BOOLEAN : c.type === 'date' ? KIND_DATE : KIND_NUMBER,
  );
  const withR = options.startRow !== undefined;
  if (withR && (!Number.isSafeInteger(options.startRow) || options.startRow! < 2)) {
    throw new CellValueError('startRow must be an integer >= 2 (row 1 is the header)', 'startRow', 'min-2');
  }
  // With r: `<c r="B` per column; the row digits and the quote follow per cell (putCellRef).
  const cellRefs = columns.map((_, i) => ascii(`<c r="${columnLetters(i)}`));
  const open = withR ? OPENERS_AFTER_REF : OPENERS_NO_REF;
  const readValues = compileValueReader(keys);
  const values: CellValue[] = new Array<CellValue>(n).fill(undefined);
  let rowNumber = options.startRow ?? 0;
  const rowDigits = new Uint8Array(16);
  let rowDigitsLength = 0;

  let buf: Buffer = Buffer.allocUnsafe(INITIAL_CAPACITY);
  let pos = 0;

  const ensure = (extra: number): void => {
    if (pos + extra <= buf.length) return;
    // One row may exceed the buffer (45 cells of 32,767 characters): grow, keep the contents.
    const next = Buffer.allocUnsafe(Math.max(buf.length * 2, pos + extra));
    buf.copy(next, 0, 0, pos);
    buf = next;
  };

  const put = (bytes: Uint8Array): void => {
    const len = bytes.length;
    // Longer constants go through TypedArray.set (a memcpy); short ones are cheaper as a loop.
    if (len > 16) {
      buf.set(bytes, pos);
      pos += len;
      return;
    }
    const b = buf;
    let p = pos;
    for (let i = 0; i < len; i++) b[p++] = bytes[i]!;
    pos = p;
  };

  /** The group `g` (0..9999) as four digits, zero-padded; unrolled (a loop measured slower). */
  const put4 = (g: number): void => {
    const b = buf;
    const p = pos;
    const k = g * 4;
    b[p] = DIGITS4[k]!;
    b[p + 1] = DIGITS4[k + 1]!;
    b[p + 2] = DIGITS4[k + 2]!;
    b[p + 3] = DIGITS4[k + 3]!;
    pos = p + 4;
  };

  // The two closings written after every value cell, as fixed stores: put()'s copy loop
  // (load, store, compare per byte) was its largest cost, and these are most of its calls.
  /** `</v></c>` */
  const putValueClose = (): void => {
    const b = buf;
    const p = pos;
    b[p] = 0x3c; // <
    b[p + 1] = 0x2f; // /
    b[p + 2] = 0x76; // v
    b[p + 3] = 0x3e; // >
    b[p + 4] = 0x3c; // <
    b[p + 5] = 0x2f; // /
    b[p + 6] = 0x63; // c
    b[p + 7] = 0x3e; // >
    pos = p + 8;
  };
  /** `</t></is></c>` */
  const putTextClose = (): void => {
    const b = buf;
    const p = pos;
    b[p] = 0x3c; // <
    b[p + 1] = 0x2f; // /
    b[p + 2] = 0x74; // t
    b[p + 3] = 0x3e; // >
    b[p + 4] = 0x3c; // <
    b[p + 5] = 0x2f; // /
    b[p + 6] = 0x69; // i
    b[p + 7] = 0x73; // s
    b[p + 8] = 0x3e; // >
    b[p + 9] = 0x3c; // <
    b[p + 10] = 0x2f; // /
    b[p + 11] = 0x63; // c
    b[p + 12] = 0x3e; // >
    pos = p + 13;
  };

  // Likewise the openings of number and date cells without r (with r, the reference first).
  /** `<c><v>` */
  const putNumberOpen = (col: number): void => {
    if (withR) {
      putCellRef(col);
      put(OPENERS_AFTER_REF.number);
      return;
    }
    const b = buf;
    const p = pos;
    b[p] = 0x3c; // <
    b[p + 1] = 0x63; // c
    b[p + 2] = 0x3e; // >
    b[p + 3] = 0x3c; // <
    b[p + 4] = 0x76; // v
    b[p + 5] = 0x3e; // >
    pos = p + 6;
  };
  /** `<c s="2"><v>` (STYLE_DATE_TIME is a single digit) */
  const putDateOpen = (col: number): void => {
    if (withR) {
      putCellRef(col);
      put(OPENERS_AFTER_REF.date);
      return;
    }
    const b = buf;
    const p = pos;
    b[p] = 0x3c; // <
    b[p + 1] = 0x63; // c
    b[p + 2] = 0x20; // space
    b[p + 3] = 0x73; // s
    b[p + 4] = 0x3d; // =
    b[p + 5] = 0x22; // "
    b[p + 6] = 0x30 + STYLE_DATE_TIME;
    b[p + 7] = 0x22; // "
    b[p + 8] = 0x3e; // >
    b[p + 9] = 0x3c; // <
    b[p + 10] = 0x76; // v
    b[p + 11] = 0x3e; // >
    pos = p + 12;
  };

  const putUint = (v: number): void => {
    // v is a non-negative integer below 2^53
    if (v < 10) {
      buf[pos++] = 48 + v;
      return;
    }
    if (v < 0x7fffffff) {
      // Digits by int32 arithmetic, right to left: no string to allocate.
      let n = v | 0;
      let digits = 1;
      for (let t = n; t >= 10; t = (t / 10) | 0) digits++;
      const b = buf;
      let p = pos + digits - 1;
      while (n >= 10) {
        const q = (n / 10) | 0;
        b[p--] = 48 + (n - q * 10);
        n = q;
      }
      b[p] = 48 + n;
      pos += digits;
      return;
    }
    const s = String(v);
    for (let i = 0; i < s.length; i++) buf[pos++] = s.charCodeAt(i);
  };

  const putAsciiString = (s: string): void => {
    for (let i = 0; i < s.length; i++) buf[pos++] = s.charCodeAt(i);
  };

  /** `<c r="B7"` (only with r; without it the openers in `open` start with `<c`). */
  const putCellRef = (col: number): void => {
    put(cellRefs[col]!);
    const b = buf;
    let p = pos;
    for (let i = 0; i < rowDigitsLength; i++) b[p++] = rowDigits[i]!;
    b[p++] = 0x22; // closing quote of r="..."
    pos = p;
  };

  /**
   * Encoded text cells (everything after `r="…"`; without r, the whole cell) per column, for columns whose values repeat
   * (states, team names, plans): a hit is one Map lookup and one copy instead of a scan, a
   * UTF-8 encode and three constant copies. A column that misses too often (ids, free text)
   * switches its cache off, so unique values pay for a few thousand lookups at most.
   */
  const textCaches: (Map<string, Uint8Array> | undefined)[] = columns.map((c) => (c.type === 'string' ? new Map() : undefined));
  const textLookups = new Int32Array(n);
  const textHits = new Int32Array(n);

  /** Writes a text cell; returns false if the text is empty after sanitising (nothing written). */
  const putTextCell = (col: number, s: string): boolean => {
    const len = s.length;
    if (len === 0) return false;
    const cache = len <= TEXT_CACHE_MAX_CHARS ? textCaches[col] : undefined;
    if (cache !== undefined) {
      const hit = cache.get(s);
      const lookups = ++textLookups[col]!;
      if (hit !== undefined) {
        textHits[col]!++;
        if (hit.length === 0) return false;
        ensure(hit.length + 64);
        if (withR) putCellRef(col);
        put(hit);
        return true;
      }
      if (
        (lookups >= TEXT_CACHE_PROBE && textHits[col]! * 2 < lookups) ||
        (lookups >= TEXT_CACHE_EARLY_PROBE && textHits[col]! * 8 < lookups)
      ) {
        textCaches[col] = undefined;
      } else if (cache.size < TEXT_CACHE_MAX_ENTRIES) {
        // Render once into the buffer, then keep a copy of the bytes after the cell opening.
        const start = pos;
        const wrote = putTextCellUncached(col, s);
        if (!wrote) {
          cache.set(s, EMPTY_BYTES);
          return false;
        }
        // With r, start..(end of `r="…"` quote) is the cell reference; cache only what follows it.
        const openLength = withR ? cellRefs[col]!.length + rowDigitsLength + 1 : 0;
        cache.set(s, new Uint8Array(buf.subarray(start + openLength, pos)));
        return true;
      }
    }
    return putTextCellUncached(col, s);
  };

  const putTextCellUncached = (col: number, s: string): boolean => {
    const len = s.length;
    // Common case: nothing to strip or escape. A native regex scan plus a native UTF-8 write
    // measured 3x faster than a charCodeAt loop in JS (and a JS loop for short ASCII ids was
    // no faster than this either).
    if (len <= MAX_CELL_CHARS && !NEEDS_WORK.test(s)) {
      ensure(len * 3 + 128);
      if (withR) putCellRef(col);
      put(needsSpacePreserve(s.charCodeAt(0), s.charCodeAt(len - 1)) ? open.textPreserve : open.text);
      pos += utf8Write.call(buf, s, pos);
      putTextClose();
      return true;
    }
    // Rare: characters to strip or escape, or too long. Same rules as renderTextCell.
    const clean = sanitizeText(s);
    if (clean.length === 0) return false;
    const escaped = escapeXmlText(clean);
    ensure(escaped.length * 3 + 128);
    if (withR) putCellRef(col);
    put(needsSpacePreserve(clean.charCodeAt(0), clean.charCodeAt(clean.length - 1)) ? open.textPreserve : open.text);
    pos += buf.write(escaped, pos, 'utf8');
    putTextClose();
    return true;
  };

  /**
   * Writes a number with at most two decimals below 1e7 in magnitude (averages, amounts: 12.5,
   * -0.29, and negative integers) without String(v); returns false, writing nothing, for any
   * other number. When m / 100 === |v| for
   * an integer m < 1e9, the decimal text of m / 100 reads back as v and no shorter decimal
   * does (distinct multiples of 0.01 below 1e7 are far more than one ulp apart), so it is
   * exactly what String(v) prints. (Non-negative integers, -0 included, never get here.)
   */
  const putCents = (v: number): boolean => {
    const a = v < 0 ? -v : v;
    if (!(a < 10_000_000)) return false;
    const m = Math.round(a * 100);
    if (m / 100 !== a) return false;
    if (v < 0) buf[pos++] = 0x2d; // '-'
    const whole = (m / 100) | 0;
    const cents = m - whole * 100;
    putUint(whole);
    if (cents === 0) return true; // a negative integer
    buf[pos++] = 0x2e; // '.'
    const tens = (cents / 10) | 0;
    buf[pos++] = 48 + tens;
    if (cents !== tens * 10) buf[pos++] = 48 + (cents - tens * 10);
    return true;
  };

  const putNumberCell = (col: number, v: number): void => {
    ensure(64);
    putNumberOpen(col);
    if (Number.isInteger(v) && v >= 0 && v <= Number.MAX_SAFE_INTEGER) putUint(v);
    else if (!putCents(v)) putAsciiString(String(v));
    putValueClose();
  };

  const putDateCell = (col: number, key: string, v: NonNullable<CellValue>): void => {
    // Epoch ms (the common form) skips toEpochMs's Date and text checks. Its window test is the
    // one check here: it also rules out NaN and infinities, and keeps instants Intl cannot
    // format out of toLocal (toEpochMs then names the rule).
    const local = toLocal(
      typeof v === 'number' && v >= MIN_INSTANT_MS && v < MAX_INSTANT_MS_EXCLUSIVE ? v : toEpochMs(key, v),
    );
    const d = Math.floor(local / DAY_MS);
    let day = d + EXCEL_UNIX_EPOCH_DAYS;
    assertDateRange(key, day);
    let f = Math.round(((local - d * DAY_MS) * FRACTION_SCALE) / DAY_MS);
    if (f >= FRACTION_SCALE) {
      day += 1;
      f = 0;
    }
    ensure(64);
    putDateOpen(col);
    if (day >= 10_000 && day < 100_000) {
      // Days from 1927 to 2173: five digits, the last four from the table (no digit loop).
      const first = (day / 10_000) | 0;
      buf[pos++] = 48 + first;
      put4(day - first * 10_000);
    } else putUint(day);
    if (f !== 0) {
      // 10 fixed digits, zero-padded, trailing zeros dropped: as formatExcelSerial. Digits by
      // arithmetic, since String(number) is the slowest step of a date cell. f < 1e10 does not
      // fit an int32: split it as 2 + 4 + 4 digits, the last two groups by int arithmetic.
      const top = Math.floor(f / 100_000_000);
      const rest = f - top * 100_000_000;
      const mid = (rest / 10_000) | 0;
      const low = rest - mid * 10_000;
      const b = buf;
      const p = pos;
      b[p] = 0x2e;
      b[p + 1] = DIGITS4[top * 4 + 2]!;
      b[p + 2] = DIGITS4[top * 4 + 3]!;
      pos = p + 3;
      put4(mid);
      put4(low);
      // All ten digits are written; the end moves back to the last non-zero one.
      pos = p + 1 + (low !== 0 ? 6 + SIGNIFICANT4[low]! : mid !== 0 ? 2 + SIGNIFICANT4[mid]! : top % 10 === 0 ? 1 : 2);
    }
    putValueClose();
  };

  // The renderer's helper and wording, so both paths fail with the same message.
  const wrongType = (col: number, v: unknown): CellValueError => {
    const c = columns[col]!;
    const expected = c.type === 'boolean' ? 'a boolean' : c.type === 'string' ? TEXT_EXPECTED : 'a number';
    return wrongTypeError(c.key, c.type, v, expected);
  };

  return {
    encode(row: Row): void {
      const rowStart = pos;
      const rowNumberBefore = rowNumber;
      ensure(64);
      if (withR) {
        const s = String(rowNumber++);
        rowDigitsLength = s.length;
        for (let i = 0; i < s.length; i++) rowDigits[i] = s.charCodeAt(i);
        put(ROW_OPEN_R);
        put(rowDigits.subarray(0, rowDigitsLength));
        put(ROW_OPEN_R_END);
      } else put(ROW_OPEN);
      let gaps = 0;
      try {
        readValues(row, values);
        for (let col = 0; col < n; col++) {
          const v = values[col];
          if (v === null || v === undefined) {
            gaps++;
            continue;
          }
          // Without r, empty cells before this one hold their places as <c/> (unless this one
          // turns out empty too: then everything from `start` is rolled back).
          const start = pos;
          const pendingGaps = gaps;
          if (!withR && gaps > 0) {
            ensure(gaps * GAP.length);
            for (; gaps > 0; gaps--) put(GAP);
          }
          let wrote = true;
          switch (kinds[col]) {
            case KIND_STRING:
              if (typeof v === 'string') wrote = putTextCell(col, v);
              else if (typeof v === 'number' || typeof v === 'boolean') wrote = putTextCell(col, String(v));
              else if (v instanceof Date) wrote = putTextCell(col, Number.isNaN(v.getTime()) ? '' : v.toISOString());
              // Anything else (a function, a plain object) fails as the renderer's does.
              else throw wrongType(col, v);
              break;
            case KIND_NUMBER:
              if (typeof v !== 'number') throw wrongType(col, v);
              // NaN and infinities have no cell representation: they become empty cells.
              if (Number.isFinite(v)) putNumberCell(col, v);
              else wrote = false;
              break;
            case KIND_BOOLEAN:
              if (typeof v !== 'boolean') throw wrongType(col, v);
              ensure(64);
              if (withR) putCellRef(col);
              put(v ? open.boolTrue : open.boolFalse);
              break;
            default:
              putDateCell(col, keys[col]!, v);
          }
          if (wrote) gaps = 0;
          else {
            pos = start;
            gaps = pendingGaps + 1;
          }
        }
      } catch (err) {
        // Leave no half row behind, and let the caller skip this row without a hole in `r`.
        pos = rowStart;
        rowNumber = rowNumberBefore;
        throw err;
      }
      ensure(ROW_CLOSE.length);
      put(ROW_CLOSE);
    },
    get length() {
      return pos;
    },
    take(): Buffer {
      const out = buf.subarray(0, pos);
      pos = 0;
      return out;
    },
    takeOwned(replacement?: Buffer): Buffer {
      const out = buf.subarray(0, pos);
      buf = replacement ?? Buffer.allocUnsafe(Math.max(INITIAL_CAPACITY, Math.min(buf.length, 4 * INITIAL_CAPACITY)));
      pos = 0;
      return out;
    },
  };
}
