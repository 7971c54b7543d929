import type { z } from 'zod';

/**
 * Domain errors carry a stable `code` (clients and the API's error mapper switch on it), the
 * request `field` they are about, and the product `rule` id (S1..S9, C1..C11) that demands the
 * check. They know nothing of HTTP: the API layer maps codes/classes to status codes.
 *
 * Messages must never echo user input values: a password could be the "value" of any field a
 * caller mislabels, so messages name fields and rules only.
 */
export class DomainError extends Error {
  readonly code: string;
  readonly field: string | undefined;
  readonly rule: string | undefined;

  constructor(code: string, message: string, opts: { field?: string; rule?: string } = {}) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.field = opts.field;
    this.rule = opts.rule;
  }

  /** A plain, log-safe view (no stack, no input values). */
  toJSON(): Record<string, unknown> {
    return {
      name: this.name,
      code: this.code,
      message: this.message,
      ...(this.field !== undefined ? { field: this.field } : {}),
      ...(this.rule !== undefined ? { rule: this.rule } : {}),
    };
  }
}

export interface ValidationIssue {
  /** Dotted/bracketed path, e.g. `filter.groups[0].conditions[1].field`. */
  path: string;
  message: string;
}

export class ValidationError extends DomainError {
  readonly issues: readonly ValidationIssue[];

  constructor(
    message: string,
    opts: { code?: string; field?: string; rule?: string; issues?: readonly ValidationIssue[] } = {},
  ) {
    super(opts.code ?? 'VALIDATION_FAILED', message, opts);
    this.issues = opts.issues ?? (opts.field !== undefined ? [{ path: opts.field, message }] : []);
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), issues: this.issues };
  }
}

/** A well-formed request that breaks a product rule (range, password, ...). */
export class PolicyViolationError extends DomainError {}

export class CooldownActiveError extends DomainError {
  readonly retryAfterSeconds: number;

  constructor(message: string, opts: { retryAfterSeconds: number; field?: string; rule?: string }) {
    super('COOLDOWN_ACTIVE', message, opts);
    this.retryAfterSeconds = opts.retryAfterSeconds;
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), retryAfterSeconds: this.retryAfterSeconds };
  }
}

export class TooManyRowsError extends DomainError {
  readonly rowCount: number;
  readonly maxRows: number;

  constructor(message: string, opts: { rowCount: number; maxRows: number; rule?: string }) {
    super('TOO_MANY_ROWS', message, opts);
    this.rowCount = opts.rowCount;
    this.maxRows = opts.maxRows;
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), rowCount: this.rowCount, maxRows: this.maxRows };
  }
}

export class PermissionDeniedError extends DomainError {
  constructor(message: string, opts: { code?: string; field?: string; rule?: string } = {}) {
    super(opts.code ?? 'PERMISSION_DENIED', message, opts);
  }
}

export class NotFoundError extends DomainError {
  constructor(message: string, opts: { code?: string; field?: string; rule?: string } = {}) {
    super(opts.code ?? 'NOT_FOUND', message, opts);
  }
}

export class ConflictError extends DomainError {
  constructor(message: string, opts: { code?: string; field?: string; rule?: string } = {}) {
    super(opts.code ?? 'CONFLICT', message, opts);
  }
}

/** `['filter', 'groups', 0, 'field']` -> `filter.groups[0].field`. */
export function formatIssuePath(path: readonly PropertyKey[], prefix = ''): string {
  let out = prefix;
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out === '' ? '(root)' : out;
}

const MAX_ISSUES = 50;
const MAX_SUMMARY_ISSUES = 5;

/**
 * Turns a ZodError into one ValidationError listing every issue's path. Only zod's issue
 * messages are used; zod 4 does not put input values into them (we never enable
 * `reportInput`), so a password cannot leak through here.
 */
export function toValidationError(
  error: z.ZodError,
  opts: { prefix?: string; code?: string; rule?: string } = {},
): ValidationError {
  // Bounded: a 100,000-value list of bad values must not become a 100,000-line error body.
  const all = error.issues.flatMap((issue) => splitUnrecognizedKeys(issue));
  const issues: ValidationIssue[] = all.slice(0, MAX_ISSUES).map((issue) => ({
    path: formatIssuePath(issue.path, opts.prefix ?? ''),
    message: issue.message,
  }));
  const first = issues[0];
  const more = all.length - MAX_SUMMARY_ISSUES;
  const summary =
    issues
      .slice(0, MAX_SUMMARY_ISSUES)
      .map((i) => `${i.path}: ${i.message}`)
      .join('; ') + (more > 0 ? `; and ${more} more` : '');
  return new ValidationError(`Invalid request: ${summary}`, {
    code: opts.code ?? 'VALIDATION_FAILED',
    ...(first ? { field: first.path } : {}),
    ...(opts.rule !== undefined ? { rule: opts.rule } : {}),
    issues,
  });
}

/**
 * zod reports unknown keys on the object that holds them (`(root)` for a request body), so the
 * field a client must remove would go unnamed. One issue per key, at that key's path, names it.
 * zod's own text ("Unrecognized key: ...") would then repeat the key, so it is replaced; a
 * schema's own message (e.g. "is not allowed with scope ...") is kept.
 */
export function splitUnrecognizedKeys(issue: z.core.$ZodIssue, noun = 'field'): { path: readonly PropertyKey[]; message: string }[] {
  if (issue.code !== 'unrecognized_keys' || issue.keys.length === 0) return [issue];
  const message = issue.message.startsWith('Unrecognized key') ? `is not an allowed ${noun}` : issue.message;
  return issue.keys.map((key) => ({ path: [...issue.path, key], message }));
}
