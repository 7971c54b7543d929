import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  caseColumns,
  caseRangeInstants,
  caseStartedAt,
  compileFilter,
  createCaseRowMapper,
  createUserRowMapper,
  generateWorkspace,
  resolveSegment,
  userColumns,
  type CaseRecord,
  type UserRecord,
} from '../../shared/domain';
import { compareKeyStrings, compareUsersInExportOrder } from '../../shared/app/source-keys';
import { startLocalStack, type LocalStack } from '../../infra/local/stack';
import { expectedSheet, firstDifference } from './expected';
import { decryptAndRead, downloadThroughLink, http, inboxMessage, managerToken, waitForExport } from './support';

/**
 * Every kind and contacts scope over HTTP: POST -> poll -> the bot's link -> 302 -> presigned
 * URL -> decrypt (xlsx-populate) -> cells (openpyxl) == the generator's records that match the
 * filter, mapped by the domain's column catalog, in the documented order.
 */
const CHANNEL = 'e2e-exports';
const SEED = 23;
const USERS = 300;
const CASES = 600;
const ZONE = 'Asia/Seoul';
const workspace = generateWorkspace({ channelId: CHANNEL, seed: SEED, users: USERS, cases: CASES });
const allUsers: UserRecord[] = [...workspace.users];
const allCases: CaseRecord[] = [...workspace.cases];
let stack: LocalStack;
let managerCounter = 0;

beforeAll(async () => {
  stack = await startLocalStack({
    port: 0,
    seed: { channelId: CHANNEL, users: USERS, cases: CASES, seed: SEED },
    env: { POWERTOOLS_LOG_LEVEL: 'ERROR', POWERTOOLS_METRICS_DISABLED: 'true', SELECTION_BATCH: '40' },
    queues: { chunk: { visibilityTimeout: 30 }, finalize: { visibilityTimeout: 20 }, notify: { visibilityTimeout: 5 } },
  });
});
afterAll(async () => stack?.stop());

/** One manager per export, so the C8 cooldown never interferes here (it has its own test). */
async function exportOverHttp(body: Record<string, unknown>, password: string) {
  managerCounter += 1;
  const token = await managerToken(CHANNEL, `exporter-${managerCounter}`);
  const res = await http(stack, 'POST', '/v1/exports', { token, body: { ...body, password, reason: '분기별 고객 데이터 점검' } });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  expect(res.headers.get('location')).toBe(`${stack.apiUrl}/v1/exports/${res.body.exportId}`);
  const done = await waitForExport(stack, token, res.body.exportId as string);
  expect(done.status, JSON.stringify(done)).toBe('completed');
  expect(done.progress).toMatchObject({ percent: 100 });
  expect(done.sha256).toMatch(/^[0-9a-f]{64}$/);
  const message = await inboxMessage(stack, res.body.exportId as string);
  expect(message.body.type).toBe('export.completed');
  expect(message.body.link).toBe(done.link);
  const { bytes } = await downloadThroughLink(stack, message.body.link as string);
  expect(bytes.length).toBe(done.fileSize);
  return { done, sheets: await decryptAndRead(bytes, password) };
}

function expectedUsers(users: readonly UserRecord[]) {
  const ordered = [...users].sort((a, b) => compareUsersInExportOrder(a.id, b.id));
  return expectedSheet(userColumns(workspace.userProfileSchema), ordered.map(createUserRowMapper(workspace.userProfileSchema)), ZONE);
}

function usersMatching(filter: unknown, query?: string): UserRecord[] {
  const predicate = compileFilter(filter as never, 'users', { now: new Date(), profileSchema: workspace.userProfileSchema, ...(query ? { query } : {}) });
  return allUsers.filter((u) => predicate(u));
}

describe('contacts exports over HTTP, every scope', () => {
  const memberFilter = {
    join: 'or',
    groups: [
      { join: 'and', conditions: [{ field: 'member', op: 'eq', value: true }, { field: 'sessionCount', op: 'gte', value: 3 }] },
      { join: 'and', conditions: [{ field: 'tags', op: 'eq', value: 'VIP' }] },
    ],
  };
  const scenarios: { name: string; body: Record<string, unknown>; expected: () => UserRecord[] }[] = [
    { name: 'all', body: { scope: 'all' }, expected: () => allUsers },
    { name: 'all with a quick search', body: { scope: 'all', query: '김' }, expected: () => usersMatching(undefined, '김') },
    { name: 'filter', body: { scope: 'filter', filter: memberFilter }, expected: () => usersMatching(memberFilter) },
    {
      name: 'segment',
      body: { scope: 'segment', segmentId: workspace.segments[0]?.id },
      expected: () => usersMatching(resolveSegment(workspace.segments[0])),
    },
    {
      name: 'selection (duplicates and unknown ids dropped)',
      body: { scope: 'selection', userIds: [...allUsers.slice(10, 110).map((u) => u.id), allUsers[12]?.id, 'no-such-user'] },
      expected: () => allUsers.slice(10, 110),
    },
    { name: 'one user', body: { scope: 'user', userId: allUsers[42]?.id }, expected: () => [allUsers[42] as UserRecord] },
  ];

  for (const scenario of scenarios) {
    it(`scope ${scenario.name}: the file holds exactly the matching users, values and order`, async () => {
      const expected = expectedUsers(scenario.expected());
      expect(expected.rows.length).toBeGreaterThan(0);
      const { done, sheets } = await exportOverHttp({ kind: 'contacts', timezone: ZONE, ...scenario.body }, 'c0ntacts!Pw');
      expect(Object.keys(sheets)).toEqual(['User data']);
      expect(done.rowCount).toBe(expected.rows.length);
      expect(firstDifference(sheets['User data'], expected)).toBeUndefined();
      if (scenario.name === 'all') {
        // The comparison itself can fail: one date an hour off, or one value changed, is caught.
        const dateColumn = expected.header.indexOf('createdAt');
        const shifted = expected.rows.map((r, i) => (i === 0 ? r.map((v, c) => (c === dateColumn ? { localMs: (v as { localMs: number }).localMs + 3_600_000 } : v)) : r));
        expect(firstDifference(sheets['User data'], { header: expected.header, rows: shifted })).toMatch(/createdAt/);
        const renamed = expected.rows.map((r, i) => (i === 5 ? r.map((v, c) => (c === 2 ? `${String(v)}x` : v)) : r));
        expect(firstDifference(sheets['User data'], { header: expected.header, rows: renamed })).toMatch(/row 6 column profile\.name/);
      }
    });
  }
});

describe('ids past U+FFFF travel through the queues', () => {
  it('scope user with an id holding emoji and Hangul (no such user): dispatched and completed, an empty sheet', async () => {
    // Before queue bodies were ASCII-escaped, the queue refused the chunk message (the emulator
    // reads every character past U+FFFF as two lone surrogates): a 500 and DISPATCH_FAILED.
    const { done, sheets } = await exportOverHttp({ kind: 'contacts', timezone: ZONE, scope: 'user', userId: '😀-사용자-\u{10FFFD}' }, 'c0ntacts!Pw');
    expect(done.rowCount).toBe(0);
    expect(sheets['User data']).toHaveLength(1);
  });
});

describe('refused at request time against the workspace', () => {
  it('a filter on a profile key the workspace lacks is a 400, a missing segment a 404; no job, no cooldown held', async () => {
    const token = await managerToken(CHANNEL, 'refused-early');
    const base = { kind: 'contacts', reason: '점검', password: 'Crm!2025x' };
    const unknownKey = await http(stack, 'POST', '/v1/exports', {
      token,
      body: { ...base, scope: 'filter', filter: { join: 'and', groups: [{ join: 'and', conditions: [{ field: 'profile.noSuchKey', op: 'exists' }] }] } },
    });
    expect(unknownKey.status, JSON.stringify(unknownKey.body)).toBe(400);
    expect(unknownKey.body.error).toMatchObject({ code: 'FILTER_UNKNOWN_FIELD' });
    const cases = await http(stack, 'POST', '/v1/exports', {
      token,
      body: { ...base, kind: 'cases', password: 'Kpi2025', from: '2025-07-01', to: '2025-07-31', filter: { join: 'and', groups: [{ join: 'and', conditions: [{ field: 'profile.noSuchKey', op: 'exists' }] }] } },
    });
    expect(cases.status, JSON.stringify(cases.body)).toBe(400);
    expect(cases.body.error).toMatchObject({ code: 'FILTER_UNKNOWN_FIELD' });
    const segment = await http(stack, 'POST', '/v1/exports', { token, body: { ...base, scope: 'segment', segmentId: 'no-such-segment' } });
    expect(segment.status, JSON.stringify(segment.body)).toBe(404);
    expect(segment.body.error).toMatchObject({ code: 'SEGMENT_NOT_FOUND' });
    const list = await http(stack, 'GET', '/v1/exports', { token });
    expect(list.body.items).toEqual([]);
    // Nothing held the cooldown: the same manager exports at once.
    const ok = await http(stack, 'POST', '/v1/exports', { token, body: { ...base, scope: 'user', userId: allUsers[0]!.id } });
    expect(ok.status, JSON.stringify(ok.body)).toBe(202);
  });
});

describe('cases export over HTTP', () => {
  it('holds the range’s cases that match the dashboard filter, and exactly the users they reference once each', async () => {
    const from = '2025-07-01';
    const to = '2025-08-20';
    const filter = { join: 'and', groups: [{ join: 'and', conditions: [{ field: 'replyCount', op: 'gte', value: 1 }] }] };
    const { startMs, endMsExclusive } = caseRangeInstants(from, to, ZONE);
    const now = new Date();
    const predicate = compileFilter(filter as never, 'cases', { now });
    const cases = allCases
      .filter((c) => {
        const t = caseStartedAt(c);
        return t >= startMs && t < endMsExclusive && predicate(c);
      })
      .sort((a, b) => caseStartedAt(a) - caseStartedAt(b) || compareKeyStrings(a.userChatCaseId, b.userChatCaseId));
    expect(cases.length).toBeGreaterThan(10);
    expect(cases.length).toBeLessThan(allCases.length);
    const toRow = createCaseRowMapper({ now, channelId: CHANNEL, directory: workspace.directory, profileKeys: workspace.chatProfileSchema.keys });
    const expectedCases = expectedSheet(caseColumns({ rangeStart: from, profileKeys: workspace.chatProfileSchema.keys }), cases.map(toRow), ZONE);
    const referenced = new Set(cases.map((c) => c.userId));
    const expectedUserSheet = expectedUsers(allUsers.filter((u) => referenced.has(u.id)));

    const { done, sheets } = await exportOverHttp({ kind: 'cases', from, to, timezone: ZONE, filter }, 'Cases2025pw');
    expect(Object.keys(sheets)).toEqual(['UserChatCase data', 'User data']);
    expect(done.rowCount).toBe(cases.length);
    expect(firstDifference(sheets['UserChatCase data'], expectedCases)).toBeUndefined();
    expect(firstDifference(sheets['User data'], expectedUserSheet)).toBeUndefined();
    const userIds = (sheets['User data'] ?? []).slice(1).map((r) => r[0]);
    expect(new Set(userIds).size).toBe(userIds.length);
  });
});
