import { describe, expect, it } from 'vitest';
import {
  CooldownActiveError,
  DomainError,
  PermissionDeniedError,
  PolicyViolationError,
  TooManyRowsError,
  ValidationError,
  addMonthsClamped,
  calendarRangeToInstants,
  checkCaseRange,
  checkCooldown,
  checkPassword,
  checkRowCount,
  cooldownKey,
  cooldownWindowSeconds,
  createPolicyConfig,
  defaultPolicyConfig,
  latestCaseRangeEnd,
  parseCalendarDate,
  requirePermission,
} from '../../shared/domain';

function codeOf(fn: () => void): string | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    if (e instanceof DomainError) return e.code;
    throw e;
  }
}

describe('S3 case range', () => {
  it.each([
    ['2025-06-26', '2025-12-26'],
    ['2025-08-31', '2026-02-28'],
    ['2027-08-31', '2028-02-29'], // leap year target
    ['2028-08-31', '2029-02-28'],
    ['2025-12-31', '2026-06-30'],
    ['2025-09-30', '2026-03-30'],
    ['2026-01-31', '2026-07-31'],
    ['2025-06-30', '2025-12-30'],
  ])('S3: latest end for from %s is %s (months clamp to the last day)', (from, latest) => {
    expect(latestCaseRangeEnd(from)).toBe(latest);
  });

  it.each([
    // from, to, expected code (undefined = allowed)
    ['2025-06-26', '2025-06-26', undefined],
    ['2025-06-26', '2025-12-26', undefined],
    ['2025-06-26', '2025-12-27', 'CASE_RANGE_TOO_LONG'],
    ['2025-06-25', '2025-07-01', 'CASE_RANGE_BEFORE_LAUNCH'],
    ['2024-12-31', '2025-01-01', 'CASE_RANGE_BEFORE_LAUNCH'],
    ['2025-08-31', '2026-02-28', undefined],
    ['2025-08-31', '2026-03-01', 'CASE_RANGE_TOO_LONG'],
    ['2027-08-31', '2028-02-29', undefined],
    ['2027-08-31', '2028-03-01', 'CASE_RANGE_TOO_LONG'],
    ['2025-07-10', '2025-07-09', 'CASE_RANGE_END_BEFORE_START'],
    ['2025-02-29', '2025-03-01', 'INVALID_DATE'],
    ['2025-07-01', '2025-13-01', 'INVALID_DATE'],
  ])('S3: from %s to %s -> %s', (from, to, code) => {
    expect(codeOf(() => checkCaseRange({ from, to }))).toBe(code);
  });

  it('S3: errors name the field and the rule', () => {
    try {
      checkCaseRange({ from: '2025-08-31', to: '2026-03-01' });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(PolicyViolationError);
      const err = e as PolicyViolationError;
      expect(err.field).toBe('to');
      expect(err.rule).toBe('S3');
      expect(err.message).toContain('to');
      expect(err.message).toContain('S3');
      expect(err.message).toContain('2026-02-28');
    }
  });

  it('S3: launch date and month count are configurable', () => {
    const config = createPolicyConfig({ launchDate: '2025-01-01', maxMonths: 3 });
    expect(codeOf(() => checkCaseRange({ from: '2025-01-01', to: '2025-04-01' }, config))).toBeUndefined();
    expect(codeOf(() => checkCaseRange({ from: '2025-01-01', to: '2025-04-02' }, config))).toBe('CASE_RANGE_TOO_LONG');
    expect(codeOf(() => checkCaseRange({ from: '2025-11-30', to: '2026-02-28' }, config))).toBeUndefined();
  });

  it('S3: addMonthsClamped crosses years and handles negative months', () => {
    expect(addMonthsClamped(parseCalendarDate('2024-02-29')!, 12)).toEqual({ year: 2025, month: 2, day: 28 });
    expect(addMonthsClamped(parseCalendarDate('2024-03-31')!, -1)).toEqual({ year: 2024, month: 2, day: 29 });
    expect(addMonthsClamped(parseCalendarDate('2025-11-15')!, 2)).toEqual({ year: 2026, month: 1, day: 15 });
  });

  it('S3: an invalid policy config is rejected naming the field', () => {
    expect(() => createPolicyConfig({ maxMonths: 0 })).toThrow(/maxMonths/);
  });
});

describe('S3 calendar range to instants (time zones)', () => {
  const iso = (ms: number) => new Date(ms).toISOString();
  it.each([
    // zone, from, to, start (UTC), end exclusive (UTC)
    ['Asia/Seoul', '2025-07-01', '2025-07-01', '2025-06-30T15:00:00.000Z', '2025-07-01T15:00:00.000Z'],
    ['Asia/Seoul', '2025-06-26', '2025-12-26', '2025-06-25T15:00:00.000Z', '2025-12-26T15:00:00.000Z'],
    ['UTC', '2025-06-26', '2025-06-30', '2025-06-26T00:00:00.000Z', '2025-07-01T00:00:00.000Z'],
    // New York springs forward on 2025-03-09: a 23-hour day.
    ['America/New_York', '2025-03-09', '2025-03-09', '2025-03-09T05:00:00.000Z', '2025-03-10T04:00:00.000Z'],
    // ...and falls back on 2025-11-02: a 25-hour day.
    ['America/New_York', '2025-11-02', '2025-11-02', '2025-11-02T04:00:00.000Z', '2025-11-03T05:00:00.000Z'],
    // Santiago's DST starts at midnight (2025-09-07 00:00 does not exist): the day starts at 01:00 -03.
    ['America/Santiago', '2025-09-07', '2025-09-07', '2025-09-07T04:00:00.000Z', '2025-09-08T03:00:00.000Z'],
    ['Asia/Kathmandu', '2025-07-01', '2025-07-01', '2025-06-30T18:15:00.000Z', '2025-07-01T18:15:00.000Z'],
    ['Pacific/Kiritimati', '2025-07-01', '2025-07-01', '2025-06-30T10:00:00.000Z', '2025-07-01T10:00:00.000Z'],
    ['Pacific/Pago_Pago', '2025-07-01', '2025-07-01', '2025-07-01T11:00:00.000Z', '2025-07-02T11:00:00.000Z'],
    // Leap day and year end.
    ['Asia/Seoul', '2028-02-29', '2028-02-29', '2028-02-28T15:00:00.000Z', '2028-02-29T15:00:00.000Z'],
    ['Europe/Berlin', '2025-12-31', '2025-12-31', '2025-12-30T23:00:00.000Z', '2025-12-31T23:00:00.000Z'],
  ])('S3: %s %s..%s is [%s, %s)', (zone, from, to, start, end) => {
    const r = calendarRangeToInstants(from, to, zone);
    expect(iso(r.startMs)).toBe(start);
    expect(iso(r.endMsExclusive)).toBe(end);
  });

  it('S3: an instant just before local midnight belongs to the previous day', () => {
    const r = calendarRangeToInstants('2025-07-01', '2025-07-01', 'Asia/Seoul');
    const lastMomentOfJune30Seoul = Date.parse('2025-06-30T23:59:59.999+09:00');
    expect(lastMomentOfJune30Seoul).toBeLessThan(r.startMs);
    expect(Date.parse('2025-07-01T23:59:59.999+09:00')).toBeLessThan(r.endMsExclusive);
    expect(Date.parse('2025-07-02T00:00:00+09:00')).toBe(r.endMsExclusive);
  });

  it('S3: unknown time zone is a ValidationError naming timezone', () => {
    try {
      calendarRangeToInstants('2025-07-01', '2025-07-01', 'Mars/Olympus');
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ValidationError);
      expect((e as ValidationError).field).toBe('timezone');
    }
  });
});

describe('S4 / C7 passwords', () => {
  it.each([
    ['cases', 'abcd', undefined],
    ['cases', 'Ab12', undefined],
    ['cases', 'abc', 'PASSWORD_TOO_SHORT'],
    ['cases', 'abc!1', 'PASSWORD_INVALID_CHARACTERS'],
    ['cases', 'abc d', 'PASSWORD_INVALID_CHARACTERS'],
    ['cases', '비밀번호1234', 'PASSWORD_INVALID_CHARACTERS'],
    ['cases', 'a'.repeat(64), undefined],
    ['cases', 'a'.repeat(65), 'PASSWORD_TOO_LONG'],
    ['contacts', 'abc12!', undefined],
    ['contacts', 'P@ss~{}', undefined],
    ['contacts', 'abcde', 'PASSWORD_TOO_SHORT'],
    ['contacts', 'abc 12!', 'PASSWORD_INVALID_CHARACTERS'],
    ['contacts', 'abc12\t!', 'PASSWORD_INVALID_CHARACTERS'],
    ['contacts', 'pässwort1', 'PASSWORD_INVALID_CHARACTERS'],
    ['contacts', '!'.repeat(64), undefined],
    ['contacts', '!'.repeat(65), 'PASSWORD_TOO_LONG'],
  ] as const)('S4/C7: %s password #%# -> %s', (kind, password, code) => {
    expect(codeOf(() => checkPassword(kind, password))).toBe(code);
  });

  it('S4/C7: messages name the field and rule and never contain the password', () => {
    const secrets = ['Sup3rSecretValue!!', 'zz', 'x y z secret 1'];
    for (const kind of ['cases', 'contacts'] as const) {
      for (const secret of secrets) {
        try {
          checkPassword(kind, secret);
        } catch (e) {
          const err = e as DomainError;
          expect(err.field).toBe('password');
          expect(err.rule).toBe(kind === 'cases' ? 'S4' : 'C7');
          expect(err.message).not.toContain(secret);
          expect(JSON.stringify(err)).not.toContain(secret);
        }
      }
    }
  });

  it('S4: minimum length for cases is configurable', () => {
    const config = createPolicyConfig({ casesPasswordMinLength: 8 });
    expect(codeOf(() => checkPassword('cases', 'abcd1234', config))).toBeUndefined();
    expect(codeOf(() => checkPassword('cases', 'abcd123', config))).toBe('PASSWORD_TOO_SHORT');
  });
});

describe('C8 cooldown', () => {
  it('C8: 30 minutes per kind by default, configurable per kind', () => {
    expect(cooldownWindowSeconds('cases')).toBe(1800);
    expect(cooldownWindowSeconds('contacts')).toBe(1800);
    const config = createPolicyConfig({ cooldownMinutes: { contacts: 5 } });
    expect(cooldownWindowSeconds('contacts', config)).toBe(300);
    expect(cooldownWindowSeconds('cases', config)).toBe(1800);
  });

  it('C8: an export inside the window fails with retryAfterSeconds; at the boundary it passes', () => {
    const t0 = Date.UTC(2025, 6, 1, 0, 0, 0);
    try {
      checkCooldown('contacts', t0, t0 + 10 * 60_000);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(CooldownActiveError);
      expect((e as CooldownActiveError).retryAfterSeconds).toBe(20 * 60);
      expect((e as CooldownActiveError).code).toBe('COOLDOWN_ACTIVE');
      expect((e as CooldownActiveError).rule).toBe('C8');
    }
    expect(() => checkCooldown('contacts', t0, t0 + 30 * 60_000)).not.toThrow();
    expect(() => checkCooldown('contacts', undefined, t0)).not.toThrow();
  });

  it('C8: the message counts in words a person reads: "1 minute", "1 second", plurals otherwise', () => {
    const t0 = Date.UTC(2025, 6, 1, 0, 0, 0);
    const messageOf = (config: typeof defaultPolicyConfig, now: number) => {
      try {
        checkCooldown('contacts', t0, now, config);
      } catch (e) {
        return (e as Error).message;
      }
      throw new Error('no cooldown');
    };
    const oneMinute = { ...defaultPolicyConfig, cooldownMinutes: { ...defaultPolicyConfig.cooldownMinutes, contacts: 1 } };
    expect(messageOf(oneMinute, t0 + 59_500)).toMatch(/^one contacts export per minute per manager; try again in 1 second \(rule C8\)$/);
    expect(messageOf(defaultPolicyConfig, t0 + 10 * 60_000)).toMatch(/^one contacts export per 30 minutes per manager; try again in 1200 seconds/);
  });

  it('C8: the cooldown key is per channel, manager and kind', () => {
    expect(cooldownKey('ch1', 'm1', 'cases')).not.toBe(cooldownKey('ch1', 'm1', 'contacts'));
    expect(cooldownKey('ch1', 'm1', 'cases')).not.toBe(cooldownKey('ch1', 'm2', 'cases'));
  });
});

describe('S2 / C6 size', () => {
  it.each([
    [0, undefined],
    [1_000_000, undefined],
    [1_000_001, 'TOO_MANY_ROWS'],
  ])('S2/C6: %i rows -> %s', (n, code) => {
    expect(codeOf(() => checkRowCount(n))).toBe(code);
  });

  it('S2/C6: the error tells the user to narrow the range or the filter', () => {
    try {
      checkRowCount(1_200_000, 'cases');
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(TooManyRowsError);
      expect((e as Error).message).toMatch(/narrow the date range or the filter/);
      expect((e as TooManyRowsError).rule).toBe('S2');
    }
    expect(() => checkRowCount(1_200_000, 'contacts')).toThrow(/narrow the filter/);
  });
});

describe('S5 / C10 permissions', () => {
  it('S5/C10: export:download is needed to export, audit:read to read the audit trail', () => {
    const exporter = { permissions: ['export:download'] };
    const auditor = { permissions: ['audit:read'] };
    expect(() => requirePermission(exporter, 'export:download')).not.toThrow();
    expect(() => requirePermission(auditor, 'export:download')).toThrow(PermissionDeniedError);
    expect(() => requirePermission(exporter, 'audit:read')).toThrow(PermissionDeniedError);
    expect(() => requirePermission(auditor, 'audit:read')).not.toThrow();
    expect(() => requirePermission(undefined, 'audit:read')).toThrow(PermissionDeniedError);
    expect(codeOf(() => requirePermission({ permissions: [] }, 'export:download'))).toBe('PERMISSION_DENIED');
  });
});
