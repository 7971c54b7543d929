import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { caseRangeInstants, caseStartedAt, compileFilter, generateWorkspace, resolveSegment, type CaseRecord, type UserRecord } from '../../shared/domain';
import { compareKeyStrings, compareUsersInExportOrder } from '../../shared/app/source-keys';
import { hashDownloadToken, createDownloadToken, verifyDownloadToken } from '../../shared/app/download-link';
import type { LocalStack } from '../../infra/local/stack';
import { readExportFile, storesFor, submitExport, waitFor, waitForJob, useLocalStack, QUIET_ENV } from './helpers';

const CHANNEL = 'c1';
const SEED = 7;
const USERS = 300;
const CASES = 600;

describe('pipeline on the emulators', () => {
  let stack: LocalStack;
  const workspace = generateWorkspace({ channelId: CHANNEL, seed: SEED, users: USERS, cases: CASES });

  useLocalStack(
    {
      port: 0,
      seed: { channelId: CHANNEL, users: USERS, cases: CASES, seed: SEED },
      env: { ...QUIET_ENV, SELECTION_BATCH: '50' },
      queues: { chunk: { visibilityTimeout: 30 }, finalize: { visibilityTimeout: 20 }, notify: { visibilityTimeout: 5 } },
    },
    (started) => (stack = started),
  );

  it('exports every contact in the documented order, encrypted, and tells the bot with a working link', async () => {
    const job = await submitExport(stack, { kind: 'contacts', scope: 'all' }, { channelId: CHANNEL });
    const done = await waitForJob(stack, job, (j) => j.status === 'completed' || j.status === 'failed');
    expect(done.status).toBe('completed');
    expect(done.rowCount).toBe(USERS);
    expect(done.chunksDone).toBe(done.chunksTotal);
    const sheets = await readExportFile(stack, done);
    const rows = sheets['User data'] ?? [];
    expect(rows[0]?.[0]).toBe('id');
    const expectedIds = [...workspace.users].map((u) => u.id).sort(compareUsersInExportOrder);
    expect(rows.slice(1).map((r) => r[0])).toEqual(expectedIds);
    // Parts are gone once the file exists.
    // parts/ is deleted by the finalizer's follow-ups, after the status already reads
    // `completed` (the pollers run it in the background): wait for it rather than race it.
    const partsLeft = () => storesFor(stack).objects.list(`parts/${job.exportId}/`);
    await waitFor(async () => ((await partsLeft()).length === 0 ? true : undefined), 30_000).catch(() => undefined);
    expect(await partsLeft()).toEqual([]);
    // The bot got one signed message whose link carries a token the API can verify.
    const message = await waitFor(() => stack.bot.messages.find((m) => (m.body as { exportId?: string }).exportId === job.exportId));
    expect(message.signatureValid).toBe(true);
    const body = message.body as { type: string; link: string; rowCount: number; message: { ko: string; en: string } };
    expect(body.type).toBe('export.completed');
    expect(body.rowCount).toBe(USERS);
    const token = body.link.split('/v1/downloads/')[1] ?? '';
    const claims = verifyDownloadToken(token, stack.env.LINK_SIGNING_SECRET ?? '', new Date());
    expect(claims.exportId).toBe(job.exportId);
    expect(claims.expired).toBe(false);
    expect(token).toBe(createDownloadToken({ exportId: job.exportId, expiresAt: new Date(done.expiresAt ?? 0) }, stack.env.LINK_SIGNING_SECRET ?? ''));
    expect(await storesFor(stack).store.getDownloadToken(hashDownloadToken(token))).toMatchObject({ exportId: job.exportId });
  });

  it('exports the cases of a range and exactly the users they reference, once each', async () => {
    const from = '2025-07-01';
    const to = '2025-08-15';
    const job = await submitExport(stack, { kind: 'cases', from, to, timezone: 'Asia/Seoul' }, { channelId: CHANNEL });
    const done = await waitForJob(stack, job, (j) => j.status === 'completed' || j.status === 'failed');
    expect(done.status).toBe('completed');
    const { startMs, endMsExclusive } = caseRangeInstants(from, to, 'Asia/Seoul');
    const expected = [...workspace.cases]
      .filter((c) => {
        const t = caseStartedAt(c);
        return t >= startMs && t < endMsExclusive;
      })
      .sort((a: CaseRecord, b: CaseRecord) => {
        const ta = new Date(caseStartedAt(a)).toISOString();
        const tb = new Date(caseStartedAt(b)).toISOString();
        return ta < tb ? -1 : ta > tb ? 1 : compareKeyStrings(a.userChatCaseId, b.userChatCaseId);
      });
    expect(expected.length).toBeGreaterThan(10);
    expect(done.rowCount).toBe(expected.length);
    const sheets = await readExportFile(stack, done);
    const caseRows = sheets['UserChatCase data'] ?? [];
    const idColumn = caseRows[0]?.indexOf('userChatCaseId') ?? -1;
    expect(caseRows.slice(1).map((r) => r[idColumn])).toEqual(expected.map((c) => c.userChatCaseId));
    const expectedUsers = [...new Set(expected.map((c) => c.userId))].sort(compareUsersInExportOrder);
    const userRows = sheets['User data'] ?? [];
    expect(userRows.slice(1).map((r) => r[0])).toEqual(expectedUsers);
    // The trail records each sheet's rows and column keys (its header row's), not the main
    // sheet's rows alone: the customer sheet's names, emails and phones are counted too.
    const sheetFacts = (name: string, header: unknown[], rowCount: number) => ({
      name,
      rowCount,
      columnCount: header.length,
      columns: header,
      columnsSha256: createHash('sha256').update(JSON.stringify(header)).digest('hex'),
    });
    const expectedSheets = [sheetFacts('UserChatCase data', caseRows[0] ?? [], expected.length), sheetFacts('User data', userRows[0] ?? [], expectedUsers.length)];
    expect(done.fileSheets).toEqual(expectedSheets);
    // The trail's `completed` item (this test's job was made without the API's `requested` one).
    const completedItem = async () =>
      (await storesFor(stack).ddb.send(new GetCommand({ TableName: stack.tables.audit, Key: { pk: `EXPORT#${job.exportId}`, sk: '1#completed' } }))).Item;
    const completed = await waitFor(completedItem, 30_000);
    expect(completed).toMatchObject({ type: 'completed', rowCount: expected.length, sheets: expectedSheets, linkExpiresAt: done.expiresAt });
  });

  it('a range without cases completes with header-only sheets (no users phase chunks)', async () => {
    const job = await submitExport(stack, { kind: 'cases', from: '2025-07-01', to: '2025-07-03', timezone: 'Asia/Seoul' }, { channelId: 'empty-channel' });
    const done = await waitForJob(stack, job, (j) => j.status === 'completed' || j.status === 'failed');
    expect(done.status).toBe('completed');
    expect(done.rowCount).toBe(0);
    expect(done.sheetChunks).toEqual({ cases: 4, users: 0 });
    const sheets = await readExportFile(stack, done);
    expect(sheets['UserChatCase data']).toHaveLength(1);
    expect(sheets['UserChatCase data']?.[0]?.[0]).toBe('userChatCaseCreatedAt');
    expect(sheets['User data']).toEqual([expect.arrayContaining(['id', 'profile.name', 'profile.email'])]);
  });

  it('a job from before definitions were pinned whose segment was deleted fails at once with SEGMENT_NOT_FOUND and one bot message', async () => {
    // Newer jobs carry the segment's conditions (read at the request, which refuses a missing
    // segment with a 404); a job created by the previous version reads the segment in its chunks.
    const job = await submitExport(stack, { kind: 'contacts', scope: 'segment', segmentId: 'seg-deleted' }, { channelId: CHANNEL, legacyJob: true });
    const failed = await waitForJob(stack, job, (j) => j.status === 'completed' || j.status === 'failed');
    expect(failed.status).toBe('failed');
    expect(failed.error?.code).toBe('SEGMENT_NOT_FOUND');
    const message = await waitFor(() => stack.bot.messages.find((m) => (m.body as { exportId?: string }).exportId === job.exportId));
    expect((message.body as { type: string }).type).toBe('export.failed');
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(stack.bot.messages.filter((m) => (m.body as { exportId?: string }).exportId === job.exportId)).toHaveLength(1);
    expect(stack.deliveries.dlq.filter((r) => r.body.includes(job.exportId))).toHaveLength(0);
  });

  const contactsCases: { name: string; request: Record<string, unknown>; expected: (users: UserRecord[]) => UserRecord[]; userIds?: () => string[] }[] = [
    {
      name: 'filter (members with 3+ sessions, OR-joined with a tag)',
      request: {
        scope: 'filter',
        filter: {
          join: 'or',
          groups: [
            { join: 'and', conditions: [{ field: 'member', op: 'eq', value: true }, { field: 'sessionCount', op: 'gte', value: 3 }] },
            { join: 'and', conditions: [{ field: 'tags', op: 'eq', value: 'VIP' }] },
          ],
        },
      },
      expected: (users) => {
        const p = compileFilter(contactsCases[0]?.request.filter, 'users', { now: new Date(), profileSchema: workspace.userProfileSchema });
        return users.filter((u) => p(u));
      },
    },
    {
      name: 'segment (re-evaluated saved conditions)',
      request: { scope: 'segment', segmentId: workspace.segments[0]?.id },
      expected: (users) => {
        const p = compileFilter(resolveSegment(workspace.segments[0]), 'users', { now: new Date(), profileSchema: workspace.userProfileSchema });
        return users.filter((u) => p(u));
      },
    },
    {
      name: 'quick search query',
      request: { scope: 'all', query: '김' },
      expected: (users) => users.filter((u) => (u.name ?? '').includes('김') || (u.email ?? '').includes('김')),
    },
    {
      name: 'selection (ids in S3 batches, duplicates and unknown ids dropped)',
      request: { scope: 'selection', userIdsCount: 123 },
      userIds: () => [...[...workspace.users].slice(0, 120).map((u) => u.id), workspace.userIdAt(5), 'no-such-user', workspace.userIdAt(7)],
      expected: (users) => users.slice(0, 120),
    },
    {
      name: 'one user',
      request: { scope: 'user', userId: workspace.userIdAt(42) },
      expected: (users) => users.filter((u) => u.id === workspace.userIdAt(42)),
    },
  ];

  for (const scenario of contactsCases) {
    it(`exports contacts by ${scenario.name}`, async () => {
      const userIds = scenario.userIds?.();
      const job = await submitExport(stack, { kind: 'contacts', ...scenario.request } as never, { channelId: CHANNEL, ...(userIds ? { userIds } : {}) });
      const done = await waitForJob(stack, job, (j) => j.status === 'completed' || j.status === 'failed');
      expect(done.status).toBe('completed');
      const expected = scenario.expected([...workspace.users]).map((u) => u.id).sort(compareUsersInExportOrder);
      expect(expected.length).toBeGreaterThan(0);
      expect(done.rowCount).toBe(expected.length);
      const rows = (await readExportFile(stack, done))['User data'] ?? [];
      expect(rows.slice(1).map((r) => r[0])).toEqual(expected);
      if (scenario.request.scope === 'user') {
        // Values, not only ids: the one row equals the record's mapped cells.
        const user = workspace.userAt(42);
        const header = rows[0] ?? [];
        expect(rows[1]?.[header.indexOf('profile.name')]).toBe(user.name ?? null);
        expect(rows[1]?.[header.indexOf('sessionCount')]).toBe(user.sessionCount);
      }
    });
  }
});
