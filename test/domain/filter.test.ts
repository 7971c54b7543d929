import { describe, expect, it } from 'vitest';
import {
  DomainError,
  NotFoundError,
  ValidationError,
  compileFilter,
  compileQuickSearch,
  createCaseRowMapper,
  createUserRowMapper,
  normalizePhone,
  resolveSegment,
  splitInput,
  userRecordSchema,
  caseRecordSchema,
  type ProfileKeyDef,
  type UserRecord,
  type UsersFilter,
} from '../../shared/domain';

const DAY = 86_400_000;
const now = Date.parse('2025-12-01T00:00:00Z');

const users: UserRecord[] = [
  { id: 'u1', name: '김민지', mobileNumber: '+821012345678', email: 'Minji.Kim@Example.com', member: true, tags: ['VIP', '재구매'], sessionCount: 12, lastSeenAt: now - 2 * DAY, createdAt: now - 400 * DAY, profile: { grade: 'gold', lastCheckoutCompletedAt: now - 5 * DAY, amount: 50000, interests: ['books'] } },
  { id: 'u2', name: 'Emma Smith', mobileNumber: '+821098765432', email: 'emma@example.org', member: false, tags: [], sessionCount: 3, lastSeenAt: now - 100 * DAY, createdAt: now - 200 * DAY, profile: { grade: 'silver', amount: 1200 } },
  { id: 'u3', name: '이서연', email: null, member: true, tags: ['신규'], sessionCount: 0, createdAt: now - 10 * DAY, profile: {} },
  { id: 'u4', name: 'José García', mobileNumber: '+14155550123', email: 'jose@example.com', member: false, tags: ['VIP'], sessionCount: 40, lastSeenAt: now - 40 * DAY, createdAt: now - 900 * DAY, profile: { grade: 'platinum', lastCheckoutCompletedAt: now - 60 * DAY, amount: 999999 } },
].map((u) => userRecordSchema.parse(u));

function matchIds(filter: unknown, extra: { query?: string; profileSchema?: never } = {}): string[] {
  const p = compileFilter(filter, 'users', { now, ...extra });
  return users.filter(p).map((u) => u.id);
}

function one(condition: Record<string, unknown>): UsersFilter {
  return { join: 'and', groups: [{ join: 'and', conditions: [condition as never] }] };
}

describe('C2: an `in` whose split text holds no value', () => {
  it('is refused, naming the path, for users and cases alike (it would match nothing: an empty file)', () => {
    for (const values of [' , ,, ', ',', '\n\t ']) {
      let error: unknown;
      try {
        compileFilter(one({ field: 'name', op: 'in', values }), 'users', { now });
      } catch (e) {
        error = e;
      }
      expect(error, JSON.stringify(values)).toBeInstanceOf(ValidationError);
      expect(error).toMatchObject({ code: 'FILTER_INVALID', field: 'filter.groups[0].conditions[0].values' });
    }
    const cases = { join: 'and', groups: [{ join: 'and', conditions: [{ field: 'tags', op: 'in', values: ',' }] }] };
    expect(() => compileFilter(cases, 'cases', { now })).toThrow(/must hold at least one value/);
    // One value among separators is a value.
    expect(matchIds(one({ field: 'id', op: 'in', values: ' , u2 ,' }))).toEqual(['u2']);
  });
});

describe('C2 filter operators (users)', () => {
  it.each([
    ['eq string', { field: 'name', op: 'eq', value: 'Emma Smith' }, ['u2']],
    ['eq boolean', { field: 'member', op: 'eq', value: true }, ['u1', 'u3']],
    ['eq boolean as text', { field: 'member', op: 'eq', value: 'false' }, ['u2', 'u4']],
    ['eq number', { field: 'sessionCount', op: 'eq', value: 3 }, ['u2']],
    ['eq list element', { field: 'tags', op: 'eq', value: 'VIP' }, ['u1', 'u4']],
    ['eq phone (normalised)', { field: 'mobileNumber', op: 'eq', value: '010-1234-5678' }, ['u1']],
    ['eq null = missing', { field: 'email', op: 'eq', value: null }, ['u3']],
    ['eq profile', { field: 'profile.grade', op: 'eq', value: 'gold' }, ['u1']],
    ['neq', { field: 'profile.grade', op: 'neq', value: 'gold' }, ['u2', 'u3', 'u4']],
    ['neq list', { field: 'tags', op: 'neq', value: 'VIP' }, ['u2', 'u3']],
    ['in list', { field: 'id', op: 'in', values: ['u1', 'u3', 'nope'] }, ['u1', 'u3']],
    ['in split text', { field: 'id', op: 'in', values: 'u2, u4\nu9 u1' }, ['u1', 'u2', 'u4']],
    ['in numbers', { field: 'sessionCount', op: 'in', values: ['0', 40] }, ['u3', 'u4']],
    ['in tags', { field: 'tags', op: 'in', values: ['신규', '재구매'] }, ['u1', 'u3']],
    ['in phones', { field: 'mobileNumber', op: 'in', values: '010-9876-5432,+14155550123' }, ['u2', 'u4']],
    ['contains (case-insensitive)', { field: 'email', op: 'contains', value: 'EXAMPLE.COM' }, ['u1', 'u4']],
    ['contains list', { field: 'tags', op: 'contains', value: 'vi' }, ['u1', 'u4']],
    ['startsWith', { field: 'name', op: 'startsWith', value: '김' }, ['u1']],
    ['startsWith profile', { field: 'profile.grade', op: 'startsWith', value: 'PLAT' }, ['u4']],
    ['exists', { field: 'lastSeenAt', op: 'exists' }, ['u1', 'u2', 'u4']],
    ['exists empty list is not', { field: 'tags', op: 'exists' }, ['u1', 'u3', 'u4']],
    ['notExists', { field: 'mobileNumber', op: 'notExists' }, ['u3']],
    ['notExists profile', { field: 'profile.lastCheckoutCompletedAt', op: 'notExists' }, ['u2', 'u3']],
    ['gt', { field: 'sessionCount', op: 'gt', value: 3 }, ['u1', 'u4']],
    ['gte', { field: 'sessionCount', op: 'gte', value: 3 }, ['u1', 'u2', 'u4']],
    ['lt', { field: 'sessionCount', op: 'lt', value: 3 }, ['u3']],
    ['lte', { field: 'sessionCount', op: 'lte', value: 3 }, ['u2', 'u3']],
    ['gt date ISO', { field: 'lastSeenAt', op: 'gt', value: '2025-10-01T00:00:00Z' }, ['u1', 'u4']],
    ['lt date epoch', { field: 'createdAt', op: 'lt', value: now - 300 * DAY }, ['u1', 'u4']],
    ['between numbers inclusive', { field: 'sessionCount', op: 'between', from: 3, to: 12 }, ['u1', 'u2']],
    ['between dates', { field: 'lastSeenAt', op: 'between', from: '2025-08-01T00:00:00Z', to: '2025-11-01T00:00:00Z' }, ['u2', 'u4']],
    ['between profile numbers', { field: 'profile.amount', op: 'between', from: 1000, to: 60000 }, ['u1', 'u2']],
    ['withinLastDays', { field: 'lastSeenAt', op: 'withinLastDays', days: 30 }, ['u1']],
    ['withinLastDays profile date', { field: 'profile.lastCheckoutCompletedAt', op: 'withinLastDays', days: 30 }, ['u1']],
    ['beforeDaysAgo', { field: 'lastSeenAt', op: 'beforeDaysAgo', days: 30 }, ['u2', 'u4']],
    ['beforeDaysAgo missing is not', { field: 'createdAt', op: 'beforeDaysAgo', days: 300 }, ['u1', 'u4']],
  ])('C2: %s', (_label, condition, expected) => {
    expect(matchIds(one(condition))).toEqual(expected);
  });

  it('C2: contains/startsWith take the value literally (regex characters are not operators)', () => {
    const p = compileFilter(one({ field: 'name', op: 'contains', value: 'a.c' }), 'users', { now });
    expect(p({ name: 'abc' })).toBe(false);
    expect(p({ name: 'xA.Cx' })).toBe(true);
    const q = compileFilter(one({ field: 'name', op: 'startsWith', value: '(주)' }), 'users', { now });
    expect(q({ name: '(주)채널' })).toBe(true);
    expect(q({ name: '주식회사' })).toBe(false);
  });

  it('C2: relative time is against the injected clock', () => {
    const f = one({ field: 'lastSeenAt', op: 'withinLastDays', days: 30 });
    const later = compileFilter(f, 'users', { now: now + 29 * DAY });
    expect(users.filter(later).map((u) => u.id)).toEqual([]);
    const earlier = compileFilter(f, 'users', { now: new Date(now - 20 * DAY) });
    expect(users.filter(earlier).map((u) => u.id)).toEqual(['u4']);
  });
});

describe('C2 date-only bounds are calendar days in the export time zone', () => {
  const at = (id: string, iso: string) => userRecordSchema.parse({ id, createdAt: 0, lastSeenAt: Date.parse(iso) });
  const people = [
    at('a', '2025-07-01T00:30:00+09:00'),
    at('b', '2025-07-01T23:59:59+09:00'),
    at('c', '2025-07-02T00:00:00+09:00'),
    at('d', '2025-06-30T23:59:59+09:00'),
  ];
  const run = (condition: Record<string, unknown>, timeZone?: string) =>
    people.filter(compileFilter(one(condition), 'users', { now, timeZone })).map((u) => u.id);

  it.each([
    ['eq', { op: 'eq', value: '2025-07-01' }, ['a', 'b']],
    ['neq', { op: 'neq', value: '2025-07-01' }, ['c', 'd']],
    ['gt (after that day)', { op: 'gt', value: '2025-07-01' }, ['c']],
    ['gte', { op: 'gte', value: '2025-07-01' }, ['a', 'b', 'c']],
    ['lt', { op: 'lt', value: '2025-07-01' }, ['d']],
    ['lte (through its end)', { op: 'lte', value: '2025-07-01' }, ['a', 'b', 'd']],
    ['between one day', { op: 'between', from: '2025-07-01', to: '2025-07-01' }, ['a', 'b']],
    ['between day and instant', { op: 'between', from: '2025-06-30', to: '2025-07-01T00:30:00+09:00' }, ['a', 'd']],
  ])('C2: Asia/Seoul %s', (_label, condition, expected) => {
    expect(run({ field: 'lastSeenAt', ...condition }, 'Asia/Seoul')).toEqual(expected);
  });

  it('C2: the same day in UTC (default) is a different 24 hours', () => {
    expect(run({ field: 'lastSeenAt', op: 'eq', value: '2025-07-01' })).toEqual(['b', 'c']);
    expect(() => run({ field: 'lastSeenAt', op: 'eq', value: '2025-02-30' })).toThrow(/conditions\[0\]\.value/);
    expect(() => run({ field: 'lastSeenAt', op: 'eq', value: '2025-07-01' }, 'Nowhere/Else')).toThrow(ValidationError);
  });

  // Date.parse alone takes days 29-31 in any month and rolls them over (2023-02-29T… would
  // silently filter from March 1): a date-time that does not exist is refused, naming the field.
  it.each([
    ['eq, February 29 of a common year', { op: 'eq', value: '2023-02-29T10:00:00Z' }, 'value'],
    ['gt, April 31', { op: 'gt', value: '2025-04-31T00:00:00+09:00' }, 'value'],
    ['lte, hour 25', { op: 'lte', value: '2025-07-01T25:00:00Z' }, 'value'],
    ['between, minute 60', { op: 'between', from: '2025-07-01T00:60:00Z', to: '2025-07-02' }, 'from'],
    ['between, offset +24:00', { op: 'between', from: '2025-07-01', to: '2025-07-02T00:00:00+24:00' }, 'to'],
    ['in, a leap second', { op: 'in', values: ['2025-07-01T00:00:00Z', '2025-06-30T23:59:60Z'] }, 'values\\[1\\]'],
  ])('C2: a date-time that does not exist is refused (%s)', (_label, condition, field) => {
    const attempt = () => run({ field: 'lastSeenAt', ...condition }, 'Asia/Seoul');
    expect(attempt).toThrow(ValidationError);
    expect(attempt).toThrow(new RegExp(`conditions\\[0\\]\\.${field}.*(real|exist)`));
  });

  it('C2: a between that ends the day before it starts is refused, naming `to` (it matched nothing, silently)', () => {
    for (const to of ['2025-07-01', '2025-06-30']) {
      const attempt = () => run({ field: 'lastSeenAt', op: 'between', from: '2025-07-02', to }, 'Asia/Seoul');
      expect(attempt).toThrow(ValidationError);
      expect(attempt).toThrow(/conditions\[0\]\.to.*must not be below from/);
    }
    // An instant `to` equal to `from`'s first moment is one instant: allowed.
    expect(run({ field: 'lastSeenAt', op: 'between', from: '2025-07-02', to: '2025-07-02T00:00:00+09:00' }, 'Asia/Seoul')).toEqual(['c']);
  });

  it('C2: 24:00 is the end of the day, as the date cells read it', () => {
    expect(run({ field: 'lastSeenAt', op: 'lt', value: '2025-06-30T24:00:00+09:00' })).toEqual(['d']);
  });
});

describe('C2 and/or nesting', () => {
  it('C2: groups joined by and / or, nested two levels', () => {
    // (member AND (grade=gold OR tags has 신규)) OR (NOT member AND sessionCount > 30)
    const filter: UsersFilter = {
      join: 'or',
      groups: [
        {
          join: 'and',
          conditions: [{ field: 'member', op: 'eq', value: true }],
          groups: [
            {
              join: 'or',
              conditions: [
                { field: 'profile.grade', op: 'eq', value: 'gold' },
                { field: 'tags', op: 'eq', value: '신규' },
              ],
            },
          ],
        },
        {
          join: 'and',
          conditions: [
            { field: 'member', op: 'eq', value: false },
            { field: 'sessionCount', op: 'gt', value: 30 },
          ],
        },
      ],
    };
    expect(matchIds(filter)).toEqual(['u1', 'u3', 'u4']);
    expect(matchIds({ ...filter, join: 'and' })).toEqual([]);
    // Swap the inner join: member AND grade=gold AND tags has 신규 -> nobody, only u4 from the second group.
    const inner = structuredClone(filter);
    inner.groups[0]!.groups![0]!.join = 'and';
    expect(matchIds(inner)).toEqual(['u4']);
  });

  it('C2: three or more conditions and empty groups', () => {
    const three = {
      join: 'and',
      groups: [{ join: 'or', conditions: [
        { field: 'id', op: 'eq', value: 'u1' },
        { field: 'id', op: 'eq', value: 'u2' },
        { field: 'id', op: 'eq', value: 'u3' },
      ] }],
    };
    expect(matchIds(three)).toEqual(['u1', 'u2', 'u3']);
    expect(matchIds({ join: 'and', groups: [] })).toEqual(['u1', 'u2', 'u3', 'u4']);
    // An `and` group with nothing in it still matches everything, inside an `or` too.
    expect(matchIds({ join: 'or', groups: [{ join: 'and', conditions: [] }] })).toEqual(['u1', 'u2', 'u3', 'u4']);
    expect(matchIds(undefined)).toEqual(['u1', 'u2', 'u3', 'u4']);
  });
});

describe('C2 rejects unknown fields and operators naming the path', () => {
  function fail(filter: unknown, target: 'users' | 'cases' = 'users', profileSchema?: unknown): ValidationError {
    try {
      compileFilter(filter, target, { now, profileSchema: profileSchema as never });
    } catch (e) {
      expect(e).toBeInstanceOf(ValidationError);
      return e as ValidationError;
    }
    throw new Error('expected a ValidationError');
  }
  const twoConds = (second: Record<string, unknown>) => ({
    join: 'and',
    groups: [{ join: 'and', conditions: [{ field: 'name', op: 'exists' }, second] }],
  });

  it('C2: unknown field', () => {
    const err = fail(twoConds({ field: 'nickname', op: 'eq', value: 'x' }));
    expect(err.field).toBe('filter.groups[0].conditions[1].field');
    expect(err.message).toContain('filter.groups[0].conditions[1].field');
    expect(err.message).toMatch(/unknown field/);
  });

  it('bounds the work one filter can ask for: total conditions and total contains/startsWith text', async () => {
    const cond = (i: number) => ({ field: 'name', op: 'contains', value: `needle-${i}` });
    const groups = (n: number) => Array.from({ length: Math.ceil(n / 100) }, (_u, g) => ({
      join: 'or', conditions: Array.from({ length: Math.min(100, n - g * 100) }, (_v, i) => cond(g * 100 + i)),
    }));
    expect(() => compileFilter({ join: 'or', groups: groups(200) }, 'users', { now })).not.toThrow();
    const tooMany = fail({ join: 'or', groups: groups(201) });
    expect(tooMany.field).toBe('filter.groups');
    expect(tooMany.message).toMatch(/at most 200 conditions/);
    // 1,400 never-matching contains conditions cost ~35x a normal row before; each needle may be
    // 1,000 characters, but together at most 2,000.
    const long = (c: string) => ({ field: 'name', op: 'contains', value: c.repeat(700) });
    const heavy = fail({ join: 'or', groups: [{ join: 'or', conditions: [long('a'), long('b'), long('c')] }] });
    expect(heavy.field).toBe('filter.groups');
    expect(heavy.message).toMatch(/total at most 2000 characters/);
    expect(heavy.message).not.toContain('aaaa');
  });

  it('C2: an empty "or" (root, group or leaf group) is refused, naming it, instead of matching nothing', () => {
    const cond = { field: 'name', op: 'exists' };
    for (const [filter, field] of [
      [{ join: 'or', groups: [] }, 'filter.groups'],
      [{ join: 'and', groups: [{ join: 'and', conditions: [cond] }, { join: 'or', conditions: [] }] }, 'filter.groups[1]'],
      [{ join: 'and', groups: [{ join: 'or', conditions: [], groups: [] }] }, 'filter.groups[0]'],
      [{ join: 'and', groups: [{ join: 'and', conditions: [cond], groups: [{ join: 'or', conditions: [] }] }] }, 'filter.groups[0].groups[0]'],
    ] as const) {
      const err = fail(filter);
      expect(err.field).toBe(field);
      expect(err.message).toMatch(/an "or" group needs at least one condition or group/);
    }
    // An "or" group whose only content is sub-groups is not empty.
    expect(() => compileFilter({ join: 'or', groups: [{ join: 'or', conditions: [], groups: [{ join: 'and', conditions: [cond] }] }] }, 'users', { now })).not.toThrow();
  });

  it('C2: unknown operator', () => {
    const err = fail(twoConds({ field: 'name', op: 'like', value: 'x' }));
    expect(err.field).toBe('filter.groups[0].conditions[1].op');
  });

  it('C2: case fields are not user fields and vice versa', () => {
    expect(fail(one({ field: 'replyCount', op: 'gt', value: 1 })).field).toBe('filter.groups[0].conditions[0].field');
    expect(fail(one({ field: 'email', op: 'exists' }), 'cases').field).toBe('filter.groups[0].conditions[0].field');
  });

  it('C2: an operator that does not apply to the field type', () => {
    expect(fail(one({ field: 'member', op: 'contains', value: 'x' })).field).toBe('filter.groups[0].conditions[0].op');
    expect(fail(one({ field: 'name', op: 'gt', value: 1 })).field).toBe('filter.groups[0].conditions[0].op');
    expect(fail(one({ field: 'sessionCount', op: 'withinLastDays', days: 3 })).field).toBe('filter.groups[0].conditions[0].op');
  });

  it('C2: a number the job item cannot store (beyond 2^53 - 1, or under 1e-130 in size) is refused, naming it', () => {
    // Before: accepted here, then saving the job in DynamoDB failed the request with a 500.
    for (const [condition, field, rule] of [
      [{ field: 'sessionCount', op: 'eq', value: 1e16 }, 'filter.groups[0].conditions[0].value', /between -9007199254740991 and 9007199254740991/],
      [{ field: 'sessionCount', op: 'gt', value: -9007199254740992 }, 'filter.groups[0].conditions[0].value', /between/],
      [{ field: 'sessionCount', op: 'between', from: 1, to: 1e300 }, 'filter.groups[0].conditions[0].to', /between/],
      [{ field: 'sessionCount', op: 'in', values: [1, 2e16] }, 'filter.groups[0].conditions[0].values[1]', /between/],
      [{ field: 'sessionCount', op: 'lt', value: 1e-300 }, 'filter.groups[0].conditions[0].value', /at least 1e-130/],
    ] as const) {
      const err = fail(one(condition));
      expect(err.field).toBe(field);
      expect(err.message).toMatch(rule);
    }
    for (const value of [0, -0, 12.5, 9007199254740991, -9007199254740991, 1e-130]) {
      expect(() => compileFilter(one({ field: 'sessionCount', op: 'eq', value }), 'users', { now })).not.toThrow();
    }
  });

  it('C2: a bad value is named', () => {
    expect(fail(one({ field: 'lastSeenAt', op: 'gt', value: 'yesterday' })).field).toBe('filter.groups[0].conditions[0].value');
    // A value no branch of a union takes gets a message naming what is taken, not "Invalid input".
    expect(fail(one({ field: 'name', op: 'in', values: Array<string>(100_001).fill('a') })).message).toContain('a list of 1 to 100,000 values');
    expect(fail(one({ field: 'name', op: 'in', values: [true] })).message).toContain('a list of 1 to 100,000 values');
    expect(fail(one({ field: 'name', op: 'eq', value: { a: 1 } })).message).toContain('must be text (at most 10,000 characters), a number, a boolean or null');
    expect(fail(one({ field: 'lastSeenAt', op: 'gt', value: true })).message).toContain('must be a number, or a date or date-time as text');
    // …while a value one branch takes keeps that branch's own message.
    expect(fail(one({ field: 'sessionCount', op: 'in', values: [1e20] })).message).toContain('numbers in a filter must be between');
    // A date-time without an offset is an ISO-8601 date-time: the message says what it lacks.
    expect(fail(one({ field: 'lastSeenAt', op: 'gt', value: '2025-07-01T10:00' })).message).toContain('has no offset: add Z or one such as +09:00');
    expect(fail(one({ field: 'lastSeenAt', op: 'gt', value: 'yesterday' })).message).not.toContain('no offset');
    // Lower-case `t`/`z` are the same instant (RFC 3339; date cells and the import take them too):
    // a filter refused them, found by an oracle fuzz.
    for (const value of ['2025-07-01T00:00:00z', '2025-07-01t00:00:00Z', '2025-07-01t09:00:00+09:00']) {
      const lower = compileFilter(one({ field: 'lastSeenAt', op: 'gte', value }), 'users', { now });
      const upper = compileFilter(one({ field: 'lastSeenAt', op: 'gte', value: '2025-07-01T00:00:00Z' }), 'users', { now });
      for (const lastSeenAt of [Date.parse('2025-06-30T23:59:59.999Z'), Date.parse('2025-07-01T00:00:00Z')]) {
        expect(lower({ id: 'x', createdAt: 0, lastSeenAt }), value).toBe(upper({ id: 'x', createdAt: 0, lastSeenAt }));
      }
    }
    // An offset written in a form not taken (a space before it) is not called missing.
    for (const value of ['2024-01-01T00:00:00 +09:00']) {
      expect(fail(one({ field: 'lastSeenAt', op: 'gt', value })).message, value).toContain('write the offset as Z or as +09:00, right after the time');
    }
    expect(fail(one({ field: 'member', op: 'eq', value: 'yes' })).field).toBe('filter.groups[0].conditions[0].value');
    expect(fail(one({ field: 'sessionCount', op: 'between', from: 5, to: 1 })).field).toBe('filter.groups[0].conditions[0].to');
    expect(fail(one({ field: 'name', op: 'eq' })).field).toBe('filter.groups[0].conditions[0].value');
  });

  it('C2/C5: with a profile schema, unknown and archived profile keys are rejected', () => {
    const schema = { keys: [{ key: 'grade', type: 'string', order: 0, archived: false }, { key: 'old', type: 'string', order: 1, archived: true }] };
    expect(() => compileFilter(one({ field: 'profile.grade', op: 'eq', value: 'gold' }), 'users', { now, profileSchema: schema as never })).not.toThrow();
    expect(fail(one({ field: 'profile.nope', op: 'exists' }), 'users', schema).code).toBe('FILTER_UNKNOWN_FIELD');
    expect(fail(one({ field: 'profile.old', op: 'exists' }), 'users', schema).message).toMatch(/archived/);
    // The rule field and the message name the same rule (C5 hides archived keys).
    expect(fail(one({ field: 'profile.old', op: 'exists' }), 'users', schema)).toMatchObject({ rule: 'C5', message: expect.stringContaining('(rule C5)') });
    expect(fail(one({ field: 'profile.nope', op: 'exists' }), 'users', schema).rule).toBe('C2');
  });
});

describe('C3 split input and 100,000-value in filters', () => {
  it('C3: splitInput splits on commas, spaces and newlines and drops empties and repeats', () => {
    expect(splitInput('a,b  c\nd,,e\r\n\tf, a')).toEqual(['a', 'b', 'c', 'd', 'e', 'f']);
    expect(splitInput('  ')).toEqual([]);
  });

  it('C3: 100,000 values evaluate in linear time (Set lookup), over 100,000 records', () => {
    const n = 100_000;
    const ids = Array.from({ length: n }, (_, i) => `id-${i * 2}`); // even ids only
    const text = ids.join(', ');
    const predicate = compileFilter(one({ field: 'id', op: 'in', values: text }), 'users', { now });
    let matched = 0;
    for (let i = 0; i < n; i++) {
      if (predicate({ id: `id-${i}` })) matched++;
    }
    // A quadratic scan would be 10^10 comparisons and not finish within the test timeout.
    expect(matched).toBe(n / 2);
    const asList = compileFilter(one({ field: 'id', op: 'in', values: ids }), 'users', { now });
    expect(asList({ id: 'id-199998' })).toBe(true);
    expect(asList({ id: 'id-199999' })).toBe(false);
  });

  it('C3: more than 100,000 values is rejected naming the field', () => {
    const values = Array.from({ length: 100_001 }, (_, i) => String(i));
    expect(() => compileFilter(one({ field: 'id', op: 'in', values }), 'users', { now })).toThrow(/filter\.groups\[0\]\.conditions\[0\]\.values/);
  });
});

describe('C1 quick search and phone normalisation', () => {
  it.each([
    ['010-1234-5678', '+821012345678'],
    ['01012345678', '+821012345678'],
    ['+82 10 1234 5678', '+821012345678'],
    ['+82-10-1234-5678', '+821012345678'],
    ['821012345678', '+821012345678'],
    ['0082 10 1234 5678', '+821012345678'],
    ['(010) 1234.5678', '+821012345678'],
    ['02-1588-1234', '+82215881234'],
    ['+1 415 555 0123', '+14155550123'],
    ['+82 010-1234-5678', '+821012345678'],
    ['1012345678', '+821012345678'],
    ['hello', undefined],
    ['12', undefined],
    ['', undefined],
  ])('C1: normalizePhone(%s) = %s', (input, expected) => {
    expect(normalizePhone(input)).toBe(expected);
  });

  it.each([
    ['010-1234-5678', ['u1']],
    ['01012345678', ['u1']],
    ['+82 10 9876 5432', ['u2']],
    ['5678', ['u1']],
    ['010-98', ['u2']],
    ['+82 010-1234', ['u1']],
    ['minji', ['u1']],
    ['EXAMPLE.ORG', ['u2']],
    ['김', ['u1']],
    ['서연', ['u3']],
    ['josé', ['u4']],
    ['example', ['u1', 'u2', 'u4']],
    ['nobody', []],
    ['.*', []],
    ['(', []],
    ['EMMA@', ['u2']],
  ])('C1: quick search %s', (query, expected) => {
    expect(users.filter(compileQuickSearch(query)).map((u) => u.id)).toEqual(expected);
  });

  it('C2: quick search works inside a filter', () => {
    const members = one({ field: 'member', op: 'eq', value: true });
    expect(matchIds(members, { query: '김민지' })).toEqual(['u1']);
    expect(matchIds(members, { query: 'Emma' })).toEqual([]);
    expect(matchIds(undefined, { query: 'Emma' })).toEqual(['u2']);
    expect(matchIds(members, { query: '   ' })).toEqual(['u1', 'u3']);
  });
});

describe('C4 segments', () => {
  const segment = { id: 'seg-1', name: 'Gold members', filter: one({ field: 'profile.grade', op: 'in', values: ['gold', 'platinum'] }) };

  it('C4: a segment resolves to its saved filter, re-evaluated on current data', () => {
    const filter = resolveSegment(segment, 'seg-1');
    const before = users.filter(compileFilter(filter, 'users', { now })).map((u) => u.id);
    expect(before).toEqual(['u1', 'u4']);
    // The data changes, the segment does not: the next export sees the change.
    const changed = users.map((u) => (u.id === 'u2' ? { ...u, profile: { ...u.profile, grade: 'gold' } } : u));
    expect(changed.filter(compileFilter(resolveSegment(segment), 'users', { now })).map((u) => u.id)).toEqual(['u1', 'u2', 'u4']);
  });

  it('C4: missing segment is NotFoundError; a broken saved filter names the path', () => {
    expect(() => resolveSegment(undefined, 'seg-x')).toThrow(NotFoundError);
    try {
      resolveSegment({ id: 's', name: 'bad', filter: one({ field: 'bogus', op: 'eq', value: 1 }) });
      expect.unreachable();
    } catch (e) {
      expect((e as DomainError).field).toBe('segment.filter.groups[0].conditions[0].field');
    }
  });
});

describe('S6 case filters', () => {
  const base = { userChatId: 'c', direction: 'inbound', userChatState: 'closed', userId: 'u', createdAt: 0 };
  const cases = [
    { ...base, userChatCaseId: 'k1', userChatCase: 1, mediumName: 'phoneNumber', teamId: 't1', tags: ['환불'], firstOpenedAt: 1_000, closedAt: 7_201_000, profile: { csat: 5 } },
    { ...base, userChatCaseId: 'k2', userChatCase: 2, mediumName: 'inAppChat', teamId: 't2', tags: [], firstOpenedAt: 1_000, closedAt: 61_000, replyCount: 2, totalReplyTime: 100, profile: {} },
    { ...base, userChatCaseId: 'k3', userChatCase: 3, mediumName: 'appKakao', userChatState: 'open', tags: ['bug'], profile: { csat: 2 } },
  ].map((c) => caseRecordSchema.parse(c));
  const run = (f: unknown) => cases.filter(compileFilter(f, 'cases', { now: 20_000_000 })).map((c) => c.userChatCaseId);

  it.each([
    ['medium in', { field: 'mediumName', op: 'in', values: 'phoneNumber appKakao' }, ['k1', 'k3']],
    ['derived resolutionTime', { field: 'resolutionTime', op: 'gte', value: 3600 }, ['k1']],
    ['derived avgReplyTime', { field: 'avgReplyTime', op: 'eq', value: 50 }, ['k2']],
    ['derived case state (one-hour rule, injected clock)', { field: 'userChatCaseState', op: 'eq', value: 'completed' }, ['k1', 'k2']],
    ['chat state', { field: 'userChatState', op: 'neq', value: 'closed' }, ['k3']],
    ['csat', { field: 'profile.csat', op: 'lte', value: 3 }, ['k3']],
    ['team missing', { field: 'teamId', op: 'notExists' }, ['k3']],
    ['tags', { field: 'tags', op: 'exists' }, ['k1', 'k3']],
  ])('S6: %s', (_label, condition, expected) => {
    expect(run(one(condition))).toEqual(expected);
  });

  it('S6: mediumSenderName is read as the file shows it: empty for an email case from 2025-07-17 on, whatever was stored', () => {
    const renamed = Date.parse('2025-07-17T00:00:00+09:00');
    const sent = [
      { ...base, createdAt: renamed, userChatCaseId: 'e1', userChatCase: 1, mediumName: 'email', mediumSenderName: 'someone' },
      { ...base, createdAt: renamed, userChatCaseId: 'e2', userChatCase: 2, mediumName: 'appLine', mediumSenderName: 'someone' },
      // An older chat's value is its internal id, email included (S8 "before 25.7.17"): kept.
      { ...base, createdAt: renamed - 1, userChatCaseId: 'e3', userChatCase: 1, mediumName: 'email', mediumSenderName: 'someone' },
    ].map((c) => caseRecordSchema.parse(c));
    const cells = sent.map((c) => createCaseRowMapper({ channelId: 'ch', deskBaseUrl: 'https://desk.example', now, profileKeys: [] })(c).mediumSenderName ?? null);
    expect(cells).toEqual([null, 'someone', 'someone']);
    const find = (condition: Record<string, unknown>) => sent.filter(compileFilter(one({ field: 'mediumSenderName', ...condition }), 'cases', { now })).map((c) => c.userChatCaseId);
    expect(find({ op: 'exists' })).toEqual(['e2', 'e3']);
    expect(find({ op: 'eq', value: 'someone' })).toEqual(['e2', 'e3']);
    expect(find({ op: 'neq', value: 'someone' })).toEqual(['e1']);
    expect(find({ op: 'notExists' })).toEqual(['e1']);
  });

  it('S6: quick search is a contacts feature', () => {
    expect(() => compileFilter(undefined, 'cases', { now, query: 'x' })).toThrow(/query/);
  });
});

describe('C1/C2 a stored +82 number that keeps its trunk 0 (+8201012345678) is found by its own text', () => {
  it('eq, in, startsWith, contains and the quick search all find it, as they find +821012345678 (an oracle fuzz found eq and the quick search did not)', () => {
    const stored = { id: 'x', createdAt: 0, mobileNumber: '+8201012345678' };
    expect(userRecordSchema.safeParse(stored).success).toBe(true);
    const finds = (condition: Record<string, unknown>) => compileFilter(one(condition), 'users', { now })(stored);
    for (const value of ['+8201012345678', '+821012345678', '010-1234-5678', '01012345678']) {
      expect(finds({ field: 'mobileNumber', op: 'eq', value }), `eq ${value}`).toBe(true);
      expect(finds({ field: 'mobileNumber', op: 'in', values: [value] }), `in ${value}`).toBe(true);
      expect(finds({ field: 'mobileNumber', op: 'startsWith', value }), `startsWith ${value}`).toBe(true);
      expect(finds({ field: 'mobileNumber', op: 'contains', value }), `contains ${value}`).toBe(true);
      expect(compileQuickSearch(value)(stored), `quick ${value}`).toBe(true);
    }
    expect(finds({ field: 'mobileNumber', op: 'eq', value: '010-1234-5679' })).toBe(false);
    expect(finds({ field: 'mobileNumber', op: 'neq', value: '010-1234-5678' })).toBe(false);
  });
});

describe('C1/C2 phone contains/startsWith read local input like the quick search', () => {
  // u1 +821012345678, u2 +821098765432, u4 +14155550123; u5 kept in local form (record-salvage).
  const local = { ...users[0]!, id: 'u5', mobileNumber: '010-5555-1234' };
  const people = [...users, local];
  const run = (op: string, value: string) => people.filter(compileFilter(one({ field: 'mobileNumber', op, value }), 'users', { now })).map((u) => u.id);

  it.each([
    ['contains', '010-1234', ['u1']],
    ['contains', '1234-5678', ['u1']],
    ['contains', '98765', ['u2']],
    ['contains', '+82 10-9876', ['u2']],
    ['contains', '1234', ['u1', 'u5']],
    ['contains', '555', ['u4', 'u5']],
    ['startsWith', '010', ['u1', 'u2', 'u5']],
    ['startsWith', '010-98', ['u2']],
    ['startsWith', '+1', ['u4']],
    ['startsWith', '0082 10', ['u1', 'u2', 'u5']],
    ['startsWith', '8210', ['u1', 'u2', 'u5']],
    ['startsWith', '+82 010-5555', ['u5']],
    ['contains', 'abc', []],
  ])('C2: mobileNumber %s %s', (op, value, expected) => {
    expect(run(op, value)).toEqual(expected);
  });

  it('C2: eq and in find a number kept in local form', () => {
    const eq = compileFilter(one({ field: 'mobileNumber', op: 'eq', value: '+821055551234' }), 'users', { now });
    const inList = compileFilter(one({ field: 'mobileNumber', op: 'in', values: '+821055551234' }), 'users', { now });
    expect(people.filter(eq).map((u) => u.id)).toEqual(['u5']);
    expect(people.filter(inList).map((u) => u.id)).toEqual(['u5']);
    expect(people.filter(compileQuickSearch('010-5555')).map((u) => u.id)).toEqual(['u5']);
  });
});

describe('C1/C2 international prefixes and the +82 reading of a leading 0 match only at the start of the number', () => {
  const numbers = ['+82212348210', '+821012345678', '+8231123820', '+15558210555', '+441010101010', '+821000123456', '010-5555-1234'];
  const people = numbers.map((mobileNumber, i) => ({ id: `p${i}`, createdAt: 0, mobileNumber }));
  const run = (op: string, value: string) =>
    people.filter(compileFilter(one({ field: 'mobileNumber', op, value }), 'users', { now })).map((u) => u.mobileNumber);

  it.each([
    // 010 is in the national form 010… or typed digits anywhere; 8210 in the middle of +82212348210 is not "010".
    ['contains', '010', ['+821012345678', '+441010101010', '+821000123456', '010-5555-1234']],
    ['contains', '02', ['+82212348210']],
    ['contains', '8210', ['+82212348210', '+821012345678', '+15558210555', '+821000123456', '010-5555-1234']],
    ['contains', '+82', ['+82212348210', '+821012345678', '+8231123820', '+821000123456', '010-5555-1234']],
    ['contains', '+1', ['+15558210555']],
    ['contains', '0082 10', ['+821012345678', '+821000123456', '010-5555-1234']],
    ['contains', '+44 10', ['+441010101010']],
    ['contains', '00', ['+821000123456']],
    ['contains', '+', numbers.filter((n) => n.startsWith('+'))],
    ['startsWith', '00', numbers.filter((n) => n.startsWith('+'))],
    ['startsWith', '+', numbers.filter((n) => n.startsWith('+'))],
    ['startsWith', '( 0 0 )', numbers.filter((n) => n.startsWith('+'))],
    ['startsWith', '001', ['+15558210555']],
    ['startsWith', '010', ['+821012345678', '+821000123456', '010-5555-1234']],
    ['startsWith', '02', ['+82212348210']],
  ])('C2: mobileNumber %s %j', (op, value, expected) => {
    expect(run(op, value)).toEqual(expected);
  });

  it('C1: the quick search reads a partial number the same way', () => {
    const quick = (q: string) => people.filter(compileQuickSearch(q)).map((u) => u.mobileNumber);
    expect(quick('010')).toEqual(['+821012345678', '+441010101010', '+821000123456', '010-5555-1234']);
    expect(quick('+82 2-1234')).toEqual(['+82212348210']);
    expect(quick('0082-10-1234-5678')).toEqual(['+821012345678']);
    expect(quick('010-5555-1234')).toEqual(['010-5555-1234']);
  });
});

describe('C1/C2 name, mobile number and e-mail are found as the file shows them', () => {
  const schema = { keys: [{ key: 'email', type: 'string' as const, order: 0, archived: false }, { key: 'name', type: 'string' as const, order: 1, archived: false }, { key: 'mobileNumber', type: 'string' as const, order: 2, archived: false }] };
  const kim = userRecordSchema.parse({ id: 'k', createdAt: 0, email: null, profile: { email: 'kim@example.com', name: '김민지', mobileNumber: '+821077778888' } });
  const own = userRecordSchema.parse({ id: 'o', createdAt: 0, email: 'own@example.com', name: 'Own', profile: { email: 'kim@example.com', name: '김민지' } });
  const match = (condition: Record<string, unknown>, query?: string) =>
    [kim, own].filter(compileFilter(condition.field ? one(condition) : undefined, 'users', { now, profileSchema: schema, query })).map((u) => u.id);

  it('C2: filters on email, name and mobileNumber read the profile value when the record has none (the cell shows it)', () => {
    expect(match({ field: 'email', op: 'eq', value: 'KIM@example.com' })).toEqual(['k']);
    expect(match({ field: 'email', op: 'in', values: 'kim@example.com' })).toEqual(['k']);
    expect(match({ field: 'email', op: 'exists' })).toEqual(['k', 'o']);
    expect(match({ field: 'name', op: 'eq', value: '김민지' })).toEqual(['k']);
    expect(match({ field: 'mobileNumber', op: 'startsWith', value: '010-7777' })).toEqual(['k']);
    expect(match({ field: 'mobileNumber', op: 'eq', value: '010-7777-8888' })).toEqual(['k']);
  });

  it('C1: the quick search too', () => {
    expect(match({}, 'kim@example')).toEqual(['k']);
    expect(match({}, '민지')).toEqual(['k']);
    expect(match({}, '7777-8888')).toEqual(['k']);
  });
});

describe('C5 an archived or undeclared profile key named name/mobileNumber/email fills no fixed cell, and is not found', () => {
  // Own fields empty: only the profile could fill the fixed cells.
  const user = userRecordSchema.parse({
    id: 'u1',
    createdAt: 0,
    name: null,
    email: null,
    profile: { name: 'Archived Kim', email: 'archived@old.example', mobileNumber: '+821099998888', grade: 'gold' },
  });
  const def = (key: string, archived: boolean): ProfileKeyDef => ({ key, type: 'string', order: 0, archived });
  const archivedAll = { keys: [def('name', true), def('email', true), def('mobileNumber', true), def('grade', false)] };
  const undeclared = { keys: [def('grade', false)] };
  const schemas = [
    ['archived', archivedAll],
    ['undeclared', undeclared],
    ['archived (bare key list)', archivedAll.keys],
  ] as const;
  const found = (schema: (typeof schemas)[number][1], condition?: Record<string, unknown>, query?: string) =>
    compileFilter(condition ? one(condition) : undefined, 'users', { now, profileSchema: schema, query })(user);

  it.each(schemas)('C5: %s keys: the file shows empty cells, filters and the quick search find nothing there', (_, schema) => {
    const row = createUserRowMapper(schema)(user);
    expect([row.name, row.email, row.mobileNumber]).toEqual([null, null, undefined]);
    expect(found(schema, { field: 'email', op: 'eq', value: 'archived@old.example' })).toBe(false);
    expect(found(schema, { field: 'email', op: 'in', values: 'archived@old.example' })).toBe(false);
    expect(found(schema, { field: 'name', op: 'contains', value: 'Archived' })).toBe(false);
    expect(found(schema, { field: 'mobileNumber', op: 'eq', value: '010-9999-8888' })).toBe(false);
    expect(found(schema, { field: 'mobileNumber', op: 'contains', value: '9999' })).toBe(false);
    for (const field of ['name', 'email', 'mobileNumber']) {
      expect(found(schema, { field, op: 'exists' })).toBe(false);
      expect(found(schema, { field, op: 'notExists' })).toBe(true);
      expect(found(schema, { field, op: 'eq', value: null })).toBe(true);
    }
    for (const q of ['archived@old', 'Archived', '9999-8888', '010-9999-8888']) {
      expect(found(schema, undefined, q)).toBe(false);
      expect(compileQuickSearch(q, schema)(user)).toBe(false);
    }
    // The filter still works on the row's other values: it is the fallback that is gone.
    expect(found(schema, { field: 'id', op: 'eq', value: 'u1' })).toBe(true);
  });

  it('C5: each key decides for itself: an active email fills its cell and is found, the archived name is not', () => {
    const mixed = { keys: [def('name', true), def('email', false), def('mobileNumber', true)] };
    const row = createUserRowMapper(mixed)(user);
    expect([row.name, row.email, row.mobileNumber]).toEqual([null, 'archived@old.example', undefined]);
    expect(found(mixed, { field: 'email', op: 'eq', value: 'ARCHIVED@old.example' })).toBe(true);
    expect(found(mixed, undefined, 'archived@old')).toBe(true);
    expect(found(mixed, { field: 'name', op: 'exists' })).toBe(false);
    expect(found(mixed, undefined, 'Archived Kim')).toBe(false);
    expect(found(mixed, undefined, '9999-8888')).toBe(false);
  });

  it('C5: the record\'s own value is shown and found whatever the profile schema says', () => {
    const own = userRecordSchema.parse({ id: 'o', createdAt: 0, name: 'Own', email: 'own@example.com', mobileNumber: '+821011112222', profile: { email: 'archived@old.example' } });
    const row = createUserRowMapper(archivedAll)(own);
    expect([row.name, row.email, row.mobileNumber]).toEqual(['Own', 'own@example.com', '+821011112222']);
    expect(compileFilter(one({ field: 'email', op: 'eq', value: 'own@example.com' }), 'users', { now, profileSchema: archivedAll })(own)).toBe(true);
    expect(compileQuickSearch('1111-2222', archivedAll)(own)).toBe(true);
    expect(compileQuickSearch('archived@old', archivedAll)(own)).toBe(false);
  });

  it('without a profile schema (loose, as toUserRow writes every value) the profile value still fills and is found', () => {
    expect(compileFilter(one({ field: 'email', op: 'eq', value: 'archived@old.example' }), 'users', { now })(user)).toBe(true);
    expect(compileQuickSearch('Archived')(user)).toBe(true);
  });
});

describe('C2 number and boolean profile values held as text are compared as the file shows them', () => {
  const schema = {
    keys: [
      { key: 'amount', type: 'number', order: 0, archived: false },
      { key: 'vip', type: 'boolean', order: 1, archived: false },
      { key: 'lastCheckoutCompletedAt', type: 'date', order: 2, archived: false },
    ],
  } satisfies { keys: ProfileKeyDef[] };
  const people = (
    [
      ['a', 5000, true],
      ['b', '5000', 'true'],
      ['c', ' 6000 ', 'false'],
      ['d', 'abc', 'yes'], // the cells stay empty
      ['e', '', 'TRUE'], // empty too: only the exact texts read as booleans
      ['f', 1200, false],
      ['g', '1e3', 1], // 1000; a number under a boolean key: empty
      ['h', true, null], // a boolean under a number key: empty
      ['i', undefined, undefined],
    ] as const
  ).map(([id, amount, vip]) =>
    userRecordSchema.parse({ id, createdAt: 0, profile: { ...(amount === undefined ? {} : { amount }), ...(vip === undefined ? {} : { vip }) } }),
  );
  const rows = people.map(createUserRowMapper(schema));
  const ids = (condition: Record<string, unknown>) =>
    people.filter(compileFilter(one(condition), 'users', { now, profileSchema: schema })).map((u) => u.id);

  it('C2: the file cells these tests stand on', () => {
    expect(rows.map((r) => r['profile.amount'] ?? null)).toEqual([5000, 5000, 6000, null, null, 1200, 1000, null, null]);
    expect(rows.map((r) => r['profile.vip'] ?? null)).toEqual([true, true, false, null, null, false, null, null, null]);
  });

  it.each([
    [{ op: 'eq', value: 5000 }, ['a', 'b']],
    [{ op: 'eq', value: '5000' }, ['a', 'b']],
    [{ op: 'neq', value: 5000 }, ['c', 'd', 'e', 'f', 'g', 'h', 'i']],
    [{ op: 'in', values: '5000, 6000' }, ['a', 'b', 'c']],
    [{ op: 'in', values: [1000, 1200] }, ['f', 'g']],
    [{ op: 'gt', value: 1200 }, ['a', 'b', 'c']],
    [{ op: 'gte', value: 1000 }, ['a', 'b', 'c', 'f', 'g']],
    [{ op: 'lt', value: 1200 }, ['g']],
    [{ op: 'lte', value: 1200 }, ['f', 'g']],
    [{ op: 'between', from: 1000, to: 5000 }, ['a', 'b', 'f', 'g']],
    [{ op: 'exists' }, ['a', 'b', 'c', 'f', 'g']],
    [{ op: 'notExists' }, ['d', 'e', 'h', 'i']],
    [{ op: 'eq', value: null }, ['d', 'e', 'h', 'i']],
  ])('C2: profile.amount %j', (condition, expected) => {
    expect(ids({ field: 'profile.amount', ...condition })).toEqual(expected);
  });

  it.each([
    [{ op: 'eq', value: true }, ['a', 'b']],
    [{ op: 'eq', value: 'true' }, ['a', 'b']],
    [{ op: 'eq', value: false }, ['c', 'f']],
    [{ op: 'neq', value: true }, ['c', 'd', 'e', 'f', 'g', 'h', 'i']],
    [{ op: 'exists' }, ['a', 'b', 'c', 'f']],
    [{ op: 'notExists' }, ['d', 'e', 'g', 'h', 'i']],
    [{ op: 'eq', value: null }, ['d', 'e', 'g', 'h', 'i']],
  ])('C2: profile.vip %j', (condition, expected) => {
    expect(ids({ field: 'profile.vip', ...condition })).toEqual(expected);
  });

  it('C2: every condition matches exactly the rows whose file cell satisfies it', () => {
    // The same conditions judged on the written cells: a value the file shows is one a filter finds.
    const onCell: [Record<string, unknown>, (cell: unknown) => boolean][] = [
      [{ field: 'profile.amount', op: 'eq', value: 5000 }, (c) => c === 5000],
      [{ field: 'profile.amount', op: 'gte', value: 1000 }, (c) => typeof c === 'number' && c >= 1000],
      [{ field: 'profile.amount', op: 'exists' }, (c) => c !== null && c !== undefined],
      [{ field: 'profile.vip', op: 'eq', value: true }, (c) => c === true],
      [{ field: 'profile.vip', op: 'neq', value: false }, (c) => c !== false],
      [{ field: 'profile.vip', op: 'exists' }, (c) => c !== null && c !== undefined],
    ];
    for (const [condition, test] of onCell) {
      const column = `${condition.field as string}`;
      const expected = people.filter((_, i) => test(rows[i]![column])).map((u) => u.id);
      expect({ condition, ids: ids(condition) }).toEqual({ condition, ids: expected });
    }
  });

  it('C2: a date key holding a value its cell cannot show (a boolean, a list) is missing, as the empty cell shows', () => {
    const odd = [true, ['2025-07-01']].map((v, i) => userRecordSchema.parse({ id: `x${i}`, createdAt: 0, profile: { lastCheckoutCompletedAt: v } }));
    expect(odd.map((u) => createUserRowMapper(schema)(u)['profile.lastCheckoutCompletedAt'])).toEqual([null, null]);
    const p = compileFilter(one({ field: 'profile.lastCheckoutCompletedAt', op: 'exists' }), 'users', { now, profileSchema: schema });
    expect(odd.filter(p)).toEqual([]);
  });

  it('C2: a number or boolean under a string key is the text its cell shows', () => {
    const textSchema = { keys: [{ key: 'code', type: 'string', order: 0, archived: false }] } satisfies { keys: ProfileKeyDef[] };
    const users = [['s1', 5], ['s2', '5'], ['s3', true], ['s4', 'x5y']].map(([id, code]) =>
      userRecordSchema.parse({ id, createdAt: 0, profile: { code } }),
    );
    const cells = users.map((u) => createUserRowMapper(textSchema)(u)['profile.code']);
    expect(cells).toEqual(['5', '5', 'true', 'x5y']);
    const find = (condition: Record<string, unknown>) =>
      users.filter(compileFilter(one({ field: 'profile.code', ...condition }), 'users', { now, profileSchema: textSchema })).map((u) => u.id);
    expect(find({ op: 'eq', value: '5' })).toEqual(['s1', 's2']);
    expect(find({ op: 'in', values: '5, true' })).toEqual(['s1', 's2', 's3']);
    expect(find({ op: 'contains', value: '5' })).toEqual(['s1', 's2', 's4']);
    expect(find({ op: 'startsWith', value: 'tr' })).toEqual(['s3']);
  });

  it('C2: number text that is not decimal notation (0x1A, 0b11, 0o7, Infinity) is an empty cell and missing to a filter; a filter value so written is refused', () => {
    const odd = ['0x1A', '0b11', '0o7', 'Infinity', '-Infinity', '1_000', '5,000', '.5', '-3.25', '+7', '2.'].map((amount, i) =>
      userRecordSchema.parse({ id: `n${i}`, createdAt: 0, profile: { amount } }),
    );
    expect(odd.map((u) => createUserRowMapper(schema)(u)['profile.amount'] ?? null)).toEqual([null, null, null, null, null, null, null, 0.5, -3.25, 7, 2]);
    const exists = compileFilter(one({ field: 'profile.amount', op: 'exists' }), 'users', { now, profileSchema: schema });
    expect(odd.filter(exists).map((u) => u.id)).toEqual(['n7', 'n8', 'n9', 'n10']);
    expect(odd.filter(compileFilter(one({ field: 'profile.amount', op: 'lt', value: 100 }), 'users', { now, profileSchema: schema })).map((u) => u.id)).toEqual(['n7', 'n8', 'n9', 'n10']);
    for (const value of ['0x10', '0b1', 'Infinity', ' ']) {
      const attempt = () => compileFilter(one({ field: 'sessionCount', op: 'gt', value }), 'users', { now });
      expect(attempt, value).toThrow(ValidationError);
      expect(attempt, value).toThrow(/conditions\[0\]\.value: must be a number/);
    }
  });

  it('C2: a list key holding one plain value is the one-item list its cell shows: eq and in find it, as contains does', () => {
    const listSchema = { keys: [{ key: 'interests', type: 'list', order: 0, archived: false }] } satisfies { keys: ProfileKeyDef[] };
    const users = [['l1', ['gold', 'silver']], ['l2', 'gold'], ['l3', 'gold, silver'], ['l4', 7], ['l5', ''], ['l6', null]].map(([id, interests]) =>
      userRecordSchema.parse({ id, createdAt: 0, profile: { interests } }),
    );
    expect(users.map((u) => createUserRowMapper(listSchema)(u)['profile.interests'] ?? null)).toEqual(['gold, silver', 'gold', 'gold, silver', '7', '', null]);
    const find = (condition: Record<string, unknown>) =>
      users.filter(compileFilter(one({ field: 'profile.interests', ...condition }), 'users', { now, profileSchema: listSchema })).map((u) => u.id);
    expect(find({ op: 'eq', value: 'gold' })).toEqual(['l1', 'l2']);
    expect(find({ op: 'in', values: ['gold', '7'] })).toEqual(['l1', 'l2', 'l4']);
    expect(find({ op: 'neq', value: 'gold' })).toEqual(['l3', 'l4', 'l5', 'l6']);
    expect(find({ op: 'contains', value: 'silver' })).toEqual(['l1', 'l3']);
    expect(find({ op: 'exists' })).toEqual(['l1', 'l2', 'l3', 'l4']);
  });

  it('S6: a case\'s profile.csat held as text is the number its cell shows', () => {
    const record = caseRecordSchema.parse({ userChatCaseId: 'k', userChatCase: 1, userChatId: 'c', direction: 'inbound', userChatState: 'closed', userId: 'u', createdAt: 0, mediumName: 'email', profile: { csat: '5', refund: '2500' } });
    const chatSchema = { keys: [{ key: 'refund', type: 'number', order: 0, archived: false }] } satisfies { keys: ProfileKeyDef[] };
    const row = createCaseRowMapper({ channelId: 'ch', deskBaseUrl: 'https://desk.example', now, profileKeys: chatSchema.keys })(record);
    expect([row['profile.csat'], row['profile.refund']]).toEqual([5, 2500]);
    const cases = (condition: Record<string, unknown>) =>
      compileFilter({ join: 'and', groups: [{ join: 'and', conditions: [condition as never] }] }, 'cases', { now, profileSchema: chatSchema })(record);
    expect(cases({ field: 'profile.csat', op: 'gte', value: 4 })).toBe(true);
    expect(cases({ field: 'profile.csat', op: 'eq', value: 5 })).toBe(true);
    expect(cases({ field: 'profile.refund', op: 'between', from: 2000, to: 3000 })).toBe(true);
  });
});

describe('C2 a loose profile bound (no schema) is a number only as decimal text, as a typed key reads it', () => {
  it('0x1A, 0b11 and 0o7 are no numbers (Number() read them as 26, 3 and 7: found by an oracle fuzz); decimal text is', () => {
    const record = { id: 'x', createdAt: 0, profile: { amount: 27 } };
    for (const value of ['0x1A', '0b11', '0o7', '0X1A']) {
      expect(() => compileFilter(one({ field: 'profile.amount', op: 'gt', value }), 'users', { now }), value).toThrow(ValidationError);
      expect(() => compileFilter(one({ field: 'profile.amount', op: 'between', from: 0, to: value }), 'users', { now }), value).toThrow(ValidationError);
    }
    expect(compileFilter(one({ field: 'profile.amount', op: 'gt', value: '26' }), 'users', { now })(record)).toBe(true);
    expect(compileFilter(one({ field: 'profile.amount', op: 'gt', value: '27.5' }), 'users', { now })(record)).toBe(false);
  });
});

describe('C2 e-mail equality is case-insensitive, like the quick search', () => {
  it('C1/C2: eq, in and the quick search fold letter case the same way', () => {
    const pairs: [string, string][] = [
      ['kim@example.com', 'KIM@Example.COM'],
      ['σας@x.gr', 'ΣΑΣ@x.gr'],
      ['σασ@x.gr', 'ΣΑΣ@x.gr'],
      ['σας@x.gr', 'σασ@x.gr'],
      ['ſam@x.com', 'sam@x.com'],
      ['straße@x.de', 'STRASSE@x.de'],
      ['i@x.tr', 'İ@x.tr'],
      ['kelvin@x', 'KELVIN@x'],
    ];
    for (const [stored, typed] of pairs) {
      const u = { id: 'x', createdAt: 0, email: stored };
      const eq = compileFilter(one({ field: 'email', op: 'eq', value: typed }), 'users', { now })(u);
      const inList = compileFilter(one({ field: 'email', op: 'in', values: [typed] }), 'users', { now })(u);
      const quick = compileQuickSearch(typed)(u);
      expect({ stored, typed, eq, in: inList }).toEqual({ stored, typed, eq: quick, in: quick });
    }
    expect(compileQuickSearch('ΣΑΣ@x.gr')({ email: 'σασ@x.gr' })).toBe(true);
  });

  it('C1/C2: contains and startsWith fold as eq and the quick search do (a /iu regex took ſ for s: found by an oracle fuzz)', () => {
    const pairs: [string, string][] = [
      ['ſtu@x.com', 'stu'],
      ['kelvin@x', 'KEL'],
      ['Minji.Kim@Example.com', 'minji.kim'],
      ['σας@x.gr', 'ΣΑΣ'],
      ['straße@x.de', 'STRASSE'],
    ];
    for (const [stored, typed] of pairs) {
      const u = { id: 'x', createdAt: 0, email: stored };
      const contains = compileFilter(one({ field: 'email', op: 'contains', value: typed }), 'users', { now })(u);
      const startsWith = compileFilter(one({ field: 'email', op: 'startsWith', value: typed }), 'users', { now })(u);
      const quick = compileQuickSearch(typed)(u);
      expect({ stored, typed, contains, startsWith }).toEqual({ stored, typed, contains: quick, startsWith: quick });
    }
    expect(compileFilter(one({ field: 'email', op: 'contains', value: 'stu' }), 'users', { now })({ email: 'ſtu@x.com' })).toBe(false);
    expect(compileFilter(one({ field: 'email', op: 'startsWith', value: 'EXAMPLE' }), 'users', { now })({ email: 'jose@example.com' })).toBe(false);
  });


  it('C2: eq, neq and in on email ignore letter case', () => {
    expect(matchIds(one({ field: 'email', op: 'eq', value: 'minji.kim@example.com' }))).toEqual(['u1']);
    expect(matchIds(one({ field: 'email', op: 'eq', value: 'EMMA@EXAMPLE.ORG' }))).toEqual(['u2']);
    expect(matchIds(one({ field: 'email', op: 'neq', value: 'MINJI.KIM@example.com' }))).toEqual(['u2', 'u3', 'u4']);
    expect(matchIds(one({ field: 'email', op: 'in', values: 'minji.kim@example.com, JOSE@example.com' }))).toEqual(['u1', 'u4']);
    // Other text fields stay exact.
    expect(matchIds(one({ field: 'name', op: 'eq', value: 'emma smith' }))).toEqual([]);
  });
});

describe('C2 `in` with date-only values means whole days, as `eq` does', () => {
  const at = (id: string, iso: string) => userRecordSchema.parse({ id, createdAt: 0, lastSeenAt: Date.parse(iso) });
  const people = [
    at('a', '2025-07-01T00:30:00+09:00'),
    at('b', '2025-07-01T23:59:59+09:00'),
    at('c', '2025-07-02T00:00:00+09:00'),
    at('d', '2025-07-03T12:00:00+09:00'),
    at('e', '2025-07-05T12:00:00Z'),
  ];
  const run = (values: unknown, timeZone?: string) =>
    people.filter(compileFilter(one({ field: 'lastSeenAt', op: 'in', values }), 'users', { now, timeZone })).map((u) => u.id);

  it('C2: Asia/Seoul days, split input and lists, mixed with exact instants', () => {
    expect(run('2025-07-01', 'Asia/Seoul')).toEqual(['a', 'b']);
    expect(run('2025-07-01, 2025-07-03', 'Asia/Seoul')).toEqual(['a', 'b', 'd']);
    expect(run(['2025-07-03', '2025-07-02', '2025-07-02'], 'Asia/Seoul')).toEqual(['c', 'd']);
    expect(run(['2025-07-03', Date.parse('2025-07-05T12:00:00Z'), '2025-07-01T00:30:00+09:00'], 'Asia/Seoul')).toEqual(['a', 'd', 'e']);
    // The same as eq, for every record.
    const eq = compileFilter(one({ field: 'lastSeenAt', op: 'eq', value: '2025-07-01' }), 'users', { now, timeZone: 'Asia/Seoul' });
    expect(run('2025-07-01', 'Asia/Seoul')).toEqual(people.filter(eq).map((u) => u.id));
    expect(() => run('2025-02-30', 'Asia/Seoul')).toThrow(/conditions\[0\]\.values\[0\]/);
  });
});

describe('C2 date profile values held as text are compared in the export time zone', () => {
  it('C2: profile.lastCheckoutCompletedAt "2025-07-01" is that Seoul day', () => {
    const schema = { keys: [{ key: 'lastCheckoutCompletedAt', type: 'date' as const, order: 0, archived: false }] };
    const people = [
      userRecordSchema.parse({ id: 'a', createdAt: 0, profile: { lastCheckoutCompletedAt: '2025-07-01' } }),
      userRecordSchema.parse({ id: 'b', createdAt: 0, profile: { lastCheckoutCompletedAt: '2025-07-01T23:00:00' } }),
      userRecordSchema.parse({ id: 'c', createdAt: 0, profile: { lastCheckoutCompletedAt: Date.parse('2025-07-01T00:00:00Z') } }),
      userRecordSchema.parse({ id: 'd', createdAt: 0, profile: { lastCheckoutCompletedAt: 'soon' } }),
    ];
    const p = compileFilter(one({ field: 'profile.lastCheckoutCompletedAt', op: 'eq', value: '2025-07-01' }), 'users', {
      now,
      timeZone: 'Asia/Seoul',
      profileSchema: schema,
    });
    expect(people.filter(p).map((u) => u.id)).toEqual(['a', 'b', 'c']);
  });
});

describe('S6 case filters use the chat-profile schema', () => {
  const schema = {
    keys: [
      { key: 'orderNo', type: 'number' as const, order: 0, archived: false },
      { key: 'oldKey', type: 'string' as const, order: 1, archived: true },
      { key: 'csat', type: 'string' as const, order: 2, archived: true },
    ],
  };
  const compile = (condition: Record<string, unknown>) =>
    compileFilter({ join: 'and', groups: [{ join: 'and', conditions: [condition] }] }, 'cases', { now, profileSchema: schema });

  it('S6/C5: unknown and archived chat-profile keys are rejected; csat stays a fixed, numeric field', () => {
    expect(() => compile({ field: 'profile.oldKey', op: 'exists' })).toThrow(expect.objectContaining({ code: 'FILTER_UNKNOWN_FIELD' }));
    expect(() => compile({ field: 'profile.nope', op: 'exists' })).toThrow(expect.objectContaining({ code: 'FILTER_UNKNOWN_FIELD' }));
    expect(() => compile({ field: 'profile.orderNo', op: 'contains', value: '1' })).toThrow(expect.objectContaining({ code: 'FILTER_OPERATOR_NOT_APPLICABLE' }));
    // Names every object inherits are not the fixed csat/csatComment fields: an `in` lookup took
    // them for such, so `profile.toString notExists` passed and matched every case.
    for (const key of ['toString', 'constructor', 'valueOf', 'isPrototypeOf', 'hasOwnProperty']) {
      expect(() => compile({ field: `profile.${key}`, op: 'notExists' }), key).toThrow(expect.objectContaining({ code: 'FILTER_UNKNOWN_FIELD' }));
    }
    const csat = compile({ field: 'profile.csat', op: 'gte', value: 4 });
    expect(csat(caseRecordSchema.parse({ userChatCaseId: 'k', userChatCase: 1, userChatId: 'c', direction: 'inbound', userChatState: 'closed', userId: 'u', createdAt: 0, mediumName: 'email', profile: { csat: 5 } }))).toBe(true);
  });
});

describe('C2/C5/S8 profile keys named like members every object inherits (constructor, toString, valueOf)', () => {
  // The key-name rule allows them; read as plain properties, a profile without the key gave
  // the inherited function: a cell showing its source text, and filters matching every record.
  const schema = {
    keys: [
      { key: 'constructor', type: 'string', order: 1, archived: false },
      { key: 'toString', type: 'list', order: 2, archived: false },
      { key: 'valueOf', type: 'number', order: 3, archived: false },
      { key: 'hasOwnProperty', type: 'boolean', order: 4, archived: false },
    ],
  } as const;
  const keys = schema.keys as unknown as ProfileKeyDef[];
  const bare = userRecordSchema.parse({ id: 'u-bare', createdAt: now, profile: {} });
  const set = userRecordSchema.parse({ id: 'u-set', createdAt: now, profile: { constructor: 'yes', toString: ['a', 'b'], valueOf: 7, hasOwnProperty: true } });

  it('a user without them has empty cells; a user with them shows their values', () => {
    const map = createUserRowMapper({ keys }, { timeZone: 'UTC' });
    const empty = map(bare);
    for (const k of ['constructor', 'toString', 'valueOf', 'hasOwnProperty']) expect(empty[`profile.${k}`] ?? null, k).toBeNull();
    expect(map(set)).toMatchObject({ 'profile.constructor': 'yes', 'profile.toString': 'a, b', 'profile.valueOf': 7, 'profile.hasOwnProperty': true });
  });

  it('a case row reads the chat profile the same way', () => {
    const record = caseRecordSchema.parse({
      userChatCaseId: 'k1', userChatCase: 1, userChatId: 'c1', direction: 'inbound', userChatState: 'open', userId: 'u1',
      createdAt: now - DAY, mediumName: 'email', profile: {},
    });
    const row = createCaseRowMapper({ now, channelId: 'ch', profileKeys: keys, timeZone: 'UTC' })(record);
    for (const k of ['constructor', 'toString', 'valueOf', 'hasOwnProperty']) expect(row[`profile.${k}`] ?? null, k).toBeNull();
  });

  it('filters see no value where there is none: exists, contains and eq match only the user who has it', () => {
    const ids = (filter: unknown) => [bare, set].filter(compileFilter(filter, 'users', { now, profileSchema: { keys } })).map((u) => u.id);
    expect(ids(one({ field: 'profile.constructor', op: 'exists' }))).toEqual(['u-set']);
    expect(ids(one({ field: 'profile.constructor', op: 'contains', value: 'native code' }))).toEqual([]);
    expect(ids(one({ field: 'profile.toString', op: 'exists' }))).toEqual(['u-set']);
    expect(ids(one({ field: 'profile.valueOf', op: 'exists' }))).toEqual(['u-set']);
    expect(ids(one({ field: 'profile.hasOwnProperty', op: 'eq', value: true }))).toEqual(['u-set']);
  });
});
