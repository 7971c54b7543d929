import { GetCommand, PutCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { caseStartedAt, generateWorkspace, type CaseRecord, type UserRecord } from '../../shared/domain';
import { DynamoSourceWriter } from '../../shared/adapters/aws/dynamo-source-data';
import { getClients } from '../../shared/adapters/aws/clients';
import { workspaceItems } from '../../shared/app/workspace-context';
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

export type SeedResult = { channelId: string; users: number; cases: number };

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
  return { channelId: options.channelId, users, cases };
}

/** Seeds once per data folder: a marker item remembers it (npm start keeps its data on disk). */
export async function seedIfEmpty(options: SeedOptions): Promise<SeedResult> {
  const { ddb } = getClients();
  const channelId = options.channelId ?? DEMO_CHANNEL;
  const marker = await ddb.send(new GetCommand({ TableName: LOCAL_TABLES.workspace, Key: { pk: MARKER_PK, sk: `SEEDED#${channelId}` } }));
  if (marker.Item) {
    return { channelId, users: Number(marker.Item.users ?? 0), cases: Number(marker.Item.cases ?? 0) };
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
