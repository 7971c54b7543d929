/**
 * Operator command: NDJSON rows -> a password-protected XLSX, streamed with flat memory.
 *   EXPORT_PASSWORD=... npm run xlsx -- --in rows.ndjson --out file.xlsx
 *       [--columns columns.json] [--sheet NAME] [--timezone Asia/Seoul] [--no-password]
 * The password comes only from the environment: argv is visible to every user of the machine
 * (ps, /proc) and lands in shell history. Exit codes: 0 done, 2 bad input or usage, 1 failure.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, open, readFile, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
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
  // Refuse a password on the command line before anything else, even inside another option.
  const password = env.EXPORT_PASSWORD;
  for (const arg of argv) {
    if (/^--?(password|pass|pw|p)(=|$)/i.test(arg) || (password && arg.includes(password))) {
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

/** Checks one parsed line against the columns; the error names the line, field and rule. */
function toRow(json: unknown, columns: readonly ColumnSpec[], line: number): Row {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new InputError(`line ${line}: expected a JSON object`);
  }
  const src = json as Record<string, unknown>;
  const row: Record<string, CellValue> = {};
  for (const c of columns) {
    const v = src[c.key];
    if (v === undefined || v === null) continue;
    const fail = (expected: string): never => {
      throw new InputError(`line ${line}: field "${c.key}" (${c.type}) must be ${expected}, got ${Array.isArray(v) ? 'an array' : typeof v}`);
    };
    switch (c.type) {
      case 'string':
        if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') fail('text, a number or a boolean');
        row[c.key] = v as string | number | boolean;
        break;
      case 'number':
      case 'duration':
        if (typeof v !== 'number') fail('a number');
        row[c.key] = v as number;
        break;
      case 'boolean':
        if (typeof v !== 'boolean') fail('true or false');
        row[c.key] = v as boolean;
        break;
      case 'date': {
        // The engine's own parser, so the CLI refuses exactly the texts a date cell refuses.
        const ms = typeof v === 'string' ? parseIsoWithOffset(v) : undefined;
        if (ms === undefined) fail('an ISO-8601 date-time with an offset, e.g. 2025-07-01T09:30:00+09:00');
        if (Number.isNaN(ms)) fail('a date and time that exist (not, say, February 30 or 25:00)');
        row[c.key] = v as string;
        break;
      }
    }
  }
  return row;
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
  const work = await mkdtemp(join(tmpdir(), 'xlsx-cli-'));
  const partsPath = join(work, 'parts.bin');
  const partsFile = await open(partsPath, 'w');
  const parts: (PartMeta & { offset: number })[] = [];
  let offset = 0;
  let rows = 0;
  let encoder: PartEncoder | undefined;
  // Parts go to a temp file as they finish, so memory holds at most one part.
  const finishPart = async (): Promise<void> => {
    if (!encoder || encoder.rowCount === 0) return;
    const { data, ...meta } = encoder.finish();
    encoder = undefined;
    await partsFile.write(data);
    parts.push({ ...meta, offset });
    offset += data.length;
  };
  try {
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
    const lines = createInterface({ input, crlfDelay: Infinity });
    let line = 0;
    for await (const text of lines) {
      line++;
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
    // Written beside the target and renamed at the end: a failed run never leaves a broken file.
    const partial = `${args.output}.partial`;
    const out = createWriteStream(partial);
    let size: number;
    try {
      if (args.password === undefined) {
        ({ size } = await writeWorkbook({ sheets, readPart, out }));
      } else {
        const { params, packageKey } = await deriveEncryptionKeys(args.password);
        ({ size } = await writeEncryptedWorkbook({ sheets, readPart, params, packageKey, out }));
        packageKey.fill(0);
      }
    } catch (err) {
      await rm(partial, { force: true });
      if (err instanceof XlsxEngineError) throw new InputError(err.message);
      throw err;
    }
    await rename(partial, args.output);
    return { rows, size, seconds: (performance.now() - started) / 1000 };
  } finally {
    await partsFile.close().catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  }
}

const invokedDirectly = process.argv[1] !== undefined && /bin[\\/]xlsx\.ts$/.test(process.argv[1]);
if (invokedDirectly) {
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
