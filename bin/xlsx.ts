/**
 * Operator command: NDJSON rows -> a password-protected XLSX, streamed with flat memory.
 *   EXPORT_PASSWORD=... npm run xlsx -- --in rows.ndjson --out file.xlsx
 *       [--columns columns.json] [--sheet NAME] [--timezone Asia/Seoul] [--no-password]
 * The password comes only from the environment: argv is visible to every user of the machine
 * (ps, /proc) and lands in shell history. Exit codes: 0 done, 2 bad input or usage, 1 failure.
 */
import { createReadStream, rmSync } from 'node:fs';
import { mkdtemp, open, readFile, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import {
  CellValueError,
  assertTimeZone,
  XlsxEngineError,
  columnTypeSchema,
  createPartEncoder,
  deriveEncryptionKeys,
  writeEncryptedWorkbook,
  writeWorkbook,
  type CellValue,
  type ColumnSpec,
  type PartEncoder,
  type PartMeta,
  type Row,
} from '../shared/xlsx';
import { parseIsoWithOffset } from '../shared/iso-datetime';

const USAGE =
  'usage: EXPORT_PASSWORD=... npm run xlsx -- --in rows.ndjson --out file.xlsx [--columns columns.json] [--sheet NAME] [--timezone Asia/Seoul] [--no-password]';
export const MAX_ROWS = 1_000_000;
const ROWS_PER_PART = 50_000;

/** Bad input or usage: reported on stderr with exit code 2. */
class InputError extends Error {}

const columnsFileSchema = z
  .array(
    z.object({
      key: z.string().min(1),
      header: z.string().optional(),
      type: columnTypeSchema,
      width: z.number().positive().max(255).optional(),
    }),
  )
  .min(1);

function parseCommandLine(argv: string[], env: NodeJS.ProcessEnv) {
  // Refuse a password on the command line before anything else: any --password-like flag, an
  // argument that is the password, or the value of --option=VALUE that is. (Not an argument that
  // merely contains it: EXPORT_PASSWORD=1 must not refuse --out report1.xlsx.)
  const password = env.EXPORT_PASSWORD;
  for (const arg of argv) {
    const eq = arg.startsWith('-') ? arg.indexOf('=') : -1;
    if (
      /^--?(password|pass|pw|p)(=|$)/i.test(arg) ||
      (password && (arg === password || (eq !== -1 && arg.slice(eq + 1) === password)))
    ) {
      throw new InputError('the password must not be given on the command line: set EXPORT_PASSWORD instead');
    }
  }
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        in: { type: 'string' },
        out: { type: 'string' },
        columns: { type: 'string' },
        sheet: { type: 'string' },
        timezone: { type: 'string' },
        'no-password': { type: 'boolean' },
        help: { type: 'boolean' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new InputError(`${(err as Error).message}\n${USAGE}`);
  }
  if (values.help) return { help: true as const };
  if (!values.in) throw new InputError(`--in is required\n${USAGE}`);
  if (!values.out) throw new InputError(`--out is required\n${USAGE}`);
  const noPassword = values['no-password'] === true;
  if (!noPassword && !password) {
    throw new InputError('EXPORT_PASSWORD is not set (or pass --no-password for an unencrypted file)');
  }
  const timeZone = values.timezone ?? 'UTC';
  try {
    assertTimeZone(timeZone);
  } catch {
    throw new InputError(`--timezone: "${timeZone}" is not an IANA time zone (e.g. Asia/Seoul)`);
  }
  return {
    help: false as const,
    input: values.in,
    output: values.out,
    columnsFile: values.columns,
    sheet: values.sheet ?? 'Sheet1',
    timeZone,
    password: noPassword ? undefined : password,
  };
}

async function readColumns(path: string): Promise<ColumnSpec[]> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new InputError(`--columns ${path}: ${(err as Error).message}`);
  }
  const parsed = columnsFileSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new InputError(`--columns ${path}: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  const keys = new Set<string>();
  return parsed.data.map((c, i) => {
    if (keys.has(c.key)) throw new InputError(`--columns ${path}: ${i}.key: duplicate key "${c.key}"`);
    keys.add(c.key);
    return { key: c.key, header: c.header ?? c.key, type: c.type, width: c.width };
  });
}

/** Columns from the first row: its keys, typed by their JSON types (null counts as text). */
function inferColumns(first: Record<string, unknown>): ColumnSpec[] {
  const columns = Object.entries(first).map(([key, v]): ColumnSpec => ({
    key,
    header: key,
    type: typeof v === 'number' ? 'number' : typeof v === 'boolean' ? 'boolean' : 'string',
  }));
  if (columns.length === 0) throw new InputError('line 1: the first row has no fields to make columns from');
  return columns;
}

/** The error for one field: names the line, the field, its type, the rule and what came instead. */
function fieldError(line: number, c: ColumnSpec, expected: string, got: string): InputError {
  return new InputError(`line ${line}: field "${c.key}" (${c.type}) must be ${expected}, got ${got}`);
}

const kindOf = (v: unknown): string => (Array.isArray(v) ? 'an array' : typeof v);
// JSON.parse turns 1e400 into Infinity: a number cell would silently be left empty, a text cell
// would read "Infinity"; neither is what was sent.
const TOO_LARGE = 'a number too large to represent';

/**
 * Checks one parsed line against the columns; the error names the line, field and rule. (No
 * closures per field: tsx wraps every function it creates, which costs ~1 µs per field.)
 */
function toRow(json: unknown, columns: readonly ColumnSpec[], line: number): Row {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new InputError(`line ${line}: expected a JSON object`);
  }
  const src = json as Record<string, unknown>;
  const row: Record<string, CellValue> = {};
  for (const c of columns) {
    const v = src[c.key];
    if (v === undefined || v === null) continue;
    switch (c.type) {
      case 'string':
        if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') throw fieldError(line, c, 'text, a number or a boolean', kindOf(v));
        if (typeof v === 'number' && !Number.isFinite(v)) throw fieldError(line, c, 'text, a finite number or a boolean', TOO_LARGE);
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
  return row;
}

/** One line of the input: its 1-based number (as an editor counts them) and its text. */
type InputLine = { line: number; text: string };

/**
 * Splits the input into lines as readline does (LF, CRLF or a lone CR ends a line) and decodes
 * each one strictly: invalid UTF-8 is refused, naming the line, instead of being turned into
 * U+FFFD. A UTF-8 byte order mark at the very start of the file is skipped; anywhere else it
 * is text (and so not valid JSON).
 */
async function* readLines(input: AsyncIterable<Buffer>): AsyncGenerator<InputLine> {
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  let line = 0;
  let carry: Buffer[] = [];
  let skipLf = false; // the last chunk ended with CR: an LF starting the next one belongs to it
  const decode = (bytes: Buffer): InputLine => {
    line++;
    if (line === 1 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) bytes = bytes.subarray(3);
    try {
      return { line, text: decoder.decode(bytes) };
    } catch {
      // Name only the line: rows may hold personal data.
      throw new InputError(`line ${line}: not valid UTF-8`);
    }
  };
  for await (const chunk of input) {
    if (chunk.length === 0) continue;
    let start = 0;
    if (skipLf) {
      skipLf = false;
      if (chunk[0] === 0x0a) start = 1;
    }
    let lf = chunk.indexOf(0x0a, start);
    let cr = chunk.indexOf(0x0d, start);
    while (lf !== -1 || cr !== -1) {
      const atCr = cr !== -1 && (lf === -1 || cr < lf);
      const end = atCr ? cr : lf;
      const piece = chunk.subarray(start, end);
      const bytes = carry.length === 0 ? piece : Buffer.concat([...carry, piece]);
      carry = [];
      yield decode(bytes);
      start = end + 1;
      if (atCr) {
        if (start === chunk.length) skipLf = true;
        else if (chunk[start] === 0x0a) start++;
      }
      if (lf !== -1 && lf < start) lf = chunk.indexOf(0x0a, start);
      if (cr !== -1 && cr < start) cr = chunk.indexOf(0x0d, start);
    }
    if (start < chunk.length) carry.push(chunk.subarray(start));
  }
  if (carry.length > 0) yield decode(Buffer.concat(carry));
}

/**
 * Refuses an --out that cannot work before any work is done (and before any temp file exists):
 * a folder that is missing or is not a folder, an existing folder as the file, or the input
 * itself (a symlink, a hard link or another spelling of it; the same for `<out>.partial`, which
 * is written first). Files are compared by device and inode, so an output that does not exist
 * yet is never the input.
 */
async function checkOutput(input: string, output: string): Promise<void> {
  const target = resolve(output);
  const folder = dirname(target);
  const statOrUndefined = (path: string) =>
    stat(path).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return undefined;
      throw new InputError(`--out ${output}: ${err.message}`);
    });
  const folderStat = await statOrUndefined(folder);
  if (!folderStat) throw new InputError(`--out ${output}: the folder ${folder} does not exist`);
  if (!folderStat.isDirectory()) throw new InputError(`--out ${output}: ${folder} is not a folder`);
  const outStat = await statOrUndefined(target);
  if (outStat?.isDirectory()) {
    throw new InputError(`--out ${output}: is a folder; give a file name, e.g. ${join(output, 'export.xlsx')}`);
  }
  const inStat = await stat(input).catch(() => undefined); // a missing input is reported when it is opened
  if (!inStat) return;
  const isInput = (s: Awaited<ReturnType<typeof statOrUndefined>>) => s !== undefined && s.dev === inStat.dev && s.ino === inStat.ino;
  if (isInput(outStat)) throw new InputError(`--out ${output}: is the same file as --in ${input} (it would overwrite the input)`);
  if (isInput(await statOrUndefined(`${target}.partial`))) {
    throw new InputError(`--out ${output}: ${basename(target)}.partial, written first, is the same file as --in ${input}`);
  }
}

/**
 * What this run has created and not yet removed (the temp folder, the partial output): removed
 * synchronously on a signal or an unexpected exit, so readable row data is never left behind.
 */
const leftovers = new Map<string, 'folder' | 'file'>();

function removeLeftoversSync(): void {
  for (const [path, kind] of leftovers) {
    try {
      // A file is removed only as a file: never a folder someone named like our partial output.
      rmSync(path, { recursive: kind === 'folder', force: true });
    } catch {
      // Best effort while exiting.
    }
  }
  leftovers.clear();
}

export type CliResult = { rows: number; size: number; seconds: number };

export async function runCli(argv: string[], env: NodeJS.ProcessEnv): Promise<CliResult | undefined> {
  const args = parseCommandLine(argv, env);
  if (args.help) {
    console.log(USAGE);
    return undefined;
  }
  const started = performance.now();
  let columns = args.columnsFile ? await readColumns(args.columnsFile) : undefined;
  await checkOutput(args.input, args.output);
  const work = await mkdtemp(join(tmpdir(), 'xlsx-cli-'));
  leftovers.set(work, 'folder');
  const partsPath = join(work, 'parts.bin');
  // Written beside the target and renamed at the end: a failed run never leaves a broken file.
  const partial = `${args.output}.partial`;
  let partialCreated = false;
  let partsFile: FileHandle | undefined;
  const parts: (PartMeta & { offset: number })[] = [];
  let offset = 0;
  let rows = 0;
  let encoder: PartEncoder | undefined;
  // Parts go to a temp file as they finish, so memory holds at most one part.
  const finishPart = async (): Promise<void> => {
    if (!encoder || encoder.rowCount === 0) return;
    const { data, ...meta } = encoder.finish();
    encoder = undefined;
    await partsFile!.write(data);
    parts.push({ ...meta, offset });
    offset += data.length;
  };
  try {
    partsFile = await open(partsPath, 'w');
    let input;
    try {
      input = createReadStream(args.input);
      await new Promise<void>((resolve, reject) => {
        input!.once('open', () => resolve());
        input!.once('error', reject);
      });
    } catch (err) {
      throw new InputError(`--in ${args.input}: ${(err as Error).message}`);
    }
    for await (const { line, text } of readLines(input)) {
      if (text.trim() === '') continue;
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        // V8's message quotes the input; rows may hold personal data, so name only the line.
        throw new InputError(`line ${line}: not valid JSON`);
      }
      if (!columns) {
        if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new InputError(`line ${line}: expected a JSON object`);
        columns = inferColumns(json as Record<string, unknown>);
      }
      if (rows >= MAX_ROWS) throw new InputError(`line ${line}: more than ${MAX_ROWS.toLocaleString('en-US')} data rows`);
      const row = toRow(json, columns, line);
      encoder ??= createPartEncoder(columns, { timeZone: args.timeZone, startRow: rows + 2 });
      try {
        encoder.add(row);
      } catch (err) {
        if (err instanceof CellValueError) throw new InputError(`line ${line}: ${err.message}`);
        throw err;
      }
      rows++;
      if (encoder.rowCount >= ROWS_PER_PART) await finishPart();
    }
    if (!columns) throw new InputError(`--in ${args.input}: no rows (an empty input has no columns)`);
    await finishPart();
    await partsFile.close();

    const sheets = [{ name: args.sheet, columns, parts: parts.map(({ offset: _o, ...meta }) => meta) }];
    const readPart = async (_sheet: number, index: number) => {
      const p = parts[index]!;
      if (p.compressedLength === 0) return Buffer.alloc(0);
      return createReadStream(partsPath, { start: p.offset, end: p.offset + p.compressedLength - 1, highWaterMark: 1 << 20 });
    };
    // The slow key derivation comes first; then the output is opened and awaited, so a failure
    // to open it is an error here, not an unhandled 'error' event on a stream nobody listens to.
    const keys = args.password === undefined ? undefined : await deriveEncryptionKeys(args.password);
    try {
      leftovers.set(partial, 'file');
      const outFile = await open(partial, 'w');
      partialCreated = true;
      const out = outFile.createWriteStream();
      let outError: Error | undefined;
      out.on('error', (err) => {
        outError ??= err;
      });
      let size: number;
      try {
        if (keys === undefined) {
          ({ size } = await writeWorkbook({ sheets, readPart, out }));
        } else {
          ({ size } = await writeEncryptedWorkbook({ sheets, readPart, params: keys.params, packageKey: keys.packageKey, out }));
        }
      } catch (err) {
        if (err instanceof XlsxEngineError) throw new InputError(err.message);
        throw err;
      } finally {
        // The file is closed (even after a failure) before it is renamed or removed.
        if (!out.closed) {
          if (!out.writableFinished) out.destroy();
          await new Promise<void>((done) => out.once('close', () => done()));
        }
      }
      if (outError) throw outError;
      await rename(partial, args.output);
      partialCreated = false;
      leftovers.delete(partial);
      return { rows, size, seconds: (performance.now() - started) / 1000 };
    } finally {
      keys?.packageKey.fill(0);
    }
  } finally {
    await partsFile?.close().catch(() => undefined);
    // A failure anywhere after the partial was opened (the final rename included) removes it:
    // it is a complete workbook, unencrypted with --no-password.
    if (!partialCreated) leftovers.delete(partial); // never opened, so not ours to remove
    else await rm(partial, { force: true }).then(() => leftovers.delete(partial), () => undefined);
    await rm(work, { recursive: true, force: true });
    leftovers.delete(work);
  }
}

const invokedDirectly = process.argv[1] !== undefined && /bin[\\/]xlsx\.ts$/.test(process.argv[1]);
if (invokedDirectly) {
  // A signal or an unexpected exit (an uncaught error) still removes the temp folder (readable
  // row XML) and the partial output.
  process.on('exit', removeLeftoversSync);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      removeLeftoversSync();
      console.error(`xlsx: stopped by ${signal}`);
      // Re-raised with its default action, which ends the process at once: process.exit() would
      // wait for a read blocked on a pipe or FIFO input until its writer writes or closes.
      process.removeAllListeners('exit');
      process.kill(process.pid, signal);
    });
  }
  runCli(process.argv.slice(2), process.env).then(
    (result) => {
      if (result) {
        console.error(
          `wrote ${result.rows.toLocaleString('en-US')} rows, ${result.size.toLocaleString('en-US')} bytes in ${result.seconds.toFixed(1)} s`,
        );
      }
    },
    (err: unknown) => {
      if (err instanceof InputError) {
        console.error(`xlsx: ${err.message}`);
        process.exitCode = 2;
      } else {
        console.error(`xlsx: failed: ${(err as Error).message}`);
        process.exitCode = 1;
      }
    },
  );
}
