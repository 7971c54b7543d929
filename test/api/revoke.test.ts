import { beforeEach, describe, expect, it } from 'vitest';
import type { APIGatewayProxyEvent } from 'aws-lambda';
import type { ExportJob } from '../../shared/app/export-job';
import { apiCallerFor, completeJobInStore, loadEvent, type ApiCaller } from './support/api-harness';
import { createFakes, type Fakes } from './support/fakes';

/**
 * POST /v1/exports/{id}/revoke: a completed export's download link, once leaked, can be withdrawn
 * by its requester or an auditor of the channel without rotating the link secret (which kills
 * every link). The handler runs on the API's in-memory fakes, as handler.test.ts does.
 */

const secret = 'revoke-test-secret-revoke-test-secret';
const PASSWORD = 'Zq7Secr3tPw';
const REASON = 'Link posted in the wrong room';

let fakes: Fakes;
let call: ApiCaller['call'];
let token: ApiCaller['token'];

beforeEach(() => {
  fakes = createFakes();
  ({ call, token } = apiCallerFor(fakes, secret));
});

const auditor = () => token({ managerId: 'm-9', permissions: ['audit:read'] });

/** A contacts export of m-1, completed with a file and a link window to 2026-03-08. */
async function completedExport(extra: Partial<ExportJob> = {}): Promise<string> {
  const created = await call(loadEvent('api-create-export-contacts.json', { TOKEN: await token(), PASSWORD }));
  expect(created.status).toBe(202);
  const exportId = created.body.exportId as string;
  completeJobInStore(fakes, exportId, extra);
  const job = fakes.store.jobs.get(exportId) as ExportJob;
  // The finalizer's audit event, as the pipeline appends it.
  await fakes.audit.append({
    type: 'completed',
    exportId,
    channelId: 'ch-1',
    at: job.completedAt as string,
    rowCount: job.rowCount as number,
    sha256: job.sha256 as string,
    fileSize: job.fileSize as number,
    fileName: job.fileName as string,
  });
  return exportId;
}

function revokeEvent(exportId: string, bearer: string, body: string | null = JSON.stringify({ reason: REASON })): APIGatewayProxyEvent {
  const event = loadEvent('api-revoke-export.json', { TOKEN: bearer, EXPORT_ID: exportId, REASON });
  event.body = body;
  return event;
}

const revoke = async (exportId: string, bearer?: string, body?: string | null) => call(revokeEvent(exportId, bearer ?? (await token()), body));
const download = (exportId: string, method: 'GET' | 'HEAD' = 'GET') =>
  call(loadEvent(method === 'GET' ? 'api-download.json' : 'api-download-head.json', { DOWNLOAD_TOKEN: `tok-${exportId}-0123456789` }));
const revokedEvents = (exportId: string) => fakes.audit.events.filter((e) => e.exportId === exportId && e.type === 'revoked');
const auditEntry = async (exportId: string) => {
  const trail = await call(loadEvent('api-list-audit.json', { TOKEN: await auditor() }));
  expect(trail.status).toBe(200);
  return (trail.body.items as Record<string, any>[]).find((e) => e.exportId === exportId);
};

describe('POST /v1/exports/{id}/revoke', () => {
  it('the requester revokes: 200 revoked without a link, the link answers 410 (GET audited as gone, HEAD too), the file is deleted, the trail says who and why', async () => {
    const exportId = await completedExport();
    expect((await download(exportId)).status).toBe(302);

    const res = await revoke(exportId);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      exportId,
      status: 'revoked',
      revokedAt: '2026-03-01T10:00:00.000Z',
      revokedBy: { managerId: 'm-1' },
      revokeReason: REASON,
      // The file's facts stay: which file went out before the link was withdrawn.
      sha256: 'ab'.repeat(32),
      fileSize: 4096,
      rowCount: 12,
      progress: { percent: 100 },
    });
    expect(res.body.link).toBeUndefined();
    expect(res.body.links.cancel).toBeUndefined();
    expect(fakes.store.jobs.get(exportId)).toMatchObject({ status: 'revoked', revokedAt: '2026-03-01T10:00:00.000Z', revokedBy: 'm-1', revokeReason: REASON });

    // The views: no link for the requester any more, in the read and in the list.
    const read = await call(loadEvent('api-get-export.json', { TOKEN: await token(), EXPORT_ID: exportId }));
    expect(read.body).toMatchObject({ status: 'revoked', revokedBy: { managerId: 'm-1' } });
    expect(read.body.link).toBeUndefined();
    const listed = await call(loadEvent('api-list-exports.json', { TOKEN: await token() }));
    const item = (listed.body.items as Record<string, any>[]).find((i) => i.exportId === exportId);
    expect(item).toMatchObject({ status: 'revoked' });
    expect(item?.link).toBeUndefined();

    // The link: 410 for GET (audited as gone) and HEAD (not audited).
    const gone = await download(exportId);
    expect(gone.status).toBe(410);
    expect(gone.body.error).toMatchObject({ code: 'LINK_GONE', field: 'token', rule: 'C9' });
    expect(gone.body.error.message).toMatch(/revoked/);
    expect((await download(exportId, 'HEAD')).status).toBe(410);
    const uses = fakes.audit.events.filter((e) => e.exportId === exportId && e.type === 'downloaded');
    expect(uses.map((e) => (e.type === 'downloaded' ? e.outcome : ''))).toEqual(['redirected', 'gone']);

    // The file under the export's prefix was deleted (the dispatcher's discardFile), and parts/
    // swept too (a finalizer killed after its completion would not, once it finds it revoked).
    expect(fakes.dispatcher.discardedFiles).toEqual([exportId]);
    expect(fakes.dispatcher.discarded).toEqual([exportId]);
    // And the follow-up message went out first, which finishes all this if the request dies.
    expect(fakes.dispatcher.followUpsOf('revoke')).toEqual([exportId]);

    // The trail: revoked, with when, who and why, and the file's facts.
    expect(revokedEvents(exportId)).toEqual([{ type: 'revoked', exportId, channelId: 'ch-1', at: '2026-03-01T10:00:00.000Z', managerId: 'm-1', reason: REASON, ip: '203.0.113.7', userAgent: 'Mozilla/5.0 (export-console)' }]);
    expect(await auditEntry(exportId)).toMatchObject({
      status: 'revoked',
      revokedAt: '2026-03-01T10:00:00.000Z',
      revokedBy: { managerId: 'm-1' },
      revokeReason: REASON,
      sha256: 'ab'.repeat(32),
      rowCount: 12,
      fileSize: 4096,
      completedAt: '2026-03-01T10:05:00.000Z',
      downloadCount: 2,
    });
  });

  it('the requester needs no permission beyond a valid token of the channel (export:download withdrawn meanwhile)', async () => {
    const exportId = await completedExport();
    const res = await revoke(exportId, await token({ permissions: [] }));
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('revoked');
  });

  it("an auditor of the channel revokes another manager's export; the requester then sees who and why", async () => {
    const exportId = await completedExport();
    const res = await revoke(exportId, await auditor());
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'revoked', revokedBy: { managerId: 'm-9' }, revokeReason: REASON });
    const read = await call(loadEvent('api-get-export.json', { TOKEN: await token(), EXPORT_ID: exportId }));
    expect(read.body).toMatchObject({ status: 'revoked', revokedBy: { managerId: 'm-9' } });
    expect(read.body.link).toBeUndefined();
    expect(revokedEvents(exportId)).toMatchObject([{ managerId: 'm-9', reason: REASON }]);
    expect(await auditEntry(exportId)).toMatchObject({ status: 'revoked', revokedBy: { managerId: 'm-9' }, requestedBy: { managerId: 'm-1' } });
  });

  it('a colleague without audit:read, and anyone of another channel (auditor or not), get the 404 of a read; nothing changes', async () => {
    const exportId = await completedExport();
    for (const bearer of [
      await token({ managerId: 'm-2' }),
      await token({ managerId: 'm-2', permissions: [] }),
      await token({ channelId: 'ch-2', permissions: ['audit:read'] } as never),
      await token({ channelId: 'ch-2' } as never),
    ]) {
      const res = await revoke(exportId, bearer);
      expect(res.status).toBe(404);
      expect(res.body.error).toMatchObject({ code: 'EXPORT_NOT_FOUND', field: 'exportId' });
    }
    // A malformed or unknown id: the same 404.
    expect((await revoke('not-an-id')).status).toBe(404);
    expect((await revoke('0123456789abcdef')).status).toBe(404);
    expect(fakes.store.jobs.get(exportId)?.status).toBe('completed');
    expect(fakes.dispatcher.discardedFiles).toEqual([]);
    expect(fakes.dispatcher.discarded).toEqual([]);
    expect(fakes.dispatcher.followUpsOf('revoke')).toEqual([]);
    expect(revokedEvents(exportId)).toEqual([]);
  });

  it('409 EXPORT_NOT_REVOCABLE: still running (cancel it instead), or failed, canceled or expired (no link to revoke)', async () => {
    const created = await call(loadEvent('api-create-export-contacts.json', { TOKEN: await token(), PASSWORD }));
    const exportId = created.body.exportId as string;
    const job = fakes.store.jobs.get(exportId) as ExportJob;
    for (const status of ['queued', 'running', 'finalizing'] as const) {
      job.status = status;
      const res = await revoke(exportId);
      expect(res.status, status).toBe(409);
      expect(res.body.error).toMatchObject({ code: 'EXPORT_NOT_REVOCABLE', field: 'exportId', rule: 'not-finished' });
      expect(res.body.error.message).toMatch(/cancel it instead/);
    }
    for (const status of ['failed', 'canceled'] as const) {
      job.status = status;
      const res = await revoke(exportId);
      expect(res.status, status).toBe(409);
      expect(res.body.error).toMatchObject({ code: 'EXPORT_NOT_REVOCABLE', rule: 'no-link' });
      expect(res.body.error.message).toMatch(new RegExp(`${status}: there is no link to revoke`));
    }
    // Completed, but past its link window: shown as expired, and there is no link to revoke.
    completeJobInStore(fakes, exportId);
    fakes.clock.current = new Date('2026-03-08T10:00:00.000Z');
    const lapsed = await revoke(exportId, await token());
    expect(lapsed.status).toBe(409);
    expect(lapsed.body.error).toMatchObject({ code: 'EXPORT_NOT_REVOCABLE', rule: 'no-link' });
    expect(lapsed.body.error.message).toMatch(/expired: there is no link to revoke/);
    expect(job.status).toBe('completed');
    expect(fakes.dispatcher.discardedFiles).toEqual([]);
    expect(revokedEvents(exportId)).toEqual([]);
  });

  it('revoking twice answers 200 both times with the first revocation, and records one audit event', async () => {
    const exportId = await completedExport();
    expect((await revoke(exportId)).status).toBe(200);
    fakes.clock.advance(60_000);
    const again = await revoke(exportId, await auditor(), JSON.stringify({ reason: 'Second auditor, same leak' }));
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ status: 'revoked', revokedAt: '2026-03-01T10:00:00.000Z', revokedBy: { managerId: 'm-1' }, revokeReason: REASON });
    expect(revokedEvents(exportId)).toHaveLength(1);
    expect(fakes.audit.events.filter((e) => e.exportId === exportId && e.type === 'completed')).toHaveLength(1);
    // A cancel of a revoked export is refused: it is over.
    const cancel = await call(loadEvent('api-cancel-export.json', { TOKEN: await token(), EXPORT_ID: exportId }));
    expect(cancel.status).toBe(409);
    expect(cancel.body.error).toMatchObject({ code: 'EXPORT_TERMINAL', field: 'exportId', rule: 'in-progress' });
  });

  it('a revoked export is never shown as expired, also after its link window has passed', async () => {
    const exportId = await completedExport();
    expect((await revoke(exportId)).status).toBe(200);
    fakes.clock.current = new Date('2026-03-09T00:00:00.000Z');
    const read = await call(loadEvent('api-get-export.json', { TOKEN: await token(), EXPORT_ID: exportId }));
    expect(read.body).toMatchObject({ status: 'revoked', revokedAt: '2026-03-01T10:00:00.000Z' });
  });

  it('a bad body is refused naming `reason` (or the body) and the rule, before anything is read or changed', async () => {
    const exportId = await completedExport();
    const cases: [string | null, number, Record<string, unknown>][] = [
      [JSON.stringify({}), 400, { code: 'VALIDATION_FAILED', field: 'reason', rule: 'required' }],
      [JSON.stringify({ reason: '   ' }), 400, { code: 'VALIDATION_FAILED', field: 'reason', rule: 'pattern' }],
      [JSON.stringify({ reason: 'x'.repeat(501) }), 400, { code: 'VALIDATION_FAILED', field: 'reason', rule: 'max-length' }],
      [JSON.stringify({ reason: 'leaked \u202Ekcab' }), 400, { code: 'VALIDATION_FAILED', field: 'reason', rule: 'display-control' }],
      [JSON.stringify({ reason: '...' }), 400, { code: 'VALIDATION_FAILED', field: 'reason', rule: 'letter-or-digit' }],
      [JSON.stringify({ reason: 7 }), 400, { code: 'VALIDATION_FAILED', field: 'reason', rule: 'type' }],
      [JSON.stringify({ reason: REASON, notify: false }), 400, { code: 'VALIDATION_FAILED', field: 'notify', rule: 'unknown-field' }],
      ['{"reason":"a","reason":"b"}', 400, { code: 'VALIDATION_FAILED', field: 'reason', rule: 'duplicate-key' }],
      ['{"reason":', 400, { code: 'MALFORMED_JSON', field: 'body', rule: 'json' }],
      [null, 400, { code: 'BODY_REQUIRED', field: 'body', rule: 'required' }],
    ];
    for (const [body, status, error] of cases) {
      const res = await revoke(exportId, undefined, body);
      expect(res.status, String(body)).toBe(status);
      expect(res.body.error, String(body)).toMatchObject(error);
    }
    const typeless = revokeEvent(exportId, await token());
    typeless.headers = { ...typeless.headers, 'Content-Type': 'text/plain' };
    typeless.multiValueHeaders = { ...typeless.multiValueHeaders, 'Content-Type': ['text/plain'] };
    const unsupported = await call(typeless);
    expect(unsupported.status).toBe(415);
    expect(unsupported.body.error).toMatchObject({ code: 'UNSUPPORTED_CONTENT_TYPE', field: 'Content-Type', rule: 'media-type' });
    const withQuery = revokeEvent(exportId, await token());
    withQuery.queryStringParameters = { force: 'true' };
    withQuery.multiValueQueryStringParameters = { force: ['true'] };
    const queried = await call(withQuery);
    expect(queried.status).toBe(400);
    expect(queried.body.error).toMatchObject({ code: 'INVALID_QUERY', field: 'force', rule: 'unknown-field' });
    expect(fakes.store.jobs.get(exportId)?.status).toBe('completed');
    expect(revokedEvents(exportId)).toEqual([]);
    // The reason is trimmed and kept, as an export request's is.
    const ok = await revoke(exportId, undefined, JSON.stringify({ reason: `  ${'y'.repeat(500)}  ` }));
    expect(ok.status).toBe(200);
    expect(ok.body.revokeReason).toBe('y'.repeat(500));
  });

  it('a reason hiding an invisible format character is refused naming `reason` and `display-control`; joiners, marks, flags and any script are kept', async () => {
    const exportId = await completedExport();
    for (const reason of ['a\u200bb', 'a\ufeffb', 'a\u00adb', 'a\u180eb', 'a\u034fb', 'a\u2060b', 're\u200bfund']) {
      const res = await revoke(exportId, undefined, JSON.stringify({ reason }));
      expect(res.status, JSON.stringify(reason)).toBe(400);
      expect(res.body.error, JSON.stringify(reason)).toMatchObject({ code: 'VALIDATION_FAILED', field: 'reason', rule: 'display-control' });
    }
    expect(fakes.store.jobs.get(exportId)?.status).toBe('completed');
    expect(revokedEvents(exportId)).toEqual([]);
    const scotland = '\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}';
    for (const reason of ['👨\u200d👩\u200d👧 posted in the family chat', `posted in the ${scotland} room`, 'می\u200cخواهم لینک را لغو کنم', '잘못된 방에 게시됨', 'نُشر الرابط في الغرفة الخطأ \u200f']) {
      // A fresh service each: an export is revoked once, and the request event replays one export.
      fakes = createFakes();
      ({ call, token } = apiCallerFor(fakes, secret));
      const id = await completedExport();
      const res = await revoke(id, undefined, JSON.stringify({ reason }));
      expect(res.status, reason).toBe(200);
      expect(res.body.revokeReason, reason).toBe(reason);
      expect(revokedEvents(id), reason).toEqual([expect.objectContaining({ reason })]);
    }
  });

  it('an audit append that fails: 500 with the revocation standing (the link is gone, the file deleted); the retried revoke finishes the trail, one event', async () => {
    const exportId = await completedExport();
    fakes.audit.failNext = 'revoked';
    const failed = await revoke(exportId);
    expect(failed.status).toBe(500);
    expect(failed.body.error.code).toBe('INTERNAL');
    expect(fakes.store.jobs.get(exportId)?.status).toBe('revoked');
    expect(revokedEvents(exportId)).toEqual([]);
    // The file went anyway: an audit outage must not keep a leaked file in the bucket.
    expect(fakes.dispatcher.discardedFiles).toEqual([exportId]);
    expect((await download(exportId)).status).toBe(410);

    fakes.clock.advance(5_000);
    const retried = await revoke(exportId);
    expect(retried.status).toBe(200);
    expect(retried.body).toMatchObject({ status: 'revoked', revokedAt: '2026-03-01T10:00:00.000Z' });
    // The event carries the first request's time, not the retry's.
    expect(revokedEvents(exportId)).toEqual([{ type: 'revoked', exportId, channelId: 'ch-1', at: '2026-03-01T10:00:00.000Z', managerId: 'm-1', reason: REASON, ip: '203.0.113.7', userAgent: 'Mozilla/5.0 (export-console)' }]);
    expect(fakes.dispatcher.discardedFiles).toEqual([exportId, exportId]);
    expect(await auditEntry(exportId)).toMatchObject({ status: 'revoked', revokeReason: REASON });
    // One follow-up message, from the request that made the transition (a retry finds it revoked).
    expect(fakes.dispatcher.followUpsOf('revoke')).toEqual([exportId]);
  });

  it("the trail gets the export's `completed` event before the revocation when the finalizer's append never landed", async () => {
    const created = await call(loadEvent('api-create-export-contacts.json', { TOKEN: await token(), PASSWORD }));
    const exportId = created.body.exportId as string;
    // Completed, but its `completed` append failed and the finalize retry that would add it is still due.
    completeJobInStore(fakes, exportId);
    expect((await revoke(exportId)).status).toBe(200);
    expect(fakes.audit.events.filter((e) => e.exportId === exportId).map((e) => e.type)).toEqual(['requested', 'completed', 'revoked']);
    expect(await auditEntry(exportId)).toMatchObject({ status: 'revoked', sha256: 'ab'.repeat(32), rowCount: 12, completedAt: '2026-03-01T10:05:00.000Z' });
  });
});
