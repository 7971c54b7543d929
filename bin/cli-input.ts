/**
 * What the operator commands (bin/xlsx.ts, bin/seed.ts, bin/token.ts) share about their input:
 * the usage error class, option and path handling, and the strict NDJSON line reader with the
 * checks JSON.parse does not make (a key given twice, a lone surrogate; shared/json-text.ts scans
 * whole texts). Kept in bin/: these are
 * rules of the command line, not of the service.
 */
import { isAbsolute, resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** Bad input or usage, found before any work: reported on stderr with exit code 2. */
export class InputError extends Error {}

/** The token parseArgs gives for an option (`{ tokens: true }`); only what is read here. */
type ArgToken = { kind: string; name?: string; rawName?: string };

/**
 * Refuses an option given more than once (`--in a --in b`): parseArgs keeps the last without a
 * word, so a command line edited in a hurry would run with a value its operator did not mean.
 * Options declared `multiple` (token's --permission) are the exception.
 */
export function refuseRepeatedOptions(tokens: readonly ArgToken[] | undefined, multiple: ReadonlySet<string> = new Set(), usage?: string): void {
  const seen = new Set<string>();
  for (const token of tokens ?? []) {
    if (token.kind !== 'option' || token.name === undefined || multiple.has(token.name)) continue;
    if (seen.has(token.name)) {
      throw new InputError(`--${token.name}: given more than once (each option may be given once)${usage ? `\n${usage}` : ''}`);
    }
    seen.add(token.name);
  }
}

/**
 * The command line parsed strictly (unknown options, missing values and positionals refused),
 * each refusal an InputError ending with the usage, and no option given twice but those in
 * `multiple`: one rule for every operator command.
 */
export function parseOptions<O extends NonNullable<ParseArgsConfig['options']>>(
  options: O,
  usage: string,
  { args, multiple }: { args?: string[]; multiple?: ReadonlySet<string> } = {},
) {
  let parsed;
  try {
    parsed = parseArgs({ ...(args ? { args } : {}), options, strict: true, allowPositionals: false, tokens: true });
  } catch (error) {
    throw new InputError(`${error instanceof Error ? error.message : String(error)}\n${usage}`);
  }
  refuseRepeatedOptions(parsed.tokens, multiple, usage);
  return parsed.values;
}

/**
 * A path the operator typed, made absolute against the folder they typed it in. `npm run` starts
 * the script in the package root but records the caller's folder in INIT_CWD; run directly (tsx
 * bin/xlsx.ts) there is no INIT_CWD and the process's own folder is the caller's.
 */
export function operatorPath(path: string, env: NodeJS.ProcessEnv): string {
  const base = env.INIT_CWD && isAbsolute(env.INIT_CWD) ? env.INIT_CWD : process.cwd();
  return resolve(base, path);
}

/** Text read from a file: a leading UTF-8 byte order mark is not part of it (editors on Windows write one). */
export function withoutBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** One line of an input: its 1-based number (as an editor counts them) and its text. */
export type InputLine = { line: number; text: string };

/** The refusal of a line that is not UTF-8: names only the line (rows may hold personal data). */
export function notUtf8(line: number, prefix = ''): InputError {
  return new InputError(`${prefix}line ${line}: not valid UTF-8`);
}

/** The longest string V8 makes (UTF-16 units): a longer line cannot be read at all. */
const MAX_LINE_CHARS = 0x1fffffe8;

/**
 * A line's text, strictly decoded (a fatal decoder). Invalid UTF-8 is refused naming the line;
 * so is a line longer than a string may be, with that rule (it was reported as "not valid UTF-8").
 */
export function decodeLineText(decoder: InstanceType<typeof TextDecoder>, bytes: Uint8Array, line: number, prefix = ''): string {
  try {
    return decoder.decode(bytes);
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ERR_STRING_TOO_LONG') {
      throw new InputError(
        `${prefix}line ${line}: ${bytes.length.toLocaleString('en-US')} bytes, longer than the ${MAX_LINE_CHARS.toLocaleString('en-US')} characters a line may have`,
      );
    }
    if ((err as { code?: unknown }).code === 'ERR_ENCODING_INVALID_ENCODED_DATA') throw notUtf8(line, prefix);
    throw err;
  }
}

/**
 * A name taken from the input (a field or column key), as a message shows it: JSON-quoted, so
 * control characters and lone surrogates are escapes, and with C1 controls, format characters
 * (bidi overrides, zero-width) and line or paragraph separators escaped too. A key in a message
 * can then neither drive the terminal (clear it, recolour it, split the message) nor read as
 * another key.
 */
export function shownName(name: string): string {
  const escape = (c: string) => Array.from({ length: c.length }, (_u, i) => '\\u' + c.charCodeAt(i).toString(16).padStart(4, '0')).join('');
  return JSON.stringify(name).replace(/[\u007f-\u009f\p{Cf}\u2028\u2029]/gu, escape);
}

/** Called for each line: its number and its bytes, `bytes[start..end)`, valid during the call only. */
export type OnLine = (line: number, bytes: Buffer, start: number, end: number) => void;

/**
 * Splits an input fed chunk by chunk into lines as readline does (LF, CRLF or a lone CR ends a
 * line), without decoding them and without an object per line. A UTF-8 byte order mark at the
 * very start of the file is skipped; anywhere else it is part of the line.
 */
export class LineSplitter {
  private line = 0;
  private carry: Buffer[] = [];
  private skipLf = false; // the last chunk ended with CR: an LF starting the next one belongs to it

  private emit(bytes: Buffer, start: number, end: number, onLine: OnLine): void {
    this.line++;
    if (this.line === 1 && end - start >= 3 && bytes[start] === 0xef && bytes[start + 1] === 0xbb && bytes[start + 2] === 0xbf) start += 3;
    onLine(this.line, bytes, start, end);
  }

  push(chunk: Buffer, onLine: OnLine): void {
    if (chunk.length === 0) return;
    let start = 0;
    if (this.skipLf) {
      this.skipLf = false;
      if (chunk[0] === 0x0a) start = 1;
    }
    let lf = chunk.indexOf(0x0a, start);
    let cr = chunk.indexOf(0x0d, start);
    while (lf !== -1 || cr !== -1) {
      const atCr = cr !== -1 && (lf === -1 || cr < lf);
      const end = atCr ? cr : lf;
      if (this.carry.length === 0) {
        this.emit(chunk, start, end, onLine);
      } else {
        const joined = Buffer.concat([...this.carry, chunk.subarray(start, end)]);
        this.carry = [];
        this.emit(joined, 0, joined.length, onLine);
      }
      start = end + 1;
      if (atCr) {
        if (start === chunk.length) this.skipLf = true;
        else if (chunk[start] === 0x0a) start++;
      }
      if (lf !== -1 && lf < start) lf = chunk.indexOf(0x0a, start);
      if (cr !== -1 && cr < start) cr = chunk.indexOf(0x0d, start);
    }
    // Copied: the reader may reuse the chunk's memory for the next one.
    if (start < chunk.length) this.carry.push(Buffer.from(chunk.subarray(start)));
  }

  /** The last line, when the input does not end with a line break. */
  end(onLine: OnLine): void {
    if (this.carry.length === 0) return;
    const joined = Buffer.concat(this.carry);
    this.carry = [];
    this.emit(joined, 0, joined.length, onLine);
  }
}

/**
 * The lines of an input (split by LineSplitter), each decoded strictly: invalid UTF-8 is refused,
 * naming the line (`${prefix}line N: not valid UTF-8`), instead of being turned into U+FFFD. A
 * line is decoded only when it is handed out, so a bad one never comes before the lines above it.
 */
export async function* readLines(input: AsyncIterable<Buffer>, prefix = ''): AsyncGenerator<InputLine> {
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  const splitter = new LineSplitter();
  let lines: { line: number; bytes: Buffer }[] = [];
  const collect: OnLine = (line, bytes, start, end) => {
    lines.push({ line, bytes: bytes.subarray(start, end) });
  };
  const decoded = function* (ready: { line: number; bytes: Buffer }[]): Generator<InputLine> {
    for (const { line, bytes } of ready) {
      yield { line, text: decodeLineText(decoder, bytes, line, prefix) };
    }
  };
  for await (const chunk of input) {
    splitter.push(chunk, collect);
    const ready = lines;
    lines = [];
    yield* decoded(ready);
  }
  splitter.end(collect);
  yield* decoded(lines);
}

export { scanTopLevelMembers } from '../shared/json-text';

/** The first key that appears twice in `keys`, if one does. */
export function firstDuplicate(keys: readonly string[]): string | undefined {
  const seen = new Set<string>();
  for (const k of keys) {
    if (seen.has(k)) return k;
    seen.add(k);
  }
  return undefined;
}

export { loneSurrogatePath } from '../shared/text-rules';
