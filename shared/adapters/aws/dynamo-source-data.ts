import { BatchGetCommand, BatchWriteCommand, type DynamoDBDocumentClient, GetCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import type { CasesSource, RawItem, SourceWriter, UsersSource, WorkspaceSource } from '../../ports/source-data';
import { caseKey, casePk, userKey, userPk } from '../../app/source-keys';

const KEY_ATTRIBUTES = ['pk', 'sk'];

function stripKeys(item: Record<string, unknown>): RawItem {
  const out: RawItem = {};
  for (const [k, v] of Object.entries(item)) if (!KEY_ATTRIBUTES.includes(k)) out[k] = v;
  return out;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** BatchWriteItem in 25s with retries of unprocessed items and bounded parallelism. */
async function batchWrite(ddb: DynamoDBDocumentClient, table: string, items: readonly Record<string, unknown>[], parallel = 8): Promise<void> {
  const batches: Record<string, unknown>[][] = [];
  for (let i = 0; i < items.length; i += 25) batches.push(items.slice(i, i + 25));
  let next = 0;
  async function worker(): Promise<void> {
    while (next < batches.length) {
      const batch = batches[next++];
      if (!batch) return;
      let requests = batch.map((Item) => ({ PutRequest: { Item } }));
      for (let attempt = 0; requests.length > 0; attempt++) {
        const result = await ddb.send(new BatchWriteCommand({ RequestItems: { [table]: requests } }));
        const unprocessed = result.UnprocessedItems?.[table] ?? [];
        requests = unprocessed.flatMap((r) => (r.PutRequest?.Item ? [{ PutRequest: { Item: r.PutRequest.Item } }] : []));
        if (requests.length > 0) {
          if (attempt > 10) throw new Error(`BatchWriteItem on ${table}: items still unprocessed after retries`);
          await sleep(Math.min(1000, 20 * 2 ** attempt));
        }
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(parallel, batches.length) }, worker));
}

/**
 * Pages of a Query. Source records keep their pk/sk attributes: the record parsers read only
 * the fields they know, and copying every item to drop two keys cost measurable CPU per row.
 */
async function* queryPages(
  ddb: DynamoDBDocumentClient,
  input: ConstructorParameters<typeof QueryCommand>[0],
  strip = false,
): AsyncIterable<RawItem[]> {
  let startKey: Record<string, unknown> | undefined;
  do {
    const result = await ddb.send(new QueryCommand({ ...input, ...(startKey ? { ExclusiveStartKey: startKey } : {}) }));
    const items = (result.Items ?? []) as RawItem[];
    yield strip ? items.map(stripKeys) : items;
    startKey = result.LastEvaluatedKey;
  } while (startKey);
}

export class DynamoCasesSource implements CasesSource {
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly table: string,
  ) {}

  queryDay(channelId: string, day: string, fromIso: string, toIso: string): AsyncIterable<RawItem[]> {
    // sk = `${iso}#${caseId}`; '#' sorts before digits, so `${toIso}` as an exclusive bound
    // needs the "<" comparison rather than BETWEEN.
    return queryPages(this.ddb, {
      TableName: this.table,
      KeyConditionExpression: 'pk = :pk AND sk BETWEEN :from AND :to',
      ExpressionAttributeValues: { ':pk': casePk(channelId, day), ':from': fromIso, ':to': toIso },
    });
  }
}

export class DynamoUsersSource implements UsersSource {
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly table: string,
  ) {}

  queryShard(channelId: string, shard: number): AsyncIterable<RawItem[]> {
    return queryPages(this.ddb, {
      TableName: this.table,
      KeyConditionExpression: 'pk = :pk',
      ExpressionAttributeValues: { ':pk': userPk(channelId, shard) },
    });
  }

  async getMany(channelId: string, userIds: readonly string[]): Promise<RawItem[]> {
    const unique = [...new Set(userIds)];
    const out: RawItem[] = [];
    const batches: string[][] = [];
    for (let i = 0; i < unique.length; i += 100) batches.push(unique.slice(i, i + 100));
    let next = 0;
    const worker = async () => {
      while (next < batches.length) {
        const batch = batches[next++];
        if (!batch) return;
        let keys: Record<string, unknown>[] = batch.map((id) => userKey(channelId, id));
        for (let attempt = 0; keys.length > 0; attempt++) {
          const result = await this.ddb.send(new BatchGetCommand({ RequestItems: { [this.table]: { Keys: keys } } }));
          for (const item of result.Responses?.[this.table] ?? []) out.push(item);
          keys = result.UnprocessedKeys?.[this.table]?.Keys ?? [];
          if (keys.length > 0) {
            if (attempt > 10) throw new Error('BatchGetItem: keys still unprocessed after retries');
            await sleep(Math.min(1000, 20 * 2 ** attempt));
          }
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(4, batches.length) }, worker));
    return out;
  }
}

export class DynamoWorkspaceSource implements WorkspaceSource {
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly table: string,
  ) {}

  async getItem(channelId: string, sk: string): Promise<RawItem | null> {
    // Strongly consistent: the request pins the export's definition from what this returns, so a
    // segment or profile schema saved just before must be seen (an eventually consistent read
    // may return the previous version for about a second). A handful of reads per request.
    const result = await this.ddb.send(new GetCommand({ TableName: this.table, Key: { pk: channelId, sk }, ConsistentRead: true }));
    return result.Item ? stripKeys(result.Item) : null;
  }

  /**
   * Every item whose sort key starts with the prefix. For the local stack's seeding only: no
   * function reads the workspace but by key, and their roles may not Query its table.
   */
  async queryPrefix(channelId: string, skPrefix: string): Promise<RawItem[]> {
    const out: RawItem[] = [];
    for await (const page of queryPages(
      this.ddb,
      {
        TableName: this.table,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
        ExpressionAttributeValues: { ':pk': channelId, ':prefix': skPrefix },
      },
      true,
    )) {
      out.push(...page);
    }
    return out;
  }
}

/**
 * Writes source records with their keys. `caseIdOf`/`createdAtOf` and `userIdOf` adapt to the
 * domain's record field names (kept out of this adapter).
 */
export class DynamoSourceWriter implements SourceWriter {
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly tables: { cases: string; users: string; workspace: string },
    private readonly fields: {
      caseIdOf: (record: RawItem) => string;
      caseCreatedAtOf: (record: RawItem) => string | number | Date;
      userIdOf: (record: RawItem) => string;
    },
    private readonly parallel = 8,
  ) {}

  async putCases(channelId: string, records: readonly RawItem[]): Promise<void> {
    const items = records.map((r) => ({ ...r, ...caseKey(channelId, this.fields.caseIdOf(r), this.fields.caseCreatedAtOf(r)) }));
    await batchWrite(this.ddb, this.tables.cases, items, this.parallel);
  }

  async putUsers(channelId: string, records: readonly RawItem[]): Promise<void> {
    const items = records.map((r) => ({ ...r, ...userKey(channelId, this.fields.userIdOf(r)) }));
    await batchWrite(this.ddb, this.tables.users, items, this.parallel);
  }

  async putWorkspaceItems(channelId: string, items: readonly RawItem[]): Promise<void> {
    await batchWrite(
      this.ddb,
      this.tables.workspace,
      items.map((item) => ({ ...item, pk: channelId, sk: String(item.sk) })),
      this.parallel,
    );
  }
}
