import type { RawItem, WorkspaceSource } from '../ports/source-data';

/** Past this many entries, expired ones are dropped before another is added. */
const MAX_ENTRIES = 1024;

/**
 * Workspace settings change rarely and every chunk of an export reads the same four items, so
 * a warm Lambda keeps them for a short while. The finalizer still compares each part's columns
 * fingerprint with its own, so a schema change inside the window cannot misalign a file.
 */
export class CachingWorkspaceSource implements WorkspaceSource {
  private readonly items = new Map<string, { at: number; value: Promise<RawItem | null> }>();

  constructor(
    private readonly inner: WorkspaceSource,
    private readonly ttlMs = 30_000,
    private readonly now: () => number = Date.now,
  ) {}

  getItem(channelId: string, sk: string): Promise<RawItem | null> {
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

  queryPrefix(channelId: string, skPrefix: string): Promise<RawItem[]> {
    return this.inner.queryPrefix(channelId, skPrefix);
  }
}
