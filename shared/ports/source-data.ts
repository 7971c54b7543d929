/**
 * Read side of the source tables. Items are returned as raw records (the chunk handler
 * validates them with the domain's record schemas), one page at a time so a chunk never
 * holds more than a page of raw items besides its encoder.
 */
export type RawItem = Record<string, unknown>;

export interface CasesSource {
  /** Cases of one day bucket whose creation time is in [fromIso, toIso), in key (time) order. */
  queryDay(channelId: string, day: string, fromIso: string, toIso: string): AsyncIterable<RawItem[]>;
}

export interface UsersSource {
  /** Every user of one key-range slice, in user-id order. */
  queryShard(channelId: string, shard: number): AsyncIterable<RawItem[]>;
  /** Users by id (BatchGetItem); missing ids are skipped; result order is not guaranteed. */
  getMany(channelId: string, userIds: readonly string[]): Promise<RawItem[]>;
}

export interface WorkspaceSource {
  /** Channel settings, profile schema, a segment or a directory entry by sort key; null when missing. */
  getItem(channelId: string, sk: string): Promise<RawItem | null>;
}

export interface SourceWriter {
  putCases(channelId: string, records: readonly RawItem[]): Promise<void>;
  putUsers(channelId: string, records: readonly RawItem[]): Promise<void>;
  putWorkspaceItems(channelId: string, items: readonly RawItem[]): Promise<void>;
}
