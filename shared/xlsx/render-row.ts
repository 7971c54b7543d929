import { parseIsoWithOffset } from '../iso-datetime';
import { CellValueError } from './errors';
import { renderTextCell } from './sanitize-text';
import { createLocalTimeConverter, formatExcelSerial, splitExcelSerial, type LocalTimeConverter } from './time-zone';
import type { CellValue, ColumnSpec, RenderOptions, Row } from './types';

/** Style indexes in xl/styles.xml (see package-xml.ts). */
export const STYLE_HEADER = 1;
export const STYLE_DATE_TIME = 2;
/**
 * Boolean cells carry a number format that reads "TRUE";"TRUE";"FALSE". Excel shows a `t="b"` cell
 * as TRUE/FALSE whatever its format; LibreOffice imports it as a =TRUE()/=FALSE() formula and,
 * without this format, shows 1 and 0 in every boolean cell after the first (seen in its PDF and
 * HTML renderings of our files).
 */
export const STYLE_BOOLEAN = 3;
/** The boolean cell's tail after `<c` (and `r`). */
export const BOOLEAN_TRUE_TAIL = ` s="${STYLE_BOOLEAN}" t="b"><v>1</v></c>`;
export const BOOLEAN_FALSE_TAIL = ` s="${STYLE_BOOLEAN}" t="b"><v>0</v></c>`;
/**
 * Raised whenever rendered cells start to reference a style that an earlier styles.xml lacked
 * (2: STYLE_BOOLEAN). Parts carry it in their fingerprint, so a finalizer of the earlier code
 * (during a deploy) refuses them instead of writing a file whose cells name a missing style.
 */
export const CELL_STYLES_VERSION = 2;

/** Excel serials for 1900-03-01 (before it Excel's phantom leap day shifts dates) and 10000-01-01. */
const MIN_SERIAL = 61;
const MAX_SERIAL_EXCLUSIVE = 2_958_466;

/**
 * Epoch-ms window outside of which no instant is in 1900-03-01 … 9999-12-31 in any zone (offsets stay
 * within a day), so the exact in-zone check decides the edges. Checked before the zone
 * conversion: Intl cannot format instants near or past the Date limit (±8.64e15) at all.
 */
export const MIN_INSTANT_MS = Date.UTC(1900, 1, 27);
export const MAX_INSTANT_MS_EXCLUSIVE = Date.UTC(10000, 0, 2);

/** Renders a cell after its `<c` (and `r`), e.g. `><v>1</v></c>`; '' for an empty cell. */
type CellTailRenderer = (value: NonNullable<CellValue>) => string;

export type RowRenderer = (row: Row) => string;

export type RowRenderOptions = RenderOptions & {
  /**
   * Absolute sheet row (1-based; the header is row 1) of the first row rendered. When given,
   * rows and cells carry `r` attributes and empty cells are omitted; every reader tested
   * (Excel's format, openpyxl, ExcelJS, xlsx-populate) reads that. When absent, no `r` is
   * written, so a part need not know where it lands; the spec allows that and openpyxl reads
   * it, but ExcelJS (rows) and xlsx-populate (cells) require `r` and cannot.
   */
  startRow?: number;
};

/**
 * Without `r` attributes a reader places each cell in the column after the previous one, so
 * an empty cell followed by a non-empty one must still hold its place: as `<c/>`, a blank
 * cell with no value. Trailing empty cells are omitted.
 */
export const EMPTY_CELL = '<c/>';

/**
 * Whether a column key names a property every plain object inherits (`constructor`,
 * `toString`, `__proto__`…): a plain `row[key]` would read Object.prototype's member when the
 * row lacks the key, so such keys are read as own properties only and a missing one is an
 * empty cell. Decided once per column, so ordinary keys keep a plain property load.
 */
export function isInheritedKey(key: string): boolean {
  return key in Object.prototype;
}

/**
 * A row's value under an inherited key (see isInheritedKey): its own property, else undefined.
 * Object.hasOwn also works on rows made with Object.create(null), and sees an own `__proto__`
 * data property (JSON.parse makes one) without triggering the accessor.
 */
export function readOwn(row: Row, key: string): CellValue {
  return Object.hasOwn(row, key) ? row[key] : undefined;
}

/**
 * Renders rows as XML text: the readable reference for the byte encoder in row-encoder.ts
 * (which must produce exactly these bytes, and is what parts use because it is several times
 * faster). Columns are compiled once into one renderer per column.
 * Null and undefined values (and text that is empty after sanitising) are empty cells.
 */
export function compileRowRenderer(columns: readonly ColumnSpec[], options: RowRenderOptions): RowRenderer {
  const toLocal = createLocalTimeConverter(options.timeZone);
  const keys = columns.map((c) => c.key);
  const inherited = keys.map(isInheritedKey);
  const tails = columns.map((c) => compileCellTail(c, toLocal));
  const n = columns.length;
  if (options.startRow === undefined) {
    return (row: Row): string => {
      let s = '<row>';
      let gap = '';
      for (let i = 0; i < n; i++) {
        const v = inherited[i] ? readOwn(row, keys[i]!) : row[keys[i]!];
        const tail = v === null || v === undefined ? '' : tails[i]!(v);
        if (tail === '') gap += EMPTY_CELL;
        else {
          if (gap !== '') {
            s += gap;
            gap = '';
          }
          s += '<c' + tail;
        }
      }
      return s + '</row>';
    };
  }
  if (!Number.isSafeInteger(options.startRow) || options.startRow < 2) {
    throw new CellValueError('startRow must be an integer >= 2 (row 1 is the header)', 'startRow', 'min-2');
  }
  const opens = columns.map((_, i) => '<c r="' + columnLetters(i));
  let rowNumber = options.startRow;
  return (row: Row): string => {
    const r = String(rowNumber);
    let s = '<row r="' + r + '">';
    for (let i = 0; i < n; i++) {
      const v = inherited[i] ? readOwn(row, keys[i]!) : row[keys[i]!];
      if (v === null || v === undefined) continue;
      const tail = tails[i]!(v);
      if (tail !== '') s += opens[i]! + r + '"' + tail;
    }
    // Only once the row has rendered: a caller that skips a row that threw leaves no gap in r,
    // as with the byte encoder.
    rowNumber++;
    return s + '</row>';
  };
}

/** Zero-based column index to its letters: 0 -> A, 26 -> AA. */
export function columnLetters(index: number): string {
  let n = index + 1;
  let s = '';
  while (n > 0) {
    const rem = (n - 1) % 26;
    s = String.fromCharCode(65 + rem) + s;
    n = Math.floor((n - 1) / 26);
  }
  return s;
}

const TEXT_ATTRS = ' t="inlineStr">';

/** What a `string` column accepts, as its wrong-type error words it (shared with the byte encoder). */
export const TEXT_EXPECTED = 'text, a number, a boolean or a Date';

function compileCellTail(column: ColumnSpec, toLocal: LocalTimeConverter): CellTailRenderer {
  const key = column.key;
  switch (column.type) {
    case 'string':
      return (v) => {
        if (typeof v === 'string') return renderTextCell(v, TEXT_ATTRS);
        if (typeof v === 'number' || typeof v === 'boolean') return renderTextCell(String(v), TEXT_ATTRS);
        // Checked rather than assumed: rows come from JSON and callers' objects, and anything
        // else (a function, a plain object) must fail as a CellValueError naming the column,
        // not as a TypeError from calling getTime on it.
        if (v instanceof Date) return renderTextCell(Number.isNaN(v.getTime()) ? '' : v.toISOString(), TEXT_ATTRS);
        throw wrongType(key, 'string', v, TEXT_EXPECTED);
      };
    case 'number':
    case 'duration':
      return (v) => {
        if (typeof v !== 'number') throw wrongType(key, column.type, v, 'a number');
        // NaN and infinities have no cell representation: they become empty cells.
        return Number.isFinite(v) ? '><v>' + v + '</v></c>' : '';
      };
    case 'boolean':
      return (v) => {
        if (typeof v !== 'boolean') throw wrongType(key, 'boolean', v, 'a boolean');
        return v ? BOOLEAN_TRUE_TAIL : BOOLEAN_FALSE_TAIL;
      };
    case 'date':
      return (v) => {
        const local = toLocal(toEpochMs(key, v));
        assertDateRange(key, splitExcelSerial(local).day);
        return ' s="2"><v>' + formatExcelSerial(local) + '</v></c>';
      };
    default: {
      const never: never = column.type;
      throw new CellValueError(`column "${key}": unknown type ${String(never)}`, key, 'type');
    }
  }
}

export function assertDateRange(key: string, serialDay: number): void {
  if (!(serialDay >= MIN_SERIAL && serialDay < MAX_SERIAL_EXCLUSIVE)) throw dateRangeError(key);
}

function dateRangeError(key: string): CellValueError {
  return new CellValueError(
    `column "${key}": date must be between 1900-03-01 and 9999-12-31 in the workbook's time zone`,
    key,
    'date-range',
  );
}

/**
 * Converts a date cell value (Date, epoch ms or ISO-8601 with offset) to epoch milliseconds
 * inside [MIN_INSTANT_MS, MAX_INSTANT_MS_EXCLUSIVE); the caller still checks the day in its zone.
 */
export function toEpochMs(key: string, v: NonNullable<CellValue>): number {
  let ms: number | undefined;
  if (v instanceof Date) ms = v.getTime();
  else if (typeof v === 'number') ms = v;
  else if (typeof v === 'string') {
    ms = parseIsoWithOffset(v);
    if (ms === undefined) {
      throw new CellValueError(
        `column "${key}": date text must be ISO-8601 with an offset, e.g. 2025-07-01T09:30:00+09:00`,
        key,
        'iso-8601-with-offset',
      );
    }
  } else throw wrongType(key, 'date', v, 'a Date, epoch milliseconds or ISO-8601 text');
  if (!Number.isFinite(ms)) throw new CellValueError(`column "${key}": not a valid date`, key, 'valid-date');
  if (!(ms >= MIN_INSTANT_MS && ms < MAX_INSTANT_MS_EXCLUSIVE)) throw dateRangeError(key);
  return ms;
}

export function wrongType(key: string, type: string, v: unknown, expected: string): CellValueError {
  // The value itself stays out of the message: cells may hold personal data.
  const t = typeof v;
  const got = v instanceof Date ? 'a Date' : t === 'object' ? 'an object' : `a ${t}`;
  return new CellValueError(`column "${key}" (${type}) must be ${expected}, got ${got}`, key, 'type');
}
