import { describe, expect, it } from 'vitest';
import {
  CASE_COLUMN_KEYS,
  DERIVED_CASE_KEYS,
  MEDIUM_NAMES,
  USER_CHAT_STATES,
  ValidationError,
  caseColumns,
  caseRecordSchema,
  channelSettingsSchema,
  compileFilter,
  createCaseRowMapper,
  createUserRowMapper,
  directorySchema,
  generateWorkspace,
  parseImportLine,
  profileSchemaSchema,
  resolveSegment,
  segmentSchema,
  toImportLine,
  userColumns,
  userRecordSchema,
  type CaseRecord,
} from '../../shared/domain';

describe('import format (one JSON object per line)', () => {
  it('S8: a case line with column keys, flat profile keys and ISO timestamps becomes a record', () => {
    const line = JSON.stringify({
      userChatCaseId: 'k1',
      userChatCase: 2,
      userChatId: 'c1',
      direction: 'inbound',
      userChatState: 'closed',
      userId: 'u1',
      createdAt: '2025-07-01T09:00:00+09:00',
      firstOpenedAt: 1751328000000,
      closedAt: '2025-07-01T10:00:00Z',
      managerIds: 'm1, m2',
      tags: ['환불'],
      mediumName: 'phoneNumber',
      mediumSenderName: '+8216444052',
      'profile.csat': 5,
      'profile.orderNumber': 'ORD-1',
    });
    const r = parseImportLine('cases', line, 3);
    expect(r.createdAt).toBe(Date.parse('2025-07-01T00:00:00Z'));
    expect(r.firstOpenedAt).toBe(1751328000000);
    expect(r.closedAt).toBe(Date.parse('2025-07-01T10:00:00Z'));
    expect(r.managerIds).toEqual(['m1', 'm2']);
    expect(r.profile).toEqual({ csat: 5, orderNumber: 'ORD-1' });
    expect(r.replyCount).toBe(0);
  });

  it.each([
    ['not JSON', '{nope', 'line 7', undefined],
    ['array', '[1]', 'line 7', undefined],
    ['derived column', JSON.stringify({ waitingTime: 3 }), 'waitingTime', 'waitingTime'],
    ['unknown key', JSON.stringify({ colour: 'red' }), 'colour', 'colour'],
    ['local time without offset', JSON.stringify({ createdAt: '2025-07-01T09:00:00' }), 'createdAt', 'createdAt'],
    ['bad enum', JSON.stringify({ userChatCaseId: 'k', userChatCase: 1, userChatId: 'c', direction: 'sideways', userChatState: 'open', userId: 'u', createdAt: 0, mediumName: 'email' }), 'direction', 'direction'],
    ['missing id', JSON.stringify({ userChatCase: 1, userChatId: 'c', direction: 'inbound', userChatState: 'open', userId: 'u', createdAt: 0, mediumName: 'email' }), 'userChatCaseId', 'userChatCaseId'],
    ['bad profile key', JSON.stringify({ 'profile.9x': 1 }), 'profile.9x', 'profile.9x'],
  ])('S8: import error names the line and field: %s', (_label, line, mention, field) => {
    try {
      parseImportLine('cases', line, 7);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ValidationError);
      const err = e as ValidationError;
      expect(err.message).toContain('line 7');
      expect(err.message).toContain(mention);
      expect(err.field).toBe(field);
      expect(err.code).toBe('IMPORT_INVALID_LINE');
    }
  });

  it('C5: a user line: phone must be E.164, profile keys flat, lists from text', () => {
    const u = parseImportLine('users', JSON.stringify({ id: 'u1', createdAt: '2024-01-01T00:00:00Z', mobileNumber: '+821012345678', tags: 'VIP, 신규', member: true, 'profile.grade': 'gold' }), 1);
    expect(u).toMatchObject({ id: 'u1', mobileNumber: '+821012345678', tags: ['VIP', '신규'], member: true, profile: { grade: 'gold' }, sessionCount: 0 });
    expect(() => parseImportLine('users', JSON.stringify({ id: 'u1', createdAt: 0, mobileNumber: '010-1234-5678' }), 2)).toThrow(/line 2, field mobileNumber/);
  });

  it('an import line naming a day that does not exist is refused, not rolled into the next month', () => {
    for (const at of ['2023-02-29T12:00:00Z', '2025-04-31T00:00:00+09:00', '2025-02-30T09:30:00+0900']) {
      expect(() => parseImportLine('users', JSON.stringify({ id: 'u1', createdAt: at }), 5), at).toThrow(/line 5, field createdAt/);
    }
    expect(parseImportLine('users', JSON.stringify({ id: 'u1', createdAt: '2024-02-29T12:00:00Z' }), 6).createdAt).toBe(Date.UTC(2024, 1, 29, 12));
  });

  it('C5: with the profile schema, date profile values may be ISO text and lists comma text', () => {
    const profileSchema = { keys: [
      { key: 'lastCheckoutCompletedAt', type: 'date', order: 0, archived: false },
      { key: 'interests', type: 'list', order: 1, archived: false },
    ] } as const;
    const schema = { keys: profileSchema.keys.map((k) => ({ ...k })) };
    const line = JSON.stringify({ id: 'u1', createdAt: 0, 'profile.lastCheckoutCompletedAt': '2025-07-01T09:00:00+09:00', 'profile.interests': 'books, 식품' });
    const u = parseImportLine('users', line, 4, { profileSchema: schema });
    expect(u.profile).toEqual({ lastCheckoutCompletedAt: Date.parse('2025-07-01T00:00:00Z'), interests: ['books', '식품'] });
    // Without the schema the text is kept as is.
    expect(parseImportLine('users', line, 4).profile.lastCheckoutCompletedAt).toBe('2025-07-01T09:00:00+09:00');
    expect(() => parseImportLine('users', JSON.stringify({ id: 'u1', createdAt: 0, 'profile.lastCheckoutCompletedAt': 'last week' }), 5, { profileSchema: schema }))
      .toThrow(/line 5, field profile\.lastCheckoutCompletedAt/);
    expect(toImportLine('users', u, { profileSchema: schema })).toContain('"profile.lastCheckoutCompletedAt":"2025-07-01T00:00:00.000Z"');
  });

  it('S8/C5: the import format round-trips generated records', () => {
    const ws = generateWorkspace({ channelId: 'ch', seed: 9, users: 50, cases: 50 });
    for (const c of ws.cases) expect(parseImportLine('cases', toImportLine('cases', c), 1)).toEqual(caseRecordSchema.parse(c));
    for (const u of ws.users) expect(parseImportLine('contacts', toImportLine('users', u), 1)).toEqual(userRecordSchema.parse(u));
    const opts = { profileSchema: ws.userProfileSchema };
    for (const u of ws.users) expect(parseImportLine('users', toImportLine('users', u, opts), 1, opts)).toEqual(userRecordSchema.parse(u));
  });

  it('S8: derived keys are exactly the case columns that are not record keys', () => {
    const recordKeys = new Set(Object.keys(caseRecordSchema.shape));
    const derived = CASE_COLUMN_KEYS.filter((k) => !recordKeys.has(k) && !k.startsWith('profile.'));
    expect(derived.sort()).toEqual([...DERIVED_CASE_KEYS].sort());
  });
});

describe('generator', () => {
  const now = Date.parse('2026-01-15T00:00:00Z');

  it('S1: same seed gives the same data; another seed differs', () => {
    const a = generateWorkspace({ channelId: 'ch', seed: 7, users: 200, cases: 300, now });
    const b = generateWorkspace({ channelId: 'ch', seed: 7, users: 200, cases: 300, now });
    const c = generateWorkspace({ channelId: 'ch', seed: 8, users: 200, cases: 300, now });
    expect(JSON.stringify([...a.users])).toBe(JSON.stringify([...b.users]));
    expect(JSON.stringify([...a.cases])).toBe(JSON.stringify([...b.cases]));
    expect(JSON.stringify([...a.cases])).not.toBe(JSON.stringify([...c.cases]));
    // Re-iterable, and user i does not depend on how many users are made.
    expect(JSON.stringify([...a.cases])).toBe(JSON.stringify([...a.cases]));
    const bigger = generateWorkspace({ channelId: 'ch', seed: 7, users: 5000, cases: 0, now });
    expect(bigger.userAt(123)).toEqual(a.userAt(123));
    // Independent of `now` when now is after the data.
    const later = generateWorkspace({ channelId: 'ch', seed: 7, users: 200, cases: 300, now: now + 365 * 86_400_000 });
    expect(JSON.stringify([...later.cases])).toBe(JSON.stringify([...a.cases]));
  });

  it('S1/S8/C5: records validate, cases reference existing users, counts are exact', () => {
    const ws = generateWorkspace({ channelId: 'ch', seed: 11, users: 300, cases: 2000, now });
    channelSettingsSchema.parse(ws.channel);
    profileSchemaSchema.parse(ws.userProfileSchema);
    profileSchemaSchema.parse(ws.chatProfileSchema);
    directorySchema.parse(ws.directory);
    const userIds = new Set<string>();
    for (const u of ws.users) userIds.add(userRecordSchema.parse(u).id);
    expect(userIds.size).toBe(300);
    let n = 0;
    for (const c of ws.cases) {
      caseRecordSchema.parse(c);
      expect(userIds.has(c.userId)).toBe(true);
      n++;
    }
    expect(n).toBe(2000);
    for (const s of ws.segments) {
      segmentSchema.parse(s);
      compileFilter(resolveSegment(s), 'users', { now, profileSchema: ws.userProfileSchema });
    }
  });

  it('S1/S8: realistic variety: every medium, direction and state, reopened chats, missing timestamps, zero replies, pre-2025-07-17 data', () => {
    const ws = generateWorkspace({ channelId: 'ch', seed: 3, users: 500, cases: 5000, now });
    const all: CaseRecord[] = [...ws.cases];
    const media = new Set(all.map((c) => c.mediumName));
    const states = new Set(all.map((c) => c.userChatState));
    const directions = new Set(all.map((c) => c.direction));
    expect([...media].sort()).toEqual([...MEDIUM_NAMES].sort());
    expect([...states].sort()).toEqual([...USER_CHAT_STATES].sort());
    expect([...directions].sort()).toEqual(['inbound', 'outbound']);
    // Reopened chats: several cases share a chat, numbered 1..n, with nextCaseStartedAt on all but the last.
    const byChat = new Map<string, CaseRecord[]>();
    for (const c of all) byChat.set(c.userChatId, [...(byChat.get(c.userChatId) ?? []), c]);
    const multi = [...byChat.values()].filter((cs) => cs.length > 1);
    expect(multi.length).toBeGreaterThan(50);
    for (const cs of multi) {
      expect(cs.map((c) => c.userChatCase)).toEqual(cs.map((_, i) => i + 1));
      expect(new Set(cs.map((c) => c.direction)).size).toBe(1); // fixed by the first case
      for (const c of cs.slice(0, -1)) expect(c.nextCaseStartedAt).toBeTypeOf('number');
    }
    expect(all.some((c) => c.firstQueuedAt == null)).toBe(true);
    expect(all.some((c) => c.firstOpenedAt == null)).toBe(true);
    expect(all.some((c) => c.closedAt == null)).toBe(true);
    expect(all.some((c) => c.firstAskedAt == null)).toBe(true);
    expect(all.some((c) => c.replyCount === 0 && c.mediumName !== 'phoneNumber')).toBe(true);
    // Replies are for chats only.
    expect(all.filter((c) => c.mediumName === 'phoneNumber').every((c) => c.firstRepliedAt == null && c.replyCount === 0)).toBe(true);
    expect(all.some((c) => c.missedCount > 0)).toBe(true);
    // Spread from 2025-06-26 over months, some before 2025-07-17.
    const starts = all.map((c) => c.createdAt);
    expect(Math.min(...starts)).toBeGreaterThanOrEqual(Date.parse('2025-06-26T00:00:00+09:00'));
    expect(starts.some((t) => t < Date.parse('2025-07-17T00:00:00+09:00'))).toBe(true);
    expect(starts.some((t) => t > Date.parse('2025-11-01T00:00:00+09:00'))).toBe(true);
    // Users: Korean and Latin names, +82 mobiles, emails, archived profile values present in the source.
    const users = [...ws.users];
    expect(users.some((u) => /^[가-힣]{3}$/.test(u.name ?? ''))).toBe(true);
    expect(users.some((u) => /^[A-Za-zÀ-ÿ' ]+$/.test(u.name ?? ''))).toBe(true);
    expect(users.every((u) => u.mobileNumber == null || /^\+8210\d{8}$/.test(u.mobileNumber))).toBe(true);
    expect(users.some((u) => u.email?.includes('@'))).toBe(true);
    expect(users.some((u) => u.profile.legacyCouponCode !== undefined)).toBe(true);
    expect(ws.userProfileSchema.keys.some((k) => k.archived)).toBe(true);
  });

  it('S8/C5: generated records map to rows of the right types', () => {
    const ws = generateWorkspace({ channelId: 'ch', seed: 5, users: 100, cases: 500, now });
    const cc = caseColumns({ rangeStart: '2025-06-26', profileKeys: ws.chatProfileSchema.keys });
    const mapCase = createCaseRowMapper({ now, channelId: 'ch', directory: ws.directory, profileKeys: ws.chatProfileSchema.keys });
    const uc = userColumns(ws.userProfileSchema);
    const mapUser = createUserRowMapper(ws.userProfileSchema);
    const kind = { string: 'string', number: 'number', duration: 'number', boolean: 'boolean', date: 'number' } as const;
    for (const c of ws.cases) {
      const row = mapCase(c);
      for (const col of cc) if (row[col.key] != null) expect(typeof row[col.key], col.key).toBe(kind[col.type]);
    }
    for (const u of ws.users) {
      const row = mapUser(u);
      for (const col of uc) if (row[col.key] != null) expect(typeof row[col.key], col.key).toBe(kind[col.type]);
      expect(row['profile.legacyCouponCode']).toBeUndefined();
    }
  });

  it('S2: cases stream lazily: a 1,000,000-case workspace yields its first cases at once, and 200,000 stream with exact count', () => {
    const big = generateWorkspace({ channelId: 'ch', seed: 1, users: 100_000, cases: 1_000_000, now });
    const it = big.cases[Symbol.iterator]();
    const first = it.next();
    expect(first.done).toBe(false);
    expect(caseRecordSchema.safeParse(first.value).success).toBe(true);
    const ws = generateWorkspace({ channelId: 'ch', seed: 1, users: 100_000, cases: 200_000, now });
    let n = 0;
    let firstId: string | undefined;
    for (const c of ws.cases) {
      if (n === 0) firstId = c.userChatCaseId;
      n++;
    }
    expect(n).toBe(200_000);
    // The same seed gives the same first case whatever the total.
    expect(firstId).toBe((first.value as CaseRecord).userChatCaseId);
  });
});
