import type { z } from 'zod';

/**
 * Domain errors carry a stable `code` (clients and the API's error mapper switch on it), the
 * request `field` they are about, and the `rule` broken: the product rule id (S1..S9, C1..C11)
 * where a source document demands the check, else the name of the check itself (`required`,
 * `type`, `max-length`, `duplicate-key`, `known-zone`…: see issueRule). They know nothing of
 * HTTP: the API layer maps codes/classes to status codes.
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
  /** Which rule the value broke, for clients to switch on (see issueRule); the message says it in words. */
  rule?: string;
}

export class ValidationError extends DomainError {
  readonly issues: readonly ValidationIssue[];

  constructor(
    message: string,
    opts: { code?: string; field?: string; rule?: string; issues?: readonly ValidationIssue[] } = {},
  ) {
    super(opts.code ?? 'VALIDATION_FAILED', message, opts);
    // An issue's message does not repeat its path (`issues: [{ path: "limit", message: "must be …" }]`),
    // as zod's issues do not, where the error's own message starts with it ("limit: must be …").
    const issueMessage = opts.field !== undefined && message.startsWith(`${opts.field}: `) ? message.slice(opts.field.length + 2) : message;
    this.issues =
      opts.issues ??
      (opts.field !== undefined ? [{ path: opts.field, message: issueMessage, ...(opts.rule !== undefined ? { rule: opts.rule } : {}) }] : []);
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

/**
 * The longest key or parameter name an error repeats. Names are input too: a bearer token or a
 * download link pasted where a parameter name goes (`?eyJhbGci…`) came back in full in the
 * message, the field and the issues. Every name this service takes fits (a profile key has at
 * most 64 characters, so `profile.<key>` at most 72); a JWT (three base64url parts, 100+
 * characters) or a download link token (~100) does not.
 */
export const MAX_ECHOED_NAME = 80;

/**
 * `name` as an error may show it: itself when it could be one of ours (letters, digits, `_`,
 * `.`, `-`, at most MAX_ECHOED_NAME), else a description that does not repeat it.
 */
export function nameForError(name: string, noun = 'name'): string {
  if (name === '') return '""';
  return name.length <= MAX_ECHOED_NAME && /^[\p{L}\p{N}_.\-]+$/u.test(name) ? name : `(a ${noun} of ${name.length} characters, not repeated)`;
}

/**
 * `['filter', 'groups', 0, 'field']` -> `filter.groups[0].field`. A key that could not be one of
 * ours (nameForError) is described, not repeated: paths name the keys a client sent.
 */
export function formatIssuePath(path: readonly PropertyKey[], prefix = '', noun = 'key', root = '(root)'): string {
  let out = prefix;
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else {
      const name = nameForError(String(part), noun);
      out += out === '' ? name : `.${name}`;
    }
  }
  return out === '' ? root : out;
}

/** What a value that is missing is told (also how issueRule knows the rule is `required`). */
export const REQUIRED_MESSAGE = 'is required';

const TYPE_NAMES: Record<string, string> = {
  string: 'text (a JSON string)',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  array: 'an array',
  object: 'an object',
};

/**
 * Our wording for zod's built-in checks, for parses of what clients send (pass as
 * `safeParse(data, INPUT_ERRORS)`): zod's own reads "Invalid input: expected string, received
 * undefined" for a field left out and "Too small: expected array to have >=1 items". A schema's
 * own message still wins. Like zod's, these never hold the input's value.
 */
export const INPUT_ERRORS = {
  error(issue: z.core.$ZodRawIssue): string | undefined {
    switch (issue.code) {
      case 'invalid_type':
        return issue.input === undefined ? REQUIRED_MESSAGE : `must be ${TYPE_NAMES[issue.expected] ?? issue.expected}`;
      case 'invalid_union': {
        // A discriminated union's key that matches no branch: the issue's input is the whole
        // object, so whether the key is missing is read from it.
        const { options, discriminator } = issue as { options?: unknown[]; discriminator?: string };
        if (!Array.isArray(options) || options.length === 0) return undefined;
        const list = options.map((o) => JSON.stringify(o)).join(', ');
        const input = issue.input;
        const missing = discriminator !== undefined && typeof input === 'object' && input !== null && (input as Record<string, unknown>)[discriminator] === undefined;
        return missing ? `${REQUIRED_MESSAGE}: one of ${list}` : `must be one of ${list}`;
      }
      case 'invalid_value':
        return issue.values.length === 1 ? `must be ${JSON.stringify(issue.values[0])}` : `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
      case 'too_small':
      case 'too_big': {
        const least = issue.code === 'too_small';
        const bound = String(least ? issue.minimum : issue.maximum);
        const word = least ? (issue.inclusive === false ? 'more than' : 'at least') : issue.inclusive === false ? 'less than' : 'at most';
        if (issue.origin === 'string') return least && bound === '1' ? 'must not be empty' : `must be ${word} ${bound} characters`;
        if (issue.origin === 'array' || issue.origin === 'set') return least && bound === '1' ? 'must not be empty' : `must have ${word} ${bound} items`;
        return `must be ${word} ${bound}`;
      }
      default:
        return undefined;
    }
  },
};

/** At most this many issues in one error (a 100,000-value list of bad values is one error, not 100,000 lines). */
export const MAX_ISSUES = 50;
const MAX_SUMMARY_ISSUES = 5;

/**
 * The rule a zod issue names, as a short stable word: what a client switches on, where the
 * message is for people. A schema's own check says its rule in `params.rule` (e.g. `known-zone`);
 * zod's built-in checks map from their code and, for sizes, from what was measured (a string's
 * length, an array's items, a number).
 */
export function issueRule(issue: z.core.$ZodIssue | { code?: undefined }): string {
  switch (issue.code) {
    case 'invalid_type':
      return issue.message === REQUIRED_MESSAGE ? 'required' : 'type';
    case 'too_small':
    case 'too_big': {
      const bound = issue.code === 'too_small' ? 'min' : 'max';
      if (issue.origin === 'string') return `${bound}-length`;
      if (issue.origin === 'array' || issue.origin === 'set') return `${bound}-items`;
      return issue.code === 'too_small' ? 'minimum' : 'maximum';
    }
    case 'invalid_format':
      return issue.format === 'regex' ? 'pattern' : 'format';
    case 'not_multiple_of':
      return 'multiple-of';
    case 'unrecognized_keys':
      return 'unknown-field';
    case 'invalid_union':
      return issue.message === REQUIRED_MESSAGE || issue.message.startsWith(`${REQUIRED_MESSAGE}:`) ? 'required' : 'one-of';
    case 'invalid_value':
      return 'one-of';
    case 'custom': {
      const rule = (issue.params as { rule?: unknown } | undefined)?.rule;
      return typeof rule === 'string' ? rule : 'invalid';
    }
    default:
      return 'invalid';
  }
}

/**
 * Turns a ZodError into one ValidationError listing every issue's path, message and rule. Only
 * zod's issue messages are used; zod 4 does not put input values into them (we never enable
 * `reportInput`), so a password cannot leak through here. One issue per path: zod may report a
 * value twice (a union's branches each refusing it, a failed check followed by the next), and
 * the first says what is wrong.
 */
export function toValidationError(
  error: z.ZodError,
  opts: { prefix?: string; code?: string; rule?: string } = {},
): ValidationError {
  // A refusal of the whole body (`null`, `[]`) names it `body`, as the body's other refusals do.
  const all = collectIssues(error, opts.prefix ?? '', 'field', 'body');
  // Bounded: a 100,000-value list of bad values must not become a 100,000-line error body.
  const issues = all.slice(0, MAX_ISSUES);
  const first = issues[0];
  const more = all.length - MAX_SUMMARY_ISSUES;
  const summary =
    issues
      .slice(0, MAX_SUMMARY_ISSUES)
      .map((i) => `${i.path}: ${i.message}`)
      .join('; ') + (more > 0 ? `; and ${more} more` : '');
  const rule = opts.rule ?? first?.rule;
  return new ValidationError(`Invalid request: ${summary}`, {
    code: opts.code ?? 'VALIDATION_FAILED',
    ...(first ? { field: first.path } : {}),
    ...(rule !== undefined ? { rule } : {}),
    issues,
  });
}

/**
 * A ZodError's issues as the API lists them: each with its path, message and rule, one per path
 * (see toValidationError). `noun` names what an unknown key is (`field`, `parameter`); `root` is
 * the path of an issue about the whole input (`body`, `query`).
 */
export function collectIssues(error: z.ZodError, prefix = '', noun = 'field', root = '(root)'): ValidationIssue[] {
  const seen = new Set<string>();
  const all: ValidationIssue[] = [];
  for (const issue of error.issues) {
    for (const one of splitUnrecognizedKeys(issue, noun)) {
      const path = formatIssuePath(one.path, prefix, noun === 'parameter' ? 'parameter name' : 'key', root);
      if (seen.has(path)) continue;
      seen.add(path);
      all.push({ path, message: one.message, rule: issueRule(issue) });
    }
  }
  return all;
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
