import { describe, expect, it, vi } from 'vitest';
import {
  CASE_COLUMN_KEYS,
  caseColumns,
  caseRecordSchema,
  caseState,
  createCaseRowMapper,
  createUserRowMapper,
  toCaseRow,
  toUserRow,
  userColumns,
  userRecordSchema,
  type CaseRecord,
  type CaseRecordInput,
  type ProfileKeyDef,
  type UserRecord,
  compileFilter,
  leadTimeSeconds,
  salvageCaseRecord,
  startOfDayInZone,
} from '../../shared/domain';
import { createPartEncoder } from '../../shared/xlsx';

const T = (iso: string) => Date.parse(iso);

function caseOf(overrides: Partial<CaseRecordInput>): CaseRecord {
  return caseRecordSchema.parse({
    userChatCaseId: 'case-1',
    userChatCase: 1,
    userChatId: 'chat-1',
    direction: 'inbound',
    userChatState: 'closed',
    userId: 'user-1',
    createdAt: T('2025-07-01T09:00:00+09:00'),
    mediumName: 'inAppChat',
    ...overrides,
  });
}

const directory = {
  teams: [{ id: 't1', name: 'CS 1팀' }],
  managers: [
    { id: 'm1', name: '김민지' },
    { id: 'm2', name: 'Emma Smith' },
  ],
};
const now = T('2025-08-01T00:00:00Z');
const ctx = { now, channelId: 'ch-1', directory };

describe('S8 derived values on hand-computed records', () => {
  // A full record: queued 09:00:00, opened 09:02:00, asked 09:01:00, replied 09:05:30, closed 10:02:00.
  const full = caseOf({
    firstQueuedAt: T('2025-07-01T09:00:00+09:00'),
    firstOpenedAt: T('2025-07-01T09:02:00+09:00'),
    firstAskedAt: T('2025-07-01T09:01:00+09:00'),
    firstRepliedAt: T('2025-07-01T09:05:30+09:00'),
    closedAt: T('2025-07-01T10:02:00+09:00'),
    totalReplyTime: 900,
    replyCount: 4,
    totalSnoozedTime: 600,
    snoozedCount: 1,
  });

  it('S8: mediumSenderName is empty for an email case ("email: there is no value"), kept for the other media', () => {
    const fromRename = { createdAt: T('2025-07-17T00:00:00+09:00') };
    expect(toCaseRow(caseOf({ ...fromRename, mediumName: 'email', mediumSenderName: 'someone@example.com' }), ctx).mediumSenderName).toBeNull();
    expect(toCaseRow(caseOf({ ...fromRename, mediumName: 'appLine', mediumSenderName: '@shop' }), ctx).mediumSenderName).toBe('@shop');
  });

  it('S8: before 2025-07-17 (Seoul) mediumSenderName is the internal id for every medium, email included: kept', () => {
    // The article's "email: no value" is listed under "from 25.7.17" only; older chats held an
    // internal id "for telling them apart" whatever the medium. The chat's creation decides.
    const before = { createdAt: T('2025-07-16T23:59:59.999+09:00'), mediumName: 'email' as const, mediumSenderName: 'am-3f2a1c' };
    expect(toCaseRow(caseOf(before), ctx).mediumSenderName).toBe('am-3f2a1c');
    // A later case of that old chat keeps it too: its value was given when the chat was made.
    const laterCase = caseOf({ ...before, firstOpenedAt: T('2025-08-01T10:00:00+09:00') });
    expect(toCaseRow(laterCase, ctx).mediumSenderName).toBe('am-3f2a1c');
  });

  it('S8: userChatCaseCreatedAt = min(firstQueuedAt, firstOpenedAt)', () => {
    expect(toCaseRow(full, ctx).userChatCaseCreatedAt).toBe(T('2025-07-01T09:00:00+09:00'));
    const openedFirst = caseOf({ firstQueuedAt: T('2025-07-01T09:10:00Z'), firstOpenedAt: T('2025-07-01T09:05:00Z') });
    expect(toCaseRow(openedFirst, ctx).userChatCaseCreatedAt).toBe(T('2025-07-01T09:05:00Z'));
    const onlyOpened = caseOf({ firstOpenedAt: T('2025-07-01T09:05:00Z') });
    expect(toCaseRow(onlyOpened, ctx).userChatCaseCreatedAt).toBe(T('2025-07-01T09:05:00Z'));
    expect(toCaseRow(caseOf({}), ctx).userChatCaseCreatedAt).toBeNull();
  });

  it('S8: waitingTime = firstRepliedAt - min(firstOpenedAt, firstQueuedAt, firstAskedAt), seconds', () => {
    // 09:05:30 - 09:00:00 (queued is the minimum)
    expect(toCaseRow(full, ctx).waitingTime).toBe(330);
    // without queue: min(opened 09:02, asked 09:01) = 09:01 -> 270 s
    const noQueue = caseOf({ ...full, firstQueuedAt: null });
    expect(toCaseRow(noQueue, ctx).waitingTime).toBe(270);
    // asked only: 09:05:30 - 09:01 = 270
    expect(toCaseRow(caseOf({ firstAskedAt: full.firstAskedAt, firstRepliedAt: full.firstRepliedAt }), ctx).waitingTime).toBe(270);
    // no reply (zero replies / calls): empty
    expect(toCaseRow(caseOf({ ...full, firstRepliedAt: null }), ctx).waitingTime).toBeNull();
    // reply but no start at all: empty, not a huge number
    expect(toCaseRow(caseOf({ firstRepliedAt: full.firstRepliedAt }), ctx).waitingTime).toBeNull();
  });

  it('S8: avgReplyTime = totalReplyTime / replyCount, empty for zero replies', () => {
    expect(toCaseRow(full, ctx).avgReplyTime).toBe(225);
    expect(toCaseRow(caseOf({ totalReplyTime: 100, replyCount: 3 }), ctx).avgReplyTime).toBeCloseTo(33.3333333, 6);
    const zero = toCaseRow(caseOf({ totalReplyTime: 0, replyCount: 0 }), ctx);
    expect(zero.avgReplyTime).toBeNull();
    expect(zero.replyCount).toBe(0);
    expect(zero.totalReplyTime).toBe(0);
  });

  it('S8: resolutionTime = closedAt - firstOpenedAt; leadTime = resolutionTime - totalSnoozedTime', () => {
    const row = toCaseRow(full, ctx);
    expect(row.resolutionTime).toBe(3600);
    expect(row.leadTime).toBe(3000);
    expect(row.totalSnoozedTime).toBe(600);
    const open = toCaseRow(caseOf({ ...full, closedAt: null }), ctx);
    expect(open.resolutionTime).toBeNull();
    expect(open.leadTime).toBeNull();
    const neverOpened = toCaseRow(caseOf({ ...full, firstOpenedAt: null }), ctx);
    expect(neverOpened.resolutionTime).toBeNull();
    expect(neverOpened.leadTime).toBeNull();
    // Sub-second timestamps stay exact.
    const fine = toCaseRow(caseOf({ firstOpenedAt: 1_000, closedAt: 2_500 }), ctx);
    expect(fine.resolutionTime).toBe(1.5);
  });

  it('S8: an unreadable totalSnoozedTime (salvaged as null) leaves leadTime empty, not resolutionTime - 0', () => {
    const raw = {
      userChatCaseId: 'k1', userChatCase: 1, userChatId: 'c1', direction: 'inbound', userChatState: 'closed', userId: 'u1', mediumName: 'inAppChat',
      createdAt: T('2025-07-01T00:00:00Z'), firstOpenedAt: T('2025-07-01T00:00:00Z'), closedAt: T('2025-07-01T02:00:00Z'), totalSnoozedTime: 'n/a',
    };
    const record = salvageCaseRecord(raw)!;
    expect(record.totalSnoozedTime).toBeNull();
    const row = toCaseRow(record, ctx);
    expect(row.resolutionTime).toBe(7200);
    expect(row.leadTime).toBeNull();
    expect(leadTimeSeconds(record)).toBeNull();
    // The filter reads the same formula: no invented 7200 to match.
    const leadTimeIs = (op: string, value: unknown) =>
      compileFilter({ join: 'and', groups: [{ join: 'and', conditions: [{ field: 'leadTime', op, value } as never] }] }, 'cases', { now })(record);
    expect(leadTimeIs('eq', 7200)).toBe(false);
    expect(leadTimeIs('eq', null)).toBe(true);
    // Absent means the schema's default (never snoozed), as before.
    expect(leadTimeSeconds({ firstOpenedAt: 0, closedAt: 60_000 })).toBe(60);
  });

  it.each([
    // closedAt offset from now (ms) | nextCaseStartedAt offset | expected
    ['not closed', undefined, undefined, 'inProgress'],
    ['closed 59m59s ago', -3_599_000, undefined, 'inProgress'],
    ['closed exactly 1h ago', -3_600_000, undefined, 'completed'],
    ['closed 2h ago', -7_200_000, undefined, 'completed'],
    ['closed 10m ago but the next case started', -600_000, -300_000, 'completed'],
    ['not closed but the next case started', undefined, -1, 'completed'],
    ['next case starts in the future (clock)', -600_000, 60_000, 'inProgress'],
  ] as const)('S8: userChatCaseState one-hour rule: %s -> %s', (_label, closedOffset, nextOffset, expected) => {
    const r = caseOf({
      closedAt: closedOffset === undefined ? null : now + closedOffset,
      nextCaseStartedAt: nextOffset === undefined ? null : now + nextOffset,
    });
    expect(caseState(r, now)).toBe(expected);
    expect(toCaseRow(r, { ...ctx }).userChatCaseState).toBe(expected);
  });

  it('S8: team, assignee and follower names are joined from the directory', () => {
    const row = toCaseRow(caseOf({ teamId: 't1', assigneeId: 'm2', managerIds: ['m1', 'gone', 'm2'] }), ctx);
    expect(row.teamName).toBe('CS 1팀');
    expect(row.assigneeName).toBe('Emma Smith');
    expect(row.managerIds).toBe('m1, gone, m2');
    expect(row.managerNames).toBe('김민지, Emma Smith');
    const none = toCaseRow(caseOf({ teamId: 'unknown' }), ctx);
    expect(none.teamName).toBeNull();
    expect(none.assigneeName).toBeNull();
    expect(none.managerNames).toBeNull();
  });

  it('S8: userChatUrl links the chat for managers; tags are joined', () => {
    const row = toCaseRow(caseOf({ tags: ['환불', 'refund'] }), { ...ctx, deskBaseUrl: 'https://desk.example.com/' });
    expect(row.userChatUrl).toBe('https://desk.example.com/channels/ch-1/user_chats/chat-1');
    expect(row.tags).toBe('환불, refund');
  });

  it('S8: every value matches its column type (what the xlsx engine writes natively)', () => {
    const profileKeys: ProfileKeyDef[] = [
      { key: 'orderNumber', type: 'string', order: 1, archived: false },
      { key: 'refundAmount', type: 'number', order: 0, archived: false },
      { key: 'vip', type: 'boolean', order: 2, archived: false },
      { key: 'paidAt', type: 'date', order: 3, archived: false },
    ];
    const record = caseOf({
      ...full,
      profile: { csat: 5, csatComment: '좋아요', orderNumber: 123, refundAmount: '5000', vip: 'true', paidAt: '2025-07-01T00:00:00Z' },
    });
    const columns = caseColumns({ rangeStart: '2025-07-01', profileKeys });
    const row = createCaseRowMapper({ ...ctx, profileKeys })(record);
    for (const c of columns) {
      const v = row[c.key];
      if (v === null || v === undefined) continue;
      const expected = { string: 'string', number: 'number', duration: 'number', boolean: 'boolean', date: 'number' }[c.type];
      expect(typeof v, c.key).toBe(expected);
    }
    expect(row['profile.orderNumber']).toBe('123');
    expect(row['profile.refundAmount']).toBe(5000);
    expect(row['profile.vip']).toBe(true);
    expect(row['profile.paidAt']).toBe(T('2025-07-01T00:00:00Z'));
    expect(row['profile.csat']).toBe(5);
  });
});

describe('S8 column catalog', () => {
  it('S8: every documented column in the document order', () => {
    expect(CASE_COLUMN_KEYS).toEqual([
      'userChatCaseCreatedAt', 'userChatCase', 'userChatCaseId', 'userChatCaseState', 'userChatCaseUpdatedAt',
      'userChatId', 'direction', 'userChatState', 'userChatUrl', 'teamId', 'teamName', 'assigneeId',
      'assigneeName', 'managerIds', 'managerNames', 'userId', 'userName', 'createdAt', 'firstQueuedAt',
      'firstOpenedAt', 'firstAskedAt', 'firstRepliedAt', 'closedAt', 'waitingTime', 'totalReplyTime',
      'replyCount', 'avgReplyTime', 'resolutionTime', 'totalSnoozedTime', 'leadTime', 'snoozedCount',
      'missedCount', 'description', 'summarizedMessage', 'tags', 'mediumName', 'mediumSenderName',
      'marketingType', 'marketingId', 'workflowId', 'page', 'priority', 'profile.csat', 'profile.csatComment',
    ]);
  });

  it.each([
    ['2025-06-26', 'contactMediumType', 'appMessenger'],
    ['2025-07-16', 'contactMediumType', 'appMessenger'],
    ['2025-07-17', 'mediumName', 'mediumSenderName'],
    ['2025-12-01', 'mediumName', 'mediumSenderName'],
  ])('S8: range starting %s has headers %s / %s (renamed on 2025-07-17)', (rangeStart, medium, sender) => {
    const columns = caseColumns({ rangeStart });
    const byKey = new Map(columns.map((c) => [c.key, c]));
    expect(byKey.get('mediumName')!.header).toBe(medium);
    expect(byKey.get('mediumSenderName')!.header).toBe(sender);
    // Keys stay stable so rows need not know the range.
    expect(columns.map((c) => c.key)).toEqual(CASE_COLUMN_KEYS);
  });

  it('S8: column types: dates, durations, numbers', () => {
    const types = Object.fromEntries(caseColumns({ rangeStart: '2025-07-17' }).map((c) => [c.key, c.type]));
    for (const k of ['userChatCaseCreatedAt', 'userChatCaseUpdatedAt', 'createdAt', 'firstQueuedAt', 'firstOpenedAt', 'firstAskedAt', 'firstRepliedAt', 'closedAt']) {
      expect(types[k], k).toBe('date');
    }
    for (const k of ['waitingTime', 'totalReplyTime', 'avgReplyTime', 'resolutionTime', 'totalSnoozedTime', 'leadTime']) {
      expect(types[k], k).toBe('duration');
    }
    for (const k of ['userChatCase', 'replyCount', 'snoozedCount', 'missedCount', 'profile.csat']) expect(types[k], k).toBe('number');
  });

  it('S8/C5: custom chat-profile keys follow in configured order, archived and fixed keys left out', () => {
    const profileKeys: ProfileKeyDef[] = [
      { key: 'csat', type: 'number', order: 0, archived: false },
      { key: 'b', type: 'string', order: 2, archived: false },
      { key: 'a', type: 'number', order: 1, archived: false },
      { key: 'old', type: 'string', order: 0, archived: true },
    ];
    const columns = caseColumns({ rangeStart: '2025-07-17', profileKeys });
    expect(columns.slice(CASE_COLUMN_KEYS.length).map((c) => c.key)).toEqual(['profile.a', 'profile.b']);
    const row = createCaseRowMapper({ ...ctx, profileKeys })(caseOf({ profile: { a: 1, b: 'x', old: 'secret-old' } }));
    expect(row['profile.old']).toBeUndefined();
  });
});

describe('S8 custom keys as bare names', () => {
  it('S8: profileKeys may be key names (text columns, list order)', () => {
    const columns = caseColumns({ rangeStart: '2025-07-17', profileKeys: ['zeta', 'alpha'] });
    expect(columns.slice(CASE_COLUMN_KEYS.length)).toEqual([
      { key: 'profile.zeta', header: 'profile.zeta', type: 'string', width: 16 },
      { key: 'profile.alpha', header: 'profile.alpha', type: 'string', width: 16 },
    ]);
    const row = createCaseRowMapper({ ...ctx, profileKeys: ['zeta', 'alpha'] })(caseOf({ profile: { zeta: 3, alpha: 'a' } }));
    expect(row['profile.zeta']).toBe('3');
    expect(row['profile.alpha']).toBe('a');
  });
});

describe('S9 / C5 user columns', () => {
  const profileSchema = {
    keys: [
      { key: 'city', type: 'string', order: 3, archived: false },
      { key: 'grade', type: 'string', order: 1, archived: false },
      { key: 'lastCheckoutCompletedAt', type: 'date', order: 0, archived: false },
      { key: 'legacyCode', type: 'string', order: 1.5, archived: true },
      { key: 'amount', type: 'number', order: 2, archived: false },
      { key: 'interests', type: 'list', order: 4, archived: false },
    ],
  } as const satisfies { keys: ProfileKeyDef[] };

  it('S9/C5: fixed columns, then profile.* in configured order without archived keys', () => {
    expect(userColumns({ keys: [...profileSchema.keys] }).map((c) => c.key)).toEqual([
      'id', 'memberId', 'name', 'mobileNumber', 'email', 'member', 'tags', 'lastSeenAt', 'sessionCount',
      'createdAt', 'marketingConsentEmail', 'marketingConsentTexting', 'blocked',
      'profile.lastCheckoutCompletedAt', 'profile.grade', 'profile.amount', 'profile.city', 'profile.interests',
    ]);
    const types = Object.fromEntries(userColumns({ keys: [...profileSchema.keys] }).map((c) => [c.key, c.type]));
    expect(types).toMatchObject({
      member: 'boolean', lastSeenAt: 'date', sessionCount: 'number', createdAt: 'date', blocked: 'boolean',
      'profile.lastCheckoutCompletedAt': 'date', 'profile.amount': 'number', 'profile.interests': 'string',
    });
  });

  it('S9/C5: toUserRow carries every field; archived values do not become columns', () => {
    const user = userRecordSchema.parse({
      id: 'u1',
      memberId: 'M1',
      name: '김민지',
      mobileNumber: '+821012345678',
      email: 'minji@example.com',
      member: true,
      tags: ['VIP', '재구매'],
      lastSeenAt: T('2025-07-01T00:00:00Z'),
      sessionCount: 12,
      createdAt: T('2024-01-01T00:00:00Z'),
      marketingConsentEmail: true,
      marketingConsentTexting: false,
      blocked: false,
      profile: { city: '서울', amount: 1000, interests: ['books', 'sports'], legacyCode: 'X1', lastCheckoutCompletedAt: T('2025-07-02T00:00:00Z') },
    });
    const row = toUserRow(user, { keys: [...profileSchema.keys] });
    expect(row).toMatchObject({
      id: 'u1', memberId: 'M1', name: '김민지', mobileNumber: '+821012345678', email: 'minji@example.com',
      member: true, tags: 'VIP, 재구매', sessionCount: 12, marketingConsentEmail: true, marketingConsentTexting: false,
      blocked: false, 'profile.city': '서울', 'profile.amount': 1000, 'profile.interests': 'books, sports',
      'profile.lastCheckoutCompletedAt': T('2025-07-02T00:00:00Z'),
    });
    expect(row['profile.legacyCode']).toBeUndefined();
    expect(row['profile.grade']).toBeNull();
  });
});

describe('S9 "User data" headers', () => {
  it('S9: name, mobile number and e-mail are headed profile.name / profile.mobileNumber / profile.email; keys stay', () => {
    const columns = userColumns(undefined);
    expect(columns.slice(0, 6).map((c) => [c.key, c.header])).toEqual([
      ['id', 'id'],
      ['memberId', 'memberId'],
      ['name', 'profile.name'],
      ['mobileNumber', 'profile.mobileNumber'],
      ['email', 'profile.email'],
      ['member', 'member'],
    ]);
  });

  it('S9: a workspace profile key named email/name/mobileNumber adds no second column of that header; its value fills an empty fixed cell', () => {
    const schema = {
      keys: [
        { key: 'email', type: 'string', order: 0, archived: false },
        { key: 'name', type: 'string', order: 1, archived: false },
        { key: 'mobileNumber', type: 'string', order: 2, archived: false },
        { key: 'grade', type: 'string', order: 3, archived: false },
      ],
    } satisfies { keys: ProfileKeyDef[] };
    const headers = userColumns(schema).map((c) => c.header);
    expect(new Set(headers).size).toBe(headers.length);
    expect(headers.filter((h) => h === 'profile.email')).toHaveLength(1);
    expect(headers.at(-1)).toBe('profile.grade');
    const map = createUserRowMapper(schema);
    const row = map(userRecordSchema.parse({ id: 'u1', createdAt: 0, name: '김민지', profile: { email: 'minji@example.com', name: 'other', grade: 'gold' } }));
    expect(row).toMatchObject({ name: '김민지', email: 'minji@example.com', 'profile.grade': 'gold' });
    expect(row['profile.email']).toBeUndefined();
    expect(toUserRow(userRecordSchema.parse({ id: 'u2', createdAt: 0, profile: { email: 'x@example.com' } }))).toMatchObject({ email: 'x@example.com' });
  });

  it('C5: an archived or undeclared profile key of that name fills nothing: archived values never reach a row', () => {
    const user = userRecordSchema.parse({
      id: 'u1',
      createdAt: 0,
      profile: { email: 'archived@old.example', name: 'Old Name', mobileNumber: '+821099998888', grade: 'gold' },
    });
    const archived = {
      keys: [
        { key: 'email', type: 'string', order: 0, archived: true },
        { key: 'name', type: 'string', order: 1, archived: true },
        { key: 'grade', type: 'string', order: 2, archived: false },
      ],
    } satisfies { keys: ProfileKeyDef[] };
    // `mobileNumber` is not declared at all: no workspace key, so no fallback either.
    for (const row of [createUserRowMapper(archived)(user), toUserRow(user, archived), toUserRow(user, archived.keys)]) {
      expect([row.name ?? null, row.email ?? null, row.mobileNumber ?? null, row['profile.grade']]).toEqual([null, null, null, 'gold']);
      expect(Object.values(row)).not.toContain('archived@old.example');
      expect(Object.values(row)).not.toContain('+821099998888');
    }
  });
});

describe('C11 date profile values held as text are read in the export time zone', () => {
  const schema = { keys: [{ key: 'at', type: 'date', order: 0, archived: false }] } satisfies { keys: ProfileKeyDef[] };
  const cell = (value: unknown, timeZone?: string) =>
    createUserRowMapper(schema, timeZone ? { timeZone } : {})({ id: 'u', createdAt: 0, profile: { at: value } } as unknown as UserRecord)['profile.at'];

  it.each([
    ['2025-07-01', 'America/Los_Angeles', '2025-07-01T07:00:00.000Z'],
    ['2025-07-01', 'Asia/Seoul', '2025-06-30T15:00:00.000Z'],
    ['2025-07-01T10:00:00', 'America/Los_Angeles', '2025-07-01T17:00:00.000Z'],
    ['2025-07-01 10:00', 'Asia/Seoul', '2025-07-01T01:00:00.000Z'],
    ['2025-07-01T10:00:00.250', 'UTC', '2025-07-01T10:00:00.250Z'],
    ['2025-07-01T10:00:00+09:00', 'America/Los_Angeles', '2025-07-01T01:00:00.000Z'],
    ['2025-07-01T10:00:00Z', 'Asia/Seoul', '2025-07-01T10:00:00.000Z'],
    // DST in New York: 02:30 on 2025-03-09 does not exist (read as 03:30 EDT); 01:30 on 2025-11-02 happens twice (the first).
    ['2025-03-09T02:30', 'America/New_York', '2025-03-09T07:30:00.000Z'],
    ['2025-03-09T10:00', 'America/New_York', '2025-03-09T14:00:00.000Z'],
    ['2025-11-02T01:30', 'America/New_York', '2025-11-02T05:30:00.000Z'],
    ['2025-11-02T10:00', 'America/New_York', '2025-11-02T15:00:00.000Z'],
    // America/Santiago: 2025-09-07 starts at 01:00 (DST at midnight).
    ['2025-09-07', 'America/Santiago', '2025-09-07T04:00:00.000Z'],
  ])('C11: %s in %s', (text, zone, iso) => {
    expect(new Date(cell(text, zone) as number).toISOString()).toBe(iso);
  });

  it('C11: days that do not exist and text that is no date leave the cell empty', () => {
    for (const bad of ['2023-02-29', '2023-02-29T10:00:00+09:00', '2025-07-01T25:00', 'July 1, 2025', 'soon', '']) {
      expect(cell(bad, 'Asia/Seoul')).toBeNull();
    }
    expect(cell('2025-07-01')).toBe(T('2025-07-01T00:00:00Z'));
  });

  it('C11: years below 100 are those years (not 1900-1999), so before 1900-03-01: an empty cell', () => {
    for (const text of ['0001-01-01', '0099-12-31', '0050-06-15T10:00', '0050-06-15 10:00:00.5']) {
      for (const zone of ['UTC', 'Asia/Seoul', 'Pacific/Kiritimati', 'Pacific/Pago_Pago']) expect(cell(text, zone), `${text} ${zone}`).toBeNull();
    }
    expect(startOfDayInZone({ year: 1, month: 1, day: 1 }, 'UTC')).toBe(Date.parse('0001-01-01T00:00:00Z'));
    expect(startOfDayInZone({ year: 50, month: 6, day: 15 }, 'UTC')).toBe(Date.parse('0050-06-15T00:00:00Z'));
    // And a filter bound of such a day is that day: 1930 is after 0050-01-01.
    const createdAfter = compileFilter({ join: 'and', groups: [{ join: 'and', conditions: [{ field: 'createdAt', op: 'gt', value: '0050-01-01' }] }] }, 'users', { now });
    expect(createdAfter({ id: 'u', createdAt: T('1930-01-01T00:00:00Z') })).toBe(true);
  });

  it('C11: a date no xlsx cell can show (outside 1900-03-01 .. 9999-12-31 in the zone) is an empty cell, decided as the engine does', () => {
    for (const value of ['1899-12-31', '1900-02-28', '1900-02-28T23:59:59', '10000-01-01', -3e12, 1e15, -8.64e15, 8.64e15]) {
      expect(cell(value, 'Asia/Seoul'), String(value)).toBeNull();
    }
    expect(cell('1900-03-01', 'Asia/Seoul')).toBe(Date.parse('1900-02-28T15:32:08Z')); // Seoul's LMT was +8:27:52
    expect(cell('9999-12-31T23:59:59.999', 'Pacific/Kiritimati')).toBe(Date.parse('9999-12-31T09:59:59.999Z'));
    // Within a day of either end the answer depends on the zone: the same instants the engine takes.
    const edges = [Date.UTC(1900, 2, 1), Date.UTC(10000, 0, 1)];
    for (const zone of ['UTC', 'Asia/Seoul', 'Pacific/Kiritimati', 'Pacific/Pago_Pago', 'America/New_York', 'Asia/Kolkata']) {
      const encoder = createPartEncoder(userColumns(schema), { timeZone: zone });
      for (const edge of edges) {
        for (let h = -16; h <= 16; h += 0.25) {
          for (const delta of [-1, 0, 1]) {
            const at = edge + h * 3_600_000 + delta * 1000;
            const value = cell(at, zone);
            let engineTakes = true;
            try {
              createPartEncoder(userColumns(schema), { timeZone: zone }).add({ id: 'u', 'profile.at': at });
            } catch {
              engineTakes = false;
            }
            expect(value === at, `${zone} ${new Date(at).toISOString()}`).toBe(engineTakes);
            if (value !== null) encoder.add({ id: 'u', 'profile.at': value });
          }
        }
      }
    }
  });

  it('C11: a row of such dates (text, numbers, a salvaged far-future timestamp) encodes without failing the part', () => {
    const users = createPartEncoder(userColumns(schema), { timeZone: 'Asia/Seoul' });
    const map = createUserRowMapper(schema, { timeZone: 'Asia/Seoul' });
    for (const at of ['0001-01-01', '1899-12-31', '1900-02-28', -3e12, 1e15, '2025-07-01']) {
      users.add(map({ id: 'u', createdAt: 0, member: false, tags: [], sessionCount: 0, marketingConsentEmail: false, marketingConsentTexting: false, blocked: false, profile: { at } } as unknown as UserRecord));
    }
    expect(users.finish().rowCount).toBe(6);
  });

  it('C11: profile date text keeps its start-of-day per zone and day: a second pass over 30,000 distinct days asks Intl nothing', () => {
    // A birthday column spans ~29,000 days; a cache emptied every 10,000 entries missed on every value.
    const days: string[] = [];
    for (let d = 0; d < 30_000; d++) days.push(new Date(Date.UTC(1940, 0, 1) + d * 86_400_000).toISOString().slice(0, 10));
    const zone = 'Europe/Berlin';
    for (const text of days) cell(text, zone);
    // `format` is an accessor (it returns a bound function): count reads of it.
    const format = vi.spyOn(Intl.DateTimeFormat.prototype as unknown as { format: object }, 'format', 'get');
    const parts = vi.spyOn(Intl.DateTimeFormat.prototype, 'formatToParts');
    try {
      for (const text of days) cell(text, zone);
      expect(format.mock.calls.length + parts.mock.calls.length).toBe(0);
    } finally {
      format.mockRestore();
      parts.mockRestore();
    }
  });

  it('C11: the case row mapper reads chat-profile date text in its zone too', () => {
    const row = createCaseRowMapper({ now, channelId: 'ch', profileKeys: [{ key: 'due', type: 'date', order: 0, archived: false }], timeZone: 'Asia/Seoul' })(
      caseOf({ profile: { due: '2025-07-01' } }),
    );
    expect(row['profile.due']).toBe(T('2025-07-01T00:00:00+09:00'));
  });
});
