import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { ExportJob } from '../../shared/app/export-job';
import { buildChunkMessages } from '../../shared/app/plan-chunks';
import { processChunk, type ChunkDeps, type ChunkOutcome } from '../../shared/app/process-chunk';
import { caseKey, userShardOf } from '../../shared/app/source-keys';
import { toExportView } from '../../shared/app/api/view';
import { buildBotEvent } from '../../shared/app/notify-export';
import { workspaceSk } from '../../shared/app/workspace-context';
import { caseStartedAt } from '../../shared/domain';
import { silentLog } from '../../shared/ports/pipeline-log';
import { makeJob } from './job-fixture';

/**
 * The domain rules as the chunk loop applies them (filter zone, odd source records, profile
 * dates), against in-memory fakes: what a file holds, decoded from the rendered parts.
 */

type Fixture = {
  kind: 'cases' | 'contacts';
  request: ExportJob['request'];
  timeZone: string;
  cases?: Record<string, unknown>[];
  users?: Record<string, unknown>[];
  workspace?: Record<string, unknown>;
  /** What a by-id read (BatchGetItem) returns, whatever ids it asked for (default: the users with those ids). */
  fetchedByKey?: Record<string, unknown>[];
};

async function runChunks(f: Fixture) {
  const channelId = 'ch1';
  const objects = new Map<string, Buffer>();
  const job = makeJob({ channelId, kind: f.kind, request: f.request, status: 'running', chunksTotal: 10_000, timeZone: f.timeZone });
  const caseItems = (f.cases ?? []).map((c) => ({ ...c, ...caseKey(channelId, String(c.userChatCaseId), caseStartedAt(c as never)) }));
  const marked: { rowCount: number; skippedRecords?: number }[] = [];
  const deps: ChunkDeps = {
    store: {
      getJob: async () => job,
      setStatus: async (_c: string, _e: string, to: ExportJob['status'], _from: unknown, extra?: { error?: ExportJob['error'] }) => {
        job.status = to;
        if (extra?.error) job.error = extra.error;
        return true;
      },
      markChunkDone: async (_c: string, _e: string, _id: string, meta: { rowCount: number; skippedRecords?: number }) => {
        marked.push(meta);
        return { firstTime: true, done: 1, total: 10_000, rowsWritten: 0 };
      },
      isChunkDone: async () => false,
      updateProgress: async () => {},
    } as unknown as ChunkDeps['store'],
    objects: {
      put: async (k: string, v: string | Buffer) => void objects.set(k, Buffer.from(v)),
      getBuffer: async (k: string) => objects.get(k) ?? null,
      deletePrefix: async () => {},
    } as unknown as ChunkDeps['objects'],
    queue: { send: async () => {}, sendMany: async () => {} } as unknown as ChunkDeps['queue'],
    clock: { now: () => new Date('2026-01-01T00:00:00Z') },
    log: silentLog,
    cases: {
      async *queryDay(_ch: string, day: string, fromIso: string, toIso: string) {
        const pk = `${channelId}#${day}`;
        yield caseItems.filter((i) => i.pk === pk && i.sk >= fromIso && i.sk <= toIso);
      },
    } as unknown as ChunkDeps['cases'],
    users: {
      async *queryShard(_ch: string, shard: number) {
        yield (f.users ?? []).filter((u) => (typeof u.id === 'string' ? userShardOf(u.id) === shard : shard === 0));
      },
      getMany: async (_ch: string, ids: readonly string[]) => f.fetchedByKey ?? (f.users ?? []).filter((u) => ids.includes(u.id as string)),
    } as unknown as ChunkDeps['users'],
    workspace: {
      getItem: async (_c: string, sk: string) => (f.workspace?.[sk] as never) ?? null,
    } as unknown as ChunkDeps['workspace'],
    maxRows: 1_000_000,
  };
  const outcomes: ChunkOutcome[] = [];
  for (const m of buildChunkMessages(job, {}, 2000)) outcomes.push(await processChunk(m, deps, { receiveCount: 1 }));
  const rows: { sheet: string; cells: string[] }[] = [];
  for (const [key, body] of [...objects.entries()].sort()) {
    if (key.endsWith('.json') || key.includes('meta') || key.includes('refs') || key.includes('ids')) continue;
    const xml = zlib.inflateRawSync(body, { finishFlush: zlib.constants.Z_SYNC_FLUSH }).toString('utf8');
    for (const row of xml.match(/<row[^>]*>.*?<\/row>/g) ?? []) {
      const cells = [...row.matchAll(/<c(?:\s[^>]*?)?(?:\/>|>(.*?)<\/c>)/g)].map((m) => (m[1] ?? '').replace(/<[^>]+>/g, ''));
      rows.push({ sheet: key.includes('/cases/') ? 'cases' : 'users', cells });
    }
  }
  const refs = [...objects.entries()].filter(([k]) => k.includes('refs')).flatMap(([, v]) => JSON.parse(v.toString('utf8')) as string[]);
  return { job, outcomes, rows, marked, refs };
}

const filterOf = (conditions: unknown[]) => ({ join: 'and', groups: [{ join: 'and', conditions }] });
const T = (iso: string) => Date.parse(iso);
const caseBase = { userChatId: 'c1', direction: 'inbound', userChatState: 'closed', userId: 'u1', mediumName: 'inAppChat', userChatCase: 1 };

describe('S6/C2: date-only filter values are days in the export time zone, in the pipeline', () => {
  it('S6: cases closedAt eq 2025-07-01 in Asia/Seoul keeps the case closed that Seoul day', async () => {
    const at = (iso: string) => ({ createdAt: T(iso), firstOpenedAt: T(iso) });
    const { rows } = await runChunks({
      kind: 'cases',
      timeZone: 'Asia/Seoul',
      request: {
        kind: 'cases', from: '2025-07-01', to: '2025-07-02', timezone: 'Asia/Seoul',
        filter: filterOf([{ field: 'closedAt', op: 'eq', value: '2025-07-01' }]),
      },
      cases: [
        { ...caseBase, userChatCaseId: 'k1', ...at('2025-07-01T08:00:00+09:00'), closedAt: T('2025-07-01T08:30:00+09:00') },
        { ...caseBase, userChatCaseId: 'k2', ...at('2025-07-02T08:00:00+09:00'), closedAt: T('2025-07-02T08:30:00+09:00') },
      ],
    });
    const ids = rows.filter((r) => r.sheet === 'cases').flatMap((r) => r.cells.filter((c) => /^k\d$/.test(c)));
    expect(ids).toEqual(['k1']);
  });

  it('S6: a cases filter on a chat-profile key the workspace archived fails the export with the filter code', async () => {
    const { job } = await runChunks({
      kind: 'cases',
      timeZone: 'Asia/Seoul',
      request: { kind: 'cases', from: '2025-07-01', to: '2025-07-01', filter: filterOf([{ field: 'profile.oldKey', op: 'exists' }]) },
      cases: [{ ...caseBase, userChatCaseId: 'k1', createdAt: T('2025-07-01T08:00:00+09:00') }],
      workspace: { [workspaceSk.chatProfileSchema]: { keys: [{ key: 'oldKey', type: 'string', order: 0, archived: true }] } },
    });
    expect(job.status).toBe('failed');
    expect(job.error?.code).toBe('FILTER_UNKNOWN_FIELD');
  });

  it('C2: contacts lastSeenAt gte 2025-07-01 in Asia/Seoul keeps a user seen at 03:00 that Seoul morning', async () => {
    const { rows } = await runChunks({
      kind: 'contacts',
      timeZone: 'Asia/Seoul',
      request: { kind: 'contacts', scope: 'filter', filter: filterOf([{ field: 'lastSeenAt', op: 'gte', value: '2025-07-01' }]) },
      users: [
        { id: 'u1', createdAt: 0, lastSeenAt: T('2025-07-01T03:00:00+09:00') },
        { id: 'u2', createdAt: 0, lastSeenAt: T('2025-06-30T23:00:00+09:00') },
      ],
    });
    expect(rows.map((r) => r.cells[0])).toEqual(['u1']);
  });
});

describe('C6/S1: one odd field does not drop the customer or the case', () => {
  it('C6: every customer is written, odd values as text or an empty cell; only a record without an id is skipped and counted', async () => {
    const { rows, outcomes, marked } = await runChunks({
      kind: 'contacts',
      timeZone: 'Asia/Seoul',
      request: { kind: 'contacts', scope: 'all' },
      users: [
        { id: 'u1', createdAt: 0, name: 'A', mobileNumber: '+821012345678' },
        { id: 'u2', createdAt: 0, name: 'B', mobileNumber: '010-2222-3333' },
        { id: 'u3', createdAt: 0, name: 'C', memberId: 12345 },
        { id: 'u4', createdAt: 0, name: 'D', sessionCount: 3, profile: { grade: { v: 1 }, tier: 'gold' } },
        { createdAt: 0, name: 'no id' },
      ],
      workspace: {
        [workspaceSk.userProfileSchema]: {
          keys: [
            { key: 'grade', type: 'string', order: 0, archived: false },
            { key: 'tier', type: 'string', order: 1, archived: false },
          ],
        },
      },
    });
    const byId = new Map(rows.map((r) => [r.cells[0], r.cells]));
    expect([...byId.keys()].sort()).toEqual(['u1', 'u2', 'u3', 'u4']);
    expect(byId.get('u2')).toContain('010-2222-3333');
    expect(byId.get('u3')?.[1]).toBe('12345');
    // grade (an object) is empty, tier (valid) is still written.
    expect(byId.get('u4')).toContain('gold');
    expect(byId.get('u4')).not.toContain('[object Object]');
    expect(outcomes.reduce((n, o) => n + o.skippedRecords, 0)).toBe(1);
    expect(outcomes.reduce((n, o) => n + o.repairedRecords, 0)).toBe(3);
    expect(marked.reduce((n, m) => n + (m.skippedRecords ?? 0), 0)).toBe(1);
  });

  it('S1: a user fetched by its key whose item holds no id is counted as skipped (the file says so), not dropped unseen', async () => {
    const { rows, outcomes, marked } = await runChunks({
      kind: 'contacts',
      timeZone: 'Asia/Seoul',
      request: { kind: 'contacts', scope: 'user', userId: 'u9' },
      fetchedByKey: [{ createdAt: 0, name: 'no id on the item' }],
    });
    expect(rows).toEqual([]);
    expect(outcomes.reduce((n, o) => n + o.skippedRecords, 0)).toBe(1);
    expect(marked.reduce((n, m) => n + (m.skippedRecords ?? 0), 0)).toBe(1);
  });

  it('C1/C2: a number kept in local form is still found by the mobile-number filter', async () => {
    const { rows } = await runChunks({
      kind: 'contacts',
      timeZone: 'Asia/Seoul',
      request: { kind: 'contacts', scope: 'filter', filter: filterOf([{ field: 'mobileNumber', op: 'eq', value: '+821022223333' }]) },
      users: [
        { id: 'u1', createdAt: 0, mobileNumber: '+821012345678' },
        { id: 'u2', createdAt: 0, mobileNumber: '010-2222-3333' },
      ],
    });
    expect(rows.map((r) => r.cells[0])).toEqual(['u2']);
  });

  it('S1: a case with an unknown medium and a text count is written; its user is still referenced for the User data sheet', async () => {
    const { rows, outcomes, refs } = await runChunks({
      kind: 'cases',
      timeZone: 'Asia/Seoul',
      request: { kind: 'cases', from: '2025-07-01', to: '2025-07-01' },
      cases: [
        { ...caseBase, userChatCaseId: 'k1', createdAt: T('2025-07-01T08:00:00+09:00') },
        { ...caseBase, userChatCaseId: 'k2', userId: 'u2', createdAt: T('2025-07-01T09:00:00+09:00'), mediumName: 'appWhatsApp', replyCount: '2' },
      ],
      users: [
        { id: 'u1', createdAt: 0 },
        { id: 'u2', createdAt: 0 },
      ],
    });
    expect(outcomes.reduce((n, o) => n + o.skippedRecords, 0)).toBe(0);
    const cases = rows.filter((r) => r.sheet === 'cases');
    expect(cases.map((r) => r.cells.find((c) => /^k\d$/.test(c)))).toEqual(['k1', 'k2']);
    expect(cases[1]?.cells).toContain('appWhatsApp');
    expect(cases[1]?.cells).toContain('2');
    expect(refs.sort()).toEqual(['u1', 'u2']);
  });

  it('C6: the skipped count is shown on the export view and in the bot message, and not when there is none', () => {
    const job = makeJob({ status: 'completed', rowCount: 4, skippedRecords: 2, fileName: 'f.xlsx', completedAt: '2025-07-01T00:00:00.000Z', expiresAt: '2025-07-08T00:00:00.000Z' });
    expect(toExportView(job, 'https://api', 'https://link').skippedRecords).toBe(2);
    expect(toExportView({ ...job, skippedRecords: undefined }, 'https://api', 'https://link')).not.toHaveProperty('skippedRecords');
    const event = buildBotEvent(job, 'export.completed', 'https://link');
    expect(event.skippedRecords).toBe(2);
    expect(event.message.en).toContain('2 source records without an id were left out');
    expect(event.message.ko).toContain('2건');
    expect(buildBotEvent({ ...job, skippedRecords: undefined }, 'export.completed', 'https://link')).not.toHaveProperty('skippedRecords');
  });
});

describe('S9/C11: profile date text is read in the export time zone, in the pipeline', () => {
  it('C11: a date-only profile value is midnight of that day where the export is read', async () => {
    const { rows } = await runChunks({
      kind: 'contacts',
      timeZone: 'America/Los_Angeles',
      request: { kind: 'contacts', scope: 'all' },
      users: [{ id: 'u1', createdAt: 0, profile: { lastCheckoutCompletedAt: '2025-07-01' } }],
      workspace: { [workspaceSk.userProfileSchema]: { keys: [{ key: 'lastCheckoutCompletedAt', type: 'date', order: 0, archived: false }] } },
    });
    // Excel serial of 2025-07-01 00:00 (the engine writes wall time in the export's zone).
    expect(rows[0]?.cells.at(-1)).toBe('45839');
  });

  it('C11: a profile date no xlsx cell can show leaves its cell empty; the chunk does not fail', async () => {
    const odd = ['1899-12-31', '1900-02-28', '0001-01-01', -3e12, 1e15];
    const { job, outcomes, rows } = await runChunks({
      kind: 'contacts',
      timeZone: 'Asia/Seoul',
      request: { kind: 'contacts', scope: 'all' },
      users: [
        ...odd.map((birthday, i) => ({ id: `u${i}`, createdAt: 0, profile: { birthday } })),
        { id: 'ok', createdAt: 0, profile: { birthday: '1990-05-05' } },
      ],
      workspace: { [workspaceSk.userProfileSchema]: { keys: [{ key: 'birthday', type: 'date', order: 0, archived: false }] } },
    });
    expect(job.status).not.toBe('failed');
    expect(outcomes.map((o) => o.status)).not.toContain('failed');
    const birthdayOf = new Map(rows.map((r) => [r.cells[0], r.cells.at(-1)]));
    expect([...birthdayOf.keys()].sort()).toEqual(['ok', 'u0', 'u1', 'u2', 'u3', 'u4']);
    // 1990-05-05 is Excel serial 32998; the odd ones have no birthday cell (the row ends earlier).
    expect(birthdayOf.get('ok')).toBe('32998');
    for (let i = 0; i < odd.length; i++) expect(rows.find((r) => r.cells[0] === `u${i}`)?.cells).not.toContain('32998');
  });
});
