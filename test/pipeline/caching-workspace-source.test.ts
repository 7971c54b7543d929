import { describe, expect, it } from 'vitest';
import { CachingWorkspaceSource } from '../../shared/adapters/caching-workspace-source';
import type { RawItem, WorkspaceSource } from '../../shared/ports/source-data';

/** An inner source whose answers the test settles by hand, counting reads per key. */
function controlledSource() {
  const reads = new Map<string, number>();
  const pending: { key: string; resolve: (v: RawItem | null) => void; reject: (e: Error) => void }[] = [];
  const inner: WorkspaceSource = {
    getItem: (channelId, sk) =>
      new Promise((resolve, reject) => {
        const key = `${channelId}/${sk}`;
        reads.set(key, (reads.get(key) ?? 0) + 1);
        pending.push({ key, resolve, reject });
      }),
  };
  return { inner, reads, pending };
}

describe('CachingWorkspaceSource', () => {
  it('serves a key from memory within the TTL and reads it again after', async () => {
    const { inner, reads, pending } = controlledSource();
    let now = 0;
    const cache = new CachingWorkspaceSource(inner, ['settings'], 30_000, () => now);
    const first = cache.getItem('ch', 'settings');
    pending.shift()?.resolve({ v: 1 });
    expect(await first).toEqual({ v: 1 });
    now = 29_999;
    expect(await cache.getItem('ch', 'settings')).toEqual({ v: 1 });
    expect(reads.get('ch/settings')).toBe(1);
    now = 30_000;
    const again = cache.getItem('ch', 'settings');
    pending.shift()?.resolve({ v: 2 });
    expect(await again).toEqual({ v: 2 });
    expect(reads.get('ch/settings')).toBe(2);
  });

  it('forgets a failed read, but a late failure never removes the newer entry that replaced it', async () => {
    const { inner, reads, pending } = controlledSource();
    let now = 0;
    const cache = new CachingWorkspaceSource(inner, ['settings'], 30_000, () => now);
    const old = cache.getItem('ch', 'settings');
    now = 31_000; // the first read is still pending when its entry expires
    const fresh = cache.getItem('ch', 'settings');
    const [oldRead, freshRead] = [pending.shift(), pending.shift()];
    freshRead?.resolve({ v: 'fresh' });
    expect(await fresh).toEqual({ v: 'fresh' });
    oldRead?.reject(new Error('throttled'));
    await expect(old).rejects.toThrow('throttled');
    expect(await cache.getItem('ch', 'settings')).toEqual({ v: 'fresh' });
    expect(reads.get('ch/settings')).toBe(2);
    // A failure of the current entry is not cached.
    now = 70_000;
    const failing = cache.getItem('ch', 'settings');
    pending.shift()?.reject(new Error('down'));
    await expect(failing).rejects.toThrow('down');
    const retried = cache.getItem('ch', 'settings');
    pending.shift()?.resolve({ v: 'back' });
    expect(await retried).toEqual({ v: 'back' });
  });

  it('reads every key it was not told to cache through each time (segments and profile schemas are never served old)', async () => {
    const { inner, reads, pending } = controlledSource();
    let now = 0;
    const cache = new CachingWorkspaceSource(inner, ['DIRECTORY'], 30_000, () => now);
    for (const [i, sk] of ['SEGMENT#s1', 'PROFILE_SCHEMA#users', 'SEGMENT#s1', 'PROFILE_SCHEMA#users'].entries()) {
      const read = cache.getItem('ch', sk);
      pending.shift()?.resolve({ v: i });
      expect(await read).toEqual({ v: i });
      now += 1_000;
    }
    expect(reads.get('ch/SEGMENT#s1')).toBe(2);
    expect(reads.get('ch/PROFILE_SCHEMA#users')).toBe(2);
    // The listed key is still served from memory within the TTL.
    const first = cache.getItem('ch', 'DIRECTORY');
    pending.shift()?.resolve({ teams: [] });
    await first;
    expect(await cache.getItem('ch', 'DIRECTORY')).toEqual({ teams: [] });
    expect(reads.get('ch/DIRECTORY')).toBe(1);
  });

  it('drops expired entries once it holds many, so a warm Lambda does not keep every channel it saw', async () => {
    const { inner, reads, pending } = controlledSource();
    let now = 0;
    const cache = new CachingWorkspaceSource(inner, ['settings'], 1_000, () => now);
    for (let i = 0; i < 1024; i++) void cache.getItem(`ch-${i}`, 'settings');
    for (const p of pending.splice(0)) p.resolve({});
    now = 5_000;
    void cache.getItem('ch-new', 'settings');
    pending.splice(0).forEach((p) => p.resolve({}));
    expect((cache as unknown as { items: Map<string, unknown> }).items.size).toBe(1);
    expect(reads.size).toBe(1025);
  });
});
