import type { RawItem, WorkspaceSource } from '../ports/source-data';

/** Past this many entries, expired ones are dropped before another is added. */
const MAX_ENTRIES = 1024;

/**
 * Keeps the workspace items named in `cacheable` in a warm Lambda for a short while; every other
 * key is read through each time. Only display data may be listed (the directory's team and
 * manager names, read by every case chunk): an export's definition (segment conditions, profile
 * schemas) is read once at the request and kept with the job, and a copy served from here would
 * be up to `ttlMs` old and differ between warm and cold containers of one export (a segment
 * edited just before an export used its old conditions). So the cache holds nothing unless told.
 */
export class CachingWorkspaceSource implements WorkspaceSource {
  private readonly items = new Map<string, { at: number; value: Promise<RawItem | null> }>();
  private readonly cacheable: ReadonlySet<string>;

  constructor(
    private readonly inner: WorkspaceSource,
    cacheable: readonly string[],
    private readonly ttlMs = 30_000,
    private readonly now: () => number = Date.now,
  ) {
    this.cacheable = new Set(cacheable);
  }

  getItem(channelId: string, sk: string): Promise<RawItem | null> {
    if (!this.cacheable.has(sk)) return this.inner.getItem(channelId, sk);
    const key = `${channelId}\u0000${sk}`;
    const now = this.now();
    const hit = this.items.get(key);
    if (hit && now - hit.at < this.ttlMs) return hit.value;
    // Expired entries go when the map grows: a warm Lambda serving many channels must not keep
    // every channel it ever saw.
    if (this.items.size >= MAX_ENTRIES) for (const [k, e] of this.items) if (now - e.at >= this.ttlMs) this.items.delete(k);
    const entry = { at: now, value: this.inner.getItem(channelId, sk) };
    this.items.set(key, entry);
    // Only this entry: a newer request for the same key may have replaced it meanwhile.
    entry.value.catch(() => {
      if (this.items.get(key) === entry) this.items.delete(key);
    });
    return entry.value;
  }
}
