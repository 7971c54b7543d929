import { createHash } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import type { APIGatewayProxyEvent } from 'aws-lambda';
import type { ExportJob } from '../../shared/app/export-job';
import { auditSheetsOf } from '../../shared/app/finalize-export';
import { terminalAuditEvent } from '../../shared/app/pipeline-steps';
import { MAX_AUDIT_COLUMNS_BYTES } from '../../shared/ports/audit-log';
import { apiCallerFor, completeJobInStore, loadEvent, type ApiCaller } from './support/api-harness';
import { createFakes, type Fakes } from './support/fakes';

/**
 * What an auditor must be able to tell from the trail alone (the job is kept 400 days, the trail
 * for good): from where each act through the API came (request, cancel, revoke), why a cancel
 * was made when its requester said, every sheet's rows and columns, when the link stops working,
 * and why a refused use of the link was refused. Through the API handler on the in-memory fakes.
 */

const secret = 'audit-facts-test-secret-audit-facts';
const PASSWORD = 'Zq7Secr3tPw';
const ORIGIN = { ip: '203.0.113.7', userAgent: 'Mozilla/5.0 (export-console)' };

let fakes: Fakes;
let call: ApiCaller['call'];
let token: ApiCaller['token'];

beforeEach(() => {
  fakes = createFakes();
  ({ call, token } = apiCallerFor(fakes, secret));
});

const auditor = () => token({ managerId: 'm-9', permissions: ['audit:read'] });
const requestContacts = async () => call(loadEvent('api-create-export-contacts.json', { TOKEN: await token(), PASSWORD }));
async function auditEntry(exportId: string): Promise<Record<string, any> | undefined> {
  const trail = await call(loadEvent('api-list-audit.json', { TOKEN: await auditor() }));
  expect(trail.status).toBe(200);
  return (trail.body.items as Record<string, any>[]).find((e) => e.exportId === exportId);
}

function cancelEvent(exportId: string, bearer: string, body?: { text: string; contentType?: string }): APIGatewayProxyEvent {
  const event = loadEvent('api-cancel-export.json', { TOKEN: bearer, EXPORT_ID: exportId });
  if (body) {
    event.body = body.text;
    if (body.contentType) event.headers = { ...event.headers, 'Content-Type': body.contentType };
  }
  return event;
}
const cancel = async (exportId: string, body?: { text: string; contentType?: string }) => call(cancelEvent(exportId, await token(), body));
const json = (value: unknown) => ({ text: JSON.stringify(value), contentType: 'application/json' });

describe('where each act came from', () => {
  it('the request records the caller\'s address and user agent, shown beside the requester', async () => {
    const created = await requestContacts();
    expect(created.status).toBe(202);
    const entry = await auditEntry(created.body.exportId as string);
    expect(entry?.requestedBy).toEqual({ managerId: 'm-1', name: 'Kim', ...ORIGIN });
  });

  it('a user agent is cut to 512 characters and cleaned of controls and bidi overrides before it is stored', async () => {
    const event = loadEvent('api-create-export-contacts.json', { TOKEN: await token(), PASSWORD });
    event.headers = { ...event.headers, 'User-Agent': `Evil\u202Egnp.exe ${'x'.repeat(600)}` };
    const created = await call(event);
    expect(created.status).toBe(202);
    const requested = fakes.audit.events.find((e) => e.type === 'requested');
    expect(requested).toMatchObject({ ip: ORIGIN.ip });
    const stored = (requested as { userAgent?: string }).userAgent ?? '';
    expect(stored.startsWith('Evilgnp.exe x')).toBe(true);
    expect(stored).not.toMatch(/\u202E/);
    expect(stored.length).toBeLessThanOrEqual(512);
  });

  it('a cancel with a reason records it, with who and from where; a repeated cancel keeps the first one\'s', async () => {
    const exportId = (await requestContacts()).body.exportId as string;
    const first = await cancel(exportId, json({ reason: 'Wrong date range' }));
    expect(first.status).toBe(200);
    expect((fakes.store.jobs.get(exportId) as ExportJob).cancelReason).toBe('Wrong date range');
    // An idempotent repeat (another reason) changes nothing recorded.
    expect((await cancel(exportId, json({ reason: 'Something else' }))).status).toBe(200);
    const entry = await auditEntry(exportId);
    expect(entry).toMatchObject({ status: 'canceled', cancelReason: 'Wrong date range', canceledBy: { managerId: 'm-1', ...ORIGIN } });
    expect(fakes.audit.events.filter((e) => e.type === 'canceled')).toEqual([
      expect.objectContaining({ type: 'canceled', managerId: 'm-1', reason: 'Wrong date range', ...ORIGIN }),
    ]);
  });

  it('a cancel without a body still works and records no reason', async () => {
    const exportId = (await requestContacts()).body.exportId as string;
    expect((await cancel(exportId)).status).toBe(200);
    const entry = await auditEntry(exportId);
    expect(entry).toMatchObject({ status: 'canceled', canceledBy: { managerId: 'm-1', ...ORIGIN } });
    expect(entry).not.toHaveProperty('cancelReason');
  });

  it('a cancel body is checked as a revoke body is: the field and the rule named, nothing changed', async () => {
    const exportId = (await requestContacts()).body.exportId as string;
    const cases: [{ text: string; contentType?: string }, number, Record<string, unknown>][] = [
      [json({ reason: '   ' }), 400, { code: 'VALIDATION_FAILED', field: 'reason' }],
      [json({ reason: 'x'.repeat(501) }), 400, { code: 'VALIDATION_FAILED', field: 'reason', rule: 'max-length' }],
      [json({ reson: 'typo' }), 400, { code: 'VALIDATION_FAILED', rule: 'unknown-field' }],
      [json({ reason: 'a\u202Eb' }), 400, { code: 'VALIDATION_FAILED', field: 'reason', rule: 'display-control' }],
      [{ text: '{"reason":', contentType: 'application/json' }, 400, { code: 'MALFORMED_JSON' }],
      [{ text: 'because', contentType: 'text/plain' }, 415, {}],
    ];
    for (const [body, status, error] of cases) {
      const res = await cancel(exportId, body);
      expect(res.status, body.text).toBe(status);
      expect(res.body.error, body.text).toMatchObject(error);
    }
    expect((fakes.store.jobs.get(exportId) as ExportJob).status).toBe('queued');
    expect(fakes.audit.events.filter((e) => e.type === 'canceled')).toEqual([]);
  });

  it('a revoke records from where it came, beside who and why', async () => {
    const exportId = (await requestContacts()).body.exportId as string;
    completeJobInStore(fakes, exportId);
    const event = loadEvent('api-revoke-export.json', { TOKEN: await auditor(), EXPORT_ID: exportId, REASON: 'Leaked' });
    event.body = JSON.stringify({ reason: 'Leaked' });
    expect((await call(event)).status).toBe(200);
    expect((fakes.store.jobs.get(exportId) as ExportJob).revokedFrom).toEqual(ORIGIN);
    const entry = await auditEntry(exportId);
    expect(entry).toMatchObject({ status: 'revoked', revokedBy: { managerId: 'm-9', ...ORIGIN }, revokeReason: 'Leaked' });
    // The export view (the requester's) shows who revoked, not from where.
    const view = await call(loadEvent('api-get-export.json', { TOKEN: await token(), EXPORT_ID: exportId }));
    expect(view.body.revokedBy).toEqual({ managerId: 'm-9' });
  });
});

describe('why a use of the link was refused', () => {
  const download = (exportId: string) => call(loadEvent('api-download.json', { DOWNLOAD_TOKEN: `tok-${exportId}-0123456789` }));
  const goneCauses = (exportId: string) =>
    fakes.audit.events.filter((e) => e.exportId === exportId && e.type === 'downloaded').map((e) => (e as { goneBecause?: string; outcome?: string }).goneBecause ?? (e as { outcome?: string }).outcome);

  it('a lapsed link is `expired`, a withdrawn one `revoked`, and a served one has no cause', async () => {
    const lapsed = (await requestContacts()).body.exportId as string;
    completeJobInStore(fakes, lapsed);
    expect((await download(lapsed)).status).toBe(302);
    fakes.clock.advance(8 * 86_400_000);
    expect((await download(lapsed)).status).toBe(410);
    expect(goneCauses(lapsed)).toEqual(['redirected', 'expired']);

    const withdrawn = (await call(loadEvent('api-create-export-cases.json', { TOKEN: await token(), PASSWORD }))).body.exportId as string;
    completeJobInStore(fakes, withdrawn, { expiresAt: '2026-04-01T00:00:00.000Z', status: 'revoked' });
    expect((await download(withdrawn)).status).toBe(410);
    expect(goneCauses(withdrawn)).toEqual(['revoked']);
    // As the auditor's listing shows it (the sample listing's window ends before the clock's jump).
    const entry = (await fakes.audit.query({ channelId: 'ch-1', limit: 10 })).items.find((e) => e.exportId === withdrawn);
    expect(entry?.downloads).toEqual([expect.objectContaining({ outcome: 'gone', goneBecause: 'revoked', ip: ORIGIN.ip })]);
  });
});

describe('the completed event: every sheet, and the link window', () => {
  const job = (over: Partial<ExportJob> = {}) =>
    ({
      exportId: 'e1',
      channelId: 'ch-1',
      status: 'completed',
      rowCount: 2,
      sha256: 'ab'.repeat(32),
      completedAt: '2026-03-01T10:05:00.000Z',
      expiresAt: '2026-03-08T10:05:00.000Z',
      ...over,
    }) as ExportJob & { status: 'completed' };

  it('auditSheetsOf counts each sheet\'s rows over its parts and lists its header row with its digest', () => {
    const sheets = auditSheetsOf([
      { name: 'UserChatCase data', columns: [{ key: 'id', header: 'id', type: 'string' as const }, { key: 'createdAt', header: 'Created at', type: 'date' as const }], parts: [{ rowCount: 3 }, { rowCount: 4 }] as never },
      { name: 'User data', columns: [{ key: 'id', header: 'id', type: 'string' as const }], parts: [] },
    ]);
    expect(sheets).toEqual([
      { name: 'UserChatCase data', rowCount: 7, columnCount: 2, columns: ['id', 'Created at'], columnsSha256: createHash('sha256').update('["id","Created at"]').digest('hex') },
      { name: 'User data', rowCount: 0, columnCount: 1, columns: ['id'], columnsSha256: createHash('sha256').update('["id"]').digest('hex') },
    ]);
  });

  it('lists too long to fit an audit item keep their counts and digests, not their keys', () => {
    const keys = Array.from({ length: 2000 }, (_, i) => `profile.${'k'.repeat(30)}${i}`);
    expect(Buffer.byteLength(JSON.stringify(keys))).toBeGreaterThan(MAX_AUDIT_COLUMNS_BYTES);
    const [sheet] = auditSheetsOf([{ name: 'User data', columns: keys.map((key) => ({ key: `k${key.length}`, header: key, type: 'string' as const })), parts: [{ rowCount: 1 }] as never }]);
    expect(sheet).toEqual({ name: 'User data', rowCount: 1, columnCount: 2000, columnsSha256: createHash('sha256').update(JSON.stringify(keys)).digest('hex') });
  });

  it('the event carries the sheets and the link\'s end from the job, and the audit entry shows them', async () => {
    const fileSheets = auditSheetsOf([{ name: 'User data', columns: [{ key: 'id', header: 'id', type: 'string' as const }], parts: [{ rowCount: 2 }] as never }]);
    const event = terminalAuditEvent(job({ fileSheets }), fakes.clock);
    expect(event).toMatchObject({ type: 'completed', rowCount: 2, sheets: fileSheets, linkExpiresAt: '2026-03-08T10:05:00.000Z' });
    // A job finished before these were recorded still gets its event, without them.
    const old = terminalAuditEvent(job(), fakes.clock);
    expect(old).not.toHaveProperty('sheets');

    const exportId = (await requestContacts()).body.exportId as string;
    completeJobInStore(fakes, exportId, { fileSheets });
    await fakes.audit.append(terminalAuditEvent({ ...(fakes.store.jobs.get(exportId) as ExportJob), status: 'completed' }, fakes.clock) as never);
    expect(await auditEntry(exportId)).toMatchObject({ status: 'completed', sheets: fileSheets, linkExpiresAt: '2026-03-08T10:00:00.000Z' });
  });
});
