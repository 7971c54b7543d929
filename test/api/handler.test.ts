import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { beforeEach, describe, expect, it } from 'vitest';
import { createApiHandler, MAX_BODY_DEPTH, type ApiRuntime } from '../../functions/api/app';
import { createTokenVerifier, DEV_AUDIENCE, DEV_ISSUER, signDevToken } from '../../shared/auth';
import type { ExportJob } from '../../shared/app/export-job';
import { STALLED_DISPATCH_SECONDS } from '../../shared/app/api/read-exports';
import { requestedEvent, requestExport } from '../../shared/app/api/request-export';
import { bodyLimitFor, isJsonMediaType, MAX_OTHER_BODY_BYTES, MAX_REQUEST_BODY_BYTES } from '../../shared/http';
import { ValidationError } from '../../shared/domain';
import { completeJobInStore } from './support/api-harness';
import { createCapturingLogger, createFakes, type Fakes } from './support/fakes';

const secret = 'handler-test-secret-handler-test-secret';
const PASSWORD = 'Zq7Secr3tPw';
const context = { awsRequestId: 'ctx-req', functionName: 'api' } as Context;

function loadEvent(name: string, vars: Record<string, string>): APIGatewayProxyEvent {
  let text = readFileSync(new URL(`../../events/${name}`, import.meta.url), 'utf8');
  for (const [key, value] of Object.entries(vars)) text = text.split(`{{${key}}}`).join(value);
  return JSON.parse(text) as APIGatewayProxyEvent;
}

type Call = { status: number; headers: Record<string, string>; text: string; body: Record<string, any> };

let fakes: Fakes;
let logs: string[];
let handler: ReturnType<typeof createApiHandler>;

async function call(event: APIGatewayProxyEvent): Promise<Call> {
  const result = (await handler(event, context)) as APIGatewayProxyResult;
  return {
    status: result.statusCode,
    headers: (result.headers ?? {}) as Record<string, string>,
    text: result.body,
    body: result.body === '' ? {} : (JSON.parse(result.body) as Record<string, any>),
  };
}

/** Issued at the handler's (fake) clock unless told otherwise, as a real issuer's token would be. */
async function token(over: Partial<{ channelId: string; managerId: string; permissions: string[]; expiresIn: string }> = {}, now: Date = fakes.clock.now()) {
  return signDevToken({ channelId: 'ch-1', managerId: 'm-1', name: 'Kim', permissions: ['export:download'], expiresIn: '1h', ...over }, { secret, now });
}

async function create(name = 'api-create-export-contacts.json', vars: Record<string, string> = {}): Promise<Call> {
  return call(loadEvent(name, { TOKEN: await token(), PASSWORD, ...vars }));
}

function completeJob(exportId: string, expiresAt = '2026-03-08T10:00:00.000Z'): void {
  completeJobInStore(fakes, exportId, { expiresAt });
}

beforeEach(() => {
  fakes = createFakes();
  logs = [];
  const runtime: ApiRuntime = {
    deps: fakes.deps,
    allowedOrigin: 'https://admin.example.com',
    verifier: createTokenVerifier({ issuer: DEV_ISSUER, audience: DEV_AUDIENCE, devSecret: secret }),
    logger: createCapturingLogger(logs),
  };
  handler = createApiHandler(async () => runtime);
});

describe('POST /v1/exports', () => {
  it('accepts a contacts export: 202, Location, job, audit entry, chunks dispatched, no password stored or logged', async () => {
    const res = await create();
    expect(res.status).toBe(202);
    const exportId = res.body.exportId as string;
    expect(res.headers.Location).toBe(`http://api.test/v1/exports/${exportId}`);
    expect(res.body).toMatchObject({ status: 'queued', links: { self: res.headers.Location } });
    const job = fakes.store.jobs.get(exportId);
    expect(job).toMatchObject({ channelId: 'ch-1', managerId: 'm-1', kind: 'contacts', status: 'queued', chunksTotal: 3 });
    expect(fakes.dispatcher.dispatched).toEqual([exportId]);
    expect(fakes.audit.events).toEqual([
      expect.objectContaining({ type: 'requested', exportId, scope: 'filter', reason: 'Quarterly CRM sync for the marketing team' }),
    ]);
    const everything = JSON.stringify([...fakes.store.jobs.values(), [...fakes.store.idem.values()], fakes.audit.events, logs, res]);
    for (const form of [PASSWORD, Buffer.from(PASSWORD).toString('base64'), Buffer.from(PASSWORD).toString('hex')]) {
      expect(everything).not.toContain(form);
    }
    expect(logs.length).toBeGreaterThan(0);
  });

  it('audits the time zone the export is read in, also when the request named none (the channel\'s)', async () => {
    const contacts = await create();
    const cases = await create('api-create-export-cases.json');
    const [a, b] = fakes.audit.events;
    expect(a).toMatchObject({ exportId: contacts.body.exportId, range: { timezone: 'Asia/Seoul' } });
    expect(b).toMatchObject({ exportId: cases.body.exportId, range: { from: expect.any(String), to: expect.any(String), timezone: 'Asia/Seoul' } });
  });

  it('audits a segment\'s conditions as pinned at the request, with their digest; a segment too large for the item by digest only', async () => {
    const conditions = { join: 'and', groups: [{ join: 'and', conditions: [{ field: 'tags', op: 'eq', value: 'VIP' }] }] };
    const request = { kind: 'contacts', scope: 'segment', segmentId: 'seg-1', reason: 'r', password: PASSWORD } as const;
    const principal = { channelId: 'ch-1', managerId: 'm-1', name: 'Kim', permissions: ['export:download'] } as never;
    const small = requestedEvent('e1', principal, request as never, '2026-03-01T10:00:00.000Z', { timeZone: 'UTC', segmentFilter: conditions });
    const digest = createHash('sha256').update(JSON.stringify(conditions)).digest('hex');
    expect(small.filters).toEqual({ segmentId: 'seg-1', segmentConditions: conditions, segmentConditionsSha256: digest });
    expect(small.range).toEqual({ timezone: 'UTC' });
    const huge = { join: 'and', groups: [{ join: 'and', conditions: [{ field: 'email', op: 'in', values: Array.from({ length: 20_000 }, (_v, i) => `c${i}@example.com`) }] }] };
    const large = requestedEvent('e2', principal, request as never, '2026-03-01T10:00:00.000Z', { timeZone: 'UTC', segmentFilter: huge });
    expect(large.filters.segmentConditions).toBeUndefined();
    expect(large.filters.segmentConditionsSha256).toBe(createHash('sha256').update(JSON.stringify(huge)).digest('hex'));
    expect(JSON.stringify(small)).not.toContain(PASSWORD);
  });

  it('honours Idempotency-Key: same body -> same export and no cooldown hit; different body -> 422', async () => {
    const first = await create();
    const again = await create();
    expect(again.status).toBe(202);
    expect(again.body.exportId).toBe(first.body.exportId);
    expect(again.headers['Idempotency-Replayed']).toBe('true');
    expect(fakes.store.jobs.size).toBe(1);
    const other = loadEvent('api-create-export-contacts.json', { TOKEN: await token(), PASSWORD: 'Another1Password' });
    const res = await call(other);
    expect(res.status).toBe(422);
    // With its rule, as every refusal names one (it had none).
    expect(res.body.error).toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED', field: 'Idempotency-Key', rule: 'same-body' });
    expect(JSON.stringify(res)).not.toContain('Another1Password');
  });

  it('a request refused (4xx) by the workspace before its export existed frees its Idempotency-Key: a corrected body may use it', async () => {
    const plan = fakes.dispatcher.plan.bind(fakes.dispatcher);
    fakes.dispatcher.plan = async () => {
      throw new ValidationError('profile.grade: not a key of this workspace', { code: 'FILTER_INVALID', field: 'filter.groups[0].conditions[0].field' });
    };
    const refused = await create();
    expect(refused.status).toBe(400);
    expect(fakes.store.idem.size).toBe(0);
    fakes.dispatcher.plan = plan;
    // The same key with another (corrected) body: accepted, not 422 IDEMPOTENCY_KEY_REUSED.
    const corrected = await call(loadEvent('api-create-export-contacts.json', { TOKEN: await token(), PASSWORD: 'Another1Password' }));
    expect(corrected.status).toBe(202);
    expect(fakes.store.idem.size).toBe(1);
  });

  it('enforces the cooldown per manager and kind with Retry-After, and frees it after the window', async () => {
    expect((await create('api-create-export-cases.json')).status).toBe(202);
    const blocked = await create('api-create-export-cases.json');
    expect(blocked.status).toBe(429);
    expect(blocked.headers['Retry-After']).toBe('1800');
    expect(blocked.body.error).toMatchObject({ code: 'COOLDOWN_ACTIVE', rule: 'C8', retryAfterSeconds: 1800 });
    const otherManager = loadEvent('api-create-export-cases.json', { TOKEN: await token({ managerId: 'm-2' }), PASSWORD });
    expect((await call(otherManager)).status).toBe(202);
    fakes.clock.advance(31 * 60_000);
    const later = loadEvent('api-create-export-cases.json', { TOKEN: await token({}, fakes.clock.now()), PASSWORD });
    expect((await call(later)).status).toBe(202);
  });

  it('a filter wrong in itself is a 400 before the cooldown is looked at: a manager in cooldown does not wait half an hour to learn it', async () => {
    expect((await create('api-create-export-cases.json')).status).toBe(202);
    const withFilter = async (condition: Record<string, unknown>) => {
      const ev = loadEvent('api-create-export-cases.json', { TOKEN: await token(), PASSWORD });
      ev.body = JSON.stringify({ ...(JSON.parse(ev.body as string) as Record<string, unknown>), filter: { join: 'and', groups: [{ join: 'and', conditions: [condition] }] } });
      return call(ev);
    };
    const reversed = await withFilter({ field: 'replyCount', op: 'between', from: 10, to: 1 });
    expect(reversed.status).toBe(400);
    expect(reversed.body.error).toMatchObject({ field: 'filter.groups[0].conditions[0].to' });
    const noSuchDay = await withFilter({ field: 'closedAt', op: 'gte', value: '2023-02-29T00:00:00Z' });
    expect(noSuchDay.status).toBe(400);
    expect(noSuchDay.body.error).toMatchObject({ field: 'filter.groups[0].conditions[0].value' });
    // A valid filter meets the cooldown as before.
    expect((await withFilter({ field: 'replyCount', op: 'gte', value: 1 })).status).toBe(429);
  });

  it('without timezone, a between whose order depends on the channel\'s zone is left to the plan; one reversed in every zone is a 400 at once', async () => {
    const contacts = async (condition: Record<string, unknown>) => {
      const ev = loadEvent('api-create-export-contacts.json', { TOKEN: await token(), PASSWORD });
      delete ev.headers['Idempotency-Key'];
      ev.body = JSON.stringify({ kind: 'contacts', scope: 'filter', reason: 'CRM sync', password: PASSWORD, filter: { join: 'and', groups: [{ join: 'and', conditions: [condition] }] } });
      return call(ev);
    };
    // 2024-05-01 03:00 in Seoul is on 2024-05-01 there (fine) but before that day starts in UTC.
    expect((await contacts({ field: 'createdAt', op: 'between', from: '2024-05-01', to: '2024-05-01T03:00:00+09:00' })).status).toBe(202);
    const reversed = await contacts({ field: 'createdAt', op: 'between', from: '2024-05-03', to: '2024-05-01T03:00:00+09:00' });
    expect(reversed.status).toBe(400);
    expect(reversed.body.error).toMatchObject({ field: 'filter.groups[0].conditions[0].to' });
  });

  it('takes over a cooldown left by a request that crashed before creating its job', async () => {
    fakes.cooldowns.items.set('cooldown#ch-1#m-1#cases', { holder: 'deadbeefdeadbeef', expiresAt: Date.parse('2026-03-01T10:20:00Z'), acquiredAt: '2026-03-01T09:50:00.000Z' });
    expect((await create('api-create-export-cases.json')).status).toBe(202);
  });

  it('a hold whose request crashed (older than any live request, no export) gives the wait until it can be taken over, not the window', async () => {
    // Taken 60 s ago by a request that never created its export: the api function times out
    // after 28 s, so it is dead; the hold is taken over at 120 s (staleCooldownSeconds).
    fakes.cooldowns.items.set('cooldown#ch-1#m-1#cases', { holder: 'deadbeefdeadbeef', expiresAt: Date.parse('2026-03-01T10:29:00Z'), acquiredAt: '2026-03-01T09:59:00.000Z' });
    const res = await create('api-create-export-cases.json');
    expect(res.status).toBe(429);
    expect(res.headers['Retry-After']).toBe('61');
    expect(res.body.error).toMatchObject({ code: 'COOLDOWN_ACTIVE', retryAfterSeconds: 61 });
    fakes.clock.advance(61_000);
    const later = loadEvent('api-create-export-cases.json', { TOKEN: await token({}, fakes.clock.now()), PASSWORD });
    expect((await call(later)).status).toBe(202);
  });

  it('a hold whose request may still be running (younger than the api timeout) gives the whole window: it will likely become an export', async () => {
    fakes.cooldowns.items.set('cooldown#ch-1#m-1#cases', { holder: 'cafebabecafebabe', expiresAt: Date.parse('2026-03-01T10:29:50Z'), acquiredAt: '2026-03-01T09:59:50.000Z' });
    const res = await create('api-create-export-cases.json');
    expect(res.status).toBe(429);
    expect(res.headers['Retry-After']).toBe('1790');
  });

  it('Retry-After is never longer than the window, even for a hold stamped by a clock running ahead of ours', async () => {
    // Taken 5 s ago by its own clock, which ran 3 s ahead of ours: it ends 1803 s from our now.
    fakes.cooldowns.items.set('cooldown#ch-1#m-1#cases', { holder: 'cafebabecafebabe', expiresAt: Date.parse('2026-03-01T10:30:03Z'), acquiredAt: '2026-03-01T09:59:58.000Z' });
    const res = await create('api-create-export-cases.json');
    expect(res.status).toBe(429);
    expect(res.headers['Retry-After']).toBe('1800');
    expect(res.body.error).toMatchObject({ code: 'COOLDOWN_ACTIVE', retryAfterSeconds: 1800 });
  });

  it('rejects bad input with 400 naming the field and rule, never echoing the password', async () => {
    const badRange = await create('api-create-export-cases.json', {});
    expect(badRange.status).toBe(202);
    const tooLong = loadEvent('api-create-export-cases.json', { TOKEN: await token({ managerId: 'm-3' }), PASSWORD });
    tooLong.body = (tooLong.body as string).replace('2025-11-30', '2026-06-30');
    const res = await call(tooLong);
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 'CASE_RANGE_TOO_LONG', field: 'to', rule: 'S3' });
    const symbols = loadEvent('api-create-export-cases.json', { TOKEN: await token({ managerId: 'm-3' }), PASSWORD: 'pa$$word!!' });
    const pw = await call(symbols);
    expect(pw.status).toBe(400);
    expect(pw.body.error).toMatchObject({ field: 'password', rule: 'S4' });
    expect(JSON.stringify(pw)).not.toContain('pa$$word!!');
    const missingReason = loadEvent('api-create-export-cases.json', { TOKEN: await token({ managerId: 'm-3' }), PASSWORD });
    missingReason.body = JSON.stringify({ ...JSON.parse(missingReason.body as string), reason: undefined });
    const mr = await call(missingReason);
    expect(mr.status).toBe(400);
    expect(mr.body.error.field).toBe('reason');
  });

  it('answers malformed JSON with 400 and a wrong content type with 415, each naming what is wrong and the rule', async () => {
    const malformed = await call(loadEvent('api-create-export-malformed.json', { TOKEN: await token() }));
    expect(malformed.status).toBe(400);
    expect(malformed.body.error).toMatchObject({ code: 'MALFORMED_JSON', field: 'body', rule: 'json' });
    const textPlain = loadEvent('api-create-export-contacts.json', { TOKEN: await token(), PASSWORD });
    textPlain.headers['Content-Type'] = 'text/plain';
    const res = await call(textPlain);
    // RFC 9110 §15.5.16: a media type the route does not take is 415.
    expect(res.status).toBe(415);
    expect(res.body.error).toMatchObject({ code: 'UNSUPPORTED_CONTENT_TYPE', field: 'Content-Type', rule: 'media-type' });
  });

  it('a Content-Type sent twice is 400 INVALID_CONTENT_TYPE, rule once, however it arrives (it was a 415 saying "must be application/json")', async () => {
    const twiceAs = async (set: (event: APIGatewayProxyEvent) => void) => {
      const event = loadEvent('api-create-export-contacts.json', { TOKEN: await token(), PASSWORD });
      set(event);
      return call(event);
    };
    const variants: [string, (event: APIGatewayProxyEvent) => void][] = [
      // Two lines of one name on AWS: `headers` keeps the last, `multiValueHeaders` both.
      ['two lines', (e) => { e.multiValueHeaders = { ...e.multiValueHeaders, 'Content-Type': ['application/json', 'application/json'] }; }],
      // Names differing in case arrive as two keys (the local stack).
      ['two keys', (e) => { e.headers = { ...e.headers, 'content-type': 'application/json; charset=utf-8' }; }],
      ['two multi-value keys', (e) => {
        e.headers = { ...e.headers, 'content-type': 'text/plain' };
        e.multiValueHeaders = { ...e.multiValueHeaders, 'content-type': ['text/plain'] };
      }],
    ];
    for (const [label, set] of variants) {
      const res = await twiceAs(set);
      expect(res.status, label).toBe(400);
      expect(res.body.error, label).toMatchObject({ code: 'INVALID_CONTENT_TYPE', field: 'Content-Type', rule: 'once', message: 'Content-Type must be sent once' });
    }
    expect(fakes.store.jobs.size).toBe(0);
    // Once, in any case, it is taken.
    expect((await twiceAs((e) => { e.multiValueHeaders = { ...e.multiValueHeaders, 'Content-Type': ['application/json; charset=utf-8'] }; })).status).toBe(202);
  });

  it('refuses a compressed body with 415 UNSUPPORTED_CONTENT_ENCODING (it said "not valid UTF-8"), and a plain body labelled compressed too', async () => {
    const plain = loadEvent('api-create-export-contacts.json', { TOKEN: await token(), PASSWORD }).body as string;
    const gzipped = await bodyEvent('m-gz', 'application/json', gzipSync(plain));
    for (const [ev, encoding] of [
      [gzipped, 'gzip'],
      [await bodyEvent('m-gz2', 'application/json'), 'gzip'],
      [await bodyEvent('m-br', 'application/json'), 'identity, br'],
      [await bodyEvent('m-GZ', 'application/json'), 'GZIP'],
    ] as const) {
      ev.headers['Content-Encoding'] = encoding;
      const res = await call(ev);
      expect(res.status, encoding).toBe(415);
      expect(res.body.error, encoding).toMatchObject({ code: 'UNSUPPORTED_CONTENT_ENCODING', field: 'Content-Encoding', rule: 'identity' });
      expect(res.headers['Accept-Encoding']).toBe('identity');
      expect(JSON.stringify(res.body)).not.toContain(PASSWORD);
    }
    expect(fakes.store.jobs.size).toBe(0);
    // identity (in any case, or empty) leaves the body as sent: accepted.
    for (const [managerId, encoding] of [['m-id1', 'identity'], ['m-id2', 'Identity'], ['m-id3', '']] as const) {
      const ev = await bodyEvent(managerId, 'application/json');
      ev.headers['Content-Encoding'] = encoding;
      expect((await call(ev)).status, encoding).toBe(202);
    }
  });

  it('answers a body over the limit with 413 BODY_TOO_LARGE, as API Gateway and the web ACL do (it was 400 here)', async () => {
    const ev = await bodyEvent('m-big', 'application/json');
    ev.body = JSON.stringify({ kind: 'contacts', scope: 'all', reason: 'x'.repeat(MAX_REQUEST_BODY_BYTES), password: PASSWORD });
    const res = await call(ev);
    expect(res.status).toBe(413);
    expect(res.body.error).toMatchObject({ code: 'BODY_TOO_LARGE', field: 'body', rule: 'max-bytes' });
  });

  it('takes a large body only where the JSON model checks it (creating an export): a revoke over 1,000,000 bytes is 413, a create of that size is not', async () => {
    // A revoke's body reaches the Lambda unchecked (no model), so the web ACL and the local stack
    // give it the small limit; the handler says the same for a body that got past them.
    const revoke = loadEvent('api-revoke-export.json', { TOKEN: await token({ managerId: 'm-big-revoke' }), EXPORT_ID: '0123456789abcdef' });
    revoke.body = JSON.stringify({ reason: 'x'.repeat(MAX_OTHER_BODY_BYTES) });
    const refused = await call(revoke);
    expect(refused.status).toBe(413);
    expect(refused.body.error).toMatchObject({ code: 'BODY_TOO_LARGE', field: 'body', rule: 'max-bytes', message: `the request body must be at most ${MAX_OTHER_BODY_BYTES} bytes` });
    const create = await bodyEvent('m-big-create', 'application/json');
    create.body = JSON.stringify({ kind: 'contacts', scope: 'all', reason: 'x'.repeat(MAX_OTHER_BODY_BYTES), password: PASSWORD });
    const taken = await call(create);
    // Read and judged (the reason is too long), not refused for its size.
    expect(taken.status).toBe(400);
    expect(taken.body.error.code).not.toBe('BODY_TOO_LARGE');
  });

  /** A contacts request with this Content-Type; with `body`, sent as raw bytes (base64). */
  const bodyEvent = async (managerId: string, contentType: string, body?: Buffer) => {
    const ev = loadEvent('api-create-export-contacts.json', { TOKEN: await token({ managerId }), PASSWORD });
    ev.headers['Content-Type'] = contentType;
    if (body) {
      // As the local stack (and API Gateway for a binary media type) hands over raw bytes.
      ev.body = body.toString('base64');
      ev.isBase64Encoded = true;
    }
    return ev;
  };
  /** The sample contacts body with this reason. */
  const bodyWithReason = (reason: string) =>
    (loadEvent('api-create-export-contacts.json', { TOKEN: 't', PASSWORD }).body as string).replace('Quarterly CRM sync for the marketing team', reason);

  it('refuses a charset other than UTF-8 with 415 UNSUPPORTED_CONTENT_TYPE, without echoing it', async () => {
    // A charset other than UTF-8, however it is written; the value is not echoed.
    for (const contentType of ['application/json; charset=iso-8859-1', 'application/json;charset="ISO-8859-1"', 'application/json; CHARSET=windows-1252', 'application/json; charset=utf-16']) {
      const res = await call(await bodyEvent('m-cs', contentType, Buffer.from(bodyWithReason('café sync'), 'latin1')));
      expect(res.status, contentType).toBe(415);
      expect(res.body.error, contentType).toMatchObject({ code: 'UNSUPPORTED_CONTENT_TYPE', field: 'Content-Type', rule: 'charset' });
      expect(res.body.error.message).toMatch(/UTF-8 JSON/);
      expect(res.body.error.message).not.toMatch(/iso|1252|16/i);
    }
    expect(fakes.store.jobs.size).toBe(0);
  });

  it('takes a body exactly when the size limits call it JSON (one predicate): application/json, any case, with parameters; no +json type, which the AWS model does not check', async () => {
    // application/vnd.api+json was parsed here but capped as a non-JSON body (1,000,000 bytes) by
    // the local stack and the web ACL: one request, 202 or 413 by its size alone.
    const types = [
      'application/json',
      'APPLICATION/JSON',
      'application/json; charset=utf-8',
      'application/json;charset="UTF8"',
      'application/vnd.api+json',
      'application/merge-patch+json',
      'application/jsonx',
      'text/json',
      'text/plain; x=application/json',
    ];
    for (const [i, type] of types.entries()) {
      const res = await call(await bodyEvent(`m-type-${i}`, type));
      const json = bodyLimitFor('POST', '/v1/exports', type) === MAX_REQUEST_BODY_BYTES;
      expect(json, type).toBe(isJsonMediaType(type));
      expect(res.status, type).toBe(json ? 202 : 415);
      if (!json) expect(res.body.error, type).toMatchObject({ code: 'UNSUPPORTED_CONTENT_TYPE', field: 'Content-Type', rule: 'media-type' });
    }
  });

  it('refuses request bytes that are not UTF-8 with 400 MALFORMED_JSON instead of storing U+FFFD; UTF-8 is stored as sent', async () => {
    // Latin-1 `é` (0xE9), and a lone continuation byte (0x80), inside the reason: not UTF-8.
    const lone = Buffer.from(bodyWithReason('sync X'), 'utf8');
    lone[lone.indexOf('sync X') + 5] = 0x80;
    for (const bytes of [Buffer.from(bodyWithReason('café sync'), 'latin1'), lone]) {
      const res = await call(await bodyEvent('m-bytes', 'application/json', bytes));
      expect(res.status).toBe(400);
      expect(res.body.error).toMatchObject({ code: 'MALFORMED_JSON', message: expect.stringMatching(/not valid UTF-8/) });
      expect(JSON.stringify(res.body)).not.toContain(PASSWORD);
    }
    expect(fakes.store.jobs.size).toBe(0);
    expect(fakes.audit.events).toEqual([]);
    // A leading byte order mark stays malformed JSON, as before (RFC 8259: senders must not add one).
    const bom = await call(await bodyEvent('m-bom', 'application/json', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(bodyWithReason('sync'))])));
    expect(bom.body.error?.code).toBe('MALFORMED_JSON');
    expect(bom.body.error?.message).toContain('byte order mark');
    // UTF-8, labelled or not, quoted or not, as bytes or as a string: accepted, stored as sent.
    for (const [managerId, contentType, asBytes] of [
      ['m-u1', 'application/json; charset=UTF-8', true],
      ['m-u2', 'application/json;charset="utf-8"', false],
      ['m-u3', 'application/json', true],
    ] as const) {
      const ev = await bodyEvent(managerId, contentType, asBytes ? Buffer.from(bodyWithReason('café sync'), 'utf8') : undefined);
      if (!asBytes) ev.body = bodyWithReason('café sync');
      const res = await call(ev);
      expect(res.status, managerId).toBe(202);
      expect(fakes.store.jobs.get(res.body.exportId as string)?.reason).toBe('café sync');
    }
  });

  it('answers an unknown route with a 404 that does not repeat the path (it may hold a download token)', async () => {
    for (const path of ['/v1/downloads/SECRET-TOKEN/extra', '/v1/SECRET-TOKEN']) {
      const ev = loadEvent('api-list-exports.json', { TOKEN: await token() });
      ev.path = path;
      const res = await call(ev);
      expect(res.status).toBe(404);
      expect(res.body.error).toMatchObject({ code: 'ROUTE_NOT_FOUND', message: expect.stringContaining('GET') });
      expect(JSON.stringify(res.body)).not.toContain('SECRET');
      expect(logs.join('\n')).not.toContain('SECRET');
    }
  });

  it('refuses a lone surrogate (JSON \\ud800) in any field with a 400 naming the path, never echoing the value', async () => {
    const base = JSON.parse(loadEvent('api-create-export-contacts.json', { TOKEN: await token(), PASSWORD }).body as string) as Record<string, unknown>;
    for (const [patch, field] of [
      [{ reason: 'REASON' }, 'reason'],
      [{ password: 'PASSWORD' }, 'password'],
      [{ scope: 'selection', userIds: ['u1', 'REASON'] }, 'userIds[1]'],
    ] as const) {
      const event = loadEvent('api-create-export-contacts.json', { TOKEN: await token({ managerId: `m-sur-${field}` }), PASSWORD });
      // Written as the JSON escape, as a client would send it: JSON.stringify would not produce one.
      event.body = JSON.stringify({ ...base, ...patch }).replace('"REASON"', '"sync \\ud800 now"').replace('"PASSWORD"', '"Secret\\udc00pw1!"');
      const res = await call(event);
      expect(res.status, field).toBe(400);
      expect(res.body.error).toMatchObject({ code: 'VALIDATION_FAILED', field, rule: 'unicode' });
      expect(res.body.error.message).toContain('lone surrogate');
      expect(JSON.stringify(res.body)).not.toContain('Secret');
    }
    // A proper pair, escaped, is text like any other.
    const pair = loadEvent('api-create-export-contacts.json', { TOKEN: await token({ managerId: 'm-sur-pair' }), PASSWORD });
    pair.body = JSON.stringify({ ...base, reason: 'REASON' }).replace('"REASON"', '"sync \\ud83d\\udcca"');
    expect((await call(pair)).status).toBe(202);
  });

  it('refuses a key given twice in any object (JSON.parse kept the last silently), naming its path, never a value', async () => {
    const base = JSON.parse(loadEvent('api-create-export-contacts.json', { TOKEN: await token(), PASSWORD }).body as string) as Record<string, unknown>;
    const text = JSON.stringify(base);
    for (const [body, field] of [
      // `kind` twice: the last one used to win, so this exported cases.
      [text.replace('{', '{"kind":"cases",'), 'kind'],
      // A short password hidden behind a valid one.
      [text.replace('{', '{"password":"x",'), 'password'],
      [
        JSON.stringify({ ...base, scope: 'filter', filter: { join: 'and', groups: [{ join: 'and', conditions: [{ field: 'member', op: 'eq', value: true }] }] } }).replace(
          '"value":true',
          '"value":true,"value":false',
        ),
        'filter.groups[0].conditions[0].value',
      ],
    ] as const) {
      const event = loadEvent('api-create-export-contacts.json', { TOKEN: await token({ managerId: `m-dup-${field}` }), PASSWORD });
      event.body = body;
      const res = await call(event);
      expect(res.status, field).toBe(400);
      expect(res.body.error).toMatchObject({ code: 'VALIDATION_FAILED', field, rule: 'duplicate-key' });
      expect(JSON.stringify(res.body)).not.toContain(PASSWORD);
    }
    // A key of 1,000,000 characters given twice: the error names it cut short, in every place it
    // appears (echoed whole in message, field and issues, such keys made a response over Lambda's 6 MB).
    const longKey = 'k'.repeat(1_000_000);
    const huge = loadEvent('api-create-export-contacts.json', { TOKEN: await token({ managerId: 'm-dup-long' }), PASSWORD });
    huge.body = text.replace('{', `{"${longKey}":1,"${longKey}":2,`);
    const hugeRes = await call(huge);
    expect(hugeRes.status).toBe(400);
    // A key that long is described, never repeated (it could be a token pasted in the wrong place).
    expect(hugeRes.body.error).toMatchObject({ code: 'VALIDATION_FAILED', rule: 'duplicate-key', field: '(a key of 1000000 characters, not repeated)' });
    expect(JSON.stringify(hugeRes.body).length).toBeLessThan(10_000);
    // The same key in two objects is no repeat.
    const twoObjects = loadEvent('api-create-export-contacts.json', { TOKEN: await token({ managerId: 'm-dup-ok' }), PASSWORD });
    twoObjects.body = JSON.stringify({
      ...base,
      scope: 'filter',
      filter: { join: 'and', groups: [{ join: 'and', conditions: [{ field: 'member', op: 'eq', value: true }, { field: 'member', op: 'eq', value: true }] }] },
    });
    expect((await call(twoObjects)).status).toBe(202);
  });

  it('refuses a body nested deeper than any request at once: a lone surrogate 60,000 levels down took 43 s to report, blocking every other request', async () => {
    const base = JSON.parse(loadEvent('api-create-export-contacts.json', { TOKEN: await token(), PASSWORD }).body as string) as Record<string, unknown>;
    const depth = 60_000;
    const event = loadEvent('api-create-export-contacts.json', { TOKEN: await token({ managerId: 'm-deep' }), PASSWORD });
    event.body = JSON.stringify(base).replace('{', `{"x":${'['.repeat(depth)}"\\ud800"${']'.repeat(depth)},`);
    const res = await call(event);
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 'VALIDATION_FAILED', rule: 'max-depth' });
    // The path goes as deep as the limit, not as deep as the body.
    expect(res.body.error.field).toBe(`x${'[0]'.repeat(MAX_BODY_DEPTH - 1)}`);
    expect(JSON.stringify(res.body).length).toBeLessThan(2_000);
    // At the limit a body is read (and here refused for its unknown field, not its depth).
    const atLimit = loadEvent('api-create-export-contacts.json', { TOKEN: await token({ managerId: 'm-deep-ok' }), PASSWORD });
    atLimit.body = JSON.stringify(base).replace('{', `{"x":${'['.repeat(MAX_BODY_DEPTH - 1)}1${']'.repeat(MAX_BODY_DEPTH - 1)},`);
    const ok = await call(atLimit);
    expect(ok.status).toBe(400);
    expect(ok.body.error.rule).not.toBe('max-depth');
  });

  it('looks at the depth before JSON.parse: a 3 MB body of open brackets is refused for its depth, not parsed first (~0.8 s of the event loop)', async () => {
    // Never closed, so JSON.parse would refuse it only after reading all of it; a depth scan that
    // ran after the parse would answer MALFORMED_JSON.
    const event = loadEvent('api-create-export-contacts.json', { TOKEN: await token({ managerId: 'm-open' }), PASSWORD });
    event.body = `{"kind":"contacts","x":${'['.repeat(1_400_000)}`;
    const res = await call(event);
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 'VALIDATION_FAILED', field: `x${'[0]'.repeat(MAX_BODY_DEPTH - 1)}`, rule: 'max-depth' });
    // Shallow malformed text is still malformed JSON.
    event.body = '{"kind":"contacts", "reason": "open string';
    expect((await call(event)).body.error).toMatchObject({ code: 'MALFORMED_JSON', rule: 'json' });
  });

  it('names a rule on every issue of a refused body, and each field once (timezone "" had three overlapping messages)', async () => {
    const send = async (managerId: string, body: Record<string, unknown>) => {
      const ev = loadEvent('api-create-export-contacts.json', { TOKEN: await token({ managerId }), PASSWORD });
      ev.body = JSON.stringify(body);
      return (await call(ev)).body.error as { code: string; field: string; rule: string; issues: { path: string; message: string; rule: string }[] };
    };
    const cases = { kind: 'cases', from: '2026-01-01', to: '2026-01-31', reason: 'monthly report', password: 'Abcd1234' };
    const expectations: [Record<string, unknown>, string, string, string][] = [
      [{ ...cases, timezone: '' }, 'timezone', 'min-length', 'must be an IANA time zone name, e.g. Asia/Seoul'],
      [{ ...cases, timezone: ' ' }, 'timezone', 'pattern', 'must be an IANA time zone name, e.g. Asia/Seoul'],
      [{ ...cases, timezone: 'Mars/Base' }, 'timezone', 'known-zone', 'must be a known IANA time zone, e.g. Asia/Seoul'],
      [{ ...cases, timezone: 'x'.repeat(65) }, 'timezone', 'max-length', 'must be at most 64 characters (IANA time zone names are shorter)'],
      [{ ...cases, timezone: 5 }, 'timezone', 'type', 'must be text (a JSON string)'],
      [{ ...cases, from: '2026-02-30' }, 'from', 'format', 'must be a calendar date (YYYY-MM-DD)'],
      [{ ...cases, kind: 'tickets' }, 'kind', 'one-of', 'must be one of "cases", "contacts"'],
      [{ from: '2026-01-01' }, 'kind', 'required', 'is required: one of "cases", "contacts"'],
      [{ kind: 'contacts', reason: 'r', password: 'Abcdef12' }, 'scope', 'required', 'is required: one of "all", "filter", "segment", "selection", "user"'],
      [{ kind: 'cases', from: '2026-01-01', to: '2026-01-31', reason: 'monthly report' }, 'password', 'required', 'is required'],
      [{ kind: 'cases', from: '2026-01-01', to: '2026-01-31', reason: 'monthly report', password: 'Abcd1234', filter: { join: 'xor', groups: [] } }, 'filter.join', 'one-of', 'must be one of "and", "or"'],
      [{ ...cases, reason: ' ' }, 'reason', 'pattern', 'reason must not be blank'],
      [{ kind: 'contacts', scope: 'segment', segmentId: [], reason: 'r', password: 'Abcdef12' }, 'segmentId', 'type', 'must be text (a JSON string)'],
      [{ kind: 'contacts', scope: 'segment', segmentId: 's'.repeat(129), reason: 'r', password: 'Abcdef12' }, 'segmentId', 'max-length', 'must be at most 128 characters'],
      [{ kind: 'contacts', scope: 'selection', userIds: '', reason: 'r', password: 'Abcdef12' }, 'userIds', 'type', 'must be an array'],
      [{ kind: 'contacts', scope: 'selection', userIds: [], reason: 'r', password: 'Abcdef12' }, 'userIds', 'min-items', 'must not be empty'],
      [{ kind: 'contacts', scope: 'user', userId: '', reason: 'r', password: 'Abcdef12' }, 'userId', 'min-length', 'must not be empty'],
      // A bearer token (the shortest realistic JWT: 108 characters) pasted as a key is described.
      [{ kind: 'contacts', scope: 'all', reason: 'r', password: 'Abcdef12', [`eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.${'s'.repeat(43)}`]: 1 }, '(a key of 108 characters, not repeated)', 'unknown-field', 'is not an allowed field'],
      // A profile key's full length (64) under `profile.` is a name of ours: shown.
      [{ kind: 'contacts', scope: 'all', reason: 'r', password: 'Abcdef12', [`profile.${'k'.repeat(64)}`]: 1 }, `profile.${'k'.repeat(64)}`, 'unknown-field', 'is not an allowed field'],
      // A filter bound left out is required, not a value of the wrong kind (it read "must be a number, or a date…").
      [{ kind: 'contacts', scope: 'filter', filter: { join: 'and', groups: [{ join: 'and', conditions: [{ field: 'lastSeenAt', op: 'gt' }] }] }, reason: 'r', password: 'Abcdef12' }, 'filter.groups[0].conditions[0].value', 'required', 'is required'],
      [{ kind: 'contacts', scope: 'filter', filter: { join: 'and', groups: [{ join: 'and', conditions: [{ field: 'sessionCount', op: 'between', from: 1 }] }] }, reason: 'r', password: 'Abcdef12' }, 'filter.groups[0].conditions[0].to', 'required', 'is required'],
      [{ kind: 'contacts', scope: 'filter', filter: { join: 'and', groups: [{ join: 'and', conditions: [{ field: 'sessionCount', op: 'gt', value: true }] }] }, reason: 'r', password: 'Abcdef12' }, 'filter.groups[0].conditions[0].value', 'one-of', 'must be a number, or a date or date-time as text (1-64 characters)'],
      // An empty key is shown as "".
      [{ kind: 'contacts', scope: 'all', reason: 'r', password: 'Abcdef12', '': 1 }, '""', 'unknown-field', 'is not an allowed field'],
      [{ kind: 'contacts', scope: 'user', userId: 'a\u0001', reason: 'r', password: 'Abcdef12' }, 'userId', 'no-control-characters', 'must not contain control characters, U+FFFE or U+FFFF'],
    ];
    for (const [i, [body, field, rule, message]] of expectations.entries()) {
      const error = await send(`m-rule-${i}`, body);
      expect(error, JSON.stringify(body).slice(0, 120)).toMatchObject({ code: 'VALIDATION_FAILED', field, rule });
      expect(error.issues, JSON.stringify(body).slice(0, 120)).toEqual([{ path: field, message, rule }]);
    }
    // Issues at different paths are all listed, each with its own rule.
    const two = await send('m-rule-two', { kind: 'contacts', scope: 'filter', query: 'q'.repeat(201), reason: 'r', password: 'Abcdef12' });
    expect(two.issues.map((i) => [i.path, i.rule])).toEqual([
      ['filter', 'required'],
      ['query', 'max-length'],
    ]);
    // A password's length and characters are one code each with its product rule, the empty one
    // too (a 300-character one was VALIDATION_FAILED where a 65-character one was PASSWORD_TOO_LONG).
    for (const [i, [password, code]] of ([['', 'PASSWORD_REQUIRED'], ['p1', 'PASSWORD_TOO_SHORT'], ['p'.repeat(65), 'PASSWORD_TOO_LONG'], ['p'.repeat(300), 'PASSWORD_TOO_LONG']] as const).entries()) {
      expect(await send(`m-pw-${i}`, { ...cases, password }), String(password.length)).toMatchObject({ code, field: 'password', rule: 'S4' });
    }
    expect(fakes.store.jobs.size).toBe(0);
  });

  it('an Authorization header sent twice is 401, whichever letter case and however API Gateway maps it (the last one used to authenticate)', async () => {
    const good = await token({ managerId: 'm-twice' });
    // Names differing in case arrive as two keys (the local stack; middy's normalizer let the last win).
    const cased = loadEvent('api-list-exports.json', { TOKEN: good });
    delete cased.headers.Authorization;
    delete cased.multiValueHeaders?.Authorization;
    cased.headers = { ...cased.headers, authorization: 'Bearer garbage', Authorization: `Bearer ${good}` };
    const a = await call(cased);
    expect(a.status).toBe(401);
    expect(a.headers?.['WWW-Authenticate']).toContain('error="invalid_token"');
    // The same name twice on AWS: `headers` keeps only the last line, `multiValueHeaders` both.
    const twice = loadEvent('api-list-exports.json', { TOKEN: good });
    twice.multiValueHeaders = { ...twice.multiValueHeaders, Authorization: ['Bearer garbage', `Bearer ${good}`] };
    twice.headers = { ...twice.headers, Authorization: `Bearer ${good}` };
    expect((await call(twice)).status).toBe(401);
    // An event with `headers` alone (a tool, a test) holding two casings, the authorizer having answered.
    const headersOnly = loadEvent('api-list-exports.json', { TOKEN: good });
    delete (headersOnly as { multiValueHeaders?: unknown }).multiValueHeaders;
    headersOnly.headers = { ...headersOnly.headers, authorization: 'Bearer garbage' };
    (headersOnly.requestContext as { authorizer: unknown }).authorizer = {
      channelId: 'ch-1', managerId: 'm-twice', name: 'Kim', permissions: JSON.stringify(['export:download']),
      expiresAt: String(Math.floor(fakes.clock.now().getTime() / 1000) + 600), principalId: 'm-twice',
    };
    expect((await call(headersOnly)).status).toBe(401);
    // Also when the authorizer already answered for one of them (it is handed a single line).
    (twice.requestContext as { authorizer: unknown }).authorizer = {
      channelId: 'ch-1', managerId: 'm-twice', name: 'Kim', permissions: JSON.stringify(['export:download']),
      expiresAt: String(Math.floor(fakes.clock.now().getTime() / 1000) + 600), principalId: 'm-twice',
    };
    expect((await call(twice)).status).toBe(401);
    // Once, in any case, it authenticates.
    const once = loadEvent('api-list-exports.json', { TOKEN: good });
    once.multiValueHeaders = { ...once.multiValueHeaders, Authorization: [`Bearer ${good}`] };
    expect((await call(once)).status).toBe(200);
  });

  it('a caller without export:download gets 403 for POST /v1/exports before its body is read (a malformed body too)', async () => {
    const event = loadEvent('api-create-export-contacts.json', { TOKEN: await token({ managerId: 'm-auditor', permissions: ['audit:read'] }), PASSWORD });
    event.body = '{bad';
    const res = await call(event);
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('PERMISSION_DENIED');
  });

  it('maps an unknown failure to 500 with a request id only, and gives the cooldown back', async () => {
    fakes.store.failCreate = true;
    const res = await create('api-create-export-cases.json');
    expect(res.status).toBe(500);
    expect(res.body.error).toEqual({ code: 'INTERNAL', message: expect.stringMatching(/request id/), requestId: 'req-create-cases' });
    expect(JSON.stringify(res.body)).not.toContain('simulated');
    fakes.store.failCreate = false;
    expect((await create('api-create-export-cases.json')).status).toBe(202);
  });

  it('refuses a filter too large to store (400 FILTER_TOO_LARGE naming the field), before taking the cooldown', async () => {
    const ev = loadEvent('api-create-export-contacts.json', { TOKEN: await token(), PASSWORD });
    const emails = Array.from({ length: 30_000 }, (_u, i) => `customer-${i}@example.com`);
    ev.body = JSON.stringify({
      kind: 'contacts', scope: 'filter', reason: 'CRM sync', password: PASSWORD,
      filter: { join: 'and', groups: [{ join: 'and', conditions: [{ field: 'email', op: 'in', values: emails }] }] },
    });
    const res = await call(ev);
    expect(res.status).toBe(400);
    // With its rule, as every refusal names one (it had none).
    expect(res.body.error).toMatchObject({ code: 'FILTER_TOO_LARGE', field: 'filter', rule: 'max-bytes' });
    expect(res.body.error.message).toMatch(/selection/);
    expect(fakes.store.jobs.size).toBe(0);
    expect(fakes.audit.events).toEqual([]);
    expect((await create()).status).toBe(202);
  });

  it('refuses filter texts and ids holding bidi overrides or invisible format characters as it refuses such a query (display-control), before the audit trail shows them', async () => {
    const send = async (patch: Record<string, unknown>) => {
      const ev = loadEvent('api-create-export-contacts.json', { TOKEN: await token(), PASSWORD });
      delete ev.headers['Idempotency-Key'];
      delete ev.multiValueHeaders['Idempotency-Key'];
      ev.body = JSON.stringify({ kind: 'contacts', reason: 'CRM sync', password: PASSWORD, ...patch });
      return call(ev);
    };
    const inFilter = (condition: Record<string, unknown>) => ({ scope: 'filter', filter: { join: 'and', groups: [{ join: 'and', conditions: [condition] }] } });
    for (const [patch, field] of [
      [{ scope: 'all', query: 'kim\u202e' }, 'query'],
      [inFilter({ field: 'name', op: 'eq', value: 'legit \u202eevil' }), 'filter.groups[0].conditions[0].value'],
      [inFilter({ field: 'email', op: 'in', values: ['a@x.com', 'b\u2066@x.com'] }), 'filter.groups[0].conditions[0].values[1]'],
      [inFilter({ field: 'name', op: 'contains', value: 'k\u{E0041}' }), 'filter.groups[0].conditions[0].value'],
      [{ scope: 'segment', segmentId: 'seg-\u202evip' }, 'segmentId'],
      [{ scope: 'user', userId: 'u\u2067' }, 'userId'],
      [{ scope: 'selection', userIds: ['u1', 'u\u202b2'] }, 'userIds[1]'],
    ] as const) {
      const res = await send(patch);
      expect(res.status, field).toBe(400);
      expect(res.body.error, field).toMatchObject({ code: 'VALIDATION_FAILED', field, rule: 'display-control' });
      expect(res.body.error.message, field).toContain('bidi overrides');
    }
    expect(fakes.store.jobs.size).toBe(0);
    expect(fakes.audit.events).toEqual([]);
  });

  it('refuses a reason hiding an invisible format character (display-control), naming the field and the character; a query or a filter text, matched against customer data, may hold one; the kept ones pass', async () => {
    const send = async (patch: Record<string, unknown>) => {
      const ev = loadEvent('api-create-export-contacts.json', { TOKEN: await token(), PASSWORD });
      delete ev.headers['Idempotency-Key'];
      delete ev.multiValueHeaders['Idempotency-Key'];
      ev.body = JSON.stringify({ kind: 'contacts', scope: 'all', reason: 'CRM sync', password: PASSWORD, ...patch });
      return call(ev);
    };
    for (const [ch, code] of [['\u200b', 'U+200B'], ['\ufeff', 'U+FEFF'], ['\u00ad', 'U+00AD'], ['\u180e', 'U+180E'], ['\u034f', 'U+034F']] as const) {
      const res = await send({ reason: `re${ch}fund` });
      expect(res.status, JSON.stringify(ch)).toBe(400);
      expect(res.body.error, JSON.stringify(ch)).toMatchObject({ code: 'VALIDATION_FAILED', field: 'reason', rule: 'display-control' });
      // Invisible, so the message says which character and where.
      expect(res.body.error.message, JSON.stringify(ch)).toContain(`(${code} at character 3)`);
    }
    expect(fakes.store.jobs.size).toBe(0);
    expect(fakes.audit.events).toEqual([]);
    // Customer names pasted from the web hold soft hyphens and zero-width spaces: a search or a
    // filter must be able to name them to match those rows exactly.
    for (const ch of ['\u200b', '\ufeff', '\u00ad']) {
      fakes.clock.advance(3_600_000); // past the export cooldown
      expect((await send({ query: `k${ch}im` })).status, `query ${JSON.stringify(ch)}`).toBe(202);
      fakes.clock.advance(3_600_000);
      const filter = { join: 'and', groups: [{ join: 'and', conditions: [{ field: 'name', op: 'contains', value: `k${ch}im` }] }] };
      expect((await send({ scope: 'filter', filter })).status, `filter ${JSON.stringify(ch)}`).toBe(202);
    }
    // What hides text or reorders it is still refused there, at its exact path.
    for (const [patch, field] of [
      [{ query: 'k\u2060im' }, 'query'],
      [{ scope: 'filter', filter: { join: 'and', groups: [{ join: 'and', conditions: [{ field: 'name', op: 'contains', value: 'k\u202eim' }] }] } }, 'filter.groups[0].conditions[0].value'],
    ] as const) {
      const res = await send(patch);
      expect(res.status, field).toBe(400);
      expect(res.body.error, field).toMatchObject({ code: 'VALIDATION_FAILED', field, rule: 'display-control' });
    }
    const scotland = '\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}';
    const kept = ['👨\u200d👩\u200d👧 family plan', `${scotland} office sync`, 'می\u200cخواهم', '월간 CRM 동기화', 'تقرير شهري \u200f(2)'];
    const before = fakes.audit.events.length;
    for (const reason of kept) {
      fakes.clock.advance(3_600_000); // past the export cooldown
      const res = await send({ reason });
      expect(res.status, reason).toBe(202);
    }
    expect(fakes.audit.events.slice(before).map((e) => (e as { reason?: string }).reason)).toEqual(kept);
  });

  it('cleans, never refuses, what a caller did not type: an invisible format character in a User-Agent or a display name is removed', async () => {
    const ev = loadEvent('api-create-export-contacts.json', { TOKEN: await token(), PASSWORD });
    const exportId = (await call(ev)).body.exportId as string;
    completeJob(exportId);
    const download = loadEvent('api-download.json', { DOWNLOAD_TOKEN: `tok-${exportId}-0123456789` });
    download.headers['User-Agent'] = 'Mozilla\u200b/5.0\u00ad (X11)';
    expect((await call(download)).status).toBe(302);
    const seen = fakes.audit.events.find((e) => e.type === 'downloaded' && e.exportId === exportId) as { userAgent?: string } | undefined;
    expect(seen?.userAgent).toBe('Mozilla/5.0 (X11)');
  });

  it('a dispatch that sent its first chunks and then failed leaves a failed job, not a running one missing chunks', async () => {
    fakes.dispatcher.failAfterFirstChunks = true;
    const res = await create('api-create-export-cases.json');
    expect(res.status).toBe(500);
    const [job] = [...fakes.store.jobs.values()];
    expect(job).toMatchObject({ status: 'failed', error: { code: 'DISPATCH_FAILED' } });
    expect(fakes.audit.events.map((e) => e.type)).toEqual(['requested', 'failed']);
    fakes.dispatcher.failAfterFirstChunks = false;
    expect((await create('api-create-export-cases.json')).status).toBe(202);
  });

  it('records that a request which never became an export failed, and gives its cooldown back', async () => {
    fakes.store.failCreate = true;
    expect((await create('api-create-export-cases.json')).status).toBe(500);
    expect(fakes.audit.events.map((e) => e.type)).toEqual(['requested', 'failed']);
    fakes.store.failCreate = false;
    expect((await create('api-create-export-cases.json')).status).toBe(202);
  });

  it('with an Idempotency-Key, a request that failed before its job existed is left for the retry: no final "failed" in the trail', async () => {
    fakes.store.failCreate = true;
    expect((await create()).status).toBe(500);
    fakes.store.failCreate = false;
    const retry = await create();
    expect(retry.status).toBe(202);
    expect(fakes.audit.events.map((e) => `${e.type}:${e.exportId}`)).toEqual([`requested:${retry.body.exportId as string}`]);
  });

  it('two attempts with one Idempotency-Key: the one that fails first keeps the hold for the other, whose export then runs under it (C8)', async () => {
    // A slow first attempt and the client's retry run side by side as the same export: the
    // first one's failure must not give back the hold the retry's export goes on to run under.
    const principal = { channelId: 'ch-1', managerId: 'm-1', name: 'Kim', permissions: ['export:download'] };
    const body = { kind: 'cases', from: '2026-01-01', to: '2026-01-31', timezone: 'Asia/Seoul', reason: 'monthly report', password: PASSWORD };
    let release!: () => void;
    const firstMayFail = new Promise<void>((resolve) => (release = resolve));
    let retryWrapping!: () => void;
    const retryIsWrapping = new Promise<void>((resolve) => (retryWrapping = resolve));
    let finishRetry!: () => void;
    const retryMayFinish = new Promise<void>((resolve) => (finishRetry = resolve));
    const realWrap = fakes.deps.keyWrapper.wrap.bind(fakes.deps.keyWrapper);
    let calls = 0;
    fakes.deps.keyWrapper = {
      ...fakes.deps.keyWrapper,
      async wrap(key, context) {
        if (++calls === 1) {
          await firstMayFail;
          throw new Error('ThrottlingException');
        }
        retryWrapping();
        await retryMayFinish;
        return realWrap(key, context);
      },
    };
    const first = requestExport(fakes.deps, principal, body, 'retry-key-0001').then(
      () => 'ok',
      (error: Error) => error.message,
    );
    // The retry comes once the first attempt holds the key (its record follows an async PBKDF2,
    // so started together, either could save first).
    while (fakes.store.idem.size === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    const retry = requestExport(fakes.deps, principal, body, 'retry-key-0001');
    await retryIsWrapping;
    release();
    expect(await first).toBe('ThrottlingException');
    finishRetry();
    const { job } = await retry;
    expect(job.status).toBe('queued');
    expect([...fakes.cooldowns.items.values()].map((h) => h.holder)).toEqual([job.exportId]);
    // So a third request inside the window is refused, as the export runs.
    await expect(requestExport(fakes.deps, principal, { ...body, reason: 'again' }, undefined)).rejects.toMatchObject({ code: 'COOLDOWN_ACTIVE' });
  });

  it('logs only the name, message, code and stack of an unexpected error, not the properties an SDK error carries', async () => {
    const original = fakes.store.createJob.bind(fakes.store);
    fakes.store.createJob = async () => {
      throw Object.assign(new Error('ValidationException: item too large'), { code: 'ValidationException', input: { Item: { note: 'carried-by-the-error' } } });
    };
    const res = await create('api-create-export-cases.json');
    expect(res.status).toBe(500);
    const failed = logs.find((l) => l.includes('request failed')) ?? '';
    expect(failed).toContain('ValidationException');
    expect(failed).not.toContain('carried-by-the-error');
    fakes.store.createJob = original;
  });

  it("logs an AWS service error by its name, code and status, not its message, which can name the refused object's key", async () => {
    const original = fakes.store.createJob.bind(fakes.store);
    fakes.store.createJob = async () => {
      throw Object.assign(new Error('User: arn:aws:sts::1:assumed-role/api is not authorized to perform: s3:GetObject on resource: arn:aws:s3:::bucket/exports/ch-1/e1/r1/UserChatCase_2025.xlsx'), {
        name: 'AccessDenied',
        Code: 'AccessDenied',
        $metadata: { httpStatusCode: 403 },
      });
    };
    const res = await create('api-create-export-cases.json');
    expect(res.status).toBe(500);
    const failed = logs.find((l) => l.includes('request failed')) ?? '';
    expect(failed).toContain('AccessDenied');
    expect(failed).toContain('403');
    expect(failed).not.toContain('UserChatCase_2025');
    expect(failed).not.toContain('exports/ch-1');
    fakes.store.createJob = original;
  });

  it('fails the job and frees the cooldown when the chunks cannot be enqueued', async () => {
    fakes.dispatcher.failDispatch = true;
    const res = await create('api-create-export-cases.json');
    expect(res.status).toBe(500);
    const [job] = [...fakes.store.jobs.values()];
    expect(job?.status).toBe('failed');
    expect(fakes.audit.events.map((e) => e.type)).toEqual(['requested', 'failed']);
    fakes.dispatcher.failDispatch = false;
    expect((await create('api-create-export-cases.json')).status).toBe(202);
  });
  it('a 429 refusal frees the Idempotency-Key it took: a corrected body may use it once the window has passed', async () => {
    expect((await create('api-create-export-cases.json')).status).toBe(202);
    const keyed = async (to: string) => {
      const ev = loadEvent('api-create-export-cases.json', { TOKEN: await token({}, fakes.clock.now()), PASSWORD });
      ev.headers['Idempotency-Key'] = 'key-K-12345';
      ev.body = JSON.stringify({ ...(JSON.parse(ev.body as string) as Record<string, unknown>), to });
      return call(ev);
    };
    const refused = await keyed('2026-02-28');
    expect(refused.status).toBe(429);
    expect(fakes.store.idem.size).toBe(0);
    fakes.clock.advance(31 * 60_000);
    const corrected = await keyed('2026-02-27');
    expect(corrected.status).toBe(202);
    expect(corrected.headers['Idempotency-Replayed']).toBeUndefined();
  });

  it('a retry with the same Idempotency-Key after a DISPATCH_FAILED 500 starts a new export, not a 202 replay of the dead one', async () => {
    fakes.dispatcher.failDispatch = true;
    expect((await create()).status).toBe(500);
    const [dead] = [...fakes.store.jobs.values()];
    expect(dead).toMatchObject({ status: 'failed', error: { code: 'DISPATCH_FAILED' } });
    fakes.dispatcher.failDispatch = false;
    const retry = await create();
    expect(retry.status).toBe(202);
    expect(retry.body.status).toBe('queued');
    expect(retry.body.exportId).not.toBe(dead?.exportId);
    expect(retry.headers['Idempotency-Replayed']).toBeUndefined();
    // ...and from then on the key replays the live export.
    const replay = await create();
    expect(replay.body.exportId).toBe(retry.body.exportId);
    expect(replay.headers['Idempotency-Replayed']).toBe('true');
  });

  it('a create that committed but whose answer was lost is this request\'s own: no replay header; a dispatch failure after it still fails the job and gives the cooldown back', async () => {
    const createJob = fakes.store.createJob.bind(fakes.store);
    fakes.store.createJob = async (job: ExportJob) => {
      await createJob(job);
      return false; // the SDK's retry of the committed put fails attribute_not_exists(pk)
    };
    const ok = await create('api-create-export-cases.json');
    expect(ok.status).toBe(202);
    expect(ok.headers['Idempotency-Replayed']).toBeUndefined();
    fakes.clock.advance(31 * 60_000);
    fakes.dispatcher.failDispatch = true;
    expect((await call(loadEvent('api-create-export-cases.json', { TOKEN: await token({}, fakes.clock.now()), PASSWORD }))).status).toBe(500);
    fakes.dispatcher.failDispatch = false;
    fakes.store.createJob = createJob;
    const dead = [...fakes.store.jobs.values()].at(-1);
    expect(dead).toMatchObject({ status: 'failed', error: { code: 'DISPATCH_FAILED' } });
    expect(fakes.audit.events.filter((e) => e.exportId === dead?.exportId).map((e) => e.type)).toEqual(['requested', 'failed']);
    // The cooldown was given back: a corrected request goes through at once.
    expect((await call(loadEvent('api-create-export-cases.json', { TOKEN: await token({}, fakes.clock.now()), PASSWORD }))).status).toBe(202);
  });

  it('a DISPATCH_FAILED mark that committed but whose answer was lost is still audited, and frees the key', async () => {
    fakes.dispatcher.failDispatch = true;
    const setStatus = fakes.store.setStatus.bind(fakes.store);
    fakes.store.setStatus = async (...args: Parameters<typeof setStatus>) => {
      await setStatus(...args);
      return false;
    };
    expect((await create()).status).toBe(500);
    fakes.store.setStatus = setStatus;
    fakes.dispatcher.failDispatch = false;
    expect(fakes.audit.events.map((e) => e.type)).toEqual(['requested', 'failed']);
    expect(fakes.store.idem.size).toBe(0);
  });

  it('a job whose DISPATCH_FAILED mark could not be written may still run: its cooldown hold stays (C8)', async () => {
    fakes.dispatcher.failDispatch = true;
    const setStatus = fakes.store.setStatus.bind(fakes.store);
    fakes.store.setStatus = async () => {
      throw new Error('simulated table outage');
    };
    expect((await create('api-create-export-cases.json')).status).toBe(500);
    fakes.store.setStatus = setStatus;
    fakes.dispatcher.failDispatch = false;
    expect([...fakes.store.jobs.values()][0]?.status).toBe('queued');
    expect((await create('api-create-export-cases.json')).status).toBe(429);
  });

  it('a failed start gives the hold back before it frees the key, and a corrected body may then take the key', async () => {
    fakes.dispatcher.failDispatch = true;
    const order: string[] = [];
    const release = fakes.cooldowns.release.bind(fakes.cooldowns);
    fakes.cooldowns.release = async (...args: Parameters<typeof release>) => {
      order.push('hold');
      return release(...args);
    };
    const free = fakes.store.releaseIdempotencyRecord.bind(fakes.store);
    fakes.store.releaseIdempotencyRecord = async (...args: Parameters<typeof free>) => {
      order.push('key');
      return free(...args);
    };
    expect((await create()).status).toBe(500);
    expect(order).toEqual(['hold', 'key']);
    fakes.dispatcher.failDispatch = false;
    const corrected = await call(loadEvent('api-create-export-contacts.json', { TOKEN: await token(), PASSWORD: 'Another1Password' }));
    expect(corrected.status).toBe(202);
  });

  it('the key of an export that failed to start is taken anew even when freeing it failed at the time', async () => {
    fakes.dispatcher.failDispatch = true;
    const release = fakes.store.releaseIdempotencyRecord.bind(fakes.store);
    fakes.store.releaseIdempotencyRecord = async () => {
      throw new Error('simulated table outage');
    };
    expect((await create()).status).toBe(500);
    expect(fakes.store.idem.size).toBe(1);
    fakes.store.releaseIdempotencyRecord = release;
    fakes.dispatcher.failDispatch = false;
    const deadId = [...fakes.store.jobs.keys()][0];
    // A corrected body too: the dead export's key is free for any body, not a 422.
    const retry = await call(loadEvent('api-create-export-contacts.json', { TOKEN: await token(), PASSWORD: 'Another1Password' }));
    expect(retry.status).toBe(202);
    expect(retry.body.exportId).not.toBe(deadId);
    expect(fakes.store.jobs.get(retry.body.exportId as string)?.status).toBe('queued');
  });
});

describe('an export whose dispatch was cut short', () => {
  it('is dispatched by a status read once it has waited past STALLED_DISPATCH_SECONDS, and only once', async () => {
    fakes.dispatcher.crashBeforeDispatch = true;
    const exportId = (await create()).body.exportId as string;
    fakes.dispatcher.crashBeforeDispatch = false;
    expect(fakes.dispatcher.dispatched).toEqual([]);
    const read = async () => call(loadEvent('api-get-export.json', { TOKEN: await token({}, fakes.clock.now()), EXPORT_ID: exportId }));
    // Within the window the request may still be running: a read must not race it.
    fakes.clock.advance(STALLED_DISPATCH_SECONDS * 1000);
    expect((await read()).body.status).toBe('queued');
    expect(fakes.dispatcher.dispatched).toEqual([]);
    fakes.clock.advance(1000);
    expect((await read()).status).toBe(200);
    expect(fakes.dispatcher.dispatched).toEqual([exportId]);
    expect(fakes.store.jobs.get(exportId)?.chunksEnqueued).toBe(true);
    await read();
    expect(fakes.dispatcher.dispatched).toEqual([exportId]);
  });

  it('is dispatched by the list too; a queue outage leaves the read answering 200 and the next read retries', async () => {
    fakes.dispatcher.crashBeforeDispatch = true;
    const exportId = (await create()).body.exportId as string;
    fakes.dispatcher.crashBeforeDispatch = false;
    fakes.clock.advance((STALLED_DISPATCH_SECONDS + 5) * 1000);
    const list = async () => call(loadEvent('api-list-exports.json', { TOKEN: await token({}, fakes.clock.now()) }));
    fakes.dispatcher.failDispatch = true;
    const during = await list();
    expect(during.status).toBe(200);
    expect(during.body.items).toEqual([expect.objectContaining({ exportId, status: 'queued' })]);
    expect(fakes.dispatcher.dispatched).toEqual([]);
    fakes.dispatcher.failDispatch = false;
    expect((await list()).status).toBe(200);
    expect(fakes.dispatcher.dispatched).toEqual([exportId]);
  });

  it('is resumed when its first chunks already started it (running) but the rest were never sent', async () => {
    fakes.dispatcher.crashBeforeDispatch = true;
    const exportId = (await create()).body.exportId as string;
    fakes.dispatcher.crashBeforeDispatch = false;
    // The process died mid-send: one chunk got out and moved the job on; chunksEnqueued is unset.
    Object.assign(fakes.store.jobs.get(exportId) as ExportJob, { status: 'running', chunksDone: 1 });
    fakes.clock.advance((STALLED_DISPATCH_SECONDS + 1) * 1000);
    const res = await call(loadEvent('api-get-export.json', { TOKEN: await token({}, fakes.clock.now()), EXPORT_ID: exportId }));
    expect(res.status).toBe(200);
    expect(fakes.dispatcher.dispatched).toEqual([exportId]);
  });

  it('is left alone once its chunks were sent, however long it waits in the queue', async () => {
    const exportId = (await create()).body.exportId as string;
    fakes.clock.advance(3600_000);
    await call(loadEvent('api-get-export.json', { TOKEN: await token({}, fakes.clock.now()), EXPORT_ID: exportId }));
    expect(fakes.dispatcher.dispatched).toEqual([exportId]);
  });
});

describe('authentication and authorization', () => {
  it('401 without a token, with a bad signature and when expired; 403 without the permission', async () => {
    const noToken = loadEvent('api-list-exports.json', { TOKEN: '' });
    delete noToken.headers.Authorization;
    const r1 = await call(noToken);
    expect(r1.status).toBe(401);
    expect(r1.headers['WWW-Authenticate']).toMatch(/^Bearer .*error="invalid_token"/);
    const forged = await signDevToken({ channelId: 'ch-1', managerId: 'm-1', name: 'Kim', permissions: ['export:download'] }, { secret: 'x'.repeat(40) });
    expect((await call(loadEvent('api-list-exports.json', { TOKEN: forged }))).status).toBe(401);
    const expired = await token({}, new Date('2026-03-01T07:00:00Z'));
    const r3 = await call(loadEvent('api-list-exports.json', { TOKEN: expired }));
    expect(r3.status).toBe(401);
    expect(r3.body.error).toMatchObject({ code: 'UNAUTHENTICATED', field: 'Authorization', rule: 'bearer-token' });
    const noPermission = await call(loadEvent('api-create-export-cases.json', { TOKEN: await token({ permissions: [] }), PASSWORD }));
    expect(noPermission.status).toBe(403);
    expect(noPermission.body.error).toMatchObject({ code: 'PERMISSION_DENIED', rule: 'S5/C10' });
    expect(fakes.store.jobs.size).toBe(0);
  });

  it('hides exports of other channels and other managers (404); auditors of the channel may look', async () => {
    const exportId = (await create()).body.exportId as string;
    const own = await call(loadEvent('api-get-export.json', { TOKEN: await token(), EXPORT_ID: exportId }));
    expect(own.status).toBe(200);
    expect(own.body).toMatchObject({ exportId, status: 'queued', progress: { chunksDone: 0, chunksTotal: 3, percent: 0 } });
    expect(JSON.stringify(own.body)).not.toMatch(/wrappedKey|encryption|objectKey/);
    const otherChannel = await call(loadEvent('api-get-export.json', { TOKEN: await token({ channelId: 'ch-2', permissions: ['export:download', 'audit:read'] }), EXPORT_ID: exportId }));
    expect(otherChannel.status).toBe(404);
    const colleague = await call(loadEvent('api-get-export.json', { TOKEN: await token({ managerId: 'm-2' }), EXPORT_ID: exportId }));
    expect(colleague.status).toBe(404);
    const auditor = await call(loadEvent('api-get-export.json', { TOKEN: await token({ managerId: 'm-9', permissions: ['audit:read'] }), EXPORT_ID: exportId }));
    expect(auditor.status).toBe(200);
    const garbage = await call(loadEvent('api-get-export.json', { TOKEN: await token(), EXPORT_ID: 'not-an-id' }));
    expect(garbage.status).toBe(404);
  });

  it('trusts the principal a Lambda authorizer put in the request context (AWS), without a bearer', async () => {
    const event = loadEvent('api-list-exports.json', { TOKEN: '' });
    delete event.headers.Authorization;
    (event.requestContext as { authorizer: unknown }).authorizer = {
      channelId: 'ch-1',
      managerId: 'm-1',
      name: 'Kim',
      permissions: JSON.stringify(['export:download']),
      // API Gateway delivers context values as text.
      expiresAt: String(Math.floor(fakes.clock.now().getTime() / 1000) + 600),
      principalId: 'm-1',
    };
    expect((await call(event)).status).toBe(200);
    (event.requestContext as { authorizer: unknown }).authorizer = {
      channelId: 'ch-1', managerId: 'm-1', name: 'Kim', permissions: '[]', expiresAt: String(Math.floor(fakes.clock.now().getTime() / 1000) + 600),
    };
    expect((await call(event)).status).toBe(403);
  });

  it('stops trusting a cached authorizer answer once the token it came from has expired', async () => {
    const event = loadEvent('api-list-exports.json', { TOKEN: '' });
    delete event.headers.Authorization;
    const expiresAt = Math.floor(fakes.clock.now().getTime() / 1000) + 120;
    (event.requestContext as { authorizer: unknown }).authorizer = {
      channelId: 'ch-1', managerId: 'm-1', name: 'Kim', permissions: JSON.stringify(['export:download']), expiresAt: String(expiresAt),
    };
    expect((await call(event)).status).toBe(200);
    fakes.clock.advance(5 * 60_000);
    expect((await call(event)).status).toBe(401);
  });

  it('gives the download link to the requester only: not to an auditor, nor to a requester without export:download', async () => {
    const exportId = (await create()).body.exportId as string;
    completeJob(exportId);
    const read = async (over: Parameters<typeof token>[0]) => call(loadEvent('api-get-export.json', { TOKEN: await token(over), EXPORT_ID: exportId }));
    const own = await read({});
    expect(own.status).toBe(200);
    expect(own.body.link).toMatch(/^http:\/\/api\.test\/v1\/downloads\//);
    const auditor = await read({ managerId: 'm-9', permissions: ['audit:read'] });
    expect(auditor.status).toBe(200);
    expect(auditor.body).toMatchObject({ exportId, status: 'completed' });
    expect(auditor.body.link).toBeUndefined();
    expect(JSON.stringify(auditor.body)).not.toContain('/v1/downloads/');
    const demoted = await read({ permissions: ['audit:read'] });
    expect(demoted.status).toBe(200);
    expect(demoted.body.link).toBeUndefined();
  });

  it('bounds the issues listed in a 400', async () => {
    const ev = loadEvent('api-create-export-contacts.json', { TOKEN: await token(), PASSWORD });
    ev.body = JSON.stringify({ kind: 'contacts', scope: 'selection', userIds: Array.from({ length: 500 }, () => ''), reason: 'r', password: PASSWORD });
    const res = await call(ev);
    expect(res.status).toBe(400);
    expect(res.body.error.issues.length).toBeLessThanOrEqual(50);
  });

  it('echoes CORS headers for the admin origin only, on success and on errors', async () => {
    const fromAdmin = loadEvent('api-list-exports.json', { TOKEN: await token() });
    fromAdmin.headers.Origin = 'https://admin.example.com';
    const ok = await call(fromAdmin);
    expect(ok.headers['Access-Control-Allow-Origin']).toBe('https://admin.example.com');
    expect(ok.headers['Access-Control-Expose-Headers']).toMatch(/Retry-After/);
    const refused = loadEvent('api-list-exports.json', { TOKEN: 'x' });
    refused.headers.Origin = 'https://admin.example.com';
    expect((await call(refused)).headers['Access-Control-Allow-Origin']).toBe('https://admin.example.com');
    const fromElsewhere = loadEvent('api-list-exports.json', { TOKEN: await token() });
    fromElsewhere.headers.Origin = 'https://evil.example.com';
    expect((await call(fromElsewhere)).headers['Access-Control-Allow-Origin']).toBeUndefined();
  });

  it('a cold-start configuration failure is a 500 that names nothing internal', async () => {
    const broken = createApiHandler(async () => {
      throw new Error('invalid environment: EXPORTS_TABLE: Required');
    });
    const result = (await broken(loadEvent('api-list-exports.json', { TOKEN: await token() }), context)) as APIGatewayProxyResult;
    expect(result.statusCode).toBe(500);
    expect(result.body).not.toContain('EXPORTS_TABLE');
    expect(JSON.parse(result.body).error.requestId).toBe('req-list');
  });

  it('404 for unknown routes, 405 with Allow for a wrong method', async () => {
    const unknown = loadEvent('api-list-exports.json', { TOKEN: await token() });
    unknown.path = '/v1/nothing';
    const notFound = await call(unknown);
    expect(notFound.status).toBe(404);
    // Every refusal names what to fix and the rule, routing ones too (the path is never echoed).
    expect(notFound.body.error).toMatchObject({ code: 'ROUTE_NOT_FOUND', field: 'path', rule: 'known-route' });
    const wrong = loadEvent('api-list-exports.json', { TOKEN: await token() });
    wrong.httpMethod = 'DELETE';
    const res = await call(wrong);
    expect(res.status).toBe(405);
    expect(res.headers.Allow).toBe('POST, GET');
    expect(res.body.error).toMatchObject({ code: 'METHOD_NOT_ALLOWED', field: 'method', rule: 'allowed-method' });
  });
});

describe('paths as API Gateway REST passes them (still percent-encoded)', () => {
  const get = async (path: string) => {
    const event = loadEvent('api-list-exports.json', { TOKEN: await token() });
    event.path = path;
    // The list event's ?limit: the other routes take no query parameter.
    event.queryStringParameters = null;
    event.multiValueQueryStringParameters = null;
    return call(event);
  };

  it('routes on the raw segments and decodes each id once', async () => {
    const exportId = (await create()).body.exportId as string;
    const everyCharEncoded = [...exportId].map((c) => `%${c.charCodeAt(0).toString(16)}`).join('');
    expect((await get(`/v1/exports/${everyCharEncoded}`)).body).toMatchObject({ exportId });
    // Once only: `%25` is a literal `%` in the id, never a second round of decoding.
    expect((await get(`/v1/exports/${everyCharEncoded.replace('%', '%25')}`)).status).toBe(404);
    // An encoded slash is part of the id, not a path separator: not the cancel route (405).
    const slash = await get(`/v1/exports/${exportId}%2Fcancel`);
    expect(slash.status).toBe(404);
    expect(slash.body.error).toMatchObject({ code: 'EXPORT_NOT_FOUND' });
  });

  it('answers a malformed percent-encoding with 400 INVALID_PATH naming the path, not a 500', async () => {
    for (const path of ['/v1/exports/%', '/v1/exports/%E0%A4%A', '/v1/downloads/%zz', '/v1/%/exports']) {
      const res = await get(path);
      expect(res.status).toBe(400);
      // With its rule, also in its issue (it had none in either).
      expect(res.body.error).toMatchObject({ code: 'INVALID_PATH', field: 'path', rule: 'percent-encoding' });
      expect(res.body.error.issues).toEqual([{ path: 'path', message: expect.stringContaining('percent-encoding'), rule: 'percent-encoding' }]);
    }
  });
});

describe('GET /v1/exports and cancel', () => {
  it('lists the caller’s exports newest first with a sealed cursor', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i += 1) {
      const ev = loadEvent('api-create-export-contacts.json', { TOKEN: await token(), PASSWORD });
      ev.headers['Idempotency-Key'] = `key-number-${i}`;
      fakes.clock.advance(31 * 60_000);
      ev.headers.Authorization = `Bearer ${await token({}, fakes.clock.now())}`;
      ids.push((await call(ev)).body.exportId as string);
    }
    const listEvent = (cursor?: string) =>
      token({}, fakes.clock.now()).then((t) => {
        const ev = loadEvent('api-list-exports.json', { TOKEN: t });
        ev.queryStringParameters = { limit: '2', ...(cursor ? { cursor } : {}) };
        return ev;
      });
    const page1 = await call(await listEvent());
    expect(page1.body.items.map((i: { exportId: string }) => i.exportId)).toEqual([ids[2], ids[1]]);
    const page2 = await call(await listEvent(page1.body.cursor as string));
    expect(page2.body.items.map((i: { exportId: string }) => i.exportId)).toEqual([ids[0]]);
    expect(page2.body.cursor).toBeUndefined();
    const appended = await call(await listEvent(`${page1.body.cursor as string}0`));
    expect(appended.status).toBe(400);
    const trailing = await call(await listEvent(`${page1.body.cursor as string}z`));
    expect(trailing.status).toBe(400);
    const forged = await call(await listEvent(`${Buffer.from('0').toString('base64url')}.00000000000000000000000000000000`));
    expect(forged.status).toBe(400);
    expect(forged.body.error).toMatchObject({ code: 'INVALID_CURSOR', field: 'cursor' });
    const someoneElses = loadEvent('api-list-exports.json', { TOKEN: await token({ managerId: 'm-2' }, fakes.clock.now()) });
    someoneElses.queryStringParameters = { cursor: page1.body.cursor as string };
    expect((await call(someoneElses)).status).toBe(400);
  });

  it('cancels an active export (requester only); a repeat is a 200 (idempotent); the cooldown is given back', async () => {
    const exportId = (await create('api-create-export-cases.json')).body.exportId as string;
    const byAuditor = await call(loadEvent('api-cancel-export.json', { TOKEN: await token({ managerId: 'm-9', permissions: ['audit:read'] }), EXPORT_ID: exportId }));
    expect(byAuditor.status).toBe(403);
    const res = await call(loadEvent('api-cancel-export.json', { TOKEN: await token(), EXPORT_ID: exportId }));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ exportId, status: 'canceled' });
    expect(res.body.link).toBeUndefined();
    // The rows rendered so far (parts/) go with the cancel, not a day later.
    expect(fakes.dispatcher.discarded).toEqual([exportId]);
    // A later repeat: the export as it is, its first cancel's time kept.
    fakes.clock.advance(1_000);
    const again = await call(loadEvent('api-cancel-export.json', { TOKEN: await token({}, fakes.clock.now()), EXPORT_ID: exportId }));
    expect(again.status).toBe(200);
    expect(again.body).toEqual(res.body);
    // A repeated cancel repeats the sweep (idempotent): chunks still running may have written since.
    expect(fakes.dispatcher.discarded).toEqual([exportId, exportId]);
    expect(fakes.audit.events.map((e) => e.type)).toEqual(['requested', 'canceled']);
    expect((await create('api-create-export-cases.json')).status).toBe(202);
  });

  it('the requester cancels without any permission (export:download withdrawn while it ran); reading it stays gated, others are refused as before', async () => {
    const exportId = (await create('api-create-export-cases.json')).body.exportId as string;
    const bare = await token({ permissions: [] });
    // Reading the export (it carries the link) still needs a permission.
    const read = await call(loadEvent('api-get-export.json', { TOKEN: bare, EXPORT_ID: exportId }));
    expect(read.status).toBe(403);
    // Either permission reads an export: the refusal names both, not only the one for downloads.
    expect(read.body.error).toMatchObject({
      code: 'PERMISSION_DENIED',
      field: 'permissions',
      rule: 'S5/C10',
      message: 'the export:download or the audit:read permission is required to read exports (rule S5/C10)',
    });
    // A colleague without a permission or another channel's manager learns nothing; an auditor is told NOT_REQUESTER.
    const colleague = await call(loadEvent('api-cancel-export.json', { TOKEN: await token({ managerId: 'm-2', permissions: [] }), EXPORT_ID: exportId }));
    expect(colleague.status).toBe(404);
    expect(colleague.body.error).toMatchObject({ code: 'EXPORT_NOT_FOUND', field: 'exportId', rule: 'visible-export' });
    const otherChannel = await call(loadEvent('api-cancel-export.json', { TOKEN: await token({ channelId: 'ch-2', permissions: [] }), EXPORT_ID: exportId }));
    expect(otherChannel.status).toBe(404);
    const auditor = await call(loadEvent('api-cancel-export.json', { TOKEN: await token({ managerId: 'm-9', permissions: ['audit:read'] }), EXPORT_ID: exportId }));
    expect(auditor.status).toBe(403);
    expect(auditor.body.error).toMatchObject({ code: 'NOT_REQUESTER', field: 'exportId', rule: 'requester-only' });
    expect(fakes.store.jobs.get(exportId)?.status).toBe('queued');
    // It was a 403 PERMISSION_DENIED about downloading.
    const res = await call(loadEvent('api-cancel-export.json', { TOKEN: bare, EXPORT_ID: exportId }));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ exportId, status: 'canceled' });
    expect(fakes.audit.events.map((e) => e.type)).toEqual(['requested', 'canceled']);
  });

  it('a cancel whose write committed but whose answer was lost (the SDK retry fails the condition) answers 200, not 409', async () => {
    const exportId = (await create('api-create-export-cases.json')).body.exportId as string;
    const setStatus = fakes.store.setStatus.bind(fakes.store);
    fakes.store.setStatus = async (...args: Parameters<typeof setStatus>) => {
      await setStatus(...args);
      return false;
    };
    const res = await call(loadEvent('api-cancel-export.json', { TOKEN: await token(), EXPORT_ID: exportId }));
    fakes.store.setStatus = setStatus;
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ exportId, status: 'canceled' });
    expect(fakes.audit.events.map((e) => e.type)).toEqual(['requested', 'canceled']);
    expect((await create('api-create-export-cases.json')).status).toBe(202);
  });

  it('a replayed request of an export since canceled answers its status without a cancel link', async () => {
    const first = await create();
    expect(first.body.links.cancel).toBeDefined();
    expect((await call(loadEvent('api-cancel-export.json', { TOKEN: await token(), EXPORT_ID: first.body.exportId as string }))).status).toBe(200);
    const replay = await create();
    expect(replay.headers['Idempotency-Replayed']).toBe('true');
    expect(replay.body).toMatchObject({ exportId: first.body.exportId, status: 'canceled' });
    expect(replay.body.links).toEqual({ self: first.body.links.self });
  });

  it('a cancel whose audit write failed after the status changed is finished by the retry', async () => {
    const exportId = (await create('api-create-export-cases.json')).body.exportId as string;
    fakes.audit.failNext = 'canceled';
    const first = await call(loadEvent('api-cancel-export.json', { TOKEN: await token(), EXPORT_ID: exportId }));
    expect(first.status).toBe(500);
    // Before the audit append: its failure does not keep the data.
    expect(fakes.dispatcher.discarded).toEqual([exportId]);
    const canceledJob = fakes.store.jobs.get(exportId) as ExportJob;
    expect(canceledJob.status).toBe('canceled');
    const canceledAt = canceledJob.canceledAt;
    expect(canceledAt).toBe(fakes.clock.now().toISOString());
    // A chunk still in flight touches the job after the cancel; the retry comes later still.
    fakes.clock.advance(90_000);
    canceledJob.updatedAt = fakes.clock.now().toISOString();
    const retry = await call(loadEvent('api-cancel-export.json', { TOKEN: await token({}, fakes.clock.now()), EXPORT_ID: exportId }));
    expect(retry.status).toBe(200);
    expect(retry.body).toMatchObject({ exportId, status: 'canceled' });
    expect(fakes.audit.events.map((e) => e.type)).toEqual(['requested', 'canceled']);
    expect(fakes.audit.events[1]?.at).toBe(canceledAt);
    expect((await create('api-create-export-cases.json')).status).toBe(202);
  });
});

describe('GET /v1/downloads/{token}', () => {
  it('redirects to a short-lived presigned URL while valid, audits each use, 410 after expiry', async () => {
    const exportId = (await create()).body.exportId as string;
    completeJob(exportId);
    const view = await call(loadEvent('api-get-export.json', { TOKEN: await token(), EXPORT_ID: exportId }));
    expect(view.body).toMatchObject({ status: 'completed', rowCount: 12, sha256: 'ab'.repeat(32), progress: { percent: 100 } });
    const downloadToken = (view.body.link as string).split('/').pop() as string;

    const anonymous = loadEvent('api-download.json', { DOWNLOAD_TOKEN: downloadToken });
    const first = await call(anonymous);
    expect(first.status).toBe(302);
    expect(first.headers.Location).toBe(`http://s3.test/bucket/exports/${exportId}.xlsx?X-Amz-Expires=300`);
    expect(first.headers['Cache-Control']).toBe('no-store');
    expect(first.headers['Referrer-Policy']).toBe('no-referrer');
    // The presigned URL is a credential while it lasts: given once, in Location, never in a body.
    expect(first.text).toBe('');
    expect(first.headers['Content-Type']).toBeUndefined();

    const withBearer = loadEvent('api-download.json', { DOWNLOAD_TOKEN: downloadToken });
    withBearer.headers.Authorization = `Bearer ${await token()}`;
    expect((await call(withBearer)).status).toBe(302);

    fakes.clock.current = new Date('2026-03-08T10:00:01.000Z');
    const late = await call(loadEvent('api-download.json', { DOWNLOAD_TOKEN: downloadToken }));
    expect(late.status).toBe(410);
    expect(late.body.error.message).toMatch(/links work for 7 days/);
    const lapsed = await call(loadEvent('api-get-export.json', { TOKEN: await token({}, fakes.clock.now()), EXPORT_ID: exportId }));
    // The work was done: an expired export reports the progress of its completion.
    expect(lapsed.body).toMatchObject({ status: 'expired', rowCount: 12, progress: { chunksDone: 3, chunksTotal: 3, percent: 100 } });
    expect(lapsed.body.link).toBeUndefined();
    const downloads = fakes.audit.events.filter((e) => e.type === 'downloaded');
    expect(downloads).toEqual([
      expect.objectContaining({ ip: '203.0.113.7', userAgent: 'Mozilla/5.0 (export-console)', outcome: 'redirected' }),
      expect.objectContaining({ managerId: 'm-1', outcome: 'redirected' }),
      expect.objectContaining({ outcome: 'gone' }),
    ]);
    expect(downloads[0]).not.toHaveProperty('managerId');
  });

  it('ignores the query entirely, repeated parameters included (a messenger appending utm_source twice made it a 400, unaudited): GET redirects and is audited, HEAD answers 200', async () => {
    const exportId = (await create()).body.exportId as string;
    completeJob(exportId);
    const withQuery = (file: string, multi: Record<string, string[]>) => {
      const ev = loadEvent(file, { DOWNLOAD_TOKEN: `tok-${exportId}-0123456789` });
      ev.multiValueQueryStringParameters = multi;
      ev.queryStringParameters = Object.fromEntries(Object.entries(multi).map(([k, v]) => [k, v[v.length - 1] as string]));
      return ev;
    };
    const tracked = { utm_source: ['chat', 'mail'], utm_medium: ['im'], limit: ['1', '2'], _: ['1', '2'] };
    const get = await call(withQuery('api-download.json', tracked));
    expect(get.status).toBe(302);
    expect(get.headers.Location).toContain(`exports/${exportId}.xlsx`);
    expect(fakes.audit.events.filter((e) => e.type === 'downloaded')).toEqual([expect.objectContaining({ exportId, outcome: 'redirected' })]);
    const head = (await handler(withQuery('api-download-head.json', tracked), context)) as APIGatewayProxyResult;
    expect(head.statusCode).toBe(200);
    // An unknown token is still told as such, whatever the query.
    const unknown = withQuery('api-download.json', tracked);
    unknown.path = '/v1/downloads/tok-ffff-0123456789';
    expect((await call(unknown)).body.error).toMatchObject({ code: 'LINK_NOT_FOUND', field: 'token', rule: 'issued-link' });
  });

  it('410 names the link window the export really had (LINK_TTL_DAYS is configurable), not a fixed 7 days', async () => {
    const exportId = (await create()).body.exportId as string;
    completeJob(exportId, '2026-03-04T10:05:00.000Z'); // completed 2026-03-01T10:05: a 3-day window
    const view = await call(loadEvent('api-get-export.json', { TOKEN: await token(), EXPORT_ID: exportId }));
    const downloadToken = (view.body.link as string).split('/').pop() as string;
    fakes.clock.current = new Date('2026-03-05T00:00:00.000Z');
    const late = await call(loadEvent('api-download.json', { DOWNLOAD_TOKEN: downloadToken }));
    expect(late.status).toBe(410);
    expect(late.body.error.message).toMatch(/links work for 3 days/);
  });

  it('410 for a canceled export, 404 for an unknown token', async () => {
    const exportId = (await create()).body.exportId as string;
    completeJob(exportId);
    (fakes.store.jobs.get(exportId) as ExportJob).status = 'canceled';
    expect((await call(loadEvent('api-download.json', { DOWNLOAD_TOKEN: `tok-${exportId}-0123456789` }))).status).toBe(410);
    expect((await call(loadEvent('api-download.json', { DOWNLOAD_TOKEN: 'tok-ffff-0123456789' }))).status).toBe(404);
  });

  it('410 for an export that failed after its file was made says so, not "expired"', async () => {
    const exportId = (await create()).body.exportId as string;
    completeJob(exportId);
    // The link was saved, then the completion kept failing until the dead letter failed it.
    Object.assign(fakes.store.jobs.get(exportId) as ExportJob, { status: 'failed', error: { code: 'PIPELINE_FAILED', message: 'x' } });
    const res = await call(loadEvent('api-download.json', { DOWNLOAD_TOKEN: `tok-${exportId}-0123456789` }));
    expect(res.status).toBe(410);
    expect(res.body.error.message).toBe('this export failed after its file was made; the file was deleted: request a new export');
  });
});

describe('GET /v1/audit', () => {
  it('is for audit:read holders only and returns one entry per export with its downloads', async () => {
    const exportId = (await create()).body.exportId as string;
    completeJob(exportId);
    await fakes.audit.append({ type: 'completed', exportId, channelId: 'ch-1', at: '2026-03-01T10:05:00.000Z', rowCount: 12, sha256: 'ab'.repeat(32) });
    await call(loadEvent('api-download.json', { DOWNLOAD_TOKEN: `tok-${exportId}-0123456789` }));
    const denied = await call(loadEvent('api-list-audit.json', { TOKEN: await token() }));
    expect(denied.status).toBe(403);
    const res = await call(loadEvent('api-list-audit.json', { TOKEN: await token({ managerId: 'm-9', permissions: ['audit:read'] }) }));
    expect(res.status).toBe(200);
    expect(res.body.items).toEqual([
      expect.objectContaining({
        exportId,
        requestedBy: { managerId: 'm-1', name: 'Kim', ip: '203.0.113.7', userAgent: 'Mozilla/5.0 (export-console)' },
        kind: 'contacts',
        scope: 'filter',
        reason: 'Quarterly CRM sync for the marketing team',
        status: 'completed',
        rowCount: 12,
        downloads: [expect.objectContaining({ ip: '203.0.113.7' })],
      }),
    ]);
    expect(JSON.stringify(res.body)).not.toContain(PASSWORD);
    const bad = loadEvent('api-list-audit.json', { TOKEN: await token({ permissions: ['audit:read'] }) });
    bad.queryStringParameters = { from: 'yesterday' };
    const badRes = await call(bad);
    expect(badRes.status).toBe(400);
    expect(badRes.body.error.field).toBe('from');
  });

  it('a bound finer than a millisecond is rounded inwards: from up, to down (both were cut down, so a window took in an entry before its from)', async () => {
    const exportId = (await create()).body.exportId as string;
    const at = fakes.audit.events.find((e) => e.type === 'requested' && e.exportId === exportId)!.at;
    expect(at).toMatch(/\.\d{3}Z$/);
    const listWith = async (query: Record<string, string>) => {
      const ev = loadEvent('api-list-audit.json', { TOKEN: await token({ managerId: 'm-9', permissions: ['audit:read'] }) });
      ev.queryStringParameters = query;
      return call(ev);
    };
    const finer = (digits: string) => at.replace('Z', `${digits}Z`);
    // 0.4 ms after the entry: it is before `from`.
    expect((await listWith({ from: finer('4') })).body.items).toEqual([]);
    // Trailing zeros are the same instant: the entry is in.
    expect((await listWith({ from: finer('000'), to: finer('9') })).body.items.map((i: { exportId: string }) => i.exportId)).toEqual([exportId]);
    // `to` 0.9 ms after the entry still takes it in; `to` before `from` by 0.4 ms is refused.
    expect((await listWith({ to: finer('9') })).body.items.map((i: { exportId: string }) => i.exportId)).toEqual([exportId]);
    // The other query fields say what they take, not zod's wording.
    expect((await listWith({ kind: 'case' })).body.error).toMatchObject({ field: 'kind', message: 'kind: must be cases or contacts' });
    expect((await listWith({ managerId: '' })).body.error).toMatchObject({ field: 'managerId', message: 'managerId: must not be empty' });
    const reversed = await listWith({ from: finer('5'), to: finer('1') });
    expect(reversed.status).toBe(400);
    expect(reversed.body.error).toMatchObject({ field: 'to', message: 'to: must not be before from' });
  });

  it('takes "t" and "z" in lower case in a bound, as RFC 3339 and the filter\'s date-times do (it was 400, rule format)', async () => {
    const exportId = (await create()).body.exportId as string;
    const at = fakes.audit.events.find((e) => e.type === 'requested' && e.exportId === exportId)!.at;
    const listWith = async (query: Record<string, string>) => {
      const ev = loadEvent('api-list-audit.json', { TOKEN: await token({ managerId: 'm-9', permissions: ['audit:read'] }) });
      ev.queryStringParameters = query;
      return call(ev);
    };
    const lower = (iso: string) => iso.replace('T', 't').replace('Z', 'z');
    const before = lower(new Date(Date.parse(at) - 60_000).toISOString());
    const after = lower(new Date(Date.parse(at) + 60_000).toISOString());
    for (const query of [{ from: before }, { from: before, to: after }, { to: after.replace('z', '+00:00') }] as Record<string, string>[]) {
      const res = await listWith(query);
      expect(res.status, JSON.stringify(query)).toBe(200);
      expect(res.body.items.map((i: { exportId: string }) => i.exportId), JSON.stringify(query)).toEqual([exportId]);
    }
    expect((await listWith({ from: after })).body.items).toEqual([]);
    // The reviewer's bound; a lower-case one without an offset is still refused as such.
    expect((await listWith({ from: '2026-03-01t10:00:00z' })).status).toBe(200);
    expect((await listWith({ from: '2026-03-01t10:00:00' })).body.error).toMatchObject({ code: 'INVALID_QUERY', field: 'from', rule: 'format' });
  });

  it('a bound without an offset, or whose "+" arrived as a space, gets a 400 saying the expected format', async () => {
    for (const from of ['2026-12-01T12:50:00 09:00', '2026-12-01T00:00:00']) {
      const ev = loadEvent('api-list-audit.json', { TOKEN: await token({ permissions: ['audit:read'] }) });
      ev.queryStringParameters = { from };
      const res = await call(ev);
      expect(res.status).toBe(400);
      expect(res.body.error).toMatchObject({ code: 'INVALID_QUERY', field: 'from' });
      expect(res.body.error.message).toMatch(/^from: .*ISO-8601 date-time with an offset/);
      expect(res.body.error.message).toContain('%2B');
    }
  });

  it('400 for bounds outside years 0000-9999 in UTC, which no stored key can be compared with', async () => {
    for (const [field, value] of [['to', '9999-12-31T23:59:59-12:00'], ['to', '0000-01-01T00:00:00+01:00'], ['from', '9999-12-31T23:00:00-02:00']] as const) {
      const ev = loadEvent('api-list-audit.json', { TOKEN: await token({ permissions: ['audit:read'] }) });
      ev.queryStringParameters = { [field]: value };
      const res = await call(ev);
      expect(res.status).toBe(400);
      expect(res.body.error).toMatchObject({ code: 'INVALID_QUERY', field });
    }
  });

  it('seals its cursor to the channel and the query: reused with other filters it is a 400, not a store error', async () => {
    for (let i = 0; i < 3; i += 1) {
      fakes.clock.advance(31 * 60_000);
      const ev = loadEvent('api-create-export-contacts.json', { TOKEN: await token({}, fakes.clock.now()), PASSWORD });
      ev.headers['Idempotency-Key'] = `audit-key-${i}`;
      expect((await call(ev)).status).toBe(202);
    }
    const auditor = async () => token({ managerId: 'm-9', permissions: ['audit:read'] }, fakes.clock.now());
    const list = async (query: Record<string, string>, over: Parameters<typeof token>[0] = {}) => {
      const ev = loadEvent('api-list-audit.json', { TOKEN: over.channelId ? await token({ ...over, permissions: ['audit:read'] }, fakes.clock.now()) : await auditor() });
      ev.queryStringParameters = query;
      return call(ev);
    };
    const first = await list({ limit: '2', kind: 'contacts' });
    expect(first.status).toBe(200);
    expect(first.body.items).toHaveLength(2);
    const cursor = first.body.cursor as string;
    expect(cursor).toMatch(/\./);
    const next = await list({ limit: '2', kind: 'contacts', cursor });
    expect(next.status).toBe(200);
    expect(next.body.items).toHaveLength(1);
    expect(next.body.cursor).toBeUndefined();
    const otherQuery = await list({ limit: '2', kind: 'contacts', from: '2026-03-02', cursor });
    expect(otherQuery.status).toBe(400);
    expect(otherQuery.body.error).toMatchObject({ code: 'INVALID_CURSOR', field: 'cursor' });
    expect((await list({ limit: '2', kind: 'contacts', cursor }, { channelId: 'ch-2', managerId: 'm-9' })).status).toBe(400);
    expect((await list({ limit: '2', kind: 'contacts', cursor: '2' })).status).toBe(400);
  });
});

describe('GET /v1/audit/exports/{exportId}/downloads', () => {
  const auditorToken = (over: Parameters<typeof token>[0] = {}) => token({ managerId: 'm-9', permissions: ['audit:read'], ...over }, fakes.clock.now());
  const downloads = async (exportId: string, query: Record<string, string> = {}, jwt?: string) => {
    const ev = loadEvent('api-list-export-downloads.json', { TOKEN: jwt ?? (await auditorToken()), EXPORT_ID: exportId });
    ev.queryStringParameters = query;
    return call(ev);
  };
  const atOf = (i: number) => new Date(Date.parse('2026-03-01T10:10:00.000Z') + i * 1000).toISOString();

  /** A completed export whose link was used `uses` times; the first use by its requester, with a bearer. */
  async function usedExport(uses: number): Promise<string> {
    const exportId = (await create()).body.exportId as string;
    completeJob(exportId);
    for (let i = 0; i < uses; i += 1) {
      fakes.clock.current = new Date(atOf(i));
      const ev = loadEvent('api-download.json', { DOWNLOAD_TOKEN: `tok-${exportId}-0123456789` });
      if (i === 0) ev.headers.Authorization = `Bearer ${await token({}, fakes.clock.now())}`;
      else ev.headers['User-Agent'] = `flood/${i}`;
      expect((await call(ev)).status).toBe(302);
    }
    return exportId;
  }

  it("records a download's User-Agent as auditors can read it: no control characters (C1's 0x9B too), no bidi overrides, no half of a surrogate pair at the cut", async () => {
    const exportId = (await create()).body.exportId as string;
    completeJob(exportId);
    for (const userAgent of ['c1\u009bx', 'legit \u202eevil', `${'a'.repeat(511)}\u{1F600}`, '\u0007\u202e']) {
      const ev = loadEvent('api-download.json', { DOWNLOAD_TOKEN: `tok-${exportId}-0123456789` });
      ev.headers['User-Agent'] = userAgent;
      expect((await call(ev)).status).toBe(302);
    }
    const seen = fakes.audit.events.filter((e) => e.type === 'downloaded' && e.exportId === exportId).map((e) => (e as { userAgent?: string }).userAgent);
    // The emoji's first half alone would be a lone surrogate: it becomes U+FFFD. A header of nothing but controls is left out.
    expect(seen).toEqual(['c1x', 'legit evil', `${'a'.repeat(511)}\uFFFD`, undefined]);
  });

  it('pages through all 105 uses of a link, oldest first: the first real download is never pushed out of view', async () => {
    const exportId = await usedExport(105);
    // The entry lists the most recent 100, counts all 105 and points to the endpoint for the rest.
    const trail = await call(loadEvent('api-list-audit.json', { TOKEN: await auditorToken() }));
    const [entry] = trail.body.items as Record<string, any>[];
    expect(entry).toMatchObject({ exportId, downloadCount: 105, links: { downloads: `http://api.test/v1/audit/exports/${exportId}/downloads` } });
    expect(entry?.downloads).toHaveLength(100);
    expect(entry?.downloads[0].at).toBe(atOf(5));

    // One by one: 105 pages of one, a cursor on every page but the last.
    const oneByOne: string[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < 105; page += 1) {
      const res = await downloads(exportId, { limit: '1', ...(cursor ? { cursor } : {}) });
      expect(res.status).toBe(200);
      expect(res.body.items).toHaveLength(1);
      oneByOne.push(res.body.items[0].at as string);
      cursor = res.body.cursor as string | undefined;
      expect(cursor === undefined, `page ${page}`).toBe(page === 104);
    }
    expect(oneByOne).toEqual(Array.from({ length: 105 }, (_u, i) => atOf(i)));

    // In pages: the default 50, and the maximum 100.
    const first = await downloads(exportId);
    expect(first.body.items).toHaveLength(50);
    expect(first.body.items[0]).toEqual({ at: atOf(0), managerId: 'm-1', ip: '203.0.113.7', userAgent: 'Mozilla/5.0 (export-console)', outcome: 'redirected' });
    const second = await downloads(exportId, { cursor: first.body.cursor as string });
    expect(second.body.items.map((d: { at: string }) => d.at)).toEqual(Array.from({ length: 50 }, (_u, i) => atOf(50 + i)));
    const third = await downloads(exportId, { cursor: second.body.cursor as string });
    expect(third.body.items.map((d: { at: string }) => d.at)).toEqual(Array.from({ length: 5 }, (_u, i) => atOf(100 + i)));
    expect(third.body).not.toHaveProperty('cursor');
    const big = await downloads(exportId, { limit: '100' });
    expect(big.body.items).toHaveLength(100);
    const rest = await downloads(exportId, { limit: '100', cursor: big.body.cursor as string });
    expect(rest.body.items.map((d: { userAgent: string }) => d.userAgent)).toEqual(Array.from({ length: 5 }, (_u, i) => `flood/${100 + i}`));
    expect(rest.body).not.toHaveProperty('cursor');
  });

  it('an entry that lists every use carries no link to the endpoint; an unused export pages to an empty list', async () => {
    const exportId = await usedExport(2);
    const trail = await call(loadEvent('api-list-audit.json', { TOKEN: await auditorToken() }));
    expect(trail.body.items[0]).toMatchObject({ exportId, downloadCount: 2 });
    expect(trail.body.items[0]).not.toHaveProperty('links');
    fakes.clock.advance(31 * 60_000);
    const unused = (await create('api-create-export-cases.json', { TOKEN: await token({}, fakes.clock.now()) })).body.exportId as string;
    const res = await downloads(unused);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ items: [] });
  });

  it('400 INVALID_QUERY for a query parameter given twice (API Gateway would keep the last), on every route', async () => {
    for (const [name, vars] of [
      ['api-list-exports.json', {}],
      ['api-list-audit.json', {}],
    ] as const) {
      const ev = loadEvent(name, { TOKEN: await token({ permissions: ['export:download', 'audit:read'] }), ...vars });
      ev.queryStringParameters = { limit: '2' };
      ev.multiValueQueryStringParameters = { limit: ['1', '2'] };
      const res = await call(ev);
      expect(res.status, name).toBe(400);
      expect(res.body.error).toMatchObject({ code: 'INVALID_QUERY', field: 'limit' });
      expect(res.body.error.message).toMatch(/^limit: given more than once/);
    }
    const once = loadEvent('api-list-exports.json', { TOKEN: await token() });
    once.queryStringParameters = { limit: '2' };
    once.multiValueQueryStringParameters = { limit: ['2'] };
    expect((await call(once)).status).toBe(200);
  });

  it('a repeated query parameter no longer hides the other bad ones: one INVALID_QUERY lists every one, one issue per parameter', async () => {
    const withQuery = async (file: string, multi: Record<string, string[]>, vars: Record<string, string> = {}) => {
      const ev = loadEvent(file, { TOKEN: await token({ permissions: ['export:download', 'audit:read'] }), ...vars });
      ev.multiValueQueryStringParameters = multi;
      ev.queryStringParameters = Object.fromEntries(Object.entries(multi).map(([k, v]) => [k, v[v.length - 1] as string]));
      const res = await call(ev);
      expect(res.status, file).toBe(400);
      expect(res.body.error.code, file).toBe('INVALID_QUERY');
      return res.body.error as { field: string; rule: string; message: string; issues: { path: string; rule: string }[] };
    };
    const pairs = (error: { issues: { path: string; rule: string }[] }) => error.issues.map((i) => [i.path, i.rule]);
    // The reviewer's query: only `limit` was listed.
    const list = await withQuery('api-list-exports.json', { limit: ['1', '2'], q: ['1'], cursor: ['a', 'b'] });
    expect(list).toMatchObject({ field: 'limit', rule: 'once' });
    expect(list.message).toMatch(/^limit: given more than once/);
    expect(pairs(list)).toEqual([['limit', 'once'], ['cursor', 'once'], ['q', 'unknown-field']]);
    // A repeated parameter whose kept value is bad too is told once, as repeated.
    const audit = await withQuery('api-list-audit.json', { kind: ['cases', 'case'], limit: ['0'], from: ['yesterday'] });
    expect(pairs(audit)).toEqual([['kind', 'once'], ['from', 'format'], ['limit', 'page-size']]);
    const uses = await withQuery('api-list-export-downloads.json', { limit: ['1', '2'], from: ['2026-03-01'] }, { EXPORT_ID: '0123456789abcdef' });
    expect(pairs(uses)).toEqual([['limit', 'once'], ['from', 'unknown-field']]);
    // Routes that take none list every parameter (the download link reads none: see below).
    const cancel = await withQuery('api-cancel-export.json', { dryRun: ['1', '2'], force: ['true'], why: ['x'] }, { EXPORT_ID: '0123456789abcdef' });
    expect(pairs(cancel)).toEqual([['dryRun', 'once'], ['force', 'unknown-field'], ['why', 'unknown-field']]);
    // Without a repetition, a route that takes none lists every parameter too (it named the first).
    const noneTaken = loadEvent('api-get-export.json', { TOKEN: await token(), EXPORT_ID: '0123456789abcdef' });
    noneTaken.queryStringParameters = { dryRun: 'true', force: '1' };
    expect(pairs((await call(noneTaken)).body.error)).toEqual([['dryRun', 'unknown-field'], ['force', 'unknown-field']]);
  });

  it('400 INVALID_CURSOR for an altered cursor, another export’s cursor or the trail’s; 400 INVALID_QUERY for a bad limit', async () => {
    const exportId = await usedExport(3);
    fakes.clock.advance(31 * 60_000);
    const other = (await create('api-create-export-cases.json', { TOKEN: await token({}, fakes.clock.now()) })).body.exportId as string;
    completeJob(other);
    for (let i = 0; i < 3; i += 1) await call(loadEvent('api-download.json', { DOWNLOAD_TOKEN: `tok-${other}-0123456789` }));
    const page = await downloads(exportId, { limit: '1' });
    const cursor = page.body.cursor as string;
    expect((await downloads(exportId, { limit: '1', cursor })).status).toBe(200);
    const [body, mac] = cursor.split('.') as [string, string];
    const tampered = [
      `${cursor}0`,
      `${Buffer.from('2').toString('base64url')}.${mac}`,
      `${body}.${'0'.repeat(32)}`,
      '1',
      (await downloads(other, { limit: '1' })).body.cursor as string,
      (await call(Object.assign(loadEvent('api-list-audit.json', { TOKEN: await auditorToken() }), { queryStringParameters: { limit: '1' } }))).body.cursor as string,
    ];
    for (const bad of tampered) {
      expect(bad).toBeTruthy();
      const res = await downloads(exportId, { limit: '1', cursor: bad });
      expect(res.status, bad).toBe(400);
      expect(res.body.error).toMatchObject({ code: 'INVALID_CURSOR', field: 'cursor' });
    }
    // Written plainly: hex, exponents, signs, leading zeros and an empty value are refused too,
    // with the rule (they were read as numbers: 0x10 was 16).
    for (const limit of ['0', '101', 'ten', '0x10', '1e1', '+5', '007', '', ' 5']) {
      const res = await downloads(exportId, { limit });
      expect(res.status, limit).toBe(400);
      expect(res.body.error).toMatchObject({ code: 'INVALID_QUERY', field: 'limit' });
      expect(res.body.error.message, limit).toContain('must be a whole number from 1 to 100');
      const list = await call(Object.assign(loadEvent('api-list-audit.json', { TOKEN: await auditorToken() }), { queryStringParameters: { limit } }));
      expect(list.body.error, limit).toMatchObject({ code: 'INVALID_QUERY', field: 'limit' });
    }
    // An unknown parameter is named as itself, not as `query` (the body's quick-search field).
    expect((await downloads(exportId, { from: '2026-03-01' })).body.error).toMatchObject({
      code: 'INVALID_QUERY',
      field: 'from',
      rule: 'unknown-field',
      message: 'from: is not an allowed parameter',
    });
  });

  it('query errors name a rule; every bad cursor is INVALID_CURSOR; a name that could be a token is never repeated', async () => {
    const auditor = await auditorToken({ permissions: ['audit:read', 'export:download'] });
    const list = async (file: string, query: Record<string, string>, extra: Partial<APIGatewayProxyEvent> = {}) =>
      call(Object.assign(loadEvent(file, { TOKEN: auditor }), { queryStringParameters: query, multiValueQueryStringParameters: null }, extra));
    // Rules on query errors, each issue listed (a body's are too).
    const bad = await list('api-list-audit.json', { limit: 'abc', kind: 'case' });
    expect(bad.body.error).toMatchObject({ code: 'INVALID_QUERY', field: 'kind', rule: 'one-of' });
    expect(bad.body.error.issues.map((i: { path: string; rule: string }) => [i.path, i.rule])).toEqual([
      ['kind', 'one-of'],
      ['limit', 'page-size'],
    ]);
    const noDay = await list('api-list-audit.json', { from: '2026-02-30' });
    expect(noDay.body.error).toMatchObject({ field: 'from', rule: 'format', message: 'from: must be a date that exists (YYYY-MM-DD: 2026-02-30 has no day)' });
    // The body's `from` says `format` for the same mistake: one rule for one mistake.
    const noOffset = await list('api-list-audit.json', { to: '2026-03-01T00:00:00' });
    expect(noOffset.body.error).toMatchObject({ field: 'to', rule: 'format' });
    // An empty or over-long cursor is a bad cursor like any other (it was INVALID_QUERY with zod's wording).
    for (const file of ['api-list-exports.json', 'api-list-audit.json']) {
      for (const cursor of ['', 'a'.repeat(5000)]) {
        const res = await list(file, { cursor });
        expect(res.status, `${file} ${cursor.length}`).toBe(400);
        expect(res.body.error, `${file} ${cursor.length}`).toMatchObject({ code: 'INVALID_CURSOR', field: 'cursor', rule: 'returned-cursor' });
      }
    }
    // A trail cursor reused with another query is told so (it was "not returned … for this caller").
    const page = await list('api-list-audit.json', { limit: '1' });
    await create();
    await create('api-create-export-cases.json');
    const first = await list('api-list-audit.json', { limit: '1' });
    expect(first.body.cursor).toEqual(expect.any(String));
    const reused = await list('api-list-audit.json', { limit: '1', kind: 'cases', cursor: first.body.cursor as string });
    expect(reused.body.error).toMatchObject({ code: 'INVALID_CURSOR', rule: 'returned-cursor' });
    expect(reused.body.error.message).toContain('for this query');
    expect(page.status).toBe(200);
    // A bearer token pasted as a parameter name, or a link token repeated, before any sign-in:
    // described, never repeated (it came back in full in the message, the field and the issues).
    const jwt = auditor;
    const pasted = await list('api-list-exports.json', { [jwt]: '' });
    expect(pasted.body.error).toMatchObject({ code: 'INVALID_QUERY', rule: 'unknown-field', field: `(a parameter name of ${jwt.length} characters, not repeated)` });
    const linkToken = `${Buffer.from('019ca8d72d00a638015839a817f1|1772964000000').toString('base64url')}.${'A'.repeat(43)}`;
    // Repeated parameters are refused before the bearer is looked at (the download link, which
    // would be the natural place to paste one, reads no parameter at all).
    const anonymous = loadEvent('api-list-exports.json', { TOKEN: 'not-a-token' });
    anonymous.queryStringParameters = { [linkToken]: '' };
    anonymous.multiValueQueryStringParameters = { [linkToken]: ['', ''] };
    const repeated = await call(anonymous);
    expect(repeated.body.error).toMatchObject({ code: 'INVALID_QUERY', rule: 'once', field: `(a parameter name of ${linkToken.length} characters, not repeated)` });
    for (const res of [pasted, repeated]) {
      const text = JSON.stringify(res.body);
      expect(text).not.toContain(jwt.slice(0, 40));
      expect(text).not.toContain(linkToken.slice(0, 40));
    }
    // Short names are ours to name: the field a client must remove.
    expect((await list('api-list-exports.json', { sort: 'asc' })).body.error).toMatchObject({ field: 'sort', rule: 'unknown-field' });
  });

  it('routes without query parameters refuse one (POST /v1/exports?dryRun=true created an export); the download link ignores them', async () => {
    const dry = loadEvent('api-create-export-contacts.json', { TOKEN: await token(), PASSWORD });
    dry.queryStringParameters = { dryRun: 'true' };
    const res = await call(dry);
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 'INVALID_QUERY', field: 'dryRun', rule: 'unknown-field' });
    // The issue's message does not repeat its path (the error's message does), as zod's issues.
    expect(res.body.error.issues).toEqual([{ path: 'dryRun', message: 'is not an allowed parameter (this route takes none)', rule: 'unknown-field' }]);
    expect(fakes.store.jobs.size).toBe(0);
    const exportId = (await create()).body.exportId as string;
    const one = loadEvent('api-get-export.json', { TOKEN: await token(), EXPORT_ID: exportId });
    one.queryStringParameters = { fields: 'status' };
    expect((await call(one)).body.error).toMatchObject({ code: 'INVALID_QUERY', field: 'fields' });
    const cancel = loadEvent('api-cancel-export.json', { TOKEN: await token(), EXPORT_ID: exportId });
    cancel.queryStringParameters = { force: '1' };
    expect((await call(cancel)).body.error).toMatchObject({ code: 'INVALID_QUERY', field: 'force' });
    expect(fakes.store.jobs.get(exportId)?.status).not.toBe('canceled');
    // The download link works with parameters a chat app added to it.
    completeJob(exportId);
    const link = loadEvent('api-download.json', { DOWNLOAD_TOKEN: `tok-${exportId}-0123456789` });
    link.queryStringParameters = { utm_source: 'chat' };
    expect((await call(link)).status).toBe(302);
    // Two Idempotency-Key lines: told that, not that the joined value has the wrong characters.
    const twice = loadEvent('api-create-export-contacts.json', { TOKEN: await token({ managerId: 'm-idem-2' }), PASSWORD });
    twice.multiValueHeaders = { ...twice.multiValueHeaders, 'Idempotency-Key': ['abcdefgh1', 'abcdefgh2'] };
    expect((await call(twice)).body.error).toMatchObject({ code: 'INVALID_IDEMPOTENCY_KEY', field: 'Idempotency-Key', rule: 'once', message: 'Idempotency-Key must be sent once' });
    // A cache-busting `_` on a read is no parameter (jQuery's cache:false sends it), even repeated.
    const busted = loadEvent('api-get-export.json', { TOKEN: await token(), EXPORT_ID: exportId });
    busted.queryStringParameters = { _: '1700000000000' };
    busted.multiValueQueryStringParameters = { _: ['1700000000000', '1700000000001'] };
    expect((await call(busted)).status).toBe(200);
    const bustedList = loadEvent('api-list-exports.json', { TOKEN: await token() });
    bustedList.queryStringParameters = { limit: '1', _: '1700000000000' };
    bustedList.multiValueQueryStringParameters = null;
    expect((await call(bustedList)).status).toBe(200);
    // …but not on a POST, which no cache serves.
    const postBusted = loadEvent('api-create-export-contacts.json', { TOKEN: await token({ managerId: 'm-bust' }), PASSWORD });
    postBusted.queryStringParameters = { _: '1' };
    expect((await call(postBusted)).body.error).toMatchObject({ code: 'INVALID_QUERY', field: '_' });
    // A hand-made event without a method or a path is no route: 404, not a TypeError's 500.
    const bare = loadEvent('api-get-export.json', { TOKEN: await token(), EXPORT_ID: exportId }) as Partial<APIGatewayProxyEvent>;
    delete bare.httpMethod;
    delete bare.path;
    expect((await call(bare as APIGatewayProxyEvent)).status).toBe(404);
  });

  it('is for audit:read holders of the export’s channel: 403 without it, 401 without a token, 404 for another channel’s export', async () => {
    const exportId = await usedExport(1);
    // The requester, with export:download only: the trail is not theirs to read.
    const requester = await downloads(exportId, {}, await token({}, fakes.clock.now()));
    expect(requester.status).toBe(403);
    expect(requester.body.error).toMatchObject({ code: 'PERMISSION_DENIED' });
    const anonymous = loadEvent('api-list-export-downloads.json', { TOKEN: '', EXPORT_ID: exportId });
    delete anonymous.headers.Authorization;
    expect((await call(anonymous)).status).toBe(401);
    const elsewhere = await downloads(exportId, {}, await auditorToken({ channelId: 'ch-2', permissions: ['audit:read', 'export:download'] }));
    expect(elsewhere.status).toBe(404);
    expect(elsewhere.body.error).toMatchObject({ code: 'EXPORT_NOT_FOUND' });
    expect((await downloads('0123456789abcdef0123')).status).toBe(404);
    expect((await downloads('not-an-id')).status).toBe(404);
    expect((await downloads(exportId)).body.items).toHaveLength(1);
  });
});

describe('a download whose presigning fails', () => {
  it('is a 500 and leaves no "redirected" event: the trail never says a file went out that did not', async () => {
    const exportId = (await create()).body.exportId as string;
    completeJob(exportId);
    const signer = fakes.deps.urlSigner;
    fakes.deps.urlSigner = {
      presignGet: async () => {
        throw new Error('CredentialsProviderError: could not load credentials');
      },
    };
    const res = await call(loadEvent('api-download.json', { DOWNLOAD_TOKEN: `tok-${exportId}-0123456789` }));
    expect(res.status).toBe(500);
    expect(fakes.audit.events.filter((e) => e.type === 'downloaded')).toEqual([]);
    fakes.deps.urlSigner = signer;
    expect((await call(loadEvent('api-download.json', { DOWNLOAD_TOKEN: `tok-${exportId}-0123456789` }))).status).toBe(302);
    expect(fakes.audit.events.filter((e) => e.type === 'downloaded')).toEqual([expect.objectContaining({ outcome: 'redirected' })]);
  });
});

describe('HEAD /v1/downloads/{token}', () => {
  const head = async (downloadToken: string) => {
    const result = (await handler(loadEvent('api-download-head.json', { DOWNLOAD_TOKEN: downloadToken }), context)) as APIGatewayProxyResult;
    return { status: result.statusCode, headers: (result.headers ?? {}) as Record<string, string>, body: result.body };
  };

  it('answers a valid link 200 without a body or Location, and neither presigns nor audits', async () => {
    const exportId = (await create()).body.exportId as string;
    completeJob(exportId);
    let presigned = 0;
    const signer = fakes.deps.urlSigner;
    fakes.deps.urlSigner = { presignGet: async (key, options) => ((presigned += 1), signer.presignGet(key, options)) };
    const before = fakes.audit.events.length;
    const res = await head(`tok-${exportId}-0123456789`);
    expect(res.status).toBe(200);
    expect(res.body).toBe('');
    expect(res.headers['Cache-Control']).toBe('no-store');
    expect(res.headers).not.toHaveProperty('Location');
    expect(res.headers).not.toHaveProperty('Content-Type');
    expect(presigned).toBe(0);
    expect(fakes.audit.events).toHaveLength(before);
    // A GET afterwards is the one use the trail records.
    expect((await call(loadEvent('api-download.json', { DOWNLOAD_TOKEN: `tok-${exportId}-0123456789` }))).status).toBe(302);
    expect(presigned).toBe(1);
    expect(fakes.audit.events.filter((e) => e.type === 'downloaded')).toHaveLength(1);
  });

  it('answers what a GET would for an unknown (404) or spent (410) link, bodiless and unaudited', async () => {
    expect(await head('tok-ffff-0123456789')).toMatchObject({ status: 404, body: '' });
    expect(await head('short')).toMatchObject({ status: 404, body: '' });
    const exportId = (await create()).body.exportId as string;
    completeJob(exportId);
    fakes.clock.current = new Date('2026-03-08T10:00:01.000Z');
    const late = await head(`tok-${exportId}-0123456789`);
    expect(late).toMatchObject({ status: 410, body: '' });
    expect(late.headers['Cache-Control']).toBe('no-store');
    (fakes.store.jobs.get(exportId) as ExportJob).status = 'canceled';
    expect(await head(`tok-${exportId}-0123456789`)).toMatchObject({ status: 410, body: '' });
    expect(fakes.audit.events.filter((e) => e.type === 'downloaded')).toEqual([]);
  });

  it('offers HEAD on the link only: the link’s 405 lists it, other routes still refuse it (bodiless)', async () => {
    const post = loadEvent('api-download.json', { DOWNLOAD_TOKEN: 'tok-ffff-0123456789' });
    post.httpMethod = 'POST';
    const refused = await call(post);
    expect(refused.status).toBe(405);
    expect(refused.headers.Allow).toBe('GET, HEAD');
    const onList = loadEvent('api-list-exports.json', { TOKEN: await token() });
    onList.httpMethod = 'HEAD';
    const result = (await handler(onList, context)) as APIGatewayProxyResult;
    expect(result.statusCode).toBe(405);
    expect(result.body).toBe('');
  });
});

describe('the log line of each request (docs/api.md, "Logs")', () => {
  /** The JSON lines logged with `message`, parsed. */
  const logged = (message: string) => logs.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => line.message === message);
  const auditorBearer = () => token({ managerId: 'm-9', permissions: ['audit:read'] });
  const cancelRoute = 'POST /v1/exports/{exportId}/cancel';
  const revokeRoute = 'POST /v1/exports/{exportId}/revoke';

  it('a refused request names the route template, the export and the verified manager and channel, as a served one does; never the token or the body', async () => {
    const auditor = await auditorBearer();
    const refused = await call(loadEvent('api-create-export-contacts.json', { TOKEN: auditor, PASSWORD }));
    expect(refused.status).toBe(403);
    const exportId = (await create()).body.exportId as string;
    const notRequester = await call(loadEvent('api-cancel-export.json', { TOKEN: auditor, EXPORT_ID: exportId }));
    expect(notRequester.body.error.code).toBe('NOT_REQUESTER');
    // A queued export has no link to withdraw: 409.
    const revokeEvent = (body: string) => Object.assign(loadEvent('api-revoke-export.json', { TOKEN: '', EXPORT_ID: exportId, REASON: 'x' }), { body });
    const early = revokeEvent(JSON.stringify({ reason: 'Link posted in the wrong room' }));
    const bearer = `Bearer ${await token()}`;
    early.headers.Authorization = bearer;
    expect((await call(early)).status).toBe(409);
    const noReason = revokeEvent('{}');
    noReason.headers.Authorization = bearer;
    expect((await call(noReason)).body.error).toMatchObject({ code: 'VALIDATION_FAILED', field: 'reason', rule: 'required' });

    const who = (managerId: string) => ({ managerId, channelId: 'ch-1' });
    expect(logged('request refused')).toEqual([
      expect.objectContaining({ requestId: 'req-create-contacts', route: 'POST /v1/exports', status: 403, code: 'PERMISSION_DENIED', ...who('m-9') }),
      expect.objectContaining({ requestId: 'req-cancel', route: cancelRoute, exportId, status: 403, code: 'NOT_REQUESTER', ...who('m-9') }),
      expect.objectContaining({ requestId: 'req-revoke', route: revokeRoute, exportId, status: 409, ...who('m-1') }),
      expect.objectContaining({ requestId: 'req-revoke', route: revokeRoute, exportId, status: 400, code: 'VALIDATION_FAILED', ...who('m-1') }),
    ]);
    // The served request's line has the same fields.
    expect(logged('request handled')).toEqual([expect.objectContaining({ requestId: 'req-create-contacts', route: 'POST /v1/exports', status: 202, ...who('m-1') })]);
    const text = logs.join('\n');
    for (const secretText of [auditor, bearer.slice(7), PASSWORD, 'Link posted in the wrong room', 'Kim', 'Mozilla', '203.0.113.7']) expect(text).not.toContain(secretText);
  });

  it('an export id the service could not have made is left out of the line (its route stays), however long; a download names no token', async () => {
    const bearer = await token();
    const junk = `${'a'.repeat(5_000)}<script>`;
    expect((await call(loadEvent('api-cancel-export.json', { TOKEN: bearer, EXPORT_ID: encodeURIComponent(junk) }))).status).toBe(404);
    const [line] = logged('request refused');
    expect(line).toMatchObject({ route: cancelRoute, status: 404, managerId: 'm-1', channelId: 'ch-1' });
    expect(line).not.toHaveProperty('exportId');
    expect(logs.join('\n')).not.toContain('aaaaaaaaaaaaaaaa');
    expect(logs.join('\n').length).toBeLessThan(2_000);
    const gone = await call(loadEvent('api-download.json', { DOWNLOAD_TOKEN: 'tok-unknown-0123456789' }));
    expect(gone.status).toBeGreaterThanOrEqual(400);
    expect(logged('request refused').at(-1)).toMatchObject({ route: 'GET /v1/downloads/{token}', status: gone.status });
    expect(logs.join('\n')).not.toContain('tok-unknown');
  });

  it('a token that does not verify names nobody: a 401 line has the route and no manager or channel, though the token claimed them', async () => {
    const forged = await signDevToken(
      { channelId: 'ch-evil', managerId: 'm-evil', name: 'Mallory', permissions: ['export:download'], expiresIn: '1h' },
      { secret: 'another-secret-another-secret-another-1', now: fakes.clock.now() },
    );
    const res = await call(loadEvent('api-create-export-contacts.json', { TOKEN: forged, PASSWORD }));
    expect(res.status).toBe(401);
    const [line] = logged('request refused');
    expect(line).toMatchObject({ route: 'POST /v1/exports', status: 401 });
    expect(line).not.toHaveProperty('managerId');
    expect(line).not.toHaveProperty('channelId');
    expect(logs.join('\n')).not.toContain('evil');
    expect(logs.join('\n')).not.toContain(forged);
  });

  it('a request that fails (5xx) is logged with the same fields and the error', async () => {
    fakes.store.createJob = async () => {
      throw new Error('store down');
    };
    expect((await create()).status).toBe(500);
    expect(logged('request failed')).toEqual([
      expect.objectContaining({ requestId: 'req-create-contacts', route: 'POST /v1/exports', status: 500, managerId: 'm-1', channelId: 'ch-1', error: expect.objectContaining({ message: 'store down' }) }),
    ]);
  });
});
