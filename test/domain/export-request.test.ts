import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import {
  DomainError,
  ValidationError,
  checkExportRequest,
  exportRequestJsonSchema,
  exportRequestSchema,
  parseExportRequest,
  parseRevokeRequest,
} from '../../shared/domain';

const SECRET = 'HunterTwo2SecretPw';

const cases = (extra: Record<string, unknown> = {}) => ({
  kind: 'cases',
  from: '2025-07-01',
  to: '2025-07-31',
  reason: 'Monthly CS report',
  password: SECRET,
  ...extra,
});
const contacts = (extra: Record<string, unknown> = {}) => ({
  kind: 'contacts',
  scope: 'all',
  reason: 'CRM sync',
  password: `${SECRET}!`,
  ...extra,
});
const userFilter = { join: 'and', groups: [{ join: 'or', conditions: [{ field: 'member', op: 'eq', value: true }, { field: 'profile.lastCheckoutCompletedAt', op: 'withinLastDays', days: 30 }] }] };
const caseFilter = { join: 'or', groups: [{ join: 'and', conditions: [{ field: 'mediumName', op: 'in', values: 'phoneNumber, appKakao' }], groups: [{ join: 'or', conditions: [{ field: 'tags', op: 'exists' }] }] }] };

/** Structural samples: zod and the JSON Schema (hence API Gateway) must agree on every one. */
const samples: [label: string, body: unknown, valid: boolean][] = [
  ['cases minimal', cases(), true],
  ['cases with timezone and filter', cases({ timezone: 'Asia/Seoul', filter: caseFilter }), true],
  ['cases leap day', cases({ from: '2028-02-29', to: '2028-03-01' }), true],
  ['cases 2025-02-29 is not a date', cases({ from: '2025-02-29' }), false],
  ['cases from as datetime', cases({ from: '2025-07-01T00:00:00Z' }), false],
  ['cases missing to', { ...cases(), to: undefined }, false],
  ['cases missing reason', { ...cases(), reason: undefined }, false],
  ['cases blank reason', cases({ reason: '   ' }), false],
  ['cases empty reason', cases({ reason: '' }), false],
  ['cases reason 500 chars', cases({ reason: 'r'.repeat(500) }), true],
  ['cases reason 501 chars', cases({ reason: 'r'.repeat(501) }), false],
  ['cases missing password', { ...cases(), password: undefined }, false],
  // The schema takes any text; checkPassword refuses it (PASSWORD_REQUIRED, S4), as it does a short or a long one.
  ['cases empty password', cases({ password: '' }), true],
  ['cases password missing', (({ password: _omit, ...rest }) => rest)(cases()), false],
  ['cases password number', cases({ password: 1234 }), false],
  ['cases unknown key', cases({ extra: 1 }), false],
  ['cases with scope', cases({ scope: 'all' }), false],
  ['cases filter unknown field', cases({ filter: { join: 'and', groups: [{ join: 'and', conditions: [{ field: 'nickname', op: 'eq', value: 'x' }] }] } }), false],
  ['cases filter user field', cases({ filter: { join: 'and', groups: [{ join: 'and', conditions: [{ field: 'email', op: 'exists' }] }] } }), false],
  ['cases filter unknown op', cases({ filter: { join: 'and', groups: [{ join: 'and', conditions: [{ field: 'tags', op: 'like', value: 'x' }] }] } }), false],
  ['cases filter bad join', cases({ filter: { join: 'xor', groups: [] } }), false],
  ['cases filter too deep', cases({ filter: { join: 'and', groups: [{ join: 'and', conditions: [], groups: [{ join: 'and', conditions: [], groups: [] }] }] } }), false],
  ['cases filter in without values', cases({ filter: { join: 'and', groups: [{ join: 'and', conditions: [{ field: 'tags', op: 'in', values: [] }] }] } }), false],
  ['cases filter between', cases({ filter: { join: 'and', groups: [{ join: 'and', conditions: [{ field: 'replyCount', op: 'between', from: 1, to: 5 }] }] } }), true],
  ['cases filter negative days', cases({ filter: { join: 'and', groups: [{ join: 'and', conditions: [{ field: 'closedAt', op: 'withinLastDays', days: -1 }] }] } }), false],
  ['cases filter fractional days', cases({ filter: { join: 'and', groups: [{ join: 'and', conditions: [{ field: 'closedAt', op: 'withinLastDays', days: 1.5 }] }] } }), false],
  ['contacts all', contacts(), true],
  ['contacts all with query', contacts({ query: '010-1234-5678' }), true],
  ['contacts filter', contacts({ scope: 'filter', filter: userFilter, timezone: 'America/New_York' }), true],
  ['contacts filter missing filter', contacts({ scope: 'filter' }), false],
  ['contacts filter with case field', contacts({ scope: 'filter', filter: { join: 'and', groups: [{ join: 'and', conditions: [{ field: 'replyCount', op: 'gt', value: 1 }] }] } }), false],
  ['contacts segment', contacts({ scope: 'segment', segmentId: 'seg-1' }), true],
  ['contacts segment missing id', contacts({ scope: 'segment' }), false],
  ['contacts selection', contacts({ scope: 'selection', userIds: ['u1', 'u2'] }), true],
  ['contacts selection empty', contacts({ scope: 'selection', userIds: [] }), false],
  ['contacts selection with filter', contacts({ scope: 'selection', userIds: ['u1'], filter: userFilter }), false],
  ['contacts user', contacts({ scope: 'user', userId: 'u1' }), true],
  ['contacts user with query', contacts({ scope: 'user', userId: 'u1', query: 'x' }), false],
  ['contacts unknown scope', contacts({ scope: 'everyone' }), false],
  ['contacts with from', contacts({ from: '2025-07-01' }), false],
  ['unknown kind', { ...cases(), kind: 'orders' }, false],
  ['not an object', 'cases', false],
  ['null', null, false],
  ['array', [cases()], false],
];

function compileAjv(schema: Record<string, unknown>) {
  const ajv = new Ajv({ allErrors: true, strict: false });
  addFormats(ajv);
  return ajv.compile(schema);
}

describe('request schema and JSON Schema agree (API Gateway model)', () => {
  const validate = compileAjv(exportRequestJsonSchema({ target: 'draft-07' }));

  it.each(samples)('S4/C6/C7: %s -> zod and ajv agree', (_label, body, valid) => {
    const zodOk = exportRequestSchema.safeParse(body).success;
    const ajvOk = validate(body) as boolean;
    expect(zodOk, 'zod').toBe(valid);
    expect(ajvOk, `ajv: ${JSON.stringify(validate.errors?.slice(0, 2))}`).toBe(valid);
  });

  it('S4: the draft-04 model is the draft-07 schema with const written as one-value enum, and has no $-keys', () => {
    const d4 = exportRequestJsonSchema();
    const d7 = exportRequestJsonSchema({ target: 'draft-07' });
    const keys = new Set<string>();
    const walk = (v: unknown): unknown => {
      if (Array.isArray(v)) return v.map(walk);
      if (v && typeof v === 'object') {
        const out: Record<string, unknown> = {};
        for (const [k, x] of Object.entries(v)) {
          keys.add(k);
          if (k === 'const') out.enum = [x];
          else out[k] = walk(x);
        }
        return out;
      }
      return v;
    };
    const normalised = walk(d7);
    expect(JSON.stringify(d4)).toBe(JSON.stringify(normalised));
    const d4keys = new Set<string>();
    JSON.stringify(d4, (k, v) => {
      d4keys.add(k);
      return v;
    });
    for (const forbidden of ['$schema', '$ref', '$id', '$defs', 'definitions', 'const']) expect(d4keys.has(forbidden), forbidden).toBe(false);
    // The draft-04 variant also validates the samples (ajv ignores the missing meta-schema URI).
    const validate4 = compileAjv(d4);
    for (const [label, body, valid] of samples) expect(validate4(body), label).toBe(valid);
  });

  it('S3: zod-only checks (refinements the model cannot express) are documented and enforced by the handler', () => {
    const validate = compileAjv(exportRequestJsonSchema({ target: 'draft-07' }));
    const zodOnly = [cases({ timezone: 'Mars/Olympus' }), cases({ reason: `  ${'r'.repeat(500)}  ` })];
    expect(validate(zodOnly[0])).toBe(true);
    expect(exportRequestSchema.safeParse(zodOnly[0]).success).toBe(false);
    // Trimmed to 500 characters: zod accepts, the model (counting raw characters) rejects. Safe direction.
    expect(exportRequestSchema.safeParse(zodOnly[1]).success).toBe(true);
    expect(validate(zodOnly[1])).toBe(false);
  });

  it('S4/C7: 1,000,000 selected user ids are accepted, one more is not', () => {
    const ids = Array.from({ length: 1_000_000 }, (_, i) => `u${i}`);
    expect(exportRequestSchema.safeParse(contacts({ scope: 'selection', userIds: ids })).success).toBe(true);
    ids.push('one-more');
    expect(exportRequestSchema.safeParse(contacts({ scope: 'selection', userIds: ids })).success).toBe(false);
  });
});

describe('parsing errors', () => {
  it('a body that is no object is refused as `body` (it was `(root)`), rule type', () => {
    for (const body of [null, [], 'text', 5]) {
      try {
        parseExportRequest(body);
        expect.unreachable(JSON.stringify(body));
      } catch (e) {
        expect(e, JSON.stringify(body)).toMatchObject({ code: 'VALIDATION_FAILED', field: 'body', rule: 'type', issues: [{ path: 'body', message: 'must be an object', rule: 'type' }] });
      }
    }
  });

  it('a missing case date is rule `required`, as every missing field; a bad one stays `format` / `type`', () => {
    const issueOf = (body: Record<string, unknown>) => {
      try {
        parseExportRequest(body);
      } catch (e) {
        return (e as ValidationError).issues.map((i) => ({ path: i.path, rule: i.rule, message: i.message }));
      }
      throw new Error('accepted');
    };
    const { to: _to, ...withoutTo } = cases();
    expect(issueOf(withoutTo)).toEqual([{ path: 'to', rule: 'required', message: 'is required' }]);
    expect(issueOf(cases({ to: '2025-13-01' }))).toEqual([{ path: 'to', rule: 'format', message: 'must be a calendar date (YYYY-MM-DD)' }]);
    expect(issueOf(cases({ to: 5 }))).toEqual([{ path: 'to', rule: 'type', message: 'must be a calendar date (YYYY-MM-DD)' }]);
  });

  it('S4: an empty or blank reason is one issue with one message, not a repeat', () => {
    for (const reason of ['', '   ', '\n\t']) {
      try {
        parseExportRequest(cases({ reason }));
        expect.unreachable();
      } catch (e) {
        expect(e).toBeInstanceOf(ValidationError);
        expect((e as ValidationError).issues).toEqual([expect.objectContaining({ path: 'reason', message: 'reason must not be blank' })]);
      }
    }
  });

  const DISPLAY_CONTROL_TEXT = 'must not contain control characters, bidi overrides (U+202A-U+202E, U+2066-U+2069) or invisible tag and format characters';
  /** A display-control message: the rule's wording, then the character found and where (checked exactly below). */
  const refusal = (subject: string) => expect.stringMatching(new RegExp(`^${subject}${DISPLAY_CONTROL_TEXT.replace(/[()+]/g, '\\$&')} \\(U\\+[0-9A-F]{4,6} at character \\d+\\)$`));

  it('a display-control refusal names the first character refused and where, counted in characters (code points)', () => {
    const messageOf = (reason: string) => {
      try {
        parseRevokeRequest({ reason });
      } catch (e) {
        return (e as ValidationError).issues[0]?.message;
      }
      return undefined;
    };
    expect(messageOf('\u200b')).toBe(`reason ${DISPLAY_CONTROL_TEXT} (U+200B at character 1)`);
    expect(messageOf('re\u00adfund')).toBe(`reason ${DISPLAY_CONTROL_TEXT} (U+00AD at character 3)`);
    // An emoji is one character; a flag's tags are kept, and counted, but never named.
    expect(messageOf('a😀\ufeffb')).toBe(`reason ${DISPLAY_CONTROL_TEXT} (U+FEFF at character 3)`);
    expect(messageOf('x\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}\u{E0041}')).toBe(`reason ${DISPLAY_CONTROL_TEXT} (U+E0041 at character 9)`);
    expect(messageOf('legit \u202eevil')).toBe(`reason ${DISPLAY_CONTROL_TEXT} (U+202E at character 7)`);
    // A reason of Hangul fillers alone counts as letters, and shows nothing.
    expect(messageOf('\u3164\u3164\u3164')).toBe(`reason ${DISPLAY_CONTROL_TEXT} (U+3164 at character 1)`);
  });

  it('S4: a reason an auditor cannot read is refused, one message each: invisible only, control characters, bidi overrides', () => {
    const cases_: [string, unknown][] = [
      // Invisible format characters are refused for what they are, even where nothing else is there.
      ['\u200b', refusal('reason ')],
      ['\u200b\u200d\ufeff', refusal('reason ')],
      ['\u200d', 'reason must contain a letter or a digit'],
      ['!!! ...', 'reason must contain a letter or a digit'],
      ['\u0000\u001b[31mOK\u001b[0m', refusal('reason ')],
      ['legit \u202eevil\u202c reason', refusal('reason ')],
      ['isolate \u2067x\u2069', refusal('reason ')],
      ['c1 \u0085 next line', refusal('reason ')],
      ['tag \u{E0041}\u{E0042} smuggled', refusal('reason ')],
      ['word\u2060joiner', refusal('reason ')],
      ['del \u007f', refusal('reason ')],
    ];
    for (const [reason, message] of cases_) {
      try {
        parseExportRequest(cases({ reason }));
        expect.unreachable(JSON.stringify(reason));
      } catch (e) {
        expect(e).toBeInstanceOf(ValidationError);
        // Each refusal also names its rule, for clients to switch on.
        const rule = typeof message === 'string' ? 'letter-or-digit' : 'display-control';
        expect((e as ValidationError).issues, JSON.stringify(reason)).toEqual([{ path: 'reason', message, rule }]);
        expect(e).toMatchObject({ field: 'reason', rule });
      }
    }
  });

  it('S4: a reason hiding an invisible format character (\\p{Cf}) or the combining grapheme joiner is refused (display-control): "re\\u200bfund" is not found by a search for "refund"', () => {
    const message = refusal('reason ');
    const hidden = {
      'ZERO WIDTH SPACE': '\u200b',
      'BOM / ZERO WIDTH NO-BREAK SPACE': '\ufeff',
      'SOFT HYPHEN': '\u00ad',
      'MONGOLIAN VOWEL SEPARATOR': '\u180e',
      'COMBINING GRAPHEME JOINER': '\u034f',
      'WORD JOINER': '\u2060',
      'INVISIBLE PLUS': '\u2064',
      'INHIBIT SYMMETRIC SWAPPING': '\u206a',
      'LANGUAGE TAG': '\u{E0001}',
      // Letters to the letter-or-digit rule, yet nothing shows.
      'HANGUL FILLER': '\u3164',
      'HALFWIDTH HANGUL FILLER': '\uffa0',
    };
    for (const [name, ch] of Object.entries(hidden)) {
      for (const reason of [`a${ch}b`, `re${ch}fund for order 7`]) {
        try {
          parseExportRequest(cases({ reason }));
          expect.unreachable(name);
        } catch (e) {
          expect(e, name).toBeInstanceOf(ValidationError);
          expect((e as ValidationError).issues, name).toEqual([{ path: 'reason', message, rule: 'display-control' }]);
          expect(e, name).toMatchObject({ code: 'VALIDATION_FAILED', field: 'reason', rule: 'display-control' });
        }
        // The revoke reason takes the very same rule.
        expect(() => parseRevokeRequest({ reason }), name).toThrow(expect.objectContaining({ field: 'reason', rule: 'display-control' }));
      }
    }
  });

  it('S4: what legitimate text needs stays: joiners, direction marks (LRM, RLM, ALM), variation selectors, a flag\'s tag sequence', () => {
    const scotland = '\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}';
    for (const reason of [
      '👨\u200d👩\u200d👧\u200d👦 family plan',
      `office in ${scotland} closed`,
      'می\u200cخواهم گزارش',
      '월간 CRM 동기화',
      'تقرير شهري للدعم',
      'Arabic \u061c١٢٣ and \u200e(LTR)\u200f',
      'heart \u2764\ufe0f and text style \u2764\ufe0e',
      'क्\u200dष Devanagari',
    ]) {
      expect(parseExportRequest(cases({ reason })).reason, reason).toBe(reason);
      expect(parseRevokeRequest({ reason }).reason, reason).toBe(reason);
    }
  });

  it('C1: a quick search auditors would read reversed or garbled is refused like such a reason; an ordinary one in any script passes', () => {
    const message = refusal('query ');
    for (const query of ['a\u0000b', 'a\u202eb', 'x\u009by', 'tag \u{E0041}']) {
      try {
        parseExportRequest({ kind: 'contacts', scope: 'all', query, reason: 'r', password: 'Secret12' });
        expect.unreachable(JSON.stringify(query));
      } catch (e) {
        expect(e).toBeInstanceOf(ValidationError);
        expect((e as ValidationError).issues, JSON.stringify(query)).toEqual([{ path: 'query', message, rule: 'display-control' }]);
      }
    }
    // Compared with customer data (names pasted from the web hold these), so not refused here.
    for (const query of ['김민수', '010-1234-5678', 'kim@example.com', 'تقرير \u200f', '', 'Kim\u00adJoon', 'k\u200bim', '\ufeffkim']) {
      expect(parseExportRequest({ kind: 'contacts', scope: 'all', query, reason: 'r', password: 'Secret12' })).toMatchObject({ query });
    }
  });

  it('filter texts and ids the audit trail shows are refused like such a query (display-control), each at its exact path; ordinary ones pass', () => {
    const message = refusal('');
    const withCondition = (condition: Record<string, unknown>) =>
      contacts({ scope: 'filter', filter: { join: 'and', groups: [{ join: 'and', conditions: [{ field: 'name', op: 'eq', value: 'x' }, condition] }] } });
    const at = 'filter.groups[0].conditions[1]';
    const refused: [string, unknown, string][] = [
      ['eq value', withCondition({ field: 'name', op: 'eq', value: 'legit \u202eevil' }), `${at}.value`],
      ['neq value', withCondition({ field: 'tags', op: 'neq', value: 'vip\u2066' }), `${at}.value`],
      ['in item', withCondition({ field: 'email', op: 'in', values: ['a@x.com', 'b\u2067@x.com'] }), `${at}.values[1]`],
      ['in split text', withCondition({ field: 'email', op: 'in', values: 'a@x.com, b\u202a@x.com' }), `${at}.values`],
      ['contains', withCondition({ field: 'name', op: 'contains', value: 'kim\u{E0041}' }), `${at}.value`],
      ['startsWith', withCondition({ field: 'name', op: 'startsWith', value: 'k\u2060im' }), `${at}.value`],
      ['between bound', withCondition({ field: 'createdAt', op: 'between', from: '2025-07-01\u202e', to: '2025-07-02' }), `${at}.from`],
      ['cases filter', cases({ filter: { join: 'and', groups: [{ join: 'and', conditions: [{ field: 'userName', op: 'eq', value: '\u202ekim' }] }] } }), 'filter.groups[0].conditions[0].value'],
      ['segmentId', contacts({ scope: 'segment', segmentId: 'seg-\u202evip' }), 'segmentId'],
      ['userId', contacts({ scope: 'user', userId: 'u\u2066-1' }), 'userId'],
      ['userIds item', contacts({ scope: 'selection', userIds: ['u1', 'u2', 'u\u{E0041}3'] }), 'userIds[2]'],
    ];
    for (const [label, body, path] of refused) {
      try {
        parseExportRequest(body);
        expect.unreachable(label);
      } catch (e) {
        expect(e, label).toBeInstanceOf(ValidationError);
        expect((e as ValidationError).issues, label).toEqual([{ path, message, rule: 'display-control' }]);
        expect(e, label).toMatchObject({ code: 'VALIDATION_FAILED', field: path, rule: 'display-control' });
      }
    }
    // An id with a control character keeps its own rule (SQS refuses it).
    expect(() => parseExportRequest(contacts({ scope: 'user', userId: 'u\u0007' }))).toThrow(expect.objectContaining({ field: 'userId', rule: 'no-control-characters' }));
    // Right-to-left text, joiners and line breaks in a split list are ordinary text.
    // Soft hyphens, zero-width spaces and byte order marks do occur in customer data: a filter may match them.
    for (const value of ['تقرير \u200f', '👨\u200d👩\u200d👧', '김민수', 'Kim\u00adJoon', 'k\u200bim', '\ufeffkim']) {
      expect(() => parseExportRequest(withCondition({ field: 'name', op: 'contains', value })), value).not.toThrow();
    }
    expect(() => parseExportRequest(withCondition({ field: 'email', op: 'in', values: 'a@x.com\r\nb@x.com\tc@x.com' }))).not.toThrow();
    expect(() => parseExportRequest(contacts({ scope: 'selection', userIds: ['u-1', '사용자-2'] }))).not.toThrow();
  });

  it('S4: ordinary reasons in any script pass, with line breaks, tabs, emoji and right-to-left marks', () => {
    for (const reason of ['Q3 review \u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F} office', '👨\u200d👩\u200d👧 family plan', 'می\u200cخواهم', '월간 CRM 동기화', 'line one\nline two\r\nthree\tend', 'تقرير شهري \u200f(2)', '7', 'Q3 review 📊', 'monthly sync']) {
      expect(parseExportRequest(cases({ reason })).reason).toBe(reason);
    }
  });

  it('a time zone is kept as the zone\'s own name, however it was cased (the job and the audit entry show one spelling)', () => {
    expect(parseExportRequest(cases({ timezone: 'asia/seoul' })).timezone).toBe('Asia/Seoul');
    expect(parseExportRequest(cases({ timezone: 'ETC/GMT+12' })).timezone).toBe('Etc/GMT+12');
    expect(parseExportRequest(contacts({ timezone: 'Asia/Seoul' })).timezone).toBe('Asia/Seoul');
    // Only the case: a current name is not swapped for the older alias Intl resolves it to.
    for (const zone of ['Asia/Kolkata', 'Europe/Kyiv', 'Etc/UTC', 'America/Nuuk', 'UTC']) {
      expect(parseExportRequest(cases({ timezone: zone })).timezone, zone).toBe(zone);
    }
  });

  it('ids refuse what SQS cannot carry (control characters, U+FFFE, U+FFFF): a scope-user export got a 500 at dispatch', () => {
    for (const bad of ['u\uFFFE', 'u\uFFFF', 'u\u0001', 'u\u0000']) {
      for (const body of [contacts({ scope: 'user', userId: bad }), contacts({ scope: 'selection', userIds: ['ok', bad] }), contacts({ scope: 'segment', segmentId: bad })]) {
        try {
          parseExportRequest(body);
          expect.unreachable(JSON.stringify(bad));
        } catch (e) {
          expect(e).toBeInstanceOf(ValidationError);
          expect((e as ValidationError).issues[0]?.message).toBe('must not contain control characters, U+FFFE or U+FFFF');
        }
      }
    }
    expect(parseExportRequest(contacts({ scope: 'user', userId: '사용자-1 😀' })).kind).toBe('contacts');
  });

  it('C6: a selection keeps each customer once, in the order given (the audit entry counted 500 copies of one id as 500)', () => {
    const r = parseExportRequest(contacts({ scope: 'selection', userIds: ['u2', 'u1', 'u2', ...Array(500).fill('u1'), 'u3'] }));
    expect(r.kind === 'contacts' && r.scope === 'selection' ? r.userIds : undefined).toEqual(['u2', 'u1', 'u3']);
  });

  it('S4: reason is trimmed', () => {
    const r = parseExportRequest(cases({ reason: '  audit  ' }));
    expect(r.reason).toBe('audit');
  });

  it('C2: a ValidationError lists every issue path', () => {
    try {
      parseExportRequest(cases({ from: 'yesterday', reason: ' ', filter: { join: 'and', groups: [{ join: 'and', conditions: [{ field: 'tags', op: 'exists' }, { field: 'nope', op: 'eq', value: 1 }] }] } }));
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ValidationError);
      const paths = (e as ValidationError).issues.map((i) => i.path);
      expect(paths).toContain('from');
      expect(paths).toContain('reason');
      expect(paths).toContain('filter.groups[0].conditions[1].field');
      expect((e as ValidationError).message).toContain('filter.groups[0].conditions[1].field');
    }
  });

  it('C6: a key another scope takes is named as the field, with the scope that refuses it', () => {
    const err = (body: unknown) => {
      try {
        parseExportRequest(body);
      } catch (e) {
        return e as ValidationError;
      }
      return expect.unreachable();
    };
    const selection = err(contacts({ scope: 'selection', userIds: ['u1'], query: 'kim' }));
    expect(selection).toMatchObject({ code: 'VALIDATION_FAILED', field: 'query' });
    expect(selection.issues).toEqual([{ path: 'query', message: 'is not allowed with scope "selection"', rule: 'unknown-field' }]);
    expect(selection.message).toBe('Invalid request: query: is not allowed with scope "selection"');
    // A misspelt key is no field of any scope: not "not allowed with scope", which suggests another.
    expect(err(contacts({ scope: 'all', fileNmae: 'x' })).issues).toEqual([{ path: 'fileNmae', message: 'is not an allowed field', rule: 'unknown-field' }]);
    // Every unknown key is named, each at its own path; zod's generic text elsewhere is replaced.
    expect(err(contacts({ scope: 'all', filter: userFilter, extra: 1 })).issues.map((i) => i.path)).toEqual(['filter', 'extra']);
    expect(err(cases({ scope: 'all' })).issues).toEqual([{ path: 'scope', message: 'is not an allowed field', rule: 'unknown-field' }]);
    const condition = { field: 'tags', op: 'exists', note: 'x' };
    expect(err(cases({ filter: { join: 'and', groups: [{ join: 'and', conditions: [condition] }] } })).field).toBe('filter.groups[0].conditions[0].note');
  });

  it('C3: a huge list of bad values gives a bounded error', () => {
    const userIds = Array.from({ length: 50_000 }, () => '');
    expect(exportRequestSchema.safeParse(contacts({ scope: 'selection', userIds })).error!.issues.length).toBe(50_000);
    try {
      parseExportRequest(contacts({ scope: 'selection', userIds }));
      expect.unreachable();
    } catch (e) {
      const err = e as ValidationError;
      expect(err.issues.length).toBe(50);
      expect(err.message.length).toBeLessThan(2_000);
      expect(err.message).toContain('and 49995 more');
      expect(err.field).toBe('userIds[0]');
    }
  });

  it('S4/C7: the password never appears in an error, whatever is wrong', () => {
    const bodies = [
      cases({ password: `${SECRET} with spaces`, from: 'bad' }),
      cases({ password: SECRET, extra: SECRET }),
      cases({ password: SECRET.repeat(20) }),
      contacts({ password: SECRET, scope: SECRET }),
      { kind: SECRET, password: SECRET },
      cases({ password: SECRET, reason: SECRET.repeat(40) }),
    ];
    for (const body of bodies) {
      try {
        parseExportRequest(body);
        checkExportRequest(parseExportRequest(body));
      } catch (e) {
        const err = e as DomainError;
        const dump = `${err.message} ${JSON.stringify(err)} ${String(err.stack)}`;
        expect(dump).not.toContain(SECRET);
      }
    }
  });

  it('S3/S4/C7: checkExportRequest applies the range and password policies with codes', () => {
    const code = (body: unknown) => {
      try {
        checkExportRequest(parseExportRequest(body));
        return undefined;
      } catch (e) {
        return (e as DomainError).code;
      }
    };
    expect(code(cases())).toBeUndefined();
    expect(code(cases({ from: '2025-06-01' }))).toBe('CASE_RANGE_BEFORE_LAUNCH');
    expect(code(cases({ to: '2026-02-01' }))).toBe('CASE_RANGE_TOO_LONG');
    expect(code(cases({ password: 'abc!def' }))).toBe('PASSWORD_INVALID_CHARACTERS');
    expect(code(contacts({ password: 'abc!def' }))).toBeUndefined();
    expect(code(contacts({ password: 'abc12' }))).toBe('PASSWORD_TOO_SHORT');
  });

  it('S3: a range starting after today is refused (CASE_RANGE_IN_FUTURE), judged in the request\'s zone, else where it is latest', () => {
    const refusal = (body: unknown, now: string) => {
      try {
        checkExportRequest(parseExportRequest(body), undefined, new Date(now));
        return undefined;
      } catch (e) {
        return e as DomainError;
      }
    };
    const seoul = cases({ from: '2026-12-02', to: '2026-12-03', timezone: 'Asia/Seoul' });
    // 23:59:59 on 12-01 in Seoul: tomorrow is refused, with the day and the zone in the message.
    expect(refusal(seoul, '2026-12-01T14:59:59Z')).toMatchObject({ code: 'CASE_RANGE_IN_FUTURE', field: 'from', rule: 'S3' });
    expect(refusal(seoul, '2026-12-01T14:59:59Z')?.message).toContain('2026-12-01 in Asia/Seoul');
    // A second later it is 12-02 there: today is fine.
    expect(refusal(seoul, '2026-12-01T15:00:00Z')).toBeUndefined();
    // Without a zone, only what is in the future in every zone: at 10:00 UTC it is already 12-02
    // at UTC+14, so 12-02 passes and 12-03 does not.
    expect(refusal(cases({ from: '2026-12-02', to: '2026-12-03' }), '2026-12-01T10:00:00Z')).toBeUndefined();
    expect(refusal(cases({ from: '2026-12-03', to: '2026-12-03' }), '2026-12-01T10:00:00Z')).toMatchObject({ code: 'CASE_RANGE_IN_FUTURE' });
    // The fuzz review's case: it was accepted, and its instants (year 10000 UTC) could not be
    // carried by the chunk messages, so the export stayed running for ever.
    expect(refusal(cases({ from: '9999-07-01', to: '9999-12-31', timezone: 'Etc/GMT+12' }), '2026-12-01T10:00:00Z')).toMatchObject({
      code: 'CASE_RANGE_IN_FUTURE',
    });
    // A range ending in the future but starting today or before stays allowed (data so far).
    expect(refusal(cases({ from: '2026-11-01', to: '2026-12-31', timezone: 'Asia/Seoul' }), '2026-12-01T10:00:00Z')).toBeUndefined();
  });
});
