import { randomBytes } from 'node:crypto';
import { PutCommand, QueryCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import { ValidationError } from '../../domain/errors';
import {
  auditEventSchema,
  type AuditEntry,
  type AuditEvent,
  type AuditLog,
  type AuditPage,
  type AuditQuery,
  type StoredAuditEvent,
} from '../../ports/audit-log';

/**
 * AUDIT_TABLE layout (append-only; this adapter only ever issues PutItem with
 * attribute_not_exists and Query: no UpdateItem, no DeleteItem):
 * - pk `EXPORT#{exportId}`; sk `0#requested` | `1#completed` | `1#failed` | `1#canceled` |
 *   `2#downloaded#{at}#{random}`. The once-per-export events have fixed sort keys, so a
 *   redelivered append hits the condition and changes nothing.
 * - Only the `requested` item carries the GSI keys: gsi1pk `CHANNEL#{channelId}`,
 *   gsi1sk `{requestedAt}#{exportId}`: a channel's exports by request time.
 *   The GSI must project managerId and kind (ALL is simplest) for the filters.
 */
const ONCE_SORT_KEYS: Record<Exclude<StoredAuditEvent['type'], 'downloaded'>, string> = {
  requested: '0#requested',
  completed: '1#completed',
  failed: '1#failed',
  canceled: '1#canceled',
};

const cursorSchema = z.object({
  pk: z.string().startsWith('EXPORT#'),
  sk: z.string(),
  gsi1pk: z.string().startsWith('CHANNEL#'),
  gsi1sk: z.string(),
});

/** A client error (400): the cursor names the field it is about. */
export class InvalidAuditCursorError extends ValidationError {
  constructor() {
    super('cursor is not a cursor returned by this endpoint for this channel', { code: 'INVALID_CURSOR', field: 'cursor' });
  }
}

export class DynamoAuditLog implements AuditLog {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly gsiName = 'gsi1',
  ) {}

  async append(input: AuditEvent): Promise<void> {
    const event = auditEventSchema.parse(input);
    const sk =
      event.type === 'downloaded'
        ? `2#downloaded#${event.at}#${randomBytes(6).toString('hex')}`
        : ONCE_SORT_KEYS[event.type];
    const item: Record<string, unknown> = { pk: `EXPORT#${event.exportId}`, sk, ...stripUndefined(event) };
    if (event.type === 'requested') {
      item.gsi1pk = `CHANNEL#${event.channelId}`;
      item.gsi1sk = `${new Date(event.at).toISOString()}#${event.exportId}`;
    }
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
    let lastKey: Record<string, unknown> | undefined;
    // A filter is applied after Limit, so ask only for what is still missing: the page can then
    // never hold more than `limit` matches, and LastEvaluatedKey never skips an unreturned one.
    do {
      const page = await this.client.send(
        new QueryCommand({
          TableName: this.tableName,
          IndexName: this.gsiName,
          KeyConditionExpression: 'gsi1pk = :pk AND gsi1sk BETWEEN :from AND :to',
          ...(filters.length > 0 ? { FilterExpression: filters.join(' AND ') } : {}),
          ExpressionAttributeValues: values,
          ScanIndexForward: false,
          Limit: query.limit - requested.length,
          ...(startKey ? { ExclusiveStartKey: startKey } : {}),
        }),
      );
      for (const item of page.Items ?? []) {
        const parsed = auditEventSchema.safeParse(item);
        if (parsed.success && parsed.data.type === 'requested') requested.push(parsed.data);
      }
      lastKey = page.LastEvaluatedKey;
      startKey = lastKey;
    } while (lastKey && requested.length < query.limit);

    const items = await Promise.all(requested.map((event) => this.assembleEntry(event)));
    return { items, ...(lastKey ? { cursor: encodeCursor(lastKey) } : {}) };
  }

  private async assembleEntry(requested: StoredAuditEvent): Promise<AuditEntry> {
    const events: StoredAuditEvent[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.client.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: 'pk = :pk',
          ExpressionAttributeValues: { ':pk': `EXPORT#${requested.exportId}` },
          ConsistentRead: true,
          ...(startKey ? { ExclusiveStartKey: startKey } : {}),
        }),
      );
      for (const item of page.Items ?? []) {
        const parsed = auditEventSchema.safeParse(item);
        if (parsed.success) events.push(parsed.data);
      }
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return assembleAuditEntry(requested, events);
  }
}

/** Folds an export's events into the one entry the auditor sees. Pure: shared with fakes. */
export function assembleAuditEntry(requested: StoredAuditEvent, events: readonly StoredAuditEvent[]): AuditEntry {
  if (requested.type !== 'requested') throw new Error('assembleAuditEntry needs the requested event');
  const entry: AuditEntry = {
    exportId: requested.exportId,
    channelId: requested.channelId,
    requestedBy: { managerId: requested.managerId, name: requested.managerName },
    requestedAt: requested.at,
    kind: requested.kind,
    scope: requested.scope,
    filters: requested.filters,
    ...(requested.range ? { range: requested.range } : {}),
    reason: requested.reason,
    status: 'requested',
    downloads: [],
  };
  for (const event of events) {
    if (event.exportId !== requested.exportId || event.channelId !== requested.channelId) continue;
    switch (event.type) {
      case 'completed':
        Object.assign(entry, {
          status: 'completed',
          rowCount: event.rowCount,
          sha256: event.sha256,
          completedAt: event.at,
          ...(event.fileSize !== undefined ? { fileSize: event.fileSize } : {}),
          ...(event.fileName !== undefined ? { fileName: event.fileName } : {}),
        });
        break;
      case 'failed':
        if (entry.status !== 'completed') Object.assign(entry, { status: 'failed', error: { code: event.code, message: event.message } });
        break;
      case 'canceled':
        if (entry.status === 'requested') entry.status = 'canceled';
        break;
      case 'downloaded':
        entry.downloads.push(
          stripUndefined({ at: event.at, managerId: event.managerId, ip: event.ip, userAgent: event.userAgent, outcome: event.outcome }),
        );
        break;
      default:
        break;
    }
  }
  entry.downloads.sort((a, b) => a.at.localeCompare(b.at));
  return entry;
}

function encodeCursor(key: Record<string, unknown>): string {
  return Buffer.from(JSON.stringify(key), 'utf8').toString('base64url');
}

function decodeCursor(cursor: string, channelKey: string): Record<string, unknown> {
  try {
    const parsed = cursorSchema.parse(JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')));
    // A cursor from another channel must not become a way to page through that channel's trail.
    if (parsed.gsi1pk !== channelKey) throw new InvalidAuditCursorError();
    return parsed;
  } catch {
    throw new InvalidAuditCursorError();
  }
}

function stripUndefined<T extends Record<string, unknown>>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
