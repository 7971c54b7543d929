/**
 * Loads data into the running local stack (`npm start` in another terminal).
 *   npm run seed -- --channel C --users N --cases N [--seed S]
 *   npm run seed -- --channel C --import users.ndjson|cases.ndjson [--kind users|cases]
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
  '       npm run seed -- --channel C --import users.ndjson|cases.ndjson [--kind users|cases]',
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
  if (!existsSync(file)) throw new Error(`the local stack is not running (no ${file}); start it with npm start first`);
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

async function importFile(ddb: DynamoDBDocumentClient, channelId: string, path: string, kindArg: 'users' | 'cases' | undefined): Promise<void> {
  const kind = kindArg ?? (/case/i.test(basename(path)) ? 'cases' : /user|contact/i.test(basename(path)) ? 'users' : undefined);
  if (!kind) throw new Error('cannot tell the kind from the file name: add --kind users or --kind cases');
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
  const ddb = connect();
  if (args.import) {
    await importFile(ddb, args.channel, args.import, args.kind);
    return;
  }
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
