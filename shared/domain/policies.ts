import { z } from 'zod';
import {
  addMonthsClamped,
  calendarRangeToInstants,
  compareCalendarDates,
  formatCalendarDate,
  parseCalendarDate,
  type CalendarDate,
} from './calendar';
import {
  CooldownActiveError,
  PermissionDeniedError,
  PolicyViolationError,
  TooManyRowsError,
  ValidationError,
} from './errors';

/** `1 second`, `30 seconds`. */
function plural(n: number, unit: string): string {
  return `${n} ${unit}${n === 1 ? '' : 's'}`;
}
export type ExportKind = 'cases' | 'contacts';

export const policyConfigSchema = z.strictObject({
  /** First day case statistics exist (S3). */
  launchDate: z.iso.date(),
  /** Longest case range, in calendar months (S3). */
  maxMonths: z.int().min(1).max(120),
  casesPasswordMinLength: z.int().min(1).max(64),
  contactsPasswordMinLength: z.int().min(1).max(64),
  passwordMaxLength: z.int().min(1).max(256),
  cooldownMinutes: z.strictObject({ cases: z.number().min(0), contacts: z.number().min(0) }),
  /** XLSX allows 1,048,576 rows per sheet; the product promises 1,000,000 data rows (S2, C6). */
  maxRows: z.int().min(1).max(1_048_575),
});
export type PolicyConfig = z.infer<typeof policyConfigSchema>;

export const defaultPolicyConfig: PolicyConfig = Object.freeze({
  launchDate: '2025-06-26',
  maxMonths: 6,
  casesPasswordMinLength: 4,
  contactsPasswordMinLength: 6,
  passwordMaxLength: 64,
  cooldownMinutes: Object.freeze({ cases: 30, contacts: 30 }),
  maxRows: 1_000_000,
}) as PolicyConfig;

/** Merges overrides onto the defaults and validates the result (config is an edge too). */
export function createPolicyConfig(
  overrides: Partial<Omit<PolicyConfig, 'cooldownMinutes'>> & { cooldownMinutes?: Partial<PolicyConfig['cooldownMinutes']> } = {},
): PolicyConfig {
  const merged = {
    ...defaultPolicyConfig,
    ...overrides,
    cooldownMinutes: { ...defaultPolicyConfig.cooldownMinutes, ...(overrides.cooldownMinutes ?? {}) },
  };
  const parsed = policyConfigSchema.safeParse(merged);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ValidationError(`Invalid policy config: ${issue ? `${issue.path.join('.')}: ${issue.message}` : 'invalid'}`, {
      code: 'INVALID_POLICY_CONFIG',
    });
  }
  return parsed.data;
}

// ---------------------------------------------------------------------------------------------
// S3: case range

/**
 * S3: `from` on or after the launch date, `to` on or after `from`, and `to` no later than `from`
 * plus maxMonths calendar months (clamped to the target month's last day). Dates are calendar
 * days in the request's time zone, so this is pure calendar arithmetic.
 */
export function checkCaseRange(
  range: { from: string; to: string },
  config: PolicyConfig = defaultPolicyConfig,
  /**
   * Today in the export's zone (or, when the zone is not known yet, in the zone furthest ahead,
   * so only what is in the future everywhere is refused): `from` may not be later. Optional for
   * callers that judge a stored range again.
   */
  today?: { date: CalendarDate; where: string },
): void {
  const from = parseCalendarDate(range.from);
  if (!from) {
    throw new ValidationError('from must be a calendar date (YYYY-MM-DD) (rule S3)', { code: 'INVALID_DATE', field: 'from', rule: 'S3' });
  }
  const to = parseCalendarDate(range.to);
  if (!to) {
    throw new ValidationError('to must be a calendar date (YYYY-MM-DD) (rule S3)', { code: 'INVALID_DATE', field: 'to', rule: 'S3' });
  }
  const launch = parseCalendarDate(config.launchDate);
  if (launch && compareCalendarDates(from, launch) < 0) {
    throw new PolicyViolationError('CASE_RANGE_BEFORE_LAUNCH', `from must be on or after ${config.launchDate}, when case statistics start (rule S3)`,
      { field: 'from', rule: 'S3' },);
  }
  // No case has a day after today yet: such a range can only give an empty file (and hold the
  // cooldown). Refused, which also keeps every range's instants inside the years ISO-8601's
  // four digits hold (9999-12-31 in UTC-12 ends in year 10000 UTC, which no message could carry).
  if (today && compareCalendarDates(from, today.date) > 0) {
    throw new PolicyViolationError(
      'CASE_RANGE_IN_FUTURE',
      `from must not be later than today (${formatCalendarDate(today.date)} ${today.where}): there is no case data after it yet (rule S3)`,
      { field: 'from', rule: 'S3' },
    );
  }
  if (compareCalendarDates(to, from) < 0) {
    throw new PolicyViolationError('CASE_RANGE_END_BEFORE_START', 'to must be on or after from (rule S3)', { field: 'to', rule: 'S3' });
  }
  // Compared as dates, not text: past year 9999 the limit has five digits and sorts first.
  const latest = addMonthsClamped(from, config.maxMonths);
  if (compareCalendarDates(to, latest) > 0) {
    throw new PolicyViolationError(
      'CASE_RANGE_TOO_LONG',
      `to must be no later than ${formatCalendarDate(latest)}: at most ${config.maxMonths} months after from (rule S3)`,
      { field: 'to', rule: 'S3' },
    );
  }
}

/** The last allowed `to` for a `from` (S3), e.g. 2025-08-31 -> 2026-02-28. */
export function latestCaseRangeEnd(from: string, config: PolicyConfig = defaultPolicyConfig): string | undefined {
  const f = parseCalendarDate(from);
  return f ? formatCalendarDate(addMonthsClamped(f, config.maxMonths)) : undefined;
}

/**
 * [startMs, endMsExclusive) for an inclusive calendar range in an IANA zone: the pipeline reads
 * cases whose start instant falls inside it.
 */
export function caseRangeInstants(from: string, to: string, timeZone: string): { startMs: number; endMsExclusive: number } {
  return calendarRangeToInstants(from, to, timeZone);
}

// ---------------------------------------------------------------------------------------------
// S4 / C7: passwords. Messages never contain the password or any part of it.

const LETTERS_DIGITS = /^[A-Za-z0-9]*$/;
// Printable ASCII without space: letters, digits and symbols (C7).
const LETTERS_DIGITS_SYMBOLS = /^[\x21-\x7E]*$/;

export function checkPassword(kind: ExportKind, password: string, config: PolicyConfig = defaultPolicyConfig): void {
  const rule = kind === 'cases' ? 'S4' : 'C7';
  if (typeof password !== 'string') {
    throw new ValidationError(`password is required (rule ${rule})`, { code: 'PASSWORD_REQUIRED', field: 'password', rule });
  }
  if (password.length === 0) {
    throw new PolicyViolationError('PASSWORD_REQUIRED', `password is required (rule ${rule})`, { field: 'password', rule });
  }
  const min = kind === 'cases' ? config.casesPasswordMinLength : config.contactsPasswordMinLength;
  if (password.length < min) {
    throw new PolicyViolationError('PASSWORD_TOO_SHORT', `password must be at least ${min} characters (rule ${rule})`, { field: 'password', rule });
  }
  if (password.length > config.passwordMaxLength) {
    throw new PolicyViolationError('PASSWORD_TOO_LONG', `password must be at most ${config.passwordMaxLength} characters (rule ${rule})`, {
      field: 'password',
      rule,
    });
  }
  if (kind === 'cases' ? !LETTERS_DIGITS.test(password) : !LETTERS_DIGITS_SYMBOLS.test(password)) {
    const allowed = kind === 'cases' ? 'letters (A-Z, a-z) and digits only' : 'letters, digits and symbols (printable ASCII, no spaces)';
    throw new PolicyViolationError('PASSWORD_INVALID_CHARACTERS', `password must contain ${allowed} (rule ${rule})`, { field: 'password', rule });
  }
}

// ---------------------------------------------------------------------------------------------
// C8: cooldown

export function cooldownWindowSeconds(kind: ExportKind, config: PolicyConfig = defaultPolicyConfig): number {
  return Math.round(config.cooldownMinutes[kind] * 60);
}

/** One key per manager and kind: the cooldown store's conditional write is keyed by it. */
export function cooldownKey(channelId: string, managerId: string, kind: ExportKind): string {
  return `cooldown#${channelId}#${managerId}#${kind}`;
}

/** Error for a manager whose last export of this kind started less than the window ago (C8). */
export function cooldownActiveError(kind: ExportKind, retryAfterSeconds: number, config: PolicyConfig = defaultPolicyConfig): CooldownActiveError {
  const minutes = config.cooldownMinutes[kind];
  return new CooldownActiveError(
    `one ${kind} export per ${minutes === 1 ? 'minute' : `${minutes} minutes`} per manager; try again in ${plural(Math.max(1, Math.ceil(retryAfterSeconds)), 'second')} (rule C8)`,
    { retryAfterSeconds: Math.max(1, Math.ceil(retryAfterSeconds)), field: 'kind', rule: 'C8' },
  );
}

/**
 * Pure check for callers that know when the previous export started (the store itself decides
 * atomically; this is for previews and tests).
 */
export function checkCooldown(
  kind: ExportKind,
  lastStartedAtMs: number | undefined,
  nowMs: number,
  config: PolicyConfig = defaultPolicyConfig,
): void {
  if (lastStartedAtMs === undefined) return;
  const windowMs = cooldownWindowSeconds(kind, config) * 1000;
  const remaining = lastStartedAtMs + windowMs - nowMs;
  if (remaining > 0) throw cooldownActiveError(kind, remaining / 1000, config);
}

// ---------------------------------------------------------------------------------------------
// S2 / C6: size

/**
 * The refusal of an export past the row limit. Rows are counted while the file is built, and
 * building stops at the first row over the limit, so `rowCount` is how many were counted then,
 * never the export's total: the message states only that the limit was passed.
 */
export function tooManyRowsError(kind: ExportKind, rowCount: number, maxRows: number): TooManyRowsError {
  const rule = kind === 'cases' ? 'S2' : 'C6';
  const narrow = kind === 'cases' ? 'narrow the date range or the filter' : 'narrow the filter or the selection';
  return new TooManyRowsError(
    `the export has more than ${maxRows.toLocaleString('en-US')} rows, the most one file may hold: ${narrow} (rule ${rule})`,
    { rowCount, maxRows, rule },
  );
}

export function checkRowCount(rowCount: number, kind: ExportKind = 'cases', config: PolicyConfig = defaultPolicyConfig): void {
  if (rowCount > config.maxRows) throw tooManyRowsError(kind, rowCount, config.maxRows);
}

// ---------------------------------------------------------------------------------------------
// S5 / C10: permissions

export const permissionSchema = z.enum(['export:download', 'audit:read']);
export type Permission = z.infer<typeof permissionSchema>;

export const principalSchema = z.object({
  managerId: z.string().min(1),
  channelId: z.string().min(1),
  name: z.string().optional(),
  permissions: z.array(z.string()),
});
export type Principal = z.infer<typeof principalSchema>;

export function hasPermission(principal: Pick<Principal, 'permissions'> | undefined, permission: Permission): boolean {
  return !!principal && principal.permissions.includes(permission);
}

export function requirePermission(principal: Pick<Principal, 'permissions'> | undefined, permission: Permission): void {
  if (!hasPermission(principal, permission)) {
    const rule = permission === 'export:download' ? 'S5/C10' : 'C10';
    const what = permission === 'export:download' ? 'download exports' : 'read the audit trail';
    throw new PermissionDeniedError(`the ${permission} permission is required to ${what} (rule ${rule})`, {
      field: 'permissions',
      rule,
    });
  }
}
