import { randomUUID } from 'node:crypto';
import {
  BatchGetCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
  type UpdateCommandInput,
} from '@aws-sdk/lib-dynamodb';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { exportJobSchema, type ExportJob, type ExportStatus } from '../../app/export-job';
import {
  CLAIM_LEASE_MS,
  type ChunkDoneResult,
  type DownloadTokenRecord,
  type ExportStore,
  idempotencyRecordSchema,
  type IdempotencyRecord,
  type JobFlag,
  type LeaseFlag,
  type JobPage,
  type JobPatch,
} from '../../ports/export-store';
import { JOB_INDEX_NAME } from './export-table-layout';

/**
 * EXPORTS_TABLE layout (pk/sk strings, GSI gsi1 on gsi1pk/gsi1sk, TTL attribute `ttl`):
 * - job:          pk `EXPORT#{exportId}`, sk `JOB`; gsi1pk `CH#{channelId}#MGR#{managerId}`,
 *                 gsi1sk `{createdAt}#{exportId}` (newest first = ScanIndexForward false).
 *                 `doneChunks` is a string SET of completed chunk ids: adding an id twice is a
 *                 no-op, so redelivered chunk messages never count twice.
 *                 ttl = createdAt + recordRetentionDays (400 by default: far past any export's
 *                 run, so the table does not grow for ever), moved to expiresAt + the same
 *                 when the export completes, so the job lasts as long as its link token.
 * - token hash:   pk `TOKEN#{sha256 hex}`, sk `TOKEN`, ttl = link expiry + recordRetentionDays: it
 *   outlives the link by that much, so a late use is still a 410 with an audit entry (it was
 *   expiry + 1 day once, which turned a use days later into a 404 that left no audit entry).
 * - idempotency:  pk `IDEM#{channelId}#{managerId}#{key}`, sk `IDEM`, ttl = 24 h.
 */
const JOB_SK = 'JOB';

/**
 * The attributes whose presence (or `true`) means a lease's step is done: no claim after any of
 * them. The notify post is done when the bot accepted it (`notifiedAt`) and also when it refused
 * it for good (`notifyRefusedAt`): posting the same event again cannot change a refusal.
 */
const LEASE_CLOSED_BY: Record<LeaseFlag, readonly string[]> = {
  finalizeClaim: ['finalizeEnqueued'],
  usersClaim: ['usersEnqueued'],
  notifyClaim: ['notifiedAt', 'notifyRefusedAt'],
};

function jobPk(exportId: string): string {
  return `EXPORT#${exportId}`;
}

function isConditionFailure(error: unknown): boolean {
  return error instanceof ConditionalCheckFailedException || (error as { name?: string })?.name === 'ConditionalCheckFailedException';
}

function encodeCursor(key: Record<string, unknown> | undefined): string | undefined {
  return key ? Buffer.from(JSON.stringify(key)).toString('base64url') : undefined;
}

function decodeCursor(cursor: string | undefined): Record<string, unknown> | undefined {
  if (!cursor) return undefined;
  try {
    const parsed: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    return parsed && typeof parsed === 'object' ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Builds `SET a = :a, ...` parts for a patch, skipping undefined values. */
function patchExpression(patch: JobPatch | undefined, names: Record<string, string>, values: Record<string, unknown>): string[] {
  const sets: string[] = [];
  for (const [field, value] of Object.entries(patch ?? {})) {
    if (value === undefined) continue;
    names[`#p_${field}`] = field;
    values[`:p_${field}`] = value;
    sets.push(`#p_${field} = :p_${field}`);
  }
  return sets;
}

export class DynamoExportStore implements ExportStore {
  private readonly retentionSeconds: number;

  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly now: () => Date = () => new Date(),
    options: { recordRetentionDays?: number } = {},
  ) {
    this.retentionSeconds = (options.recordRetentionDays ?? 400) * 86_400;
  }

  /** The TTL (epoch seconds) of an item kept recordRetentionDays past `from`. */
  private retainedUntil(from: string): number {
    return Math.floor(Date.parse(from) / 1000) + this.retentionSeconds;
  }

  async createJob(job: ExportJob): Promise<boolean> {
    try {
      await this.ddb.send(
        new PutCommand({
          TableName: this.tableName,
          Item: {
            ...job,
            pk: jobPk(job.exportId),
            sk: JOB_SK,
            gsi1pk: `CH#${job.channelId}#MGR#${job.managerId}`,
            gsi1sk: `${job.createdAt}#${job.exportId}`,
            ttl: this.retainedUntil(job.createdAt),
          },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  private async getRaw(exportId: string): Promise<Record<string, unknown> | undefined> {
    const result = await this.ddb.send(
      new GetCommand({ TableName: this.tableName, Key: { pk: jobPk(exportId), sk: JOB_SK }, ConsistentRead: true }),
    );
    return result.Item;
  }

  async getJob(channelId: string, exportId: string): Promise<ExportJob | null> {
    const item = await this.getRaw(exportId);
    if (!item || item.channelId !== channelId) return null;
    return exportJobSchema.parse(item);
  }

  async listJobs(channelId: string, managerId: string, cursor: string | undefined, limit: number): Promise<JobPage> {
    const startKey = decodeCursor(cursor);
    const result = await this.ddb.send(
      new QueryCommand({
        TableName: this.tableName,
        IndexName: JOB_INDEX_NAME,
        KeyConditionExpression: 'gsi1pk = :pk',
        ExpressionAttributeValues: { ':pk': `CH#${channelId}#MGR#${managerId}` },
        ScanIndexForward: false,
        // One more than the page: DynamoDB returns a LastEvaluatedKey whenever it stopped at
        // Limit, even with nothing after it, and a cursor to an empty page contradicts the API's
        // "no cursor on the last page". The extra item only tells whether more exist.
        Limit: limit + 1,
        ...(startKey ? { ExclusiveStartKey: startKey } : {}),
      }),
    );
    const raw = result.Items ?? [];
    const shown = raw.slice(0, limit);
    const lastShown = shown[shown.length - 1];
    // More exist: resume after the last item shown (its index and table keys, the shape of a
    // LastEvaluatedKey). Fewer than limit + 1 with a LastEvaluatedKey: the read stopped at 1 MB,
    // so the rest is unknown and the cursor resumes where the read stopped.
    const nextKey =
      raw.length > limit && lastShown
        ? { pk: lastShown.pk, sk: lastShown.sk, gsi1pk: lastShown.gsi1pk, gsi1sk: lastShown.gsi1sk }
        : result.LastEvaluatedKey;
    // The index holds keys only (KEYS_ONLY: no chunk's write of the job item ever writes it):
    // the jobs themselves are read by key, strongly consistent, in the index's order.
    const items = (await this.getJobsByKey(shown.map((k) => String(k.pk))))
      .map((item) => exportJobSchema.parse(item))
      // The key already scopes the query; checking the owner again costs nothing and keeps any
      // key collision from ever showing one manager another's export.
      .filter((job) => job.channelId === channelId && job.managerId === managerId);
    const next = encodeCursor(nextKey);
    return next ? { items, cursor: next } : { items };
  }

  /**
   * Job items by their pk, in the order given; a job gone meanwhile (TTL) is left out. At most
   * 100 keys a call (BatchGetItem's limit, above the API's page size); keys DynamoDB leaves
   * unprocessed (throttling) are asked again, with a short growing pause.
   */
  private async getJobsByKey(pks: readonly string[]): Promise<Record<string, unknown>[]> {
    if (pks.length === 0) return [];
    if (pks.length > 100) throw new RangeError('at most 100 jobs per read');
    const found = new Map<string, Record<string, unknown>>();
    let keys: Record<string, unknown>[] = pks.map((pk) => ({ pk, sk: JOB_SK }));
    for (let attempt = 0; keys.length > 0; attempt++) {
      if (attempt > 8) throw new Error('BatchGetItem left keys unprocessed after 8 retries');
      if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, Math.min(1000, 50 * 2 ** attempt)));
      const result = await this.ddb.send(
        new BatchGetCommand({ RequestItems: { [this.tableName]: { Keys: keys, ConsistentRead: true } } }),
      );
      for (const item of result.Responses?.[this.tableName] ?? []) found.set(String(item.pk), item);
      keys = (result.UnprocessedKeys?.[this.tableName]?.Keys ?? []) as Record<string, unknown>[];
    }
    return pks.flatMap((pk) => {
      const item = found.get(pk);
      return item ? [item] : [];
    });
  }

  async updateProgress(channelId: string, exportId: string, patch: JobPatch): Promise<void> {
    const names: Record<string, string> = {};
    const values: Record<string, unknown> = { ':ch': channelId, ':now': this.now().toISOString() };
    const sets = [...patchExpression(patch, names, values), 'updatedAt = :now'];
    await this.ddb.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: { pk: jobPk(exportId), sk: JOB_SK },
        UpdateExpression: `SET ${sets.join(', ')}`,
        ConditionExpression: 'channelId = :ch',
        ...(Object.keys(names).length ? { ExpressionAttributeNames: names } : {}),
        ExpressionAttributeValues: values,
      }),
    );
  }

  async markChunkDone(channelId: string, exportId: string, chunkId: string, meta: { rowCount: number; skippedRecords?: number }): Promise<ChunkDoneResult> {
    // Only when there are some: a job without skipped records keeps no attribute for them.
    const skipped = meta.skippedRecords ?? 0;
    try {
      const result = await this.ddb.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: jobPk(exportId), sk: JOB_SK },
          // The set add and the counters change in one conditional write: the counters can
          // never drift from the set, and a chunk already in the set changes nothing.
          UpdateExpression: `ADD doneChunks :set, chunksDone :one, rowsWritten :rows${skipped > 0 ? ', skippedRecords :skipped' : ''} SET updatedAt = :now`,
          ConditionExpression: 'channelId = :ch AND (attribute_not_exists(doneChunks) OR NOT contains(doneChunks, :id))',
          ExpressionAttributeValues: {
            ':set': new Set([chunkId]),
            ':one': 1,
            ':rows': meta.rowCount,
            ':now': this.now().toISOString(),
            ':ch': channelId,
            ':id': chunkId,
            ...(skipped > 0 ? { ':skipped': skipped } : {}),
          },
          ReturnValues: 'ALL_NEW',
        }),
      );
      const item = result.Attributes ?? {};
      return {
        firstTime: true,
        done: Number(item.chunksDone ?? 0),
        total: Number(item.chunksTotal ?? 0),
        rowsWritten: Number(item.rowsWritten ?? 0),
      };
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      const item = await this.getRaw(exportId);
      if (!item || item.channelId !== channelId) throw new Error(`export ${exportId} not found for chunk ${chunkId}`);
      return {
        firstTime: false,
        done: Number(item.chunksDone ?? 0),
        total: Number(item.chunksTotal ?? 0),
        rowsWritten: Number(item.rowsWritten ?? 0),
      };
    }
  }

  async setStatus(
    channelId: string,
    exportId: string,
    to: ExportStatus,
    from: readonly ExportStatus[],
    patch?: JobPatch,
  ): Promise<boolean> {
    const names: Record<string, string> = { '#status': 'status' };
    const values: Record<string, unknown> = { ':to': to, ':now': this.now().toISOString(), ':ch': channelId };
    const fromNames = from.map((status, i) => {
      values[`:f${i}`] = status;
      return `:f${i}`;
    });
    const sets = ['#status = :to', 'updatedAt = :now', ...patchExpression(patch, names, values)];
    if (patch?.expiresAt !== undefined) {
      // The job is kept as long as its link token (both past the link's expiry): a late use of
      // the link finds the job and is an audited 410, not a 404 for a job collected first.
      names['#ttl'] = 'ttl';
      values[':ttl'] = this.retainedUntil(patch.expiresAt);
      sets.push('#ttl = :ttl');
    }
    return this.updateJobIf(exportId, {
      UpdateExpression: `SET ${sets.join(', ')}`,
      ConditionExpression: `channelId = :ch AND #status IN (${fromNames.join(', ')})`,
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: values,
    });
  }

  /**
   * A conditional update of one job item: true when it was written, false when its condition
   * did not hold (a lost race, a step already taken, another channel's job); other errors throw.
   */
  private async updateJobIf(exportId: string, update: Omit<UpdateCommandInput, 'TableName' | 'Key'>): Promise<boolean> {
    try {
      await this.ddb.send(new UpdateCommand({ TableName: this.tableName, Key: { pk: jobPk(exportId), sk: JOB_SK }, ...update }));
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  async isChunkDone(channelId: string, exportId: string, chunkId: string): Promise<boolean> {
    const result = await this.ddb.send(
      new GetCommand({
        TableName: this.tableName,
        Key: { pk: jobPk(exportId), sk: JOB_SK },
        // Consistent: a chunk marked a moment ago by another delivery must read as done.
        ConsistentRead: true,
        ProjectionExpression: '#ch, #done',
        ExpressionAttributeNames: { '#ch': 'channelId', '#done': 'doneChunks' },
      }),
    );
    const item = result.Item;
    if (!item || item.channelId !== channelId) return false;
    const done: unknown = item.doneChunks;
    return done instanceof Set && done.has(chunkId);
  }

  async startMainPhase(
    channelId: string,
    exportId: string,
    plan: Required<Pick<JobPatch, 'chunksTotal' | 'sheetChunks'>>,
  ): Promise<boolean> {
    return this.updateJobIf(exportId, {
      UpdateExpression: 'SET chunksTotal = :total, phase = :main, sheetChunks = :sheets, updatedAt = :now',
      ConditionExpression: 'channelId = :ch AND attribute_not_exists(phase)',
      ExpressionAttributeValues: {
        ':total': plan.chunksTotal,
        ':main': 'main',
        ':sheets': plan.sheetChunks,
        ':ch': channelId,
        ':now': this.now().toISOString(),
      },
    });
  }

  async advanceToUsersPhase(channelId: string, exportId: string, userChunks: number): Promise<boolean> {
    return this.updateJobIf(exportId, {
      UpdateExpression: 'SET phase = :users, sheetChunks.#users = :n, updatedAt = :now ADD chunksTotal :n',
      // Active only: a canceled or failed export plans no more work.
      ConditionExpression: 'channelId = :ch AND phase = :main AND #status IN (:queued, :running)',
      ExpressionAttributeNames: { '#users': 'users', '#status': 'status' },
      ExpressionAttributeValues: {
        ':users': 'users',
        ':main': 'main',
        ':n': userChunks,
        ':ch': channelId,
        ':now': this.now().toISOString(),
        ':queued': 'queued',
        ':running': 'running',
      },
    });
  }

  async claimFlag(channelId: string, exportId: string, flag: JobFlag): Promise<boolean> {
    return this.updateJobIf(exportId, {
      UpdateExpression: 'SET #flag = :true, updatedAt = :now',
      ConditionExpression: 'channelId = :ch AND (attribute_not_exists(#flag) OR #flag = :false)',
      ExpressionAttributeNames: { '#flag': flag },
      ExpressionAttributeValues: { ':true': true, ':false': false, ':ch': channelId, ':now': this.now().toISOString() },
    });
  }

  async releaseClaim(channelId: string, exportId: string, flag: LeaseFlag, token: string): Promise<void> {
    try {
      await this.ddb.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: jobPk(exportId), sk: JOB_SK },
          UpdateExpression: 'REMOVE #claim',
          ConditionExpression: 'channelId = :ch AND #claim = :token',
          ExpressionAttributeNames: { '#claim': flag },
          ExpressionAttributeValues: { ':ch': channelId, ':token': token },
        }),
      );
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
    }
  }

  async claimLease(channelId: string, exportId: string, flag: LeaseFlag): Promise<string | undefined> {
    const now = this.now();
    const names: Record<string, string> = { '#claim': flag };
    const closed = LEASE_CLOSED_BY[flag].map((attribute, i) => {
      names[`#sent${i}`] = attribute;
      return `(attribute_not_exists(#sent${i}) OR #sent${i} = :false)`;
    });
    // The time (the lease's age, compared as text) plus a random tail: two holders never share
    // a token, even within one millisecond.
    const token = `${now.toISOString()}#${randomUUID()}`;
    try {
      await this.ddb.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: jobPk(exportId), sk: JOB_SK },
          UpdateExpression: 'SET #claim = :token',
          // ISO-8601 UTC strings compare in time order (the token's tail only breaks exact ties).
          ConditionExpression: `channelId = :ch AND ${closed.join(' AND ')} AND (attribute_not_exists(#claim) OR #claim < :stale)`,
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: {
            ':token': token,
            ':stale': new Date(now.getTime() - CLAIM_LEASE_MS).toISOString(),
            ':false': false,
            ':ch': channelId,
          },
        }),
      );
      return token;
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      // Our own claim, committed though its answer was lost (a 500 after the commit, a reset
      // connection: the SDK's retry then fails the condition on it). Unread, the delivery would
      // wait on itself until the lease lapsed, past the retries SQS allows, and dead-letter.
      const held = await this.ddb.send(
        new GetCommand({
          TableName: this.tableName,
          Key: { pk: jobPk(exportId), sk: JOB_SK },
          ProjectionExpression: '#claim',
          ExpressionAttributeNames: { '#claim': flag },
          ConsistentRead: true,
        }),
      );
      return held.Item?.[flag] === token ? token : undefined;
    }
  }

  async saveDownloadToken(record: DownloadTokenRecord): Promise<void> {
    // Kept recordRetentionDays past the link's expiry: a use after expiry is a 410 with an
    // audited attempt for that long (expiry + 1 day once made a use days later a silent 404).
    await this.ddb.send(
      new PutCommand({
        TableName: this.tableName,
        Item: { pk: `TOKEN#${record.tokenHash}`, sk: 'TOKEN', ...record, ttl: this.retainedUntil(record.expiresAt) },
      }),
    );
  }

  async getDownloadToken(tokenHash: string): Promise<DownloadTokenRecord | null> {
    const result = await this.ddb.send(
      new GetCommand({ TableName: this.tableName, Key: { pk: `TOKEN#${tokenHash}`, sk: 'TOKEN' }, ConsistentRead: true }),
    );
    const item = result.Item;
    if (!item) return null;
    return {
      tokenHash: String(item.tokenHash),
      exportId: String(item.exportId),
      channelId: String(item.channelId),
      expiresAt: String(item.expiresAt),
    };
  }

  async saveIdempotencyRecord(record: IdempotencyRecord, ttlSeconds: number): Promise<{ created: boolean; existing?: IdempotencyRecord }> {
    // Twice at most: a record can be freed (expired by releaseIdempotencyRecord, or at its TTL)
    // between the refused put and the read of the record that refused it; the key is then free
    // and the put is tried again, instead of reporting a record that cannot be read.
    const first = await this.putIdempotencyRecord(record, ttlSeconds);
    return first.created || first.existing ? first : this.putIdempotencyRecord(record, ttlSeconds);
  }

  private async putIdempotencyRecord(record: IdempotencyRecord, ttlSeconds: number): Promise<{ created: boolean; existing?: IdempotencyRecord }> {
    const pk = `IDEM#${record.channelId}#${record.managerId}#${record.key}`;
    const nowSeconds = Math.floor(this.now().getTime() / 1000);
    try {
      await this.ddb.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { pk, sk: 'IDEM', ...record, ttl: nowSeconds + ttlSeconds },
          // TTL deletion lags, so an expired record still present counts as free.
          ConditionExpression: 'attribute_not_exists(pk) OR #ttl < :now',
          ExpressionAttributeNames: { '#ttl': 'ttl' },
          ExpressionAttributeValues: { ':now': nowSeconds },
        }),
      );
      return { created: true };
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      const existing = await this.getIdempotencyRecord(record.channelId, record.managerId, record.key);
      return existing ? { created: false, existing } : { created: false };
    }
  }

  async releaseIdempotencyRecord(channelId: string, managerId: string, key: string, exportId: string): Promise<void> {
    // Expired rather than deleted: a record past its TTL already counts as free (see
    // saveIdempotencyRecord), and the api role keeps PutItem as its only write on this table.
    // Just past, not 0: TTL leaves alone items whose time is more than five years past.
    try {
      await this.ddb.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { pk: `IDEM#${channelId}#${managerId}#${key}`, sk: 'IDEM', channelId, managerId, key, exportId, requestHash: '', createdAt: this.now().toISOString(), ttl: Math.floor(this.now().getTime() / 1000) - 1 },
          ConditionExpression: 'exportId = :exportId',
          ExpressionAttributeValues: { ':exportId': exportId },
        }),
      );
    } catch (error) {
      // Another request took the key over meanwhile (or it is gone): nothing of ours to free.
      if (!isConditionFailure(error)) throw error;
    }
  }

  async getIdempotencyRecord(channelId: string, managerId: string, key: string): Promise<IdempotencyRecord | null> {
    const result = await this.ddb.send(
      new GetCommand({
        TableName: this.tableName,
        Key: { pk: `IDEM#${channelId}#${managerId}#${key}`, sk: 'IDEM' },
        ConsistentRead: true,
      }),
    );
    const item = result.Item;
    if (!item) return null;
    if (typeof item.ttl === 'number' && item.ttl < Math.floor(this.now().getTime() / 1000)) return null;
    // Validated, not cast: `passwordSalt` decides how a replay is compared (with it, the slow
    // digest; without it, the previous version's formula), so a mangled one must not pass.
    return idempotencyRecordSchema.parse(item);
  }
}
