/**
 * Loads data into the running local stack (`npm start` in another terminal).
 *   npm run seed -- --channel C --users N --cases N [--seed S]
 *   npm run seed -- --channel C --import FILE [--kind users|cases]
 * It finds the stack through LOCAL_DATA_DIR (default `.local/`), as npm start was given it.
 * --kind may be left out only when the file name's first word is users or cases (see kindOf).
 * The import format is one JSON object per line (docs/domain.md: keys are the export's column
 * keys, derived columns left out). The whole file is validated first, so a bad line writes
 * nothing; errors name the line and the field, never the value.
 */
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
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

const usage = [
  'usage: npm run seed -- --channel C --users N --cases N [--seed S]',
  '       npm run seed -- --channel C --import FILE [--kind users|cases]',
  "  --kind may be left out only when FILE's name starts with the word users or cases (users.ndjson, cases-2025-07.ndjson).",
  '  The stack is found through LOCAL_DATA_DIR (default .local/): give seed the one npm start was given.',
].join('\n');

const argsSchema = z
  .object({
    // The same rule as a token's channelId: data seeded under another id could never be exported.
    channel: z.string({ error: 'is required' }).min(1, 'is required').max(128).pipe(channelIdSchema),
    users: z.coerce.number().int().min(0).max(2_000_000).optional(),
    cases: z.coerce.number().int().min(0).max(2_000_000).optional(),
    seed: z.coerce.number().int().min(0).default(1),
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

async function* readLines(path: string): AsyncIterable<{ line: string; lineNo: number }> {
  let lineNo = 0;
  for await (const line of createInterface({ input: createReadStream(path, 'utf8'), crlfDelay: Infinity })) {
    lineNo++;
    if (line.trim() !== '') yield { line, lineNo };
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

async function importFile(ddb: DynamoDBDocumentClient, channelId: string, path: string, kind: 'users' | 'cases'): Promise<void> {
  const schemas = await loadProfileSchemas(new DynamoWorkspaceSource(ddb, LOCAL_TABLES.workspace), channelId);
  const tally = undeclaredProfileKeyTally(kind, kind === 'cases' ? schemas.chatProfileSchema : schemas.userProfileSchema);
  let count = 0;
  for await (const { line, lineNo } of readLines(path)) {
    tally.add(parseImportLine(kind, line, lineNo));
    count++;
  }
  for (const warning of tally.warnings(channelId)) console.error(warning);
  const writer = createSourceWriter(ddb);
  let batch: RawItem[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    if (kind === 'cases') await writer.putCases(channelId, batch);
    else await writer.putUsers(channelId, batch);
    batch = [];
  };
  for await (const { line, lineNo } of readLines(path)) {
    const record: CaseRecord | UserRecord = parseImportLine(kind, line, lineNo);
    batch.push(record as unknown as RawItem);
    if (batch.length >= 2000) await flush();
  }
  await flush();
  console.log(`imported ${count} ${kind} into channel "${channelId}"`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      channel: { type: 'string' },
      users: { type: 'string' },
      cases: { type: 'string' },
      seed: { type: 'string' },
      import: { type: 'string' },
      kind: { type: 'string' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(usage);
    return;
  }
  const parsed = argsSchema.safeParse(values);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`${issue?.path.length ? `--${issue.path.join('.')}: ` : ''}${issue?.message ?? 'invalid arguments'}\n${usage}`);
  }
  const args = parsed.data;
  if (args.import) {
    // Before connecting: a name that does not say its kind is refused whether or not a stack runs.
    const kind = args.kind ?? kindOf(args.import);
    if (!kind) {
      throw new Error(
        `--kind: is required: the file name "${basename(args.import)}" does not start with the word users or cases ` +
          `(as users.ndjson or cases-2025-07.ndjson do); add --kind users or --kind cases\n${usage}`,
      );
    }
    await importFile(connect(), args.channel, args.import, kind);
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
  process.exit(1);
});
