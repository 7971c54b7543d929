import { randomBytes } from 'node:crypto';
import { PutCommand, QueryCommand, type DynamoDBDocumentClient, type QueryCommandInput, type QueryCommandOutput } from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import { ValidationError } from '../../domain/errors';
import {
  auditEventSchema,
  MAX_LISTED_DOWNLOADS,
  type AuditClient,
  type AuditDownload,
  type AuditEntry,
  type AuditEvent,
  type AuditLog,
  type AuditPage,
  type AuditQuery,
  type DownloadsPage,
  type DownloadsQuery,
  type StoredAuditEvent,
} from '../../ports/audit-log';

/**
 * AUDIT_TABLE layout (append-only; this adapter only ever issues PutItem with
 * attribute_not_exists and Query: no UpdateItem, no DeleteItem):
 * - pk `EXPORT#{exportId}`; sk `0#requested` | `1#completed` | `1#failed` | `1#canceled` |
 *   `1#revoked` | `1#notified` | `1#notify-failed` | `2#downloaded#{at}#{random}`. The once-per-export events
 *   have fixed sort keys, so a redelivered append hits the condition and changes nothing.
 * - Only the `requested` item carries the GSI keys: gsi1pk `CHANNEL#{channelId}`,
 *   gsi1sk `{requestedAt}#{exportId}`: a channel's exports by request time.
 *   The GSI must project managerId and kind (ALL is simplest) for the filters.
 */
const ONCE_SORT_KEYS: Record<Exclude<StoredAuditEvent['type'], 'downloaded'>, string> = {
  requested: '0#requested',
  completed: '1#completed',
  failed: '1#failed',
  canceled: '1#canceled',
  // A second revoke (a retry, or another auditor) hits the condition: one revocation per export.
  revoked: '1#revoked',
  // Under `1#` with the other once-per-export events: assembleEntry reads them in its one
  // `sk < '2'` query, with no extra read per entry.
  notified: '1#notified',
  'notify-failed': '1#notify-failed',
};

// Empty key strings are refused here: DynamoDB rejects them as a start key (a 500 otherwise).
const cursorSchema = z.strictObject({
  pk: z.string().startsWith('EXPORT#').min(8),
  sk: z.string().min(1),
  gsi1pk: z.string().startsWith('CHANNEL#').min(9),
  gsi1sk: z.string().min(1),
});

const DOWNLOADS_PREFIX = '2#downloaded#';

// A start key outside `begins_with(sk, '2#downloaded#')` is a ValidationException (a 500).
const downloadsCursorSchema = z.strictObject({
  pk: z.string().startsWith('EXPORT#').min(8),
  sk: z.string().startsWith(DOWNLOADS_PREFIX).min(DOWNLOADS_PREFIX.length + 1),
});

/**
 * Items one filtered Query reads. DynamoDB filters after reading, so asking for only the
 * matches still missing would read one item per call when matches are rare.
 */
const FILTERED_PAGE_ITEMS = 200;
/** Bytes of a page as the proxy response carries it (escaped twice); Lambda's limit is 6 MB. */
const PAGE_BYTE_BUDGET = 4_500_000;

/** Reads per call before a short page is returned with its cursor (API Gateway waits 29 s). */
const MAX_QUERIES_PER_CALL = 25;

/**
 * How far a link's uses are counted. Every use appends an item (refused ones after expiry too),
 * so counting them all is a read that grows without bound and could outlast API Gateway's 29 s
 * for one entry; past either bound the count is a lower bound (AuditEntry.downloadCountCapped).
 * `pages` bounds the sequential COUNT reads when items are large (each read stops at 1 MB).
 */
export type DownloadCountCap = { items: number; pages: number };
export const DOWNLOAD_COUNT_CAP: DownloadCountCap = { items: 10_000, pages: 20 };

/** A client error (400): the cursor names the field it is about. */
export class InvalidAuditCursorError extends ValidationError {
  constructor() {
    super('cursor is not a cursor returned by this endpoint for this channel', { code: 'INVALID_CURSOR', field: 'cursor', rule: 'returned-cursor' });
  }
}

export class DynamoAuditLog implements AuditLog {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly gsiName = 'gsi1',
    /** Tests lower it to see a page end early without writing megabytes. */
    private readonly pageByteBudget = PAGE_BYTE_BUDGET,
    /** Tests lower it to see a count capped without writing 10,000 items. */
    private readonly downloadCountCap: DownloadCountCap = DOWNLOAD_COUNT_CAP,
  ) {}

  async append(input: AuditEvent): Promise<void> {
    const event = auditEventSchema.parse(input);
    const sk =
      event.type === 'downloaded'
        ? `${DOWNLOADS_PREFIX}${event.at}#${randomBytes(6).toString('hex')}`
        : ONCE_SORT_KEYS[event.type];
    const item: Record<string, unknown> = { pk: `EXPORT#${event.exportId}`, sk, ...stripUndefined(event) };
    if (event.type === 'requested') Object.assign(item, requestedKey(event));
    try {
      await this.client.send(
        new PutCommand({ TableName: this.tableName, Item: item, ConditionExpression: 'attribute_not_exists(pk)' }),
      );
    } catch (error) {
      // Already recorded (a retry or a redelivered message): the first write stands.
      if ((error as { name?: string }).name === 'ConditionalCheckFailedException') return;
      throw error;
    }
  }

  /**
   * One export's link uses, oldest first. The export must have been requested in the caller's
   * channel (its `requested` item says so); the uses are read one past the page, so the last
   * page carries no cursor.
   */
  async listDownloads(query: DownloadsQuery): Promise<DownloadsPage | null> {
    const pk = `EXPORT#${query.exportId}`;
    const startKey = query.cursor ? decodeDownloadsCursor(query.cursor, pk) : undefined;
    // Together: the uses are returned only if the `requested` item names the caller's channel.
    // One read of the uses: each is well under 1 kB (the user agent is cut to 512 characters),
    // so the 101 asked for fit DynamoDB's 1 MB page; were it ever cut short, its
    // LastEvaluatedKey is the cursor and the next page goes on from there.
    const [requested, page] = await Promise.all([
      this.client.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: 'pk = :pk AND sk = :sk',
          ExpressionAttributeValues: { ':pk': pk, ':sk': ONCE_SORT_KEYS.requested },
          ConsistentRead: true,
        }),
      ),
      this.queryDownloads(pk, {
        ScanIndexForward: true,
        Limit: query.limit + 1,
        ConsistentRead: true,
        ...(startKey ? { ExclusiveStartKey: startKey } : {}),
      }),
    ]);
    const head = auditEventSchema.safeParse(requested.Items?.[0]);
    if (!head.success || head.data.type !== 'requested' || head.data.channelId !== query.channelId) return null;

    // One item past the page: there is a next page, starting after the last one returned.
    const items = page.Items ?? [];
    const taken = items.slice(0, query.limit);
    const last = taken[taken.length - 1];
    const next = items.length > query.limit && last ? { pk: last.pk, sk: last.sk } : page.LastEvaluatedKey;
    const uses = parseEvents(taken).flatMap((event) =>
      event.type === 'downloaded' && event.channelId === query.channelId ? [downloadView(event)] : [],
    );
    return { items: uses, ...(next ? { cursor: encodeCursor(next) } : {}) };
  }

  async query(query: AuditQuery): Promise<AuditPage> {
    const channelKey = `CHANNEL#${query.channelId}`;
    let startKey = query.cursor ? decodeCursor(query.cursor, channelKey) : undefined;
    const from = query.from ? new Date(query.from).toISOString() : '0000';
    // '~' sorts after every character of `{iso}#{exportId}`, so `to` is inclusive.
    const to = query.to ? `${new Date(query.to).toISOString()}~` : '9999~';
    const filters: string[] = [];
    const values: Record<string, unknown> = { ':pk': channelKey, ':from': from, ':to': to };
    if (query.managerId) {
      filters.push('managerId = :managerId');
      values[':managerId'] = query.managerId;
    }
    if (query.kind) {
      filters.push('kind = :kind');
      values[':kind'] = query.kind;
    }
    const requested: StoredAuditEvent[] = [];
    let cursorKey: Record<string, unknown> | undefined;
    const filtered = filters.length > 0;
    // Without a filter every item read is a match, so Limit can be what is still missing. With
    // one, a page may hold more matches than needed: the cursor is then the last match taken,
    // not LastEvaluatedKey, so no unreturned match is skipped. A page cut short by the query
    // budget (rare matches) comes back with fewer items and its cursor.
    for (let queries = 0; queries < MAX_QUERIES_PER_CALL; queries++) {
      const missing = query.limit - requested.length;
      const page = await this.client.send(
        new QueryCommand({
          TableName: this.tableName,
          IndexName: this.gsiName,
          KeyConditionExpression: 'gsi1pk = :pk AND gsi1sk BETWEEN :from AND :to',
          ...(filtered ? { FilterExpression: filters.join(' AND ') } : {}),
          ExpressionAttributeValues: values,
          ScanIndexForward: false,
          Limit: filtered ? Math.max(FILTERED_PAGE_ITEMS, missing) : missing,
          ...(startKey ? { ExclusiveStartKey: startKey } : {}),
        }),
      );
      const items = page.Items ?? [];
      let taken = 0;
      for (const item of items) {
        if (requested.length === query.limit) break;
        taken++;
        const parsed = auditEventSchema.safeParse(item);
        if (parsed.success && parsed.data.type === 'requested') requested.push(parsed.data);
      }
      const last = items[taken - 1];
      cursorKey = taken < items.length && last ? indexKeyOf(last) : page.LastEvaluatedKey;
      startKey = cursorKey;
      if (!cursorKey || requested.length === query.limit) break;
    }

    const items = await Promise.all(requested.map((event) => this.assembleEntry(event)));
    // A page must fit Lambda's 6 MB response once API Gateway's proxy format has escaped the
    // body again: entries carry filters (up to 100 kB) and link uses whose text the link's
    // holder chose. A page that would pass the budget ends early, with the cursor after its last
    // entry (at least one entry per page, which alone stays far below it).
    let bytes = 0;
    for (let i = 0; i < items.length; i++) {
      bytes += Buffer.byteLength(JSON.stringify(JSON.stringify(items[i])));
      const event = requested[i - 1];
      if (bytes > this.pageByteBudget && i > 0 && event) {
        return { items: items.slice(0, i), cursor: encodeCursor(requestedKey(event)) };
      }
    }
    return { items, ...(cursorKey ? { cursor: encodeCursor(cursorKey) } : {}) };
  }

  /**
   * The once-per-export events, the most recent downloads and the number of downloads: a bounded
   * read however often the link was used (see AuditEntry.downloads).
   */
  private async assembleEntry(requested: StoredAuditEvent): Promise<AuditEntry> {
    const pk = `EXPORT#${requested.exportId}`;
    const [once, recent] = await Promise.all([
      // Sort keys 0#… and 1#…: at most six items.
      this.client.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: 'pk = :pk AND sk < :downloads',
          ExpressionAttributeValues: { ':pk': pk, ':downloads': '2' },
          ConsistentRead: true,
        }),
      ),
      this.queryDownloads(pk, { ScanIndexForward: false, Limit: MAX_LISTED_DOWNLOADS, ConsistentRead: true }),
    ]);
    const entry = assembleAuditEntry(requested, [...parseEvents(once.Items), ...parseEvents(recent.Items)]);
    if (recent.LastEvaluatedKey) {
      const { count, capped } = await this.countDownloads(pk);
      // The listed uses exist even when the page budget stopped the count short of them.
      entry.downloadCount = Math.max(count, entry.downloads.length);
      if (capped) entry.downloadCountCapped = true;
    }
    return entry;
  }

  /** One Query over an export's link uses (sort keys `2#downloaded#…`): listing, recent, count. */
  private queryDownloads(
    pk: string,
    options: Pick<QueryCommandInput, 'ScanIndexForward' | 'Limit' | 'ConsistentRead' | 'ExclusiveStartKey' | 'Select'>,
  ): Promise<QueryCommandOutput> {
    return this.client.send(
      new QueryCommand({
        TableName: this.tableName,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :downloads)',
        ExpressionAttributeValues: { ':pk': pk, ':downloads': DOWNLOADS_PREFIX },
        ...options,
      }),
    );
  }

  /**
   * Only when there are more than the listed ones: a COUNT query returns no items. Bounded by
   * downloadCountCap: `capped` says more uses exist than `count` (a lower bound then).
   */
  private async countDownloads(pk: string): Promise<{ count: number; capped: boolean }> {
    const { items: maxItems, pages: maxPages } = this.downloadCountCap;
    let count = 0;
    let startKey: Record<string, unknown> | undefined;
    for (let pages = 0; pages < maxPages; pages++) {
      const page = await this.queryDownloads(pk, {
        Select: 'COUNT',
        // One item past the cap: a link used exactly `maxItems` times is not reported capped.
        Limit: maxItems + 1 - count,
        ...(startKey ? { ExclusiveStartKey: startKey } : {}),
      });
      count += page.Count ?? 0;
      startKey = page.LastEvaluatedKey;
      if (count > maxItems) return { count: maxItems, capped: true };
      if (!startKey) return { count, capped: false };
    }
    // The page budget ran out first (large items): what was counted is a lower bound.
    return { count, capped: true };
  }
}

/** Folds an export's events into the one entry the auditor sees. Pure: shared with fakes. */
export function assembleAuditEntry(requested: StoredAuditEvent, events: readonly StoredAuditEvent[]): AuditEntry {
  if (requested.type !== 'requested') throw new Error('assembleAuditEntry needs the requested event');
  const entry: AuditEntry = {
    exportId: requested.exportId,
    channelId: requested.channelId,
    requestedBy: { managerId: requested.managerId, name: requested.managerName, ...clientOf(requested) },
    requestedAt: requested.at,
    kind: requested.kind,
    scope: requested.scope,
    filters: requested.filters,
    ...(requested.range ? { range: requested.range } : {}),
    reason: requested.reason,
    status: 'requested',
    downloads: [],
    downloadCount: 0,
  };
  for (const event of events) {
    if (event.exportId !== requested.exportId || event.channelId !== requested.channelId) continue;
    switch (event.type) {
      case 'completed':
        Object.assign(entry, {
          // A revocation read first (the fake keeps events in append order, the table in key order) keeps its status.
          status: entry.status === 'revoked' ? 'revoked' : 'completed',
          rowCount: event.rowCount,
          sha256: event.sha256,
          completedAt: event.at,
          ...(event.fileSize !== undefined ? { fileSize: event.fileSize } : {}),
          ...(event.fileName !== undefined ? { fileName: event.fileName } : {}),
          ...(event.sheets !== undefined ? { sheets: event.sheets } : {}),
          ...(event.linkExpiresAt !== undefined ? { linkExpiresAt: event.linkExpiresAt } : {}),
        });
        break;
      case 'failed':
        if (entry.status !== 'completed' && entry.status !== 'revoked') {
          Object.assign(entry, { status: 'failed', error: { code: event.code, message: event.message }, failedAt: event.at });
        }
        break;
      case 'canceled':
        if (entry.status === 'requested') entry.status = 'canceled';
        // Who stopped the export and when is what an auditor asks of a cancel; kept even when
        // another terminal event decides the status, since the trail recorded both.
        entry.canceledAt = event.at;
        if (event.managerId !== undefined) entry.canceledBy = { managerId: event.managerId, ...clientOf(event) };
        if (event.reason !== undefined) entry.cancelReason = event.reason;
        break;
      case 'revoked':
        // Only a completed export can be revoked: the revocation is its last word.
        entry.status = 'revoked';
        entry.revokedAt = event.at;
        entry.revokedBy = { managerId: event.managerId, ...clientOf(event) };
        entry.revokeReason = event.reason;
        break;
      case 'downloaded':
        entry.downloads.push(downloadView(event));
        break;
      case 'notified':
        entry.notification = { status: 'delivered', at: event.at, event: event.event };
        break;
      case 'notify-failed':
        // A later delivery that got through outranks a dead letter, whichever is read first.
        if (entry.notification?.status !== 'delivered') {
          entry.notification = { status: 'failed', at: event.at, event: event.event, reason: event.reason };
        }
        break;
      default:
        break;
    }
  }
  entry.downloads.sort((a, b) => a.at.localeCompare(b.at));
  entry.downloadCount = entry.downloads.length;
  // The most recent ones, when the caller handed in more (the fake keeps every event).
  if (entry.downloads.length > MAX_LISTED_DOWNLOADS) entry.downloads = entry.downloads.slice(-MAX_LISTED_DOWNLOADS);
  return entry;
}

/** A `downloaded` event as the auditor sees it (the trail's own keys left out). */
export function downloadView(event: Extract<StoredAuditEvent, { type: 'downloaded' }>): AuditDownload {
  return stripUndefined({
    at: event.at,
    managerId: event.managerId,
    ip: event.ip,
    userAgent: event.userAgent,
    outcome: event.outcome,
    goneBecause: event.goneBecause,
  });
}

/** Where an act came from, as the entry shows it beside the actor: only what was recorded. */
function clientOf(event: { ip?: string | undefined; userAgent?: string | undefined }): AuditClient {
  return stripUndefined({ ip: event.ip, userAgent: event.userAgent });
}

/** A `requested` item's table and index keys: how it is written, and a cursor just after it. */
function requestedKey(event: { exportId: string; channelId: string; at: string }): Record<string, string> {
  return {
    pk: `EXPORT#${event.exportId}`,
    sk: ONCE_SORT_KEYS.requested,
    gsi1pk: `CHANNEL#${event.channelId}`,
    gsi1sk: `${new Date(event.at).toISOString()}#${event.exportId}`,
  };
}

/** The GSI's start key for an item: its table key plus its index key. */
function indexKeyOf(item: Record<string, unknown>): Record<string, unknown> {
  return { pk: item.pk, sk: item.sk, gsi1pk: item.gsi1pk, gsi1sk: item.gsi1sk };
}

function encodeCursor(key: Record<string, unknown>): string {
  return Buffer.from(JSON.stringify(key), 'utf8').toString('base64url');
}

/** The stored events among raw items (an item that does not parse is skipped, not thrown). */
function parseEvents(items: Record<string, unknown>[] | undefined): StoredAuditEvent[] {
  return (items ?? []).flatMap((item) => {
    const parsed = auditEventSchema.safeParse(item);
    return parsed.success ? [parsed.data] : [];
  });
}

/** A start key from a cursor, of the schema's shape and inside the read it is for; else 400. */
function decodeKey<T extends Record<string, unknown>>(cursor: string, schema: z.ZodType<T>, inside: (key: T) => boolean): T {
  try {
    const parsed = schema.parse(JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')));
    if (inside(parsed)) return parsed;
  } catch {
    // reported below, as any other bad cursor
  }
  throw new InvalidAuditCursorError();
}

function decodeCursor(cursor: string, channelKey: string): Record<string, unknown> {
  // A cursor from another channel must not become a way to page through that channel's trail.
  return decodeKey(cursor, cursorSchema, (key) => key.gsi1pk === channelKey);
}

function decodeDownloadsCursor(cursor: string, pk: string): Record<string, unknown> {
  // Another export's cursor must not start this export's read somewhere else.
  return decodeKey(cursor, downloadsCursorSchema, (key) => key.pk === pk);
}

function stripUndefined<T extends Record<string, unknown>>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
