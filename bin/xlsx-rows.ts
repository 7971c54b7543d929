/**
 * The per-line work of the operator command (bin/xlsx.ts): parse a line, check it against the
 * columns, render it. One batch of lines becomes one part. The same code runs on the main
 * thread (a small input, or `--workers 0`) and in the render workers (bin/xlsx-worker.ts), so a
 * file is byte-for-byte the same either way and every refusal names its line as before.
 */
import { CellValueError, createPartEncoder, type CellValue, type ColumnSpec, type Part, type PartEncoder, type Row } from '../shared/xlsx';
import { isInheritedKey } from '../shared/xlsx/render-row';
import { parseIsoWithOffset } from '../shared/iso-datetime';
import { InputError, decodeLineText, firstDuplicate, scanTopLevelMembers, shownName } from './cli-input';

/** JSON.parse keeps the last of two equal keys: the first value would vanish without a word. */
export function duplicateError(line: number, key: string): InputError {
  return new InputError(`line ${line}: field ${shownName(key)} appears more than once (JSON keeps only the last value)`);
}


/**
 * For a line with `members` members of which `present` are columns: refuses a duplicate key and,
 * with inferred columns (`strict`), a field that is not a column: it would be dropped silently.
 * Only called when the counts differ, so a line that matches pays for no key decoding.
 */
function memberError(text: string, columns: readonly ColumnSpec[], line: number, strict: boolean, firstLine: number): InputError | undefined {
  const keys: string[] = [];
  scanTopLevelMembers(text, keys);
  const duplicate = firstDuplicate(keys);
  if (duplicate !== undefined) return duplicateError(line, duplicate);
  if (!strict) return undefined;
  const known = new Set(columns.map((c) => c.key));
  const extra = keys.find((k) => !known.has(k));
  if (extra === undefined) return undefined;
  return new InputError(
    `line ${line}: field ${shownName(extra)} is not a column (without --columns the columns are line ${firstLine}'s fields): pass --columns to choose the columns`,
  );
}

/** The error for one field: names the line, the field, its type, the rule and what came instead. */
function fieldError(line: number, c: ColumnSpec, expected: string, got: string): InputError {
  return new InputError(`line ${line}: field ${shownName(c.key)} (${c.type}) must be ${expected}, got ${got}`);
}

const kindOf = (v: unknown): string => (Array.isArray(v) ? 'an array' : typeof v);
// JSON.parse turns 1e400 into Infinity: a number cell would silently be left empty, a text cell
// would read "Infinity"; neither is what was sent.
const TOO_LARGE = 'a number too large to represent';
const UNSAFE_INTEGER_RULE = `text, a boolean or a number within ±${Number.MAX_SAFE_INTEGER} (quote a larger integer as a string: as a JSON number it loses digits)`;

/**
 * The prototype of every row: empty and itself without one, so no Object.prototype member
 * (`constructor`, `toString`, the `__proto__` accessor) is in a row's chain: a column named
 * `__proto__` is an ordinary key, and a renderer reading `row.constructor` of a row without it
 * finds nothing rather than Object's constructor. Not Object.create(null) per row: V8 makes
 * such objects dictionaries, which cost ~0.6 µs a row to build and read (about 5% of the
 * command); rows sharing this prototype keep fast properties.
 */
const ROW_PROTOTYPE: object = Object.freeze(Object.create(null));

/** Columns as toRow reads them: each with whether its key is one every object inherits. */
type ColumnReader = { columns: readonly ColumnSpec[]; inherited: readonly boolean[]; present: number };

function columnReader(columns: readonly ColumnSpec[]): ColumnReader {
  // `constructor`, `toString`, `__proto__`…: a plain src[key] would read Object.prototype's
  // member when the line lacks the field. Decided once per column, so other keys keep a plain load.
  return { columns, inherited: columns.map((c) => isInheritedKey(c.key)), present: 0 };
}

/**
 * Checks one parsed line against the columns; the error names the line, field and rule. Leaves
 * in `reader.present` how many columns the line has (JSON has no undefined, so a field it has
 * is never undefined). (No closures per field: tsx wraps every function it creates, which
 * costs ~1 µs per field.)
 */
function toRow(json: unknown, reader: ColumnReader, line: number): Row {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new InputError(`line ${line}: expected a JSON object`);
  }
  const src = json as Record<string, unknown>;
  const row = Object.create(ROW_PROTOTYPE) as Record<string, CellValue>;
  const { columns, inherited } = reader;
  let present = 0;
  for (let i = 0; i < columns.length; i++) {
    const c = columns[i]!;
    const v = inherited[i] ? (Object.hasOwn(src, c.key) ? src[c.key] : undefined) : src[c.key];
    if (v === undefined) continue;
    present++;
    if (v === null) continue;
    switch (c.type) {
      case 'string':
        if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') throw fieldError(line, c, 'text, a number or a boolean', kindOf(v));
        if (typeof v === 'number') {
          if (!Number.isFinite(v)) throw fieldError(line, c, 'text, a finite number or a boolean', TOO_LARGE);
          // Past 2^53 a JSON number has already lost digits when parsed (12345678901234567890
          // reads as 12345678901234567000): as text it would show digits nobody sent, so it is
          // refused. number/duration columns (below) keep taking such numbers: a number cell is a
          // double, the nearest one is what Excel itself stores, and it shows 15 digits anyway.
          if (!Number.isSafeInteger(v) && Number.isInteger(v)) throw fieldError(line, c, UNSAFE_INTEGER_RULE, 'an integer beyond that range');
        }
        row[c.key] = v;
        break;
      case 'number':
      case 'duration':
        if (typeof v !== 'number') throw fieldError(line, c, 'a number', kindOf(v));
        if (!Number.isFinite(v)) throw fieldError(line, c, 'a finite number', TOO_LARGE);
        row[c.key] = v;
        break;
      case 'boolean':
        if (typeof v !== 'boolean') throw fieldError(line, c, 'true or false', kindOf(v));
        row[c.key] = v;
        break;
      case 'date': {
        // The engine's own parser, so the CLI refuses exactly the texts a date cell refuses.
        const ms = typeof v === 'string' ? parseIsoWithOffset(v) : undefined;
        if (ms === undefined) throw fieldError(line, c, 'an ISO-8601 date-time with an offset, e.g. 2025-07-01T09:30:00+09:00', kindOf(v));
        if (Number.isNaN(ms)) throw fieldError(line, c, 'a date and time that exist (not, say, February 30 or 25:00)', kindOf(v));
        row[c.key] = v as string;
        break;
      }
    }
  }
  reader.present = present;
  return row;
}

/** What every batch of a run shares: serialisable, so a worker gets it as its workerData. */
export type BatchContext = {
  columns: readonly ColumnSpec[];
  /** Inferred columns: a field that is not a column is refused (with --columns it is ignored). */
  strict: boolean;
  /** The line the inferred columns came from, for that refusal's message. */
  columnsLine: number;
  timeZone: string;
};

/**
 * Consecutive non-blank lines as their raw bytes: line `lines[i]` is `bytes` from `ends[i - 1]`
 * (0 for the first) to `ends[i]`, and is sheet row `startRow + i`. Bytes, not strings: the main
 * thread only splits the input, so it makes no garbage per line, and the buffers are
 * transferred to a worker rather than copied. Float64 arrays: a line number passes 2^31 after
 * two billion (blank) lines, and stays exact to 2^53.
 */
export type Batch = { startRow: number; lines: Float64Array; ends: Float64Array; bytes: Uint8Array };

/** A renderer for one run's batches (see createBatchRenderer). */
export type BatchRenderer = {
  /** Renders a batch in one go: for a worker thread, which has nothing else to attend to. */
  render(batch: Batch): Part;
  /**
   * The same, giving the event loop a turn every `YIELD_ROWS` rows: on the main thread a
   * batch takes ~0.4 s, and a signal must be acted on meanwhile (tsx, which runs `npm run xlsx`,
   * kills the command outright when it has not acknowledged a relayed signal within ~60 ms, and
   * then the temp folder's readable rows would stay).
   */
  renderYielding(batch: Batch): Promise<Part>;
};

/** Rows rendered between two turns of the event loop by renderYielding (~10 ms of work). */
const YIELD_ROWS = 256;

/**
 * A renderer for one run's batches. Each batch is rendered into its own part with `r`
 * attributes from its `startRow` (ExcelJS and xlsx-populate need them). Throws an InputError
 * naming the first bad line of the batch.
 */
export function createBatchRenderer(ctx: BatchContext): BatchRenderer {
  const reader = columnReader(ctx.columns);
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  const encoderFor = (batch: Batch) => createPartEncoder(reader.columns, { timeZone: ctx.timeZone, startRow: batch.startRow });
  /** Lines [from, to) of the batch into the encoder. */
  const renderLines = (encoder: PartEncoder, batch: Batch, from: number, to: number): void => {
    const { lines, ends, bytes } = batch;
    for (let i = from; i < to; i++) {
      const line = lines[i]!;
      const text = decodeLine(decoder, bytes.subarray(i === 0 ? 0 : ends[i - 1]!, ends[i]!), line);
      const json = parseLine(text, line);
      const row = toRow(json, reader, line);
      // Counting the line's members (duplicates included) is cheap; decoding its keys is done
      // only for a line whose count is off. With inferred columns every member must be a
      // column present in the row; with --columns, extra fields are allowed, so the count is
      // compared with the distinct keys JSON.parse kept.
      const members = scanTopLevelMembers(text);
      if (members !== (ctx.strict ? reader.present : Object.keys(json as object).length)) {
        const error = memberError(text, reader.columns, line, ctx.strict, ctx.columnsLine);
        if (error) throw error;
      }
      try {
        encoder.add(row);
      } catch (err) {
        if (err instanceof CellValueError) throw new InputError(`line ${line}: ${err.message}`);
        throw err;
      }
    }
  };
  return {
    render(batch) {
      const encoder = encoderFor(batch);
      renderLines(encoder, batch, 0, batch.lines.length);
      return encoder.finish();
    },
    async renderYielding(batch) {
      const encoder = encoderFor(batch);
      for (let from = 0; from < batch.lines.length; from += YIELD_ROWS) {
        if (from > 0) await new Promise<void>((resolve) => setImmediate(resolve));
        renderLines(encoder, batch, from, Math.min(from + YIELD_ROWS, batch.lines.length));
      }
      return encoder.finish();
    },
  };
}

/**
 * Collects lines into the next batch, copying their bytes into one buffer (a line read is a
 * view into a chunk that is reused). take() hands the buffer over: the next batch starts a new one.
 */
export class BatchBuilder {
  private bytes: Buffer;
  private used = 0;
  private lines: number[] = [];
  private ends: number[] = [];
  private startRow = 0;

  constructor(private readonly initialBytes = 1 << 20) {
    this.bytes = Buffer.allocUnsafe(initialBytes);
  }

  get rowCount(): number {
    return this.lines.length;
  }

  get byteCount(): number {
    return this.used;
  }

  /** Adds line `line`, `bytes[start..end)`, which is sheet row `row`. */
  add(line: number, row: number, bytes: Buffer, start: number, end: number): void {
    if (this.lines.length === 0) this.startRow = row;
    const need = this.used + (end - start);
    if (need > this.bytes.length) {
      const grown = Buffer.allocUnsafe(Math.max(need, this.bytes.length * 2));
      this.bytes.copy(grown, 0, 0, this.used);
      this.bytes = grown;
    }
    bytes.copy(this.bytes, this.used, start, end);
    this.used = need;
    this.lines.push(line);
    this.ends.push(need);
  }

  take(): Batch {
    const batch: Batch = {
      startRow: this.startRow,
      lines: Float64Array.from(this.lines),
      ends: Float64Array.from(this.ends),
      bytes: this.bytes.subarray(0, this.used),
    };
    // A batch about as large as this one comes next: start there rather than grow again.
    this.bytes = Buffer.allocUnsafe(Math.max(this.initialBytes, this.used));
    this.used = 0;
    this.lines = [];
    this.ends = [];
    return batch;
  }
}

/**
 * Whether a line is blank, as `String#trim` sees it (blank lines are skipped), deciding on the
 * bytes where that is certain: ASCII whitespace then an ASCII character is not blank, whatever
 * follows, and a row starts with `{`. Only a line whose first other byte is not ASCII is decoded
 * here (U+00A0, U+3000 and U+FEFF are whitespace to trim); the rest are decoded where they are
 * rendered.
 */
export function isBlankLine(bytes: Uint8Array, start: number, end: number, line: number, decoder: InstanceType<typeof TextDecoder>): boolean {
  let i = start;
  while (i < end) {
    const b = bytes[i]!;
    if (b !== 0x20 && b !== 0x09 && b !== 0x0b && b !== 0x0c) break;
    i++;
  }
  if (i === end) return true;
  if (bytes[i]! < 0x80) return false;
  return decodeLine(decoder, bytes.subarray(start, end), line).trim() === '';
}

/** A line's text, strictly decoded (decodeLineText): invalid UTF-8 or an over-long line is refused naming the line. */
export function decodeLine(decoder: InstanceType<typeof TextDecoder>, bytes: Uint8Array, line: number): string {
  return decodeLineText(decoder, bytes, line);
}

/**
 * A line's JSON. V8's syntax message quotes the input, and rows may hold personal data: only the
 * line is named. Anything else JSON.parse throws (out of memory for a huge line) keeps its own
 * message, which quotes nothing.
 */
export function parseLine(text: string, line: number): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    if (err instanceof SyntaxError) throw new InputError(`line ${line}: not valid JSON`);
    throw err;
  }
}
