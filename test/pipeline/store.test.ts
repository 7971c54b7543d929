import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { startLocalStack, type LocalStack } from '../../infra/local/stack';
import { DynamoExportStore } from '../../shared/adapters/aws/dynamo-export-store';
import type { ExportJob } from '../../shared/app/export-job';
import { planChunks } from '../../shared/app/plan-chunks';
import type { ExportStore } from '../../shared/ports/export-store';
import { makeJob } from './job-fixture';

function job(exportId: string, createdAt: string, overrides: Partial<ExportJob> = {}): ExportJob {
  return makeJob({ exportId, channelId: 'ch', createdAt, updatedAt: createdAt, chunksTotal: 3, encryption: { params: { a: 1 }, wrappedKey: 'w' }, ...overrides });
}

describe('DynamoExportStore on dynalite', () => {
  let stack: LocalStack;
  let ddb: DynamoDBDocumentClient;

  /**
   * A store on the shared table with a clock of its own, starting at the fixtures' date: a test
   * that moves time (leases, TTLs) must not move it for whichever test runs next. Each test also
   * uses export ids, idempotency keys and list channels no other test does, so nothing it reads
   * was written by another test, in any order.
   */
  function clockedStore(start = '2025-07-01T00:00:00.000Z') {
    let clock = new Date(start);
    return {
      store: new DynamoExportStore(ddb, stack.tables.exports, () => clock),
      now: () => clock,
      advance: (ms: number) => {
        clock = new Date(clock.getTime() + ms);
      },
    };
  }

  beforeAll(async () => {
    stack = await startLocalStack({ port: 0, pollers: false });
    ddb = DynamoDBDocumentClient.from(stack.clients.ddb, { marshallOptions: { removeUndefinedValues: true } });
  });

  afterAll(async () => {
    await stack?.stop();
  });

  it('creates once and hides a job from other channels', async () => {
    const { store } = clockedStore();
    expect(await store.createJob(job('j-create', '2025-07-01T00:00:00.000Z'))).toBe(true);
    expect(await store.createJob(job('j-create', '2025-07-01T00:00:00.000Z'))).toBe(false);
    expect((await store.getJob('ch', 'j-create'))?.exportId).toBe('j-create');
    expect(await store.getJob('other', 'j-create')).toBeNull();
  });

  it('counts a chunk once however often it is marked (a set, not a counter)', async () => {
    const { store } = clockedStore();
    await store.createJob(job('j-count', '2025-07-01T00:00:00.000Z'));
    const first = await store.markChunkDone('ch', 'j-count', 'users-0', { rowCount: 10 });
    const again = await store.markChunkDone('ch', 'j-count', 'users-0', { rowCount: 10 });
    const results = await Promise.all([1, 2, 3, 4].map(() => store.markChunkDone('ch', 'j-count', 'users-1', { rowCount: 5 })));
    expect(first).toEqual({ firstTime: true, done: 1, total: 3, rowsWritten: 10 });
    expect(again).toEqual({ firstTime: false, done: 1, total: 3, rowsWritten: 10 });
    expect(results.filter((r) => r.firstTime)).toHaveLength(1);
    const saved = await store.getJob('ch', 'j-count');
    expect([saved?.chunksDone, saved?.rowsWritten]).toEqual([2, 15]);
    await expect(store.markChunkDone('other', 'j-count', 'users-2', { rowCount: 1 })).rejects.toThrow(/not found/);
  });

  it('C6: skipped source records add up on the job once per chunk; a job without any has no count', async () => {
    const { store } = clockedStore();
    await store.createJob(job('j-skip', '2025-07-01T00:00:00.500Z', { managerId: 'm-skip' }));
    await store.markChunkDone('ch', 'j-skip', 'users-0', { rowCount: 3 });
    expect((await store.getJob('ch', 'j-skip'))?.skippedRecords).toBeUndefined();
    await store.markChunkDone('ch', 'j-skip', 'users-1', { rowCount: 3, skippedRecords: 2 });
    await store.markChunkDone('ch', 'j-skip', 'users-1', { rowCount: 3, skippedRecords: 2 });
    await store.markChunkDone('ch', 'j-skip', 'users-2', { rowCount: 1, skippedRecords: 1 });
    const saved = await store.getJob('ch', 'j-skip');
    expect([saved?.rowsWritten, saved?.skippedRecords]).toEqual([7, 3]);
  });

  it('transitions conditionally: a canceled export never becomes completed', async () => {
    const { store } = clockedStore();
    // A queued job of its own: the first transition is from `queued`.
    await store.createJob(job('j-transition', '2025-07-01T00:00:00.000Z'));
    expect(await store.setStatus('ch', 'j-transition', 'running', ['queued'])).toBe(true);
    expect(await store.setStatus('ch', 'j-transition', 'canceled', ['queued', 'running', 'finalizing'])).toBe(true);
    expect(await store.setStatus('ch', 'j-transition', 'completed', ['finalizing'], { rowCount: 1 })).toBe(false);
    expect(await store.setStatus('ch', 'j-transition', 'failed', ['queued', 'running', 'finalizing'])).toBe(false);
    expect((await store.getJob('ch', 'j-transition'))?.status).toBe('canceled');
  });

  it('revokes a completed export only: the revocation round-trips, and the TTL stays the completion\'s', async () => {
    const { store } = clockedStore();
    const raw = async () =>
      (await DynamoDBDocumentClient.from(stack.clients.ddb).send(new GetCommand({ TableName: stack.tables.exports, Key: { pk: 'EXPORT#j-revoke', sk: 'JOB' } }))).Item;
    await store.createJob(job('j-revoke', '2025-07-01T00:00:00.000Z'));
    const revocation = { revokedAt: '2025-07-02T00:00:00.000Z', revokedBy: 'm-9', revokeReason: 'link leaked' };
    // Not completed yet: nothing to revoke.
    expect(await store.setStatus('ch', 'j-revoke', 'revoked', ['completed'], revocation)).toBe(false);
    expect(await store.setStatus('ch', 'j-revoke', 'completed', ['queued'], { expiresAt: '2025-07-08T00:00:00.000Z', completedAt: '2025-07-01T00:10:00.000Z' })).toBe(true);
    const ttl = (await raw())?.ttl;
    expect(await store.setStatus('ch', 'j-revoke', 'revoked', ['completed'], revocation)).toBe(true);
    expect(await store.getJob('ch', 'j-revoke')).toMatchObject({ status: 'revoked', ...revocation, completedAt: '2025-07-01T00:10:00.000Z' });
    expect((await raw())?.ttl).toBe(ttl);
    // Once: a second revoke (or a late completion) fails the condition.
    expect(await store.setStatus('ch', 'j-revoke', 'revoked', ['completed'], { ...revocation, revokedBy: 'm-1' })).toBe(false);
    expect(await store.setStatus('ch', 'j-revoke', 'completed', ['finalizing'], { rowCount: 1 })).toBe(false);
    expect((await store.getJob('ch', 'j-revoke'))?.revokedBy).toBe('m-9');
    // Listed with the rest, read through the same schema.
    expect((await store.listJobs('ch', 'm1', undefined, 100)).items.find((j) => j.exportId === 'j-revoke')?.status).toBe('revoked');
  });

  it('claims are leases: one holder at a time, taken over when stale, closed by the sent flag', async () => {
    const { store, advance } = clockedStore();
    await store.createJob(job('j-claims', '2025-07-01T00:00:01.000Z'));
    expect(await store.claimLease('ch', 'j-claims', 'finalizeClaim')).toBeDefined();
    expect(await store.claimLease('ch', 'j-claims', 'finalizeClaim')).toBeUndefined();
    advance(121_000);
    expect(await store.claimLease('ch', 'j-claims', 'finalizeClaim')).toBeDefined();
    await store.updateProgress('ch', 'j-claims', { finalizeEnqueued: true });
    advance(600_000);
    expect(await store.claimLease('ch', 'j-claims', 'finalizeClaim')).toBeUndefined();
    expect(await store.claimFlag('ch', 'j-claims', 'notifyEnqueued')).toBe(true);
    expect(await store.claimFlag('ch', 'j-claims', 'notifyEnqueued')).toBe(false);
  });

  it('a lease is given back only by its holder: a lapsed holder cannot free its successor', async () => {
    const { store, advance } = clockedStore();
    await store.createJob(job('j-lease', '2025-07-01T00:00:03.000Z', { managerId: 'm-lease' }));
    const first = await store.claimLease('ch', 'j-lease', 'usersClaim');
    expect(first).toBeDefined();
    expect(await store.claimLease('ch', 'j-lease', 'usersClaim')).toBeUndefined();
    // The first holder stalls past the lease; a second delivery takes it over.
    advance(121_000);
    const second = await store.claimLease('ch', 'j-lease', 'usersClaim');
    expect(second).toBeDefined();
    expect(second).not.toBe(first);
    // The first holder then fails and gives "its" lease back: the second keeps it.
    await store.releaseClaim('ch', 'j-lease', 'usersClaim', first!);
    expect(await store.claimLease('ch', 'j-lease', 'usersClaim')).toBeUndefined();
    // The second gives it back: free at once, well within the lease.
    await store.releaseClaim('ch', 'j-lease', 'usersClaim', second!);
    expect(await store.claimLease('ch', 'j-lease', 'usersClaim')).toBeDefined();
  });

  it('advances a cases job to the users phase once', async () => {
    const { store } = clockedStore();
    await store.createJob(job('j-advance', '2025-07-01T00:00:02.000Z', { kind: 'cases', phase: 'main', sheetChunks: { cases: 3, users: 0 } }));
    expect(await store.advanceToUsersPhase('ch', 'j-advance', 2)).toBe(true);
    expect(await store.advanceToUsersPhase('ch', 'j-advance', 2)).toBe(false);
    const saved = await store.getJob('ch', 'j-advance');
    expect([saved?.phase, saved?.chunksTotal, saved?.sheetChunks]).toEqual(['users', 5, { cases: 3, users: 2 }]);
  });

  it('the first plan is written once: a late second dispatch does not put back the main phase over the users phase', async () => {
    const { store } = clockedStore();
    await store.createJob(job('j-plan-once', '2025-07-01T00:00:04.000Z', { kind: 'cases', managerId: 'm-plan', chunksTotal: 1 }));
    expect(await store.startMainPhase('ch', 'j-plan-once', { chunksTotal: 1, sheetChunks: { cases: 1, users: 0 } })).toBe(true);
    expect(await store.advanceToUsersPhase('ch', 'j-plan-once', 3)).toBe(true);
    // The dispatch that read the job before the first plan was written, writing now.
    expect(await store.startMainPhase('ch', 'j-plan-once', { chunksTotal: 1, sheetChunks: { cases: 1, users: 0 } })).toBe(false);
    const saved = await store.getJob('ch', 'j-plan-once');
    expect([saved?.phase, saved?.chunksTotal, saved?.sheetChunks]).toEqual(['users', 4, { cases: 1, users: 3 }]);
    // Another channel's job is never planned.
    await store.createJob(job('j-plan-other', '2025-07-01T00:00:05.000Z', { managerId: 'm-plan' }));
    expect(await store.startMainPhase('other', 'j-plan-other', { chunksTotal: 1, sheetChunks: { users: 1 } })).toBe(false);
  });

  it('planChunks: two dispatches of one cases job, the second read before the first planned and written after the users phase began, leave the users phase as it is', async () => {
    const { store } = clockedStore();
    const cases = job('j-two-dispatch', '2025-07-01T00:00:06.000Z', {
      kind: 'cases',
      managerId: 'm-plan',
      request: { kind: 'cases', from: '2025-06-01', to: '2025-06-01', timezone: 'UTC' },
      chunksTotal: 1,
    });
    await store.createJob(cases);
    const objects = { put: async () => undefined } as never;
    const queue = { send: async () => undefined, sendMany: async () => undefined } as never;
    let readDone!: () => void;
    const slowRead = new Promise<void>((resolve) => (readDone = resolve));
    let letWrite!: () => void;
    const writeGate = new Promise<void>((resolve) => (letWrite = resolve));
    // The late dispatch: its read returns at once, its writes wait (SDK retries, a pause).
    const late: ExportStore = Object.assign(Object.create(store) as ExportStore, {
      getJob: async (c: string, e: string) => {
        const read = await store.getJob(c, e);
        readDone();
        return read;
      },
      startMainPhase: async (...args: Parameters<ExportStore['startMainPhase']>) => {
        await writeGate;
        return store.startMainPhase(...args);
      },
      updateProgress: async (...args: Parameters<ExportStore['updateProgress']>) => {
        await writeGate;
        return store.updateProgress(...args);
      },
    });
    const second = planChunks(cases, {}, { store: late, objects, queue });
    await slowRead;
    await planChunks(cases, {}, { store, objects, queue });
    await store.markChunkDone('ch', 'j-two-dispatch', 'cases-0', { rowCount: 10 });
    await store.setStatus('ch', 'j-two-dispatch', 'running', ['queued']);
    expect(await store.advanceToUsersPhase('ch', 'j-two-dispatch', 3)).toBe(true);
    letWrite();
    await second;
    const saved = await store.getJob('ch', 'j-two-dispatch');
    expect([saved?.phase, saved?.chunksTotal, saved?.sheetChunks]).toEqual(['users', 4, { cases: 1, users: 3 }]);
  });

  it('does not advance a canceled or failed cases job to the users phase (no more work after a stop)', async () => {
    const { store } = clockedStore();
    for (const status of ['canceled', 'failed'] as const) {
      const id = `j-advance-${status}`;
      await store.createJob(job(id, '2025-07-01T00:00:03.000Z', { kind: 'cases', status, managerId: 'm-stopped', phase: 'main', sheetChunks: { cases: 3, users: 0 } }));
      expect(await store.advanceToUsersPhase('ch', id, 2), status).toBe(false);
      expect((await store.getJob('ch', id))?.phase).toBe('main');
    }
  });

  it('lists a manager’s exports newest first with a cursor', async () => {
    const { store } = clockedStore();
    // A channel of its own, so the list holds exactly these jobs (others' tests create m1's jobs
    // in 'ch'); created out of order, as the list orders by creation time, not by write.
    for (const [id, at, over] of [
      ['j-list-2', '2025-07-01T00:00:01.000Z', {}],
      ['j-list-1', '2025-07-01T00:00:00.000Z', {}],
      ['j-list-3', '2025-07-01T00:00:02.000Z', { kind: 'cases', phase: 'main', sheetChunks: { cases: 3, users: 0 } }],
    ] as const) {
      await store.createJob(job(id, at, { channelId: 'ch-list', managerId: 'm1', ...over }));
    }
    const page1 = await store.listJobs('ch-list', 'm1', undefined, 2);
    expect(page1.items.map((j) => j.exportId)).toEqual(['j-list-3', 'j-list-2']);
    const page2 = await store.listJobs('ch-list', 'm1', page1.cursor, 2);
    expect(page2.items.map((j) => j.exportId)).toEqual(['j-list-1']);
    // Another manager of the same channel sees none of them.
    expect((await store.listJobs('ch-list', 'm2', undefined, 5)).items).toEqual([]);
  });

  it('gives no cursor on the last page, also when it is exactly full; a cursor resumes after the last item shown', async () => {
    const { store } = clockedStore();
    for (const [id, at] of [['t1', '2025-07-02T00:00:00.000Z'], ['t2', '2025-07-02T00:00:01.000Z'], ['t3', '2025-07-02T00:00:02.000Z']] as const) {
      await store.createJob(job(id, at, { channelId: 'ch-pages', managerId: 'm-two' }));
    }
    const three = await store.listJobs('ch-pages', 'm-two', undefined, 3);
    expect(three.items.map((j) => j.exportId)).toEqual(['t3', 't2', 't1']);
    expect(three.cursor).toBeUndefined();
    const first = await store.listJobs('ch-pages', 'm-two', undefined, 2);
    expect(first.items.map((j) => j.exportId)).toEqual(['t3', 't2']);
    expect(first.cursor).toBeDefined();
    const last = await store.listJobs('ch-pages', 'm-two', first.cursor, 2);
    expect(last.items.map((j) => j.exportId)).toEqual(['t1']);
    expect(last.cursor).toBeUndefined();
    const ofOne = await store.listJobs('ch-pages', 'm-two', first.cursor, 1);
    expect([ofOne.items.map((j) => j.exportId), ofOne.cursor]).toEqual([['t1'], undefined]);
  });

  it('keeps idempotency records for their TTL and treats an expired one as free', async () => {
    const { store, now, advance } = clockedStore();
    const record = { channelId: 'ch', managerId: 'm1', key: 'k', requestHash: 'h1', exportId: 'j-idem', createdAt: now().toISOString() };
    expect(await store.saveIdempotencyRecord(record, 86_400)).toEqual({ created: true });
    const again = await store.saveIdempotencyRecord({ ...record, requestHash: 'h2', exportId: 'j9' }, 86_400);
    expect(again.created).toBe(false);
    expect(again.existing?.requestHash).toBe('h1');
    advance(86_401_000);
    expect(await store.getIdempotencyRecord('ch', 'm1', 'k')).toBeNull();
    expect((await store.saveIdempotencyRecord({ ...record, requestHash: 'h3' }, 86_400)).created).toBe(true);
  });

  it('an idempotency record keeps its password salt; one without (the previous version\'s) reads back without; a mangled one is refused', async () => {
    const { store, now } = clockedStore();
    const salt = Buffer.alloc(16, 7).toString('base64');
    const record = { channelId: 'ch', managerId: 'm1', key: 'salted-key', requestHash: 'ab'.repeat(32), passwordSalt: salt, exportId: 'j-salt', createdAt: now().toISOString() };
    expect(await store.saveIdempotencyRecord(record, 86_400)).toEqual({ created: true });
    expect(await store.getIdempotencyRecord('ch', 'm1', 'salted-key')).toEqual(record);
    expect((await store.saveIdempotencyRecord({ ...record, passwordSalt: Buffer.alloc(16, 8).toString('base64'), exportId: 'j-other' }, 86_400)).existing).toEqual(record);
    const v1 = { channelId: 'ch', managerId: 'm1', key: 'v1-key', requestHash: 'cd'.repeat(32), exportId: 'j-v1', createdAt: now().toISOString() };
    expect((await store.saveIdempotencyRecord(v1, 86_400)).created).toBe(true);
    const read = await store.getIdempotencyRecord('ch', 'm1', 'v1-key');
    expect(read).toEqual(v1);
    expect(read && 'passwordSalt' in read).toBe(false);
    // A salt that is not base64 would otherwise be compared as something it is not.
    expect((await store.saveIdempotencyRecord({ ...record, key: 'bad-salt-key', passwordSalt: 'not base64!' }, 86_400)).created).toBe(true);
    await expect(store.getIdempotencyRecord('ch', 'm1', 'bad-salt-key')).rejects.toThrow();
  });

  it('frees an idempotency key only while it still names the export that releases it', async () => {
    const { store, now } = clockedStore();
    const record = { channelId: 'ch', managerId: 'm1', key: 'rk', requestHash: 'h1', exportId: 'j-release', createdAt: now().toISOString() };
    expect((await store.saveIdempotencyRecord(record, 86_400)).created).toBe(true);
    await store.releaseIdempotencyRecord('ch', 'm1', 'rk', 'j-other');
    expect((await store.getIdempotencyRecord('ch', 'm1', 'rk'))?.exportId).toBe('j-release');
    await store.releaseIdempotencyRecord('ch', 'm1', 'rk', 'j-release');
    expect(await store.getIdempotencyRecord('ch', 'm1', 'rk')).toBeNull();
    expect((await store.saveIdempotencyRecord({ ...record, requestHash: 'h2', exportId: 'j-release-2' }, 86_400)).created).toBe(true);
    await store.releaseIdempotencyRecord('ch', 'm1', 'never-saved', 'j-release'); // nothing there: no error
  });

  it('a key freed between a refused put and the read of its holder is taken, not reported as an unreadable record (a 500)', async () => {
    // Its own store: the read is replaced below, and no other test may ever get the replacement.
    const { store, now } = clockedStore();
    const record = { channelId: 'ch', managerId: 'm1', key: 'race-key', requestHash: 'h1', exportId: 'jA', createdAt: now().toISOString() };
    expect((await store.saveIdempotencyRecord(record, 86_400)).created).toBe(true);
    // Request A is refused (4xx) and frees the key just after B's put was refused by A's record.
    const read = store.getIdempotencyRecord.bind(store);
    let raced = false;
    store.getIdempotencyRecord = async (...args) => {
      if (!raced) {
        raced = true;
        await store.releaseIdempotencyRecord('ch', 'm1', 'race-key', 'jA');
      }
      return read(...args);
    };
    try {
      const b = await store.saveIdempotencyRecord({ ...record, exportId: 'jB' }, 86_400);
      expect(b).toEqual({ created: true });
      expect((await read('ch', 'm1', 'race-key'))?.exportId).toBe('jB');
    } finally {
      store.getIdempotencyRecord = read;
    }
  });

  it('jobs and link tokens carry a TTL: kept 400 days (by default) past their creation / the link\'s expiry, then collected', async () => {
    const { store } = clockedStore();
    const raw = async (pk: string, sk: string) =>
      (await DynamoDBDocumentClient.from(stack.clients.ddb).send(new GetCommand({ TableName: stack.tables.exports, Key: { pk, sk } }))).Item as
        | Record<string, unknown>
        | undefined;
    await store.createJob(job('j-ttl', '2025-07-01T00:00:00.000Z'));
    expect((await raw('EXPORT#j-ttl', 'JOB'))?.ttl).toBe(Date.parse('2025-07-01T00:00:00.000Z') / 1000 + 400 * 86_400);
    expect((await store.getJob('ch', 'j-ttl'))?.exportId).toBe('j-ttl'); // the attribute does not disturb the job's schema
    // Completed: the job now lasts as long as its link token (a late use finds it: an audited 410).
    expect(await store.setStatus('ch', 'j-ttl', 'completed', ['queued'], { expiresAt: '2025-07-08T00:00:00.000Z', completedAt: '2025-07-01T00:10:00.000Z' })).toBe(true);
    expect((await raw('EXPORT#j-ttl', 'JOB'))?.ttl).toBe(Date.parse('2025-07-08T00:00:00.000Z') / 1000 + 400 * 86_400);
    await store.saveDownloadToken({ tokenHash: 'ef'.repeat(32), exportId: 'j-ttl', channelId: 'ch', expiresAt: '2025-07-08T00:00:00.000Z' });
    expect((await raw(`TOKEN#${'ef'.repeat(32)}`, 'TOKEN'))?.ttl).toBe(Date.parse('2025-07-08T00:00:00.000Z') / 1000 + 400 * 86_400);
    expect(await store.getDownloadToken('ef'.repeat(32))).toEqual({ tokenHash: 'ef'.repeat(32), exportId: 'j-ttl', channelId: 'ch', expiresAt: '2025-07-08T00:00:00.000Z' });
  });

  it('stores only the hash of a download token', async () => {
    const { store } = clockedStore();
    await store.saveDownloadToken({ tokenHash: 'ab'.repeat(32), exportId: 'j-token', channelId: 'ch', expiresAt: '2025-07-08T00:00:00.000Z' });
    expect(await store.getDownloadToken('ab'.repeat(32))).toEqual({
      tokenHash: 'ab'.repeat(32),
      exportId: 'j-token',
      channelId: 'ch',
      expiresAt: '2025-07-08T00:00:00.000Z',
    });
    expect(await store.getDownloadToken('cd'.repeat(32))).toBeNull();
    // Its ttl is far past the link's expiry (400 days by default), not a day: DynamoDB's TTL
    // would otherwise delete it soon after, and a later use would become a 404 with no audit
    // entry instead of an audited 410.
    const raw = await DynamoDBDocumentClient.from(stack.clients.ddb).send(
      new GetCommand({ TableName: stack.tables.exports, Key: { pk: `TOKEN#${'ab'.repeat(32)}`, sk: 'TOKEN' } }),
    );
    expect(raw.Item).toBeDefined();
    expect(raw.Item?.ttl).toBeGreaterThan(Date.parse(String(raw.Item?.expiresAt)) / 1000 + 365 * 86_400);
  });
});
