import { PutCommand, DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cooldownKey } from '../../shared/domain';
import { signDevToken } from '../../shared/auth';
import { startLocalStack, type LocalStack } from '../../infra/local/stack';
import { downloadThroughLink, http, inboxMessage, managerToken, waitForExport, waitUntil } from './support';

/** Cooldown, the 7-day link with an injected clock, audit, cancel and authorization, over HTTP. */
const CHANNEL = 'e2e-service';
const OTHER_CHANNEL = 'e2e-elsewhere';
let stack: LocalStack;
/**
 * Imported after the stack has set the handlers' environment (as on Lambda, modules read it at
 * load): a static import would create the loggers before POWERTOOLS_LOG_LEVEL is set.
 */
let setApiClock: (clock: { now(): Date } | undefined) => void = () => undefined;

beforeAll(async () => {
  stack = await startLocalStack({
    port: 0,
    seed: { channelId: CHANNEL, users: 120, cases: 200, seed: 5 },
    env: { POWERTOOLS_LOG_LEVEL: 'ERROR', POWERTOOLS_METRICS_DISABLED: 'true' },
    queues: { chunk: { visibilityTimeout: 30 }, finalize: { visibilityTimeout: 20 }, notify: { visibilityTimeout: 5 } },
  });
  ({ setApiClock } = await import('../../functions/api/handler'));
});
afterAll(async () => {
  setApiClock(undefined);
  await stack?.stop();
});
afterEach(() => setApiClock(undefined));

const contacts = (password = 'Pw!contacts1') => ({ kind: 'contacts', scope: 'all', reason: '감사 대응', password });

describe('cooldown (C8)', () => {
  it('20 concurrent requests by one manager: exactly one 202, the rest 429 with Retry-After; another manager is not blocked', async () => {
    const token = await managerToken(CHANNEL, 'racer');
    const results = await Promise.all(Array.from({ length: 20 }, () => http(stack, 'POST', '/v1/exports', { token, body: contacts() })));
    const statuses = results.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 202)).toHaveLength(1);
    expect(statuses.filter((s) => s === 429)).toHaveLength(19);
    for (const refused of results.filter((r) => r.status === 429)) {
      const retryAfter = Number(refused.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThan(1700);
      expect(retryAfter).toBeLessThanOrEqual(1800);
      expect(refused.body.error).toMatchObject({ code: 'COOLDOWN_ACTIVE', rule: 'C8' });
    }
    const other = await http(stack, 'POST', '/v1/exports', { token: await managerToken(CHANNEL, 'bystander'), body: contacts() });
    expect(other.status).toBe(202);
    // Same manager, the other kind: a separate cooldown.
    const cases = await http(stack, 'POST', '/v1/exports', {
      token,
      body: { kind: 'cases', from: '2025-07-01', to: '2025-07-31', reason: 'kpi', password: 'Cases123' },
    });
    expect(cases.status).toBe(202);

    // GET /v1/exports: the caller's own exports, newest first, one page at a time.
    const page1 = await http(stack, 'GET', '/v1/exports?limit=1', { token });
    expect(page1.status).toBe(200);
    expect(page1.body.items.map((i: { exportId: string }) => i.exportId)).toEqual([cases.body.exportId]);
    const page2 = await http(stack, 'GET', `/v1/exports?limit=1&cursor=${encodeURIComponent(page1.body.cursor as string)}`, { token });
    const winner = results.find((r) => r.status === 202);
    expect(page2.body.items.map((i: { exportId: string }) => i.exportId)).toEqual([winner?.body.exportId]);
    const tampered = await http(stack, 'GET', `/v1/exports?cursor=${encodeURIComponent(`${page1.body.cursor as string}x`)}`, { token });
    expect(tampered.status).toBe(400);
  });

  it('an expired cooldown item that TTL has not deleted yet does not block', async () => {
    const ddb = DynamoDBDocumentClient.from(stack.clients.ddb);
    const past = Date.now() - 60_000;
    await ddb.send(
      new PutCommand({
        TableName: stack.tables.cooldowns,
        Item: { pk: cooldownKey(CHANNEL, 'returning', 'contacts'), holder: '0000000000000000', acquiredAt: new Date(past - 1_800_000).toISOString(), expiresAt: past, ttl: Math.floor(past / 1000) },
      }),
    );
    const res = await http(stack, 'POST', '/v1/exports', { token: await managerToken(CHANNEL, 'returning'), body: contacts() });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
  });

  it('a hold left by a request that crashed before creating its export does not block for 30 minutes', async () => {
    const ddb = DynamoDBDocumentClient.from(stack.clients.ddb);
    const now = Date.now();
    const item = (manager: string, acquiredAgoMs: number) => ({
      pk: cooldownKey(CHANNEL, manager, 'contacts'),
      holder: 'ffffffffffff0000000000000000',
      acquiredAt: new Date(now - acquiredAgoMs).toISOString(),
      expiresAt: now - acquiredAgoMs + 1_800_000,
      ttl: Math.floor((now - acquiredAgoMs + 1_800_000) / 1000),
    });
    await ddb.send(new PutCommand({ TableName: stack.tables.cooldowns, Item: item('crashed', 10 * 60_000) }));
    const res = await http(stack, 'POST', '/v1/exports', { token: await managerToken(CHANNEL, 'crashed'), body: contacts() });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    // A hold only seconds old may belong to a request still running: it is respected.
    await ddb.send(new PutCommand({ TableName: stack.tables.cooldowns, Item: item('in-flight', 5_000) }));
    const young = await http(stack, 'POST', '/v1/exports', { token: await managerToken(CHANNEL, 'in-flight'), body: contacts() });
    expect(young.status).toBe(429);
  });

  it('Idempotency-Key: a retry gets the same export without a cooldown hit; another body under the key is 422', async () => {
    const token = await managerToken(CHANNEL, 'retrier');
    const headers = { 'Idempotency-Key': 'retry-key-0001' };
    const first = await http(stack, 'POST', '/v1/exports', { token, body: contacts(), headers });
    const second = await http(stack, 'POST', '/v1/exports', { token, body: contacts(), headers });
    expect(first.status).toBe(202);
    expect(second.status).toBe(202);
    expect(second.body.exportId).toBe(first.body.exportId);
    const changed = await http(stack, 'POST', '/v1/exports', { token, body: contacts('Pw!different2'), headers });
    expect(changed.status).toBe(422);
  });
});

describe('download link (C9) and audit trail', () => {
  it('works before 7 days and answers 410 after (injected clock); every use is in the audit trail', async () => {
    const token = await managerToken(CHANNEL, 'linker');
    const created = await http(stack, 'POST', '/v1/exports', { token, body: contacts('Link!Pw99') });
    const exportId = created.body.exportId as string;
    const done = await waitForExport(stack, token, exportId);
    expect(done.status).toBe('completed');
    const message = await inboxMessage(stack, exportId);
    const link = message.body.link as string;
    const completedAt = Date.parse(done.completedAt as string);
    expect(Date.parse(done.expiresAt as string) - completedAt).toBe(7 * 86_400_000);

    const first = await downloadThroughLink(stack, link, { 'User-Agent': 'e2e-browser/1.0' });
    expect(first.redirect.headers.get('cache-control')).toBe('no-store');
    expect(first.redirect.headers.get('location')).toMatch(/X-Amz-Expires=60\b/);
    setApiClock({ now: () => new Date(completedAt + 7 * 86_400_000 - 60_000) });
    const lastMinute = await http(stack, 'GET', new URL(link).pathname, { token: await managerToken(CHANNEL, 'linker', ['export:download'], new Date(completedAt + 7 * 86_400_000 - 60_000)) });
    expect(lastMinute.status).toBe(302);
    setApiClock({ now: () => new Date(completedAt + 7 * 86_400_000 + 1_000) });
    const late = await http(stack, 'GET', new URL(link).pathname);
    expect(late.status).toBe(410);
    expect(late.body.error.code).toBe('LINK_GONE');
    setApiClock(undefined);

    const auditor = await managerToken(CHANNEL, 'auditor', ['audit:read']);
    const trail = await http(stack, 'GET', `/v1/audit?managerId=linker&kind=contacts`, { token: auditor });
    expect(trail.status).toBe(200);
    const entry = (trail.body.items as { exportId: string }[]).find((e) => e.exportId === exportId) as any;
    expect(entry).toMatchObject({
      requestedBy: { managerId: 'linker' },
      kind: 'contacts',
      scope: 'all',
      reason: '감사 대응',
      status: 'completed',
      rowCount: done.rowCount,
      sha256: done.sha256,
    });
    expect(entry.downloads).toEqual([
      expect.objectContaining({ outcome: 'redirected', userAgent: 'e2e-browser/1.0', ip: '127.0.0.1' }),
      expect.objectContaining({ outcome: 'redirected', managerId: 'linker' }),
      expect.objectContaining({ outcome: 'gone' }),
    ]);
    expect(entry.downloads[0].managerId).toBeUndefined();
    expect(JSON.stringify(trail.body)).not.toContain('Link!Pw99');
    // The requester sees their own export; GET /v1/audit is refused without audit:read.
    expect((await http(stack, 'GET', '/v1/audit', { token })).status).toBe(403);
  });

  it('cancel stops the work: no file, no link; a second cancel is 200 (idempotent)', async () => {
    const token = await managerToken(CHANNEL, 'canceler');
    const created = await http(stack, 'POST', '/v1/exports', {
      token,
      body: { kind: 'cases', from: '2025-06-26', to: '2025-12-26', reason: 'oops', password: 'Cancel123' },
    });
    expect(created.status).toBe(202);
    const canceled = await http(stack, 'POST', `/v1/exports/${created.body.exportId}/cancel`, { token });
    expect(canceled.status).toBe(200);
    expect(canceled.body.status).toBe('canceled');
    const again = await http(stack, 'POST', `/v1/exports/${created.body.exportId}/cancel`, { token });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ exportId: created.body.exportId, status: 'canceled' });
    // Let the queued chunks drain; the export stays canceled and never gets a file or link.
    await waitUntil(async () => (stack.deliveries.chunk.some((r) => r.body.includes(created.body.exportId as string)) ? true : undefined), 'chunk deliveries');
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const after = await http(stack, 'GET', `/v1/exports/${created.body.exportId}`, { token });
    expect(after.body.status).toBe('canceled');
    expect(after.body.link).toBeUndefined();
    expect(after.body.fileName).toBeUndefined();
  });
});

describe('authorization over HTTP', () => {
  it('401 without a token, with a bad signature or expired; 403 without the permission; 404 for another channel’s export', async () => {
    const owner = await managerToken(CHANNEL, 'owner');
    const created = await http(stack, 'POST', '/v1/exports', { token: owner, body: contacts() });
    expect(created.status).toBe(202);
    const path = `/v1/exports/${created.body.exportId}`;

    const none = await http(stack, 'GET', path);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer .*error="invalid_token"/);
    const forged = await signDevToken(
      { channelId: CHANNEL, managerId: 'owner', name: 'x', permissions: ['export:download'] },
      { secret: 'not-the-secret-not-the-secret-not-the-secret' },
    );
    expect((await http(stack, 'GET', path, { token: forged })).status).toBe(401);
    const expired = await managerToken(CHANNEL, 'owner', ['export:download'], new Date(Date.now() - 3 * 3_600_000), '1h');
    expect((await http(stack, 'GET', path, { token: expired })).status).toBe(401);
    const noPermission = await http(stack, 'POST', '/v1/exports', { token: await managerToken(CHANNEL, 'viewer', []), body: contacts() });
    expect(noPermission.status).toBe(403);
    expect(noPermission.body.error.rule).toBe('S5/C10');

    const stranger = await managerToken(OTHER_CHANNEL, 'owner', ['export:download', 'audit:read']);
    const cross = await http(stack, 'GET', path, { token: stranger });
    expect(cross.status).toBe(404);
    expect((await http(stack, 'POST', `${path}/cancel`, { token: stranger })).status).toBe(404);
    const strangerTrail = await http(stack, 'GET', '/v1/audit', { token: stranger });
    expect(strangerTrail.status).toBe(200);
    expect(JSON.stringify(strangerTrail.body)).not.toContain(created.body.exportId as string);
    expect((await http(stack, 'GET', path, { token: owner })).status).toBe(200);
  });

  it('answers malformed JSON with 400 and never leaks internals', async () => {
    const token = await managerToken(CHANNEL, 'sloppy');
    const res = await http(stack, 'POST', '/v1/exports', { token, body: '{"kind":"contacts", "password": "Abc123!!"' });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('MALFORMED_JSON');
    expect(JSON.stringify(res.body)).not.toContain('Abc123!!');
  });
});
