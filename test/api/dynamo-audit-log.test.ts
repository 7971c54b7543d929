import { QueryCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoAuditLog, InvalidAuditCursorError } from '../../shared/adapters/aws/dynamo-audit-log';
import { auditTable, startDynalite, type LocalDynamo } from './support/dynalite';

let dynamo: LocalDynamo;
let audit: DynamoAuditLog;

beforeAll(async () => {
  dynamo = await startDynalite([auditTable('audit')]);
  audit = new DynamoAuditLog(dynamo.doc, 'audit');
  for (let i = 0; i < 7; i += 1) {
    await audit.append({
      type: 'requested',
      exportId: `e${i}`,
      channelId: 'ch1',
      at: `2026-03-0${i + 1}T09:00:00.000Z`,
      managerId: i % 2 === 0 ? 'm-even' : 'm-odd',
      managerName: 'Kim',
      kind: i < 4 ? 'contacts' : 'cases',
      scope: i < 4 ? 'filter' : 'range',
      filters: { query: `q${i}` },
      reason: `reason ${i}`,
    });
  }
  await audit.append({ type: 'requested', exportId: 'x1', channelId: 'ch2', at: '2026-03-02T09:00:00.000Z', managerId: 'm-even', managerName: 'Lee', kind: 'contacts', scope: 'all', filters: {}, reason: 'other channel' });
  await audit.append({ type: 'completed', exportId: 'e2', channelId: 'ch1', at: '2026-03-03T09:05:00.000Z', rowCount: 42, sha256: 'ab'.repeat(32), fileSize: 1234 });
  await audit.append({ type: 'completed', exportId: 'e2', channelId: 'ch1', at: '2026-03-03T09:06:00.000Z', rowCount: 99, sha256: 'cd'.repeat(32) });
  await audit.append({ type: 'downloaded', exportId: 'e2', channelId: 'ch1', at: '2026-03-04T10:00:00.000Z', ip: '127.0.0.1', userAgent: 'curl/8' });
  await audit.append({ type: 'downloaded', exportId: 'e2', channelId: 'ch1', at: '2026-03-04T09:00:00.000Z', managerId: 'm-even', ip: '10.0.0.1' });
  await audit.append({ type: 'failed', exportId: 'e3', channelId: 'ch1', at: '2026-03-04T09:05:00.000Z', code: 'TOO_MANY_ROWS', message: 'too many' });
});
afterAll(async () => dynamo.stop());

describe('DynamoAuditLog on dynalite', () => {
  it('assembles one entry per export, newest first, with its downloads; the first completion stands', async () => {
    const page = await audit.query({ channelId: 'ch1', limit: 50 });
    expect(page.items.map((e) => e.exportId)).toEqual(['e6', 'e5', 'e4', 'e3', 'e2', 'e1', 'e0']);
    expect(page.cursor).toBeUndefined();
    const e2 = page.items.find((e) => e.exportId === 'e2');
    expect(e2).toMatchObject({ status: 'completed', rowCount: 42, sha256: 'ab'.repeat(32), reason: 'reason 2', requestedBy: { managerId: 'm-even', name: 'Kim' } });
    expect(e2?.downloads.map((d) => d.at)).toEqual(['2026-03-04T09:00:00.000Z', '2026-03-04T10:00:00.000Z']);
    expect(page.items.find((e) => e.exportId === 'e3')).toMatchObject({ status: 'failed', error: { code: 'TOO_MANY_ROWS' } });
  });

  it('says when an export ended and who canceled it: canceledAt/canceledBy, failedAt, completedAt', async () => {
    // A channel of its own: the other tests count and page ch1's entries.
    const channelId = 'ch-ended';
    const request = (exportId: string, at: string) =>
      audit.append({ type: 'requested', exportId, channelId, at, managerId: 'm-1', managerName: 'Kim', kind: 'contacts', scope: 'all', filters: {}, reason: 'r' });
    await request('t-canceled', '2026-04-01T09:00:00.000Z');
    await request('t-failed', '2026-04-02T09:00:00.000Z');
    await request('t-completed', '2026-04-03T09:00:00.000Z');
    await request('t-old-cancel', '2026-04-04T09:00:00.000Z');
    await audit.append({ type: 'canceled', exportId: 't-canceled', channelId, at: '2026-04-01T09:03:00.000Z', managerId: 'm-2' });
    await audit.append({ type: 'failed', exportId: 't-failed', channelId, at: '2026-04-02T09:04:00.000Z', code: 'TOO_MANY_ROWS', message: 'too many' });
    await audit.append({ type: 'completed', exportId: 't-completed', channelId, at: '2026-04-03T09:05:00.000Z', rowCount: 1, sha256: 'ef'.repeat(32) });
    // A cancel recorded without its manager (the event allows it): the time still shows.
    await audit.append({ type: 'canceled', exportId: 't-old-cancel', channelId, at: '2026-04-04T09:06:00.000Z' });

    const { items } = await audit.query({ channelId, limit: 10 });
    const byId = Object.fromEntries(items.map((e) => [e.exportId, e]));
    expect(byId['t-canceled']).toMatchObject({ status: 'canceled', canceledAt: '2026-04-01T09:03:00.000Z', canceledBy: { managerId: 'm-2' } });
    expect(byId['t-canceled']).not.toHaveProperty('failedAt');
    expect(byId['t-failed']).toMatchObject({ status: 'failed', error: { code: 'TOO_MANY_ROWS' }, failedAt: '2026-04-02T09:04:00.000Z' });
    expect(byId['t-failed']).not.toHaveProperty('canceledAt');
    expect(byId['t-completed']).toMatchObject({ status: 'completed', completedAt: '2026-04-03T09:05:00.000Z' });
    expect(byId['t-completed']).not.toHaveProperty('failedAt');
    expect(byId['t-completed']).not.toHaveProperty('canceledAt');
    expect(byId['t-old-cancel']).toMatchObject({ status: 'canceled', canceledAt: '2026-04-04T09:06:00.000Z' });
    expect(byId['t-old-cancel']).not.toHaveProperty('canceledBy');
  });

  it('a revocation: once per export, shown with when, who and why, and the file\'s facts kept', async () => {
    const channelId = 'ch-revoked';
    await audit.append({ type: 'requested', exportId: 't-revoked', channelId, at: '2026-04-05T09:00:00.000Z', managerId: 'm-1', managerName: 'Kim', kind: 'contacts', scope: 'all', filters: {}, reason: 'r' });
    await audit.append({ type: 'completed', exportId: 't-revoked', channelId, at: '2026-04-05T09:05:00.000Z', rowCount: 7, sha256: 'ab'.repeat(32), fileSize: 99, fileName: 'f.xlsx' });
    await audit.append({ type: 'revoked', exportId: 't-revoked', channelId, at: '2026-04-05T10:00:00.000Z', managerId: 'm-9', reason: 'posted in the wrong room' });
    // A second revoke (a retry, another auditor) changes nothing: the first stands.
    await audit.append({ type: 'revoked', exportId: 't-revoked', channelId, at: '2026-04-05T11:00:00.000Z', managerId: 'm-1', reason: 'again' });
    await audit.append({ type: 'downloaded', exportId: 't-revoked', channelId, at: '2026-04-05T10:30:00.000Z', outcome: 'gone' });
    const page = await audit.query({ channelId, limit: 10 });
    expect(page.items).toHaveLength(1);
    expect(page.items[0]).toMatchObject({
      status: 'revoked',
      revokedAt: '2026-04-05T10:00:00.000Z',
      revokedBy: { managerId: 'm-9' },
      revokeReason: 'posted in the wrong room',
      rowCount: 7,
      sha256: 'ab'.repeat(32),
      fileSize: 99,
      completedAt: '2026-04-05T09:05:00.000Z',
      downloads: [{ at: '2026-04-05T10:30:00.000Z', outcome: 'gone' }],
    });
    const items = await dynamo.doc.send(new QueryCommand({ TableName: 'audit', KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': 'EXPORT#t-revoked' } }));
    expect((items.Items ?? []).filter((i) => i.type === 'revoked').map((i) => i.sk)).toEqual(['1#revoked']);
  });

  it('filters by manager, kind and time range, and pages with a cursor', async () => {
    const first = await audit.query({ channelId: 'ch1', managerId: 'm-even', limit: 2 });
    expect(first.items.map((e) => e.exportId)).toEqual(['e6', 'e4']);
    expect(first.cursor).toBeDefined();
    const second = await audit.query({ channelId: 'ch1', managerId: 'm-even', limit: 2, cursor: first.cursor });
    expect(second.items.map((e) => e.exportId)).toEqual(['e2', 'e0']);
    const cases = await audit.query({ channelId: 'ch1', kind: 'cases', from: '2026-03-05T00:00:00Z', to: '2026-03-06T09:00:00Z', limit: 10 });
    expect(cases.items.map((e) => e.exportId)).toEqual(['e5', 'e4']);
  });

  it('rejects a forged cursor or another channel’s cursor', async () => {
    const first = await audit.query({ channelId: 'ch1', limit: 1 });
    await expect(audit.query({ channelId: 'ch2', limit: 1, cursor: first.cursor })).rejects.toBeInstanceOf(InvalidAuditCursorError);
    await expect(audit.query({ channelId: 'ch1', limit: 1, cursor: 'not-a-cursor' })).rejects.toBeInstanceOf(InvalidAuditCursorError);
  });

  it('pages a filter with rare matches in few reads, and never skips or repeats a match', async () => {
    // 450 exports in another channel, one in 45 by the manager asked for: filtered reads are
    // pages of items, not one read per missing match.
    const channel = 'ch-rare';
    const at = (i: number) => new Date(Date.UTC(2026, 4, 1) + i * 60_000).toISOString();
    for (let i = 0; i < 450; i += 1) {
      await audit.append({
        type: 'requested', exportId: `r${String(i).padStart(3, '0')}`, channelId: channel, at: at(i),
        managerId: i % 45 === 7 ? 'm-rare' : 'm-busy', managerName: 'Kim', kind: 'contacts', scope: 'all', filters: {}, reason: 'r',
      });
    }
    const queries: unknown[] = [];
    const counting = new DynamoAuditLog(
      { send: (command: { input: { IndexName?: string } }) => { if (command.input.IndexName) queries.push(command); return dynamo.doc.send(command as never); } } as never,
      'audit',
    );
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await counting.query({ channelId: channel, managerId: 'm-rare', limit: 3, ...(cursor ? { cursor } : {}) });
      seen.push(...page.items.map((e) => e.exportId));
      cursor = page.cursor;
      pages += 1;
    } while (cursor && pages < 20);
    const expected = Array.from({ length: 10 }, (_u, k) => `r${String(7 + 45 * (9 - k)).padStart(3, '0')}`);
    expect(seen).toEqual(expected);
    // 450 items in pages of 200: a handful of reads in all, where one read per missing match
    // would have taken hundreds.
    expect(queries.length).toBeLessThanOrEqual(8);
  });

  it('lists the most recent 100 uses of a link, oldest first, and counts them all: a flooded link cannot make its entry unreadable', async () => {
    await audit.append({ type: 'requested', exportId: 'flood', channelId: 'ch-flood', at: '2026-04-01T09:00:00.000Z', managerId: 'm', managerName: 'Kim', kind: 'contacts', scope: 'all', filters: {}, reason: 'r' });
    const at = (i: number) => new Date(Date.UTC(2026, 3, 2) + i * 1000).toISOString();
    for (let i = 0; i < 130; i += 1) {
      await audit.append({ type: 'downloaded', exportId: 'flood', channelId: 'ch-flood', at: at(i), ip: '198.51.100.7', userAgent: 'x'.repeat(500), outcome: i < 60 ? 'redirected' : 'gone' });
    }
    const [entry] = (await audit.query({ channelId: 'ch-flood', limit: 1 })).items;
    expect(entry?.downloadCount).toBe(130);
    expect(entry?.downloads).toHaveLength(100);
    expect(entry?.downloads[0]?.at).toBe(at(30));
    expect(entry?.downloads[99]?.at).toBe(at(129));
    const few = (await audit.query({ channelId: 'ch1', limit: 50 })).items.find((e) => e.exportId === 'e2');
    expect(few).toMatchObject({ downloadCount: 2 });
    expect(few?.downloads).toHaveLength(2);
  });

  it('stops counting a flooded link at the cap and says the count is a lower bound', async () => {
    await audit.append({ type: 'requested', exportId: 'cap', channelId: 'ch-cap', at: '2026-04-01T09:00:00.000Z', managerId: 'm', managerName: 'Kim', kind: 'contacts', scope: 'all', filters: {}, reason: 'r' });
    const at = (i: number) => new Date(Date.UTC(2026, 3, 2) + i * 1000).toISOString();
    for (let i = 0; i < 160; i += 1) {
      await audit.append({ type: 'downloaded', exportId: 'cap', channelId: 'ch-cap', at: at(i), ip: '198.51.100.7', outcome: 'gone' });
    }
    const counts: unknown[] = [];
    const capped = (cap: { items: number; pages: number }) =>
      new DynamoAuditLog(
        { send: (command: { input: { Select?: string } }) => { if (command.input.Select === 'COUNT') counts.push(command); return dynamo.doc.send(command as never); } } as never,
        'audit',
        'gsi1',
        undefined,
        cap,
      );
    const [over] = (await capped({ items: 120, pages: 10 }).query({ channelId: 'ch-cap', limit: 1 })).items;
    expect(over).toMatchObject({ downloadCount: 120, downloadCountCapped: true });
    expect(over?.downloads).toHaveLength(100);
    // Large items: a COUNT read stops at 1 MB, so the page budget runs out first and the count
    // is a flagged lower bound, after that many reads.
    await audit.append({ type: 'requested', exportId: 'cap-big', channelId: 'ch-cap-big', at: '2026-04-01T09:00:00.000Z', managerId: 'm', managerName: 'Kim', kind: 'contacts', scope: 'all', filters: {}, reason: 'r' });
    for (let i = 0; i < 140; i += 1) {
      await audit.append({ type: 'downloaded', exportId: 'cap-big', channelId: 'ch-cap-big', at: at(i), userAgent: 'x'.repeat(10_000), outcome: 'gone' });
    }
    counts.length = 0;
    const [short] = (await capped({ items: 10_000, pages: 1 }).query({ channelId: 'ch-cap-big', limit: 1 })).items;
    expect(counts).toHaveLength(1);
    expect(short).toMatchObject({ downloadCountCapped: true });
    expect(short?.downloadCount).toBeLessThan(140);
    // Exactly at the cap, or under it, the count is exact and not flagged.
    const [exact] = (await capped({ items: 160, pages: 10 }).query({ channelId: 'ch-cap', limit: 1 })).items;
    expect(exact?.downloadCount).toBe(160);
    expect(exact).not.toHaveProperty('downloadCountCapped');
    const [under] = (await audit.query({ channelId: 'ch-cap', limit: 1 })).items;
    expect(under?.downloadCount).toBe(160);
    expect(under).not.toHaveProperty('downloadCountCapped');
  });

  it('ends a page early when its entries would pass the response budget, and the cursor carries on after the last one', async () => {
    const at = (i: number) => new Date(Date.UTC(2026, 5, 1) + i * 60_000).toISOString();
    for (let i = 0; i < 5; i += 1) {
      await audit.append({
        type: 'requested', exportId: `big-${i}`, channelId: 'ch-big', at: at(i), managerId: 'm', managerName: 'Kim', kind: 'contacts', scope: 'filter',
        // Quotes are escaped twice on the way out (the body, then the proxy response).
        filters: { query: '"'.repeat(20_000) }, reason: 'r',
      });
    }
    const small = new DynamoAuditLog(dynamo.doc, 'audit', 'gsi1', 150_000);
    const seen: string[] = [];
    const sizes: number[] = [];
    let cursor: string | undefined;
    do {
      const page = await small.query({ channelId: 'ch-big', limit: 50, ...(cursor ? { cursor } : {}) });
      sizes.push(page.items.length);
      seen.push(...page.items.map((e) => e.exportId));
      cursor = page.cursor;
    } while (cursor);
    // ~80 kB an entry escaped twice: one entry fits 150 kB, a second would not.
    expect(sizes.every((n) => n === 1)).toBe(true);
    expect(seen).toEqual(['big-4', 'big-3', 'big-2', 'big-1', 'big-0']);
  });

  it('pages through every use of one link, oldest first, with no cursor on the last page; only in the export’s channel', async () => {
    await audit.append({ type: 'requested', exportId: 'pg', channelId: 'ch-pg', at: '2026-04-01T09:00:00.000Z', managerId: 'm', managerName: 'Kim', kind: 'contacts', scope: 'all', filters: {}, reason: 'r' });
    await audit.append({ type: 'completed', exportId: 'pg', channelId: 'ch-pg', at: '2026-04-01T09:01:00.000Z', rowCount: 1, sha256: 'ab'.repeat(32) });
    await audit.append({ type: 'requested', exportId: 'pg-other', channelId: 'ch-pg', at: '2026-04-01T09:00:00.000Z', managerId: 'm', managerName: 'Kim', kind: 'contacts', scope: 'all', filters: {}, reason: 'r' });
    const at = (i: number) => new Date(Date.UTC(2026, 3, 2) + i * 1000).toISOString();
    // Appended newest first: the order read is the sort key's (time), not the order written.
    for (let i = 104; i >= 0; i -= 1) {
      await audit.append({ type: 'downloaded', exportId: 'pg', channelId: 'ch-pg', at: at(i), ip: '198.51.100.7', ...(i === 0 ? { managerId: 'm' } : { userAgent: `flood/${i}` }), outcome: 'redirected' });
    }
    await audit.append({ type: 'downloaded', exportId: 'pg-other', channelId: 'ch-pg', at: at(0), outcome: 'redirected' });
    const pageThrough = async (limit: number) => {
      const sizes: number[] = [];
      const seen: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await audit.listDownloads({ channelId: 'ch-pg', exportId: 'pg', limit, ...(cursor ? { cursor } : {}) });
        if (!page) throw new Error('export not found');
        sizes.push(page.items.length);
        seen.push(...page.items.map((d) => d.at));
        cursor = page.cursor;
      } while (cursor && sizes.length < 200);
      return { sizes, seen };
    };
    const all = Array.from({ length: 105 }, (_u, i) => at(i));
    expect(await pageThrough(50)).toEqual({ sizes: [50, 50, 5], seen: all });
    // A last page that is exactly full still carries no cursor (the read looks one item past it).
    expect(await pageThrough(35)).toEqual({ sizes: [35, 35, 35], seen: all });
    expect((await pageThrough(1)).seen).toEqual(all);
    const first = await audit.listDownloads({ channelId: 'ch-pg', exportId: 'pg', limit: 2 });
    expect(first?.items).toEqual([
      { at: at(0), managerId: 'm', ip: '198.51.100.7', outcome: 'redirected' },
      { at: at(1), ip: '198.51.100.7', userAgent: 'flood/1', outcome: 'redirected' },
    ]);
    // Another channel's export is as unknown as a missing one.
    expect(await audit.listDownloads({ channelId: 'ch1', exportId: 'pg', limit: 10 })).toBeNull();
    expect(await audit.listDownloads({ channelId: 'ch-pg', exportId: 'nothing', limit: 10 })).toBeNull();
    expect(await audit.listDownloads({ channelId: 'ch-pg', exportId: 'e0', limit: 10 })).toBeNull();
    expect(await audit.listDownloads({ channelId: 'ch1', exportId: 'e0', limit: 10 })).toEqual({ items: [] });
    // Another export's cursor, a key outside the uses, or garbage: refused before any read.
    const other = await audit.listDownloads({ channelId: 'ch-pg', exportId: 'pg-other', limit: 10 });
    expect(other?.items).toHaveLength(1);
    const outside = Buffer.from(JSON.stringify({ pk: 'EXPORT#pg', sk: '1#completed' })).toString('base64url');
    const foreign = Buffer.from(JSON.stringify({ pk: 'EXPORT#pg-other', sk: `2#downloaded#${at(0)}#000000000000` })).toString('base64url');
    for (const cursor of [outside, foreign, 'not-a-cursor', first?.cursor?.slice(0, -4) ?? '']) {
      await expect(audit.listDownloads({ channelId: 'ch-pg', exportId: 'pg', limit: 10, cursor })).rejects.toBeInstanceOf(InvalidAuditCursorError);
    }
    const next = await audit.listDownloads({ channelId: 'ch-pg', exportId: 'pg', limit: 2, ...(first?.cursor ? { cursor: first.cursor } : {}) });
    expect(next?.items.map((d) => d.at)).toEqual([at(2), at(3)]);
  });

  it('refuses a cursor with empty key parts (DynamoDB would reject it: a 500)', async () => {
    const forged = Buffer.from(JSON.stringify({ pk: 'EXPORT#e1', sk: '', gsi1pk: 'CHANNEL#ch1', gsi1sk: '' })).toString('base64url');
    await expect(audit.query({ channelId: 'ch1', limit: 1, cursor: forged })).rejects.toBeInstanceOf(InvalidAuditCursorError);
  });

  it('never rewrites an item: the table holds every appended event once', async () => {
    // The exports appended in beforeAll only: the other tests add items of their own.
    const exportIds = ['e0', 'e1', 'e2', 'e3', 'e4', 'e5', 'e6', 'x1'];
    const counts = await Promise.all(
      exportIds.map(async (exportId) => {
        const result = await dynamo.doc.send(
          new QueryCommand({ TableName: 'audit', KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': `EXPORT#${exportId}` } }),
        );
        return [exportId, result.Items?.length ?? 0] as const;
      }),
    );
    // 8 requested + 1 completed (the second is refused) + 2 downloads + 1 failed.
    expect(Object.fromEntries(counts)).toEqual({ e0: 1, e1: 1, e2: 4, e3: 2, e4: 1, e5: 1, e6: 1, x1: 1 });
    expect(counts.reduce((n, [, c]) => n + c, 0)).toBe(12);
  });
});
