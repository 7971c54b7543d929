/**
 * Operator command: NDJSON rows -> a password-protected XLSX, streamed with flat memory.
 *   EXPORT_PASSWORD=... npm run xlsx -- --in rows.ndjson --out file.xlsx
 *       [--columns columns.json] [--sheet NAME] [--timezone Asia/Seoul] [--no-password]
 * The password comes only from the environment: argv is visible to every user of the machine
 * (ps, /proc) and lands in shell history. Exit codes: 0 done, 2 bad input or usage, 1 failure.
 */
import { randomUUID } from 'node:crypto';
import { createReadStream, rmSync, type Stats } from 'node:fs';
import { lstat, mkdtemp, open, readFile, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { basename, dirname, join, sep } from 'node:path';
import { z } from 'zod';
import {
  assertTimeZone,
  XlsxEngineError,
  MAX_PASSWORD_UNITS,
  columnTypeSchema,
  deriveEncryptionKeys,
  sanitizeText,
  writeEncryptedWorkbook,
  writeWorkbook,
  type ColumnSpec,
  type Part,
  type PartMeta,
} from '../shared/xlsx';
import { validateSheetName } from '../shared/xlsx/workbook';
import { bundleWorker } from './bundle-worker';
import { InputError, LineSplitter, firstDuplicate, operatorPath, parseOptions, scanTopLevelMembers, shownName, withoutBom, type OnLine } from './cli-input';
import { findJsonStructureProblem } from '../shared/json-text';
import { startRenderPool, type RenderPool } from './xlsx-pool';
import { BatchBuilder, createBatchRenderer, decodeLine, duplicateError, isBlankLine, parseLine, type Batch, type BatchContext, type BatchRenderer } from './xlsx-rows';

// Exported from here too: tests (and callers) have always imported the scanner from this file.
export { scanTopLevelMembers };

const USAGE =
  'usage: EXPORT_PASSWORD=... npm run xlsx -- --in rows.ndjson --out file.xlsx [--columns columns.json] [--sheet NAME] [--timezone Asia/Seoul] [--no-password] [--workers N]';
export const MAX_ROWS = 1_000_000;
/**
 * A batch (one part) is at most this many rows or this many bytes of input, so memory holds
 * a few batches whatever the rows' width; the same boundaries on the main thread and in the
 * workers, so the file does not depend on --workers.
 */
const ROWS_PER_BATCH = 10_000;
const MAX_BATCH_BYTES = 4 * 1024 * 1024;
/** Render workers by default: one per core, at most this many (the main thread reads and writes). */
const MAX_DEFAULT_WORKERS = 8;
const MAX_WORKERS = 64;
// Excel's limit; checked here so an inferred header row too wide fails naming its line.
const MAX_COLUMNS = 16_384;

const columnsFileSchema = z
  .array(
    // Strict: a misspelt field ("heading", "widht") would otherwise be dropped without a word,
    // and the column would silently get the default it was meant to override.
    z.strictObject({
      key: z.string().min(1),
      header: z.string().optional(),
      type: columnTypeSchema,
      width: z.number().positive().max(255).optional(),
    }),
  )
  .min(1)
  .max(MAX_COLUMNS);

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
  const values = parseOptions(
    {
      in: { type: 'string' },
      out: { type: 'string' },
      columns: { type: 'string' },
      sheet: { type: 'string' },
      timezone: { type: 'string' },
      'no-password': { type: 'boolean' },
      workers: { type: 'string' },
      help: { type: 'boolean' },
    },
    USAGE,
    { args: argv },
  );
  if (values.help) return { help: true as const };
  if (!values.in) throw new InputError(`--in is required\n${USAGE}`);
  if (!values.out) throw new InputError(`--out is required\n${USAGE}`);
  const noPassword = values['no-password'] === true;
  if (!noPassword && !password) {
    throw new InputError('EXPORT_PASSWORD is not set (or pass --no-password for an unencrypted file)');
  }
  // The encryption's own limit (MS-OFFCRYPTO: 255 UTF-16 code units, what String#length counts),
  // checked here so a long one fails before the rows are rendered, naming the variable. Neither
  // the password nor its length is printed.
  if (!noPassword && password !== undefined && password.length > MAX_PASSWORD_UNITS) {
    throw new InputError(`EXPORT_PASSWORD: must be 1 to ${MAX_PASSWORD_UNITS} characters (UTF-16 code units, the limit of Office encryption)`);
  }
  // Checked here, not when the workbook is planned: a bad name must fail before the rows are
  // rendered and the key derived, and name the option rather than the plan's internal path.
  const sheet = values.sheet ?? 'Sheet1';
  const sheetProblem = validateSheetName(sheet);
  if (sheetProblem) throw new InputError(`--sheet: ${sheetProblem.message}`);
  const timeZone = values.timezone ?? 'UTC';
  try {
    assertTimeZone(timeZone);
  } catch {
    throw new InputError(`--timezone: "${timeZone}" is not an IANA time zone (e.g. Asia/Seoul)`);
  }
  // 0 renders on the main thread (no worker is started); a small input is rendered there anyway.
  let workers = Math.min(availableParallelism(), MAX_DEFAULT_WORKERS);
  if (values.workers !== undefined) {
    if (!/^\d{1,2}$/.test(values.workers) || Number(values.workers) > MAX_WORKERS) {
      throw new InputError(`--workers: must be a whole number from 0 to ${MAX_WORKERS} (0 renders on the main thread), got "${values.workers}"`);
    }
    workers = Number(values.workers);
  }
  // Paths are resolved against the operator's folder (npm run starts us in the package root);
  // messages keep the spelling the operator typed.
  return {
    help: false as const,
    input: values.in,
    inputPath: operatorPath(values.in, env),
    output: values.out,
    outputPath: operatorPath(values.out, env),
    columnsFile: values.columns,
    columnsPath: values.columns === undefined ? undefined : operatorPath(values.columns, env),
    sheet,
    timeZone,
    password: noPassword ? undefined : password,
    workers,
  };
}

/**
 * Only for the scan that finds a key given twice: a columns file is an array of flat objects,
 * and what nests deeper is refused by its schema, which says which field and why.
 */
const COLUMNS_FILE_MAX_DEPTH = 64;

/** A field name in a columns-file path (`0.type`): as written when it is a plain word, else escaped (shownName). */
function pathStep(name: string): string {
  return /^[A-Za-z0-9_-]{1,80}$/.test(name) ? name : shownName(name);
}

/** `path` is the file to read, `shown` the operator's spelling of it (for messages). */
async function readColumns(path: string, shown: string): Promise<ColumnSpec[]> {
  let json: unknown;
  let text: string;
  try {
    // Strict UTF-8 and a leading byte order mark skipped, as for the rows' input.
    text = withoutBom(new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(await readFile(path)));
    json = JSON.parse(text);
  } catch (err) {
    throw new InputError(`--columns ${shown}: ${err instanceof TypeError ? 'not valid UTF-8' : (err as Error).message}`);
  }
  // JSON.parse keeps the last of two equal keys: `"type":"date","type":"string"` made a text
  // column without a word, where rows with a key given twice are refused.
  const problem = findJsonStructureProblem(text, COLUMNS_FILE_MAX_DEPTH);
  if (problem) {
    const where = problem.path.map((p) => (typeof p === 'number' ? String(p) : pathStep(p))).join('.');
    throw new InputError(
      problem.rule === 'duplicate-key'
        ? `--columns ${shown}: ${where}: given more than once (JSON keeps only the last value)`
        : `--columns ${shown}: ${where}: nested ${COLUMNS_FILE_MAX_DEPTH} levels deep (a columns file is an array of flat objects)`,
    );
  }
  const parsed = columnsFileSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    if (issue.code === 'unrecognized_keys') {
      // Named like any other issue: the entry, then the field.
      const field = issue.keys[0] ?? '';
      throw new InputError(`--columns ${shown}: ${[...issue.path, pathStep(field)].join('.')}: is not a column field (a column has key, header, type and width)`);
    }
    throw new InputError(`--columns ${shown}: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  const keys = new Set<string>();
  return parsed.data.map((c, i) => {
    if (keys.has(c.key)) throw new InputError(`--columns ${shown}: ${i}.key: duplicate key ${shownName(c.key)}`);
    keys.add(c.key);
    return { key: c.key, header: c.header ?? c.key, type: c.type, width: c.width };
  });
}

/**
 * Columns from the first row: its keys in the order written, typed by their JSON types (null
 * counts as text). Checked here, naming the line, so a key no column can have fails before
 * any row is rendered.
 */
function inferColumns(text: string, first: Record<string, unknown>, line: number): ColumnSpec[] {
  const keys: string[] = [];
  scanTopLevelMembers(text, keys);
  if (keys.length === 0) throw new InputError(`line ${line}: the first row has no fields to make columns from`);
  const duplicate = firstDuplicate(keys);
  if (duplicate !== undefined) throw duplicateError(line, duplicate);
  if (keys.includes('')) throw new InputError(`line ${line}: field "" has an empty name, which cannot be a column: pass --columns to choose the columns`);
  // A name made only of characters a cell cannot hold ("\ud800", "\u0001") would be an empty
  // header: a column nobody can tell apart. Named by position, as the name itself cannot be shown.
  const blank = keys.findIndex((k) => sanitizeText(k) === '');
  if (blank !== -1) {
    throw new InputError(
      `line ${line}: field ${blank + 1} (counting from 1) has a name that is empty once the characters a cell cannot hold (control characters, lone surrogates, U+FFFE, U+FFFF) are removed, which cannot be a column: pass --columns to choose the columns`,
    );
  }
  if (keys.length > MAX_COLUMNS) {
    throw new InputError(`line ${line}: ${keys.length.toLocaleString('en-US')} fields, but Excel allows at most ${MAX_COLUMNS.toLocaleString('en-US')} columns`);
  }
  return keys.map((key): ColumnSpec => {
    const v = first[key];
    return { key, header: key, type: typeof v === 'number' ? 'number' : typeof v === 'boolean' ? 'boolean' : 'string' };
  });
}


// A file name's limit in bytes on every file system the command is likely to write to (NAME_MAX).
const NAME_MAX = 255;

/** The temp file written beside --out and renamed over it at the end. */
function partialPathOf(outputPath: string): string {
  // A name of its own, created exclusively ('wx': O_CREAT|O_EXCL, which never follows a
  // symlink): a fixed `<out>.partial` could be a symlink planted by someone else, and opening it
  // with 'w' would overwrite whatever it points at. The random part makes the name unguessable.
  return `${outputPath}.${process.pid}.${randomUUID().slice(0, 8)}.partial`;
}

/** What an existing --out is when it is not a regular file, for the refusal. */
function describeEntry(s: Stats): string {
  if (s.isSymbolicLink()) return 'a symbolic link';
  if (s.isFIFO()) return 'a named pipe';
  if (s.isCharacterDevice() || s.isBlockDevice()) return 'a device';
  if (s.isSocket()) return 'a socket';
  return 'not a regular file';
}

/**
 * The existing --out (lstat: a symlink is not followed), or undefined when there is none. One that
 * is not a regular file is refused: the output is renamed over --out, which would replace a
 * device (/dev/null, as root), a named pipe, a socket or a symlink with a new file, and say it
 * succeeded. A symlink is refused rather than followed: the rename replaces the link itself, not
 * the file it points at, so neither reading would be what was asked. A folder is left to
 * checkPaths (its own message) and to the rename, which never replaces one.
 */
async function existingOutput(output: string, outputPath: string): Promise<Stats | undefined> {
  const entry = await lstat(outputPath).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return undefined;
    throw new InputError(`--out ${output}: ${err.message}`);
  });
  if (entry && !entry.isFile() && !entry.isDirectory()) {
    throw new InputError(
      `--out ${output}: exists and is ${describeEntry(entry)}, not a regular file: --out must be a new file or a regular file to replace (a symbolic link is refused, not followed)`,
    );
  }
  return entry?.isFile() ? entry : undefined;
}

/**
 * Refuses an --in or --out that cannot work before any work is done (and before any temp file
 * exists): an --in that is a folder (reading it would fail only once rows are awaited); an --out
 * that ends in a slash (a folder's spelling), whose folder is missing or is not a folder, an
 * existing folder as the file, the input itself (a symlink, a hard link or another spelling of
 * it), anything else that exists and is not a regular file, or a name too long for the temp file
 * beside it. Files are compared by device and inode, so an output that does not exist yet is
 * never the input. (The temp file written beside --out is created new, so it cannot be the input
 * either.) `input`/`output` are the operator's spellings, for messages; the paths are resolved.
 */
async function checkPaths(
  paths: { input: string; inputPath: string; output: string; outputPath: string; columnsFile?: string | undefined; columnsPath?: string | undefined },
  partial: string,
): Promise<void> {
  const { input, inputPath, output, outputPath: target } = paths;
  const inStat = await stat(inputPath).catch(() => undefined); // a missing input is reported when it is opened
  if (inStat?.isDirectory()) throw new InputError(`--in ${input}: is not a file (it is a folder)`);
  // resolve() drops a trailing slash (and `.`/`..`), so `out.xlsx/` would pass the checks below
  // as `out.xlsx` while the temp file, named after what was typed, went into a folder that is not
  // there: the run failed with ENOENT/ENOTDIR after all its work.
  const last = output.split(sep).pop();
  if (last === '' || last === '.' || last === '..') {
    throw new InputError(`--out ${output}: ends in "${last || sep}", which names a folder: --out must name a file, e.g. ${join(output, 'export.xlsx')}`);
  }
  // The temp file's name is --out's plus `.<pid>.<random>.partial`: a name that fits the file
  // system's limit but not with that suffix would fail with ENAMETOOLONG after all the work.
  const nameBytes = Buffer.byteLength(basename(target));
  const suffixBytes = Buffer.byteLength(basename(partial)) - nameBytes;
  if (nameBytes + suffixBytes > NAME_MAX) {
    throw new InputError(
      `--out ${output}: the file name is ${nameBytes} bytes; at most ${NAME_MAX - suffixBytes} here (a file name may have ${NAME_MAX} bytes, and the temp file written beside it adds ${suffixBytes}: .<pid>.<random>.partial)`,
    );
  }
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
  if (inStat && outStat && outStat.dev === inStat.dev && outStat.ino === inStat.ino) {
    throw new InputError(`--out ${output}: is the same file as --in ${input} (it would overwrite the input)`);
  }
  if (outStat && paths.columnsPath !== undefined) {
    const columnsStat = await stat(paths.columnsPath).catch(() => undefined);
    if (columnsStat && outStat.dev === columnsStat.dev && outStat.ino === columnsStat.ino) {
      throw new InputError(`--out ${output}: is the same file as --columns ${paths.columnsFile ?? paths.columnsPath} (it would overwrite the columns file)`);
    }
  }
  // After the checks above, so a symlink to a folder or to the input gets the message that says
  // what it points at.
  await existingOutput(output, target);
  // Whether a file can be made beside --out, tried now with the temp file's own name (created
  // and removed at once): a folder without write permission or on a read-only file system
  // failed only after all the rendering and the key derivation, with exit 1 and the temp name.
  leftovers.set(partial, 'file');
  try {
    await (await open(partial, 'wx')).close();
  } catch (err) {
    leftovers.delete(partial);
    const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new InputError(`--out ${output}: no file can be created in its folder ${folder} (${reason})`);
  }
  await rm(partial, { force: true });
  leftovers.delete(partial);
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
  // The columns from --columns; without it, the first row's fields (see `context`).
  const columns = args.columnsFile && args.columnsPath ? await readColumns(args.columnsPath, args.columnsFile) : undefined;
  // Without --columns the columns are the first row's fields, so a later field that is not one
  // would be dropped without a word: refused. With --columns, leaving fields out is the point.
  const strict = columns === undefined;
  // Written beside the target and renamed at the end: a failed run never leaves a broken file.
  // Named from the resolved path, the one every check looks at.
  const partial = partialPathOf(args.outputPath);
  await checkPaths(args, partial);
  const work = await mkdtemp(join(tmpdir(), 'xlsx-cli-'));
  leftovers.set(work, 'folder');
  const partsPath = join(work, 'parts.bin');
  let partialCreated = false;
  let partsFile: FileHandle | undefined;
  const parts: (PartMeta & { offset: number })[] = [];
  let offset = 0;
  let rows = 0;
  // Known from the start with --columns, else set by the first row.
  let context: BatchContext | undefined = columns ? { columns, strict, columnsLine: 0, timeZone: args.timeZone } : undefined;
  let renderHere: BatchRenderer | undefined;
  let pool: RenderPool | undefined;
  // Batches sent to the workers, oldest first: their parts are written in this order, and the
  // first refusal among them is the first bad line of the file.
  const pending: Promise<Part>[] = [];
  const batch = new BatchBuilder();
  // Batches the last chunk filled: sent when the next chunk comes (more input follows) or at the end.
  const full: Batch[] = [];
  // Parts go to a temp file as they finish, so memory holds at most the batches in flight.
  const writePart = async ({ data, ...meta }: Part): Promise<void> => {
    await partsFile!.write(data);
    parts.push({ ...meta, offset });
    offset += data.length;
  };
  const drain = async (keep: number): Promise<void> => {
    while (pending.length > keep) await writePart(await pending.shift()!);
  };
  /**
   * Sends a batch to be rendered. The pool starts with the first full batch while input
   * remains, so an input of one batch is rendered here without bundling or starting a worker;
   * `last` (the input has ended) renders here when no pool was started.
   */
  const dispatch = async (current: Batch, last: boolean): Promise<void> => {
    // Only lines after the columns are known are batched.
    if (!context) throw new Error('a batch before the columns are known');
    if (!pool && args.workers > 0 && !last) {
      const workerFile = await bundleWorker(new URL('./xlsx-worker.ts', import.meta.url), join(work, 'xlsx-worker.mjs'));
      pool = startRenderPool(workerFile, context, args.workers);
    }
    if (pool) {
      const part = pool.render(current);
      // Awaited in order by drain(); a later batch's refusal must not count as unhandled meanwhile.
      part.catch(() => undefined);
      pending.push(part);
      await drain(args.workers + 1);
    } else {
      renderHere ??= createBatchRenderer(context);
      await writePart(await renderHere.renderYielding(current));
    }
  };
  try {
    partsFile = await open(partsPath, 'w');
    let input;
    try {
      input = createReadStream(args.inputPath, { highWaterMark: 1 << 20 });
      await new Promise<void>((resolve, reject) => {
        input!.once('open', () => resolve());
        input!.once('error', reject);
      });
    } catch (err) {
      throw new InputError(`--in ${args.input}: ${(err as Error).message}`);
    }
    // A refusal found while reading (bad UTF-8, too many rows) comes after the lines read before
    // it: those are rendered first, so the error reported is always the file's first bad line.
    let batchFailed = false;
    try {
      const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
      const splitter = new LineSplitter();
      const onLine: OnLine = (line, bytes, start, end) => {
        if (isBlankLine(bytes, start, end, line, decoder)) return;
        if (!context) {
          const text = decodeLine(decoder, bytes.subarray(start, end), line);
          const json = parseLine(text, line);
          if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new InputError(`line ${line}: expected a JSON object`);
          context = { columns: inferColumns(text, json as Record<string, unknown>, line), strict, columnsLine: line, timeZone: args.timeZone };
        }
        if (rows >= MAX_ROWS) {
          // A line that is not UTF-8 or not JSON is told so first, as a line before the limit would be.
          parseLine(decodeLine(decoder, bytes.subarray(start, end), line), line);
          throw new InputError(`line ${line}: more than ${MAX_ROWS.toLocaleString('en-US')} data rows`);
        }
        batch.add(line, rows + 2, bytes, start, end);
        rows++;
        if (batch.rowCount >= ROWS_PER_BATCH || batch.byteCount >= MAX_BATCH_BYTES) full.push(batch.take());
      };
      for await (const chunk of input as AsyncIterable<Buffer>) {
        // More input came: the batches the last chunk filled are not the last, so they may start
        // the workers (a file of exactly one full batch is rendered here, with none started).
        batchFailed = true;
        for (const ready of full.splice(0)) await dispatch(ready, false);
        batchFailed = false;
        splitter.push(chunk, onLine);
      }
      splitter.end(onLine);
    } catch (err) {
      if (batchFailed) throw err;
      for (const ready of full.splice(0)) await dispatch(ready, true);
      if (batch.rowCount > 0) await dispatch(batch.take(), true);
      await drain(0);
      throw err;
    }
    // With --columns, an input without rows is a workbook with only the header row.
    if (!context) throw new InputError(`--in ${args.input}: no rows (an empty input has no columns)`);
    for (const ready of full.splice(0)) await dispatch(ready, true);
    if (batch.rowCount > 0) await dispatch(batch.take(), true);
    await drain(0);
    await pool?.close();
    pool = undefined;
    await partsFile.close();

    const sheets = [{ name: args.sheet, columns: [...context.columns], parts: parts.map(({ offset: _o, ...meta }) => meta) }];
    const readPart = async (_sheet: number, index: number) => {
      const p = parts[index]!;
      if (p.compressedLength === 0) return Buffer.alloc(0);
      return createReadStream(partsPath, { start: p.offset, end: p.offset + p.compressedLength - 1, highWaterMark: 1 << 20 });
    };
    // The slow key derivation comes first; then the output is opened and awaited, so a failure
    // to open it is an error here, not an unhandled 'error' event on a stream nobody listens to.
    const keys = args.password === undefined ? undefined : await deriveEncryptionKeys(args.password);
    // --out as it is once the work is done (and again just before the rename): an entry that
    // became something other than a regular file meanwhile is refused as up front, but as a
    // failure (exit 1), since the work was done.
    const recheckOutput = () =>
      existingOutput(args.output, args.outputPath).catch((err: unknown) => {
        throw err instanceof InputError ? new Error(err.message) : err;
      });
    try {
      // Looked at again now that the work is done: what replaced --out meanwhile is refused too,
      // and the file being replaced gives its permission bits to the new one (a 0600 report must
      // not come back 0644). Only the rwx bits: setuid/setgid on a replaced file say nothing
      // about a workbook (and run as root they would be root's). The owner is not copied.
      const replaced = await recheckOutput();
      leftovers.set(partial, 'file');
      const outFile = await open(partial, 'wx');
      partialCreated = true;
      // Before any byte is written, so the rows are never readable with wider permissions.
      if (replaced) {
        await outFile.chmod(replaced.mode & 0o777).catch(async (err: unknown) => {
          await outFile.close();
          throw err;
        });
      }
      const out = outFile.createWriteStream();
      let outError: Error | undefined;
      out.on('error', (err) => {
        outError ??= err;
      });
      let size = 0;
      let failure: unknown;
      try {
        if (keys === undefined) {
          ({ size } = await writeWorkbook({ sheets, readPart, out }));
        } else {
          ({ size } = await writeEncryptedWorkbook({ sheets, readPart, params: keys.params, packageKey: keys.packageKey, out }));
        }
      } catch (err) {
        failure = err;
      } finally {
        // The file is closed (even after a failure) before it is renamed or removed.
        if (!out.closed) {
          if (!out.writableFinished) out.destroy();
          await new Promise<void>((done) => out.once('close', () => done()));
        }
      }
      // The engine's own refusal first: writeEncryptedWorkbook destroys `out` with it, so it is
      // also `out.errored`, and read from there it was a "failed" (exit 1) on the encrypted path
      // but a refusal (exit 2) on the plain one. Then the stream's own error (ENOSPC, EFBIG…):
      // it says why, where a wrapper may only say that the stream died.
      if (failure instanceof XlsxEngineError) throw new InputError(failure.message);
      const streamError = outError ?? out.errored ?? undefined;
      if (streamError) throw streamError;
      if (failure !== undefined) throw failure;
      await recheckOutput();
      await rename(partial, args.outputPath);
      partialCreated = false;
      leftovers.delete(partial);
      return { rows, size, seconds: (performance.now() - started) / 1000 };
    } finally {
      keys?.packageKey.fill(0);
    }
  } finally {
    await pool?.close();
    await partsFile?.close().catch(() => undefined);
    // A failure anywhere after the partial was opened (the final rename included) removes it:
    // it is a complete workbook, unencrypted with --no-password.
    if (!partialCreated) leftovers.delete(partial); // never opened, so not ours to remove
    else await rm(partial, { force: true }).then(() => leftovers.delete(partial), () => undefined);
    await rm(work, { recursive: true, force: true });
    leftovers.delete(work);
  }
}

/** An error's message followed by its causes' (a wrapper alone may say only "output stream failed"). */
function describeFailure(err: unknown): string {
  const messages: string[] = [];
  for (let e: unknown = err; e !== undefined && e !== null && messages.length < 5; e = (e as { cause?: unknown }).cause) {
    messages.push(e instanceof Error ? e.message : String(e));
    if (!(e instanceof Error)) break;
  }
  return messages.join(': ');
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
        console.error(`xlsx: failed: ${describeFailure(err)}`);
        process.exitCode = 1;
      }
    },
  );
}
