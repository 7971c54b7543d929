import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoCooldownStore } from '../../shared/adapters/aws/dynamo-cooldown-store';
import { cooldownTable, startDynalite, type LocalDynamo } from './support/dynalite';

let dynamo: LocalDynamo;
let store: DynamoCooldownStore;

beforeAll(async () => {
  dynamo = await startDynalite([cooldownTable('cooldowns')]);
  store = new DynamoCooldownStore(dynamo.doc, 'cooldowns');
});
afterAll(async () => dynamo.stop());

const now = new Date('2026-03-01T10:00:00Z');

describe('DynamoCooldownStore on dynalite', () => {
  it('lets exactly one of 20 concurrent acquires win, the rest get Retry-After', async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => store.acquire({ key: 'k-race', holder: `h${i}`, now, durationSeconds: 1800 })),
    );
    const winners = results.filter((r) => r.acquired);
    expect(winners).toHaveLength(1);
    for (const loser of results.filter((r) => !r.acquired)) {
      expect(loser.retryAfterSeconds).toBe(1800);
    }
  });

  it('does not block another key, and an expired item that still exists does not block', async () => {
    expect((await store.acquire({ key: 'k-other', holder: 'a', now, durationSeconds: 1800 })).acquired).toBe(true);
    // The item TTL has not collected yet: expiresAt is in the past but the item is there.
    await dynamo.doc.send(
      new PutCommand({
        TableName: 'cooldowns',
        Item: { pk: 'k-stale', holder: 'old', expiresAt: now.getTime() - 1000, ttl: Math.floor(now.getTime() / 1000) - 1 },
      }),
    );
    expect((await store.acquire({ key: 'k-stale', holder: 'new', now, durationSeconds: 1800 })).acquired).toBe(true);
    const later = new Date(now.getTime() + 600_000);
    expect(await store.acquire({ key: 'k-stale', holder: 'third', now: later, durationSeconds: 1800 })).toEqual({
      acquired: false,
      retryAfterSeconds: 1200,
      holder: 'new',
      acquiredAt: now.toISOString(),
    });
  });

  it('re-acquires for the same holder, and release frees only its own holder', async () => {
    expect((await store.acquire({ key: 'k-rel', holder: 'x', now, durationSeconds: 60 })).acquired).toBe(true);
    expect((await store.acquire({ key: 'k-rel', holder: 'x', now, durationSeconds: 60 })).acquired).toBe(true);
    await store.release('k-rel', 'someone-else');
    expect((await store.acquire({ key: 'k-rel', holder: 'y', now, durationSeconds: 60 })).acquired).toBe(false);
    await store.release('k-rel', 'x');
    expect((await store.acquire({ key: 'k-rel', holder: 'y', now, durationSeconds: 60 })).acquired).toBe(true);
  });
});
