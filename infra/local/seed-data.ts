import { GetCommand, PutCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { caseStartedAt, generateWorkspace, type CaseRecord, type ProfileSchema, type UserRecord } from '../../shared/domain';
import { DynamoSourceWriter, DynamoWorkspaceSource } from '../../shared/adapters/aws/dynamo-source-data';
import { getClients } from '../../shared/adapters/aws/clients';
import { workspaceItems, workspaceSk } from '../../shared/app/workspace-context';
import type { RawItem, SourceWriter } from '../../shared/ports/source-data';
import { LOCAL_TABLES } from './resources';

export type SeedOptions = {
  dataDir?: string | undefined;
  channelId?: string;
  users?: number;
  cases?: number;
  seed?: number;
  log?: (line: string) => void;
};

/** `segmentIds`: what `scope: "segment"` takes; the generator suffixes them per seed, so they must be shown. */
export type SeedResult = { channelId: string; users: number; cases: number; segmentIds: string[] };

export const DEMO_CHANNEL = 'demo';
const MARKER_PK = '__local__';

export function createSourceWriter(ddb: DynamoDBDocumentClient, tables = LOCAL_TABLES, parallel = 8): SourceWriter {
  return new DynamoSourceWriter(
    ddb,
    { cases: tables.cases, users: tables.users, workspace: tables.workspace },
    {
      caseIdOf: (r) => String(r.userChatCaseId),
      // Cases are filed under their start instant (S8's userChatCaseCreatedAt, else the chat's creation).
      caseCreatedAtOf: (r) => caseStartedAt(r as unknown as CaseRecord),
      userIdOf: (r) => String(r.id),
    },
    parallel,
  );
}

/** Writes records in batches while the generator streams them: memory stays bounded. */
async function writeStreamed<T>(records: Iterable<T>, batchSize: number, write: (batch: RawItem[]) => Promise<void>): Promise<number> {
  let batch: RawItem[] = [];
  let count = 0;
  for (const record of records) {
    batch.push(record as unknown as RawItem);
    if (batch.length >= batchSize) {
      await write(batch);
      count += batch.length;
      batch = [];
    }
  }
  if (batch.length > 0) {
    await write(batch);
    count += batch.length;
  }
  return count;
}

/** Generates and stores a workspace with the domain generator (same seed, same data). */
export async function seedWorkspace(
  ddb: DynamoDBDocumentClient,
  options: { channelId: string; users: number; cases: number; seed: number; log?: (line: string) => void },
): Promise<SeedResult> {
  const log = options.log ?? (() => undefined);
  const workspace = generateWorkspace({ channelId: options.channelId, seed: options.seed, users: options.users, cases: options.cases });
  const writer = createSourceWriter(ddb);
  await writer.putWorkspaceItems(options.channelId, workspaceItems(workspace));
  const started = Date.now();
  const users = await writeStreamed<UserRecord>(workspace.users, 2000, (batch) => writer.putUsers(options.channelId, batch));
  log(`seeded ${users} users in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const casesStarted = Date.now();
  const cases = await writeStreamed<CaseRecord>(workspace.cases, 2000, (batch) => writer.putCases(options.channelId, batch));
  log(`seeded ${cases} cases in ${((Date.now() - casesStarted) / 1000).toFixed(1)} s`);
  return { channelId: options.channelId, users, cases, segmentIds: workspace.segments.map((s) => s.id) };
}

/** The channel's saved segment ids as stored (a later `npm run seed` into the channel adds its own). */
export async function listSegmentIds(ddb: DynamoDBDocumentClient, channelId: string): Promise<string[]> {
  const items = await new DynamoWorkspaceSource(ddb, LOCAL_TABLES.workspace).queryPrefix(channelId, workspaceSk.segment(''));
  return items.map((item) => String(item.id));
}

/**
 * Counts the imported records' profile keys that the channel's profile schema does not declare.
 * The import stores every value, but an export writes only declared keys (docs/domain.md, "User
 * data"), so without a warning those values would vanish from every file without a word. One
 * line per key, with a count: a million-line file must not print a million warnings.
 */
export function undeclaredProfileKeyTally(kind: 'users' | 'cases', schema: ProfileSchema) {
  const declared = new Set(schema.keys.map((k) => k.key));
  // Every case export has these two columns, whatever the chat profile schema says.
  if (kind === 'cases') for (const key of ['csat', 'csatComment']) declared.add(key);
  const counts = new Map<string, number>();
  return {
    add(record: { profile?: Record<string, unknown> | undefined }): void {
      for (const key of Object.keys(record.profile ?? {})) if (!declared.has(key)) counts.set(key, (counts.get(key) ?? 0) + 1);
    },
    warnings(channelId: string): string[] {
      const schemaName = kind === 'cases' ? 'chat' : 'user';
      return [...counts].map(
        ([key, n]) =>
          `warning: profile.${key} (${n} ${n === 1 ? 'record' : 'records'}) is not declared in the ${schemaName} profile schema of channel "${channelId}": exports leave it out (the import does not declare keys)`,
      );
    },
  };
}

/** Seeds once per data folder: a marker item remembers it (npm start keeps its data on disk). */
export async function seedIfEmpty(options: SeedOptions): Promise<SeedResult> {
  const { ddb } = getClients();
  const channelId = options.channelId ?? DEMO_CHANNEL;
  const marker = await ddb.send(new GetCommand({ TableName: LOCAL_TABLES.workspace, Key: { pk: MARKER_PK, sk: `SEEDED#${channelId}` } }));
  if (marker.Item) {
    // Read, not recomputed: the marker does not record the seed the segments were made with.
    const segmentIds = await listSegmentIds(ddb, channelId);
    return { channelId, users: Number(marker.Item.users ?? 0), cases: Number(marker.Item.cases ?? 0), segmentIds };
  }
  const users = options.users ?? 50_000;
  const cases = options.cases ?? 100_000;
  options.log?.(`seeding channel "${channelId}" with ${users} users and ${cases} cases (first run) ...`);
  const result = await seedWorkspace(ddb, { channelId, users, cases, seed: options.seed ?? 1, ...(options.log ? { log: options.log } : {}) });
  await ddb.send(
    new PutCommand({
      TableName: LOCAL_TABLES.workspace,
      Item: { pk: MARKER_PK, sk: `SEEDED#${channelId}`, users: result.users, cases: result.cases, at: new Date().toISOString() },
    }),
  );
  return result;
}
