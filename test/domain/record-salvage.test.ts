import { describe, expect, it } from 'vitest';
import {
  caseColumns,
  createCaseRowMapper,
  createUserRowMapper,
  salvageCaseRecord,
  salvageUserRecord,
  safeParseCaseRecord,
  safeParseUserRecord,
  userColumns,
} from '../../shared/domain';
import { createPartEncoder } from '../../shared/xlsx';

const T = (iso: string) => Date.parse(iso);

describe('C6 odd user records are kept with only the odd values changed', () => {
  it('C6: a local-format number, a numeric member id, an object profile value', () => {
    const raw = {
      id: 'u1',
      createdAt: 0,
      mobileNumber: ' 010-2222-3333 ',
      memberId: 12345,
      name: true,
      email: { address: 'x' },
      member: 'true',
      blocked: 'maybe',
      tags: ['VIP', 3, { x: 1 }],
      lastSeenAt: '2025-07-01T09:00:00+09:00',
      sessionCount: '7',
      profile: { grade: { v: 1 }, tier: 'gold', score: Number.NaN, list: ['a', 2, null] },
    };
    expect(safeParseUserRecord(raw).success).toBe(false);
    expect(salvageUserRecord(raw)).toMatchObject({
      id: 'u1',
      mobileNumber: '010-2222-3333',
      memberId: '12345',
      name: 'true',
      email: null,
      member: true,
      blocked: null,
      tags: ['VIP', '3'],
      lastSeenAt: T('2025-07-01T00:00:00Z'),
      sessionCount: 7,
      marketingConsentEmail: false,
      profile: { grade: null, tier: 'gold', score: null, list: ['a', '2'] },
    });
  });

  it('C6: only a record without an id (or not an object) is left for the caller to skip', () => {
    for (const raw of [{ createdAt: 0 }, { id: '', createdAt: 0 }, { id: '  ', createdAt: 0 }, { id: true }, { id: { a: 1 } }, null, 'u1', [1]]) {
      expect(salvageUserRecord(raw)).toBeUndefined();
    }
    expect(salvageUserRecord({ id: 42 })?.id).toBe('42');
    expect(salvageUserRecord({ id: 'u1', createdAt: 'yesterday' })?.createdAt).toBeNull();
  });
});

describe('S1 odd case records are kept with only the odd values changed', () => {
  const base = {
    userChatCaseId: 'k1', userChatCase: 1, userChatId: 'c1', direction: 'inbound', userChatState: 'closed', userId: 'u1',
    createdAt: T('2025-07-01T00:00:00Z'), mediumName: 'inAppChat',
  };

  it('S1: unknown enum text is written as found; counts from text; invalid values empty, not zero', () => {
    const raw = { ...base, mediumName: 'appWhatsApp', replyCount: '2', totalReplyTime: 30, missedCount: -1, managerIds: ['m1', 7], userChatCase: 0, closedAt: 'later', userId: { id: 'u1' } };
    expect(safeParseCaseRecord(raw).success).toBe(false);
    expect(salvageCaseRecord(raw)).toMatchObject({
      userChatCaseId: 'k1', mediumName: 'appWhatsApp', replyCount: 2, totalReplyTime: 30, missedCount: null,
      managerIds: ['m1', '7'], userChatCase: null, closedAt: null, userId: null, snoozedCount: 0,
    });
    expect(salvageCaseRecord({ ...base, userChatCaseId: 9 })?.userChatCaseId).toBe('9');
    expect(salvageCaseRecord({ ...base, userChatCaseId: undefined })).toBeUndefined();
  });
});

describe('S1/C6 salvaged counts and durations read decimal text only', () => {
  const base = {
    userChatCaseId: 'k1', userChatCase: 1, userChatId: 'c1', direction: 'inbound', userChatState: 'closed', userId: 'u1',
    createdAt: T('2025-07-01T00:00:00Z'), mediumName: 'inAppChat',
  };

  it('S1: "0x1A", "0b11", "0o17", "Infinity" are not numbers (empty cells); decimal text, with spaces or an exponent, is', () => {
    const odd = salvageCaseRecord({ ...base, userChatCase: 'x', totalReplyTime: '0x1A', replyCount: '0b11', totalSnoozedTime: '0o17', missedCount: 'Infinity' });
    expect(odd).toMatchObject({ totalReplyTime: null, replyCount: null, totalSnoozedTime: null, missedCount: null });
    const fine = salvageCaseRecord({ ...base, userChatCase: 'x', totalReplyTime: ' 30 ', replyCount: '2', totalSnoozedTime: '1e2', missedCount: '0' });
    expect(fine).toMatchObject({ totalReplyTime: 30, replyCount: 2, totalSnoozedTime: 100, missedCount: 0 });
  });

  it('C6: a user\'s session count as hex text is empty, not 16; a profile with an own "__proto__" keeps its other values', () => {
    const user = salvageUserRecord({ id: 'u1', createdAt: 0, sessionCount: '0x10', member: 'maybe', profile: JSON.parse('{"__proto__": ["x"], "grade": "gold"}') });
    expect(user?.sessionCount).toBeNull();
    expect(user?.profile).toEqual({ grade: 'gold' });
    expect(Object.getPrototypeOf(user?.profile)).toBe(Object.prototype);
  });
});

describe('C6/S1 salvaged timestamps', () => {
  const base = {
    userChatCaseId: 'k1', userChatCase: 1, userChatId: 'c1', direction: 'inbound', userChatState: 'closed', userId: 'u1',
    createdAt: T('2025-07-01T00:00:00Z'), mediumName: 'inAppChat',
  };

  it('C6: digits-only text below 1e11 is epoch seconds (Unix time), longer digits epoch ms; numbers stay ms', () => {
    const u = salvageUserRecord({ id: 'u1', createdAt: '1751328000', lastSeenAt: '1751328000123' })!;
    expect(u.createdAt).toBe(T('2025-07-01T00:00:00Z'));
    expect(u.lastSeenAt).toBe(T('2025-07-01T00:00:00.123Z'));
    expect(salvageUserRecord({ id: 'u1', createdAt: 1751328000, sessionCount: 'x' })!.createdAt).toBe(1751328000);
    expect(salvageCaseRecord({ ...base, closedAt: ' 1751331600 ', replyCount: 'x' })!.closedAt).toBe(T('2025-07-01T01:00:00Z'));
  });

  it('S1/C6: a timestamp after 9999-12-31 is refused by the parsers and salvaged as an empty cell (the engine cannot write it)', () => {
    for (const far of [1e15, 8.64e15, '1000000000000000', '+275760-09-13T00:00:00Z', '9999-12-31T23:00:00Z']) {
      const raw = { ...base, firstRepliedAt: far };
      expect(safeParseCaseRecord(raw).success, String(far)).toBe(false);
      expect(salvageCaseRecord(raw)!.firstRepliedAt, String(far)).toBeNull();
      expect(salvageUserRecord({ id: 'u1', createdAt: 0, lastSeenAt: far })!.lastSeenAt, String(far)).toBeNull();
    }
    expect(salvageCaseRecord({ ...base, firstRepliedAt: T('9999-12-30T00:00:00Z'), replyCount: 'x' })!.firstRepliedAt).toBe(T('9999-12-30T00:00:00Z'));
    const cases = createPartEncoder(caseColumns({ rangeStart: '2025-07-01' }), { timeZone: 'Pacific/Kiritimati' });
    cases.add(createCaseRowMapper({ now: 0, channelId: 'ch' })(salvageCaseRecord({ ...base, firstRepliedAt: 1e15, closedAt: '253402297199999' })!));
    expect(cases.finish().rowCount).toBe(1);
  });
});

describe('S8/S9 salvaged records render: the engine takes every cell', () => {
  it('S8/S9: rows of odd records pass the part encoder (mistyped cells would throw)', () => {
    const oddUsers = [
      { id: 'u1', createdAt: 'x', mobileNumber: 1012345678, member: 1, sessionCount: -3, lastSeenAt: 1.5, profile: { d: { x: 1 }, n: 'abc', b: 'yes' } },
      { id: 'u2', profile: 'not an object', tags: 'VIP, 재구매' },
    ];
    const schema = { keys: [
      { key: 'd', type: 'date' as const, order: 0, archived: false },
      { key: 'n', type: 'number' as const, order: 1, archived: false },
      { key: 'b', type: 'boolean' as const, order: 2, archived: false },
    ] };
    const users = createPartEncoder(userColumns(schema), { timeZone: 'Asia/Seoul' });
    const toUserRow = createUserRowMapper(schema, { timeZone: 'Asia/Seoul' });
    for (const raw of oddUsers) users.add(toUserRow(salvageUserRecord(raw)!));
    expect(users.finish().rowCount).toBe(2);

    const oddCase = { userChatCaseId: 'k1', userChatCase: 'first', userChatId: 5, direction: 3, createdAt: 'x', mediumName: null, tags: [{}], profile: { csat: 'great' } };
    const cases = createPartEncoder(caseColumns({ rangeStart: '2025-07-01' }), { timeZone: 'Asia/Seoul' });
    cases.add(createCaseRowMapper({ now: 0, channelId: 'ch' })(salvageCaseRecord(oddCase)!));
    cases.add(createCaseRowMapper({ now: 0, channelId: 'ch' })(salvageCaseRecord({ userChatCaseId: 'k2' })!));
    expect(cases.finish().rowCount).toBe(2);
  });
});
