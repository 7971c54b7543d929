/**
 * Loads data into the running local stack (`npm start` in another terminal).
 *   npm run seed -- --channel C --users N --cases N [--seed S]
 *   npm run seed -- --channel C --import FILE [--kind users|cases]
 * It finds the stack through LOCAL_DATA_DIR (default `.local/`), as npm start was given it.
 * --kind may be left out only when the file name's first word is users or cases (see kindOf).
 * The import format is one JSON object per line (docs/domain.md: keys are the export's column
 * keys, derived columns left out). The whole file is validated first, so a bad line writes
 * nothing; errors name the line and the field, never the value. Exit codes: 0 done, 2 bad usage
 * or input (nothing written), 1 other failures (no stack running, a failed write).
 */
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { z } from 'zod';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { parseImportLine, type CaseRecord, type UserRecord } from '../shared/domain';
import { createSourceWriter, seedWorkspace, undeclaredProfileKeyTally } from '../infra/local/seed-data';
import { LOCAL_TABLES } from '../infra/local/resources';
import { DynamoWorkspaceSource } from '../shared/adapters/aws/dynamo-source-data';
import { loadProfileSchemas } from '../shared/app/workspace-context';
import type { RawItem } from '../shared/ports/source-data';
import { channelIdSchema } from '../shared/auth/principal';
import { formatIssuePath, ValidationError } from '../shared/domain/errors';
import { findJsonStructureProblem } from '../shared/json-text';
import { InputError, loneSurrogatePath, operatorPath, readLines as readStrictLines, parseOptions } from './cli-input';

const usage = [
  'usage: npm run seed -- --channel C --users N --cases N [--seed S]',
  '       npm run seed -- --channel C --import FILE [--kind users|cases]',
  "  --kind may be left out only when FILE's name starts with the word users or cases (users.ndjson, cases-2025-07.ndjson).",
  '  The stack is found through LOCAL_DATA_DIR (default .local/): give seed the one npm start was given.',
].join('\n');

/**
 * A count given as decimal digits. Not z.coerce.number(): it reads '' (and '  ') as 0, so
 * `--users '' --cases ''` (an unset shell variable) seeded an empty channel and said it worked,
 * and it took '1e3' and '0x10' as well.
 */
const wholeNumber = (max: number) =>
  z
    .string()
    .regex(/^[0-9]+$/, `must be a whole number from 0 to ${max}`)
    .transform(Number)
    .pipe(z.number().max(max, `must be a whole number from 0 to ${max}`));

const argsSchema = z
  .object({
    // The same rule as a token's channelId: data seeded under another id could never be exported.
    channel: z.string({ error: 'is required' }).min(1, 'is required').max(128).pipe(channelIdSchema),
    users: wholeNumber(2_000_000).optional(),
    cases: wholeNumber(2_000_000).optional(),
    seed: wholeNumber(Number.MAX_SAFE_INTEGER).default(1),
    import: z.string().min(1).optional(),
    kind: z.enum(['users', 'cases']).optional(),
  })
  .refine((a) => a.import !== undefined || a.users !== undefined || a.cases !== undefined, {
    message: 'give --users/--cases to generate data or --import FILE to load it',
  });

const endpointsSchema = z.object({ dynamoEndpoint: z.string().url() });

function connect(): DynamoDBDocumentClient {
  const dataDir = process.env.LOCAL_DATA_DIR ?? join(process.cwd(), '.local');
  const file = join(dataDir, 'endpoints.json');
  if (!existsSync(file)) {
    throw new Error(
      `the local stack is not running (no ${file}); start it with npm start first, ` +
        `or set LOCAL_DATA_DIR to the folder npm start uses`,
    );
  }
  const { dynamoEndpoint } = endpointsSchema.parse(JSON.parse(readFileSync(file, 'utf8')));
  return DynamoDBDocumentClient.from(
    new DynamoDBClient({ region: 'us-east-1', endpoint: dynamoEndpoint, credentials: { accessKeyId: 'local', secretAccessKey: 'local' } }),
    { marshallOptions: { removeUndefinedValues: true } },
  );
}

/**
 * The file's non-blank lines, read as the xlsx command reads its input (cli-input.ts): invalid
 * UTF-8 is refused naming the line (readline's 'utf8' stored it as U+FFFD), a leading byte order
 * mark is skipped (it made line 1 "not valid JSON"); LF, CRLF or a lone CR ends a line.
 */
async function* readLines(path: string, shown: string): AsyncIterable<{ line: string; lineNo: number }> {
  const input = createReadStream(path);
  try {
    await new Promise<void>((resolve, reject) => {
      input.once('open', () => resolve());
      input.once('error', reject);
    });
  } catch (err) {
    throw new InputError(`--import ${shown}: ${(err as Error).message}`);
  }
  for await (const { line: lineNo, text } of readStrictLines(input, 'Import ')) {
    if (text.trim() !== '') yield { line: text, lineNo };
  }
}

/**
 * What parseImportLine does not check, as the xlsx command checks it: a key given twice in a
 * line (JSON.parse keeps the last value) and a lone surrogate (a `\ud800` escape: no UTF-8
 * encodes it, and DynamoDB would store a string no reader shows the same way). A line that is not
 * a JSON object is left to parseImportLine, which says so.
 */
function checkLineText(line: string, lineNo: number): void {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    return;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return;
  // At any depth: a profile given a key twice loses a value as silently as the record does.
  const problem = findJsonStructureProblem(line, Number.MAX_SAFE_INTEGER);
  if (problem?.rule === 'duplicate-key') {
    throw new InputError(`Import line ${lineNo}, field ${formatIssuePath(problem.path)}: appears more than once (JSON keeps only the last value)`);
  }
  const surrogate = loneSurrogatePath(line, parsed);
  if (surrogate !== undefined) {
    const where = surrogate.length === 0 ? 'a field name' : `field ${String(surrogate[0])}`;
    throw new InputError(`Import line ${lineNo}, ${where}: holds a lone surrogate (half of a UTF-16 pair, e.g. a \\ud800 escape), which is not text`);
  }
}

/**
 * The kind a file's name says, or undefined. One strict rule: the name's first word is `users` or
 * `cases`, i.e. the name is `users`/`cases` or starts with it followed by `.`, `-` or `_`
 * (users.ndjson, cases-2025-07.ndjson, users_vip.ndjson; any letter case). Anything else
 * (showcase-users.ndjson, contacts.ndjson, userscases.ndjson) needs --kind: a word found anywhere
 * in the name once loaded showcase-users.ndjson as cases.
 */
function kindOf(path: string): 'users' | 'cases' | undefined {
  const match = /^(users|cases)(?:[._-]|$)/i.exec(basename(path));
  return match?.[1]?.toLowerCase() as 'users' | 'cases' | undefined;
}

/** The record's id, the one field DynamoDB keys it by (with its start instant, for a case). */
const idOf = (kind: 'users' | 'cases', record: CaseRecord | UserRecord): { field: string; id: string } =>
  kind === 'cases' ? { field: 'userChatCaseId', id: (record as CaseRecord).userChatCaseId } : { field: 'id', id: (record as UserRecord).id };

async function importFile(ddb: DynamoDBDocumentClient, channelId: string, path: string, shown: string, kind: 'users' | 'cases'): Promise<void> {
  const schemas = await loadProfileSchemas(new DynamoWorkspaceSource(ddb, LOCAL_TABLES.workspace), channelId);
  const tally = undeclaredProfileKeyTally(kind, kind === 'cases' ? schemas.chatProfileSchema : schemas.userProfileSchema);
  let count = 0;
  // An id on two lines is refused here, before any write: in one batch DynamoDB refuses the
  // whole batch ("Provided list of item keys contains duplicates") after earlier batches were
  // written; in two, the second silently overwrites the first. (A case id is refused even with
  // two start instants, i.e. two item keys: the export would show one case twice.)
  const seen = new Map<string, number>();
  for await (const { line, lineNo } of readLines(path, shown)) {
    checkLineText(line, lineNo);
    const record = parseImportLine(kind, line, lineNo);
    const { field, id } = idOf(kind, record);
    const first = seen.get(id);
    if (first !== undefined) throw new InputError(`Import line ${lineNo}, field ${field}: the same ${field} as line ${first} (each record may appear once)`);
    seen.set(id, lineNo);
    tally.add(record);
    count++;
  }
  seen.clear();
  for (const warning of tally.warnings(channelId)) console.error(warning);
  const writer = createSourceWriter(ddb);
  let batch: RawItem[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    if (kind === 'cases') await writer.putCases(channelId, batch);
    else await writer.putUsers(channelId, batch);
    batch = [];
  };
  for await (const { line, lineNo } of readLines(path, shown)) {
    const record: CaseRecord | UserRecord = parseImportLine(kind, line, lineNo);
    batch.push(record as unknown as RawItem);
    if (batch.length >= 2000) await flush();
  }
  await flush();
  console.log(`imported ${count} ${kind} into channel "${channelId}"`);
}

async function main(): Promise<void> {
  const values = parseOptions(
    {
      channel: { type: 'string' },
      users: { type: 'string' },
      cases: { type: 'string' },
      seed: { type: 'string' },
      import: { type: 'string' },
      kind: { type: 'string' },
      help: { type: 'boolean' },
    },
    usage,
  );
  if (values.help) {
    console.log(usage);
    return;
  }
  const parsed = argsSchema.safeParse(values);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new InputError(`${issue?.path.length ? `--${issue.path.join('.')}: ` : ''}${issue?.message ?? 'invalid arguments'}\n${usage}`);
  }
  const args = parsed.data;
  if (args.import) {
    // Before connecting: a name that does not say its kind is refused whether or not a stack runs.
    const kind = args.kind ?? kindOf(args.import);
    if (!kind) {
      throw new InputError(
        `--kind: is required: the file name "${basename(args.import)}" does not start with the word users or cases ` +
          `(as users.ndjson or cases-2025-07.ndjson do); add --kind users or --kind cases\n${usage}`,
      );
    }
    // Resolved against the operator's folder: npm run starts us in the package root.
    const path = operatorPath(args.import, process.env);
    // Before connecting, like the kind: a folder would fail only once its lines were awaited.
    if ((await stat(path).catch(() => undefined))?.isDirectory()) throw new InputError(`--import ${args.import}: is not a file (it is a folder)`);
    await importFile(connect(), args.channel, path, args.import, kind);
    return;
  }
  const ddb = connect();
  const result = await seedWorkspace(ddb, {
    channelId: args.channel,
    users: args.users ?? 0,
    cases: args.cases ?? 0,
    seed: args.seed,
    log: (line) => console.log(line),
  });
  console.log(`channel "${result.channelId}": ${result.users} users, ${result.cases} cases (seed ${args.seed})`);
  console.log(`segments: ${result.segmentIds.join(', ')}`);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  // Bad usage or input (an argument, a line of the file) is 2, as for npm run xlsx; a line's
  // refusal (parseImportLine's ValidationError) comes before any write.
  process.exit(error instanceof InputError || error instanceof ValidationError ? 2 : 1);
});
