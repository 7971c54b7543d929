import type { RawItem, WorkspaceSource } from '../ports/source-data';

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
    const hit = this.items.get(key);
    if (hit && this.now() - hit.at < this.ttlMs) return hit.value;
    const value = this.inner.getItem(channelId, sk);
    this.items.set(key, { at: this.now(), value });
    value.catch(() => this.items.delete(key));
    return value;
  }

  queryPrefix(channelId: string, skPrefix: string): Promise<RawItem[]> {
    return this.inner.queryPrefix(channelId, skPrefix);
  }
}
