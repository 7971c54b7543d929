import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DynamoAuditLog } from '../../shared/adapters/aws/dynamo-audit-log';
import type { ExportJob } from '../../shared/app/export-job';
import { auditEventSchema } from '../../shared/ports/audit-log';
import { apiCallerFor, loadEvent, type ApiCaller } from './support/api-harness';
import { createFakes, type Fakes } from './support/fakes';
import { auditTable, startDynalite, type LocalDynamo } from './support/dynalite';

/**
 * Whether the bot told the manager: the export view shows it from the job (so a web client can
 * say the bot could not reach them), and the audit entry from the trail's `notified` /
 * `notify-failed` events (the job item changes and expires; the trail is kept for good).
 */

const secret = 'notification-audit-test-secret-0123456';
let fakes: Fakes;
let call: ApiCaller['call'];
let token: ApiCaller['token'];

beforeEach(() => {
  fakes = createFakes();
  ({ call, token } = apiCallerFor(fakes, secret));
});

/** An export requested through the API, then moved by hand to what the pipeline would leave. */
async function finishedExport(patch: Partial<ExportJob>): Promise<string> {
  const created = await call(loadEvent('api-create-export-contacts.json', { TOKEN: await token(), PASSWORD: 'Zq7Secr3tPw' }));
  expect(created.status).toBe(202);
  const exportId = created.body.exportId as string;
  const job = fakes.store.jobs.get(exportId) as ExportJob;
  Object.assign(job, patch);
  return exportId;
}

const completed = (at: string): Partial<ExportJob> => ({
  status: 'completed',
  rowCount: 3,
  fileName: 'Contacts.xlsx',
  fileSize: 10,
  sha256: 'ab'.repeat(32),
  completedAt: at,
  expiresAt: '2026-03-08T10:01:00.000Z',
});

async function getExport(exportId: string, managerId = 'm-1'): Promise<Record<string, any>> {
  const res = await call(loadEvent('api-get-export.json', { TOKEN: await token({ managerId, permissions: managerId === 'm-1' ? ['export:download'] : ['audit:read'] }), EXPORT_ID: exportId }));
  expect(res.status).toBe(200);
  return res.body;
}

describe('GET /v1/exports/{id} and the list: notification', () => {
  it('delivered: the time the bot accepted the post and the event, on the view and in the list', async () => {
    const exportId = await finishedExport({ ...completed('2026-03-01T10:01:00.000Z'), notifiedAt: '2026-03-01T10:01:02.000Z' });
    const expected = { status: 'delivered', at: '2026-03-01T10:01:02.000Z', event: 'export.completed' };
    expect((await getExport(exportId)).notification).toEqual(expected);
    // An auditor of the channel sees it too: it says nothing that leads to the file.
    expect((await getExport(exportId, 'm-9')).notification).toEqual(expected);
    const list = await call(loadEvent('api-list-exports.json', { TOKEN: await token() }));
    expect(list.status).toBe(200);
    expect(list.body.items).toEqual([expect.objectContaining({ exportId, notification: expected })]);
  });

  it('refused by the bot (a 4xx): failed, when it refused, and the status only', async () => {
    const exportId = await finishedExport({
      ...completed('2026-03-01T10:01:00.000Z'),
      notifyRefusedAt: '2026-03-01T10:01:03.000Z',
      notifyRefusedStatus: 403,
      notifyError: 'the bot refused the event (export.completed) with HTTP 403; not retried',
    });
    expect((await getExport(exportId)).notification).toEqual({
      status: 'failed',
      at: '2026-03-01T10:01:03.000Z',
      event: 'export.completed',
      reason: 'HTTP 403',
    });
  });

  it('dead-lettered after every retry (a failed export): failed, at the dead letter write, reason dead-lettered', async () => {
    const exportId = await finishedExport({
      status: 'failed',
      error: { code: 'TOO_MANY_ROWS', message: 'too many rows' },
      failedAt: '2026-03-01T10:01:00.000Z',
      notifyError: 'the bot could not be told (export.failed) after every retry',
      updatedAt: '2026-03-01T10:09:00.000Z',
    });
    const view = await getExport(exportId);
    expect(view.notification).toEqual({ status: 'failed', at: '2026-03-01T10:09:00.000Z', event: 'export.failed', reason: 'dead-lettered' });
    expect(view.error).toEqual({ code: 'TOO_MANY_ROWS', message: 'too many rows' });
  });

  it('a later post that got through outranks an earlier dead letter', async () => {
    const told = await finishedExport({
      ...completed('2026-03-01T10:01:00.000Z'),
      notifyError: 'the bot could not be told (export.completed) after every retry',
      notifiedAt: '2026-03-01T10:30:00.000Z',
    });
    expect((await getExport(told)).notification).toEqual({ status: 'delivered', at: '2026-03-01T10:30:00.000Z', event: 'export.completed' });
  });

  it('nothing while the bot has not answered', async () => {
    const pending = await finishedExport(completed('2026-03-01T10:01:00.000Z'));
    expect(await getExport(pending)).not.toHaveProperty('notification');
  });
});

describe('GET /v1/audit: notification', () => {
  async function auditEntry(exportId: string): Promise<Record<string, any>> {
    const list = loadEvent('api-list-audit.json', { TOKEN: await token({ managerId: 'm-9', permissions: ['audit:read'] }) });
    list.queryStringParameters = {};
    const res = await call(list);
    expect(res.status).toBe(200);
    const entry = (res.body.items as Record<string, any>[]).find((e) => e.exportId === exportId);
    expect(entry).toBeDefined();
    return entry as Record<string, any>;
  }

  it('shows the notifier outcome from the trail, even after the job is gone', async () => {
    const exportId = await finishedExport(completed('2026-03-01T10:01:00.000Z'));
    const ids = { exportId, channelId: 'ch-1' };
    expect(await auditEntry(exportId)).not.toHaveProperty('notification');
    await fakes.audit.append({ type: 'notify-failed', ...ids, at: '2026-03-01T10:01:03.000Z', event: 'export.completed', reason: 'HTTP 410' });
    // The job item expires by TTL long before the trail does.
    fakes.store.jobs.delete(exportId);
    expect((await auditEntry(exportId)).notification).toEqual({ status: 'failed', at: '2026-03-01T10:01:03.000Z', event: 'export.completed', reason: 'HTTP 410' });
  });

  it('delivered wins over a dead letter, whichever was appended first', async () => {
    const exportId = await finishedExport(completed('2026-03-01T10:01:00.000Z'));
    const ids = { exportId, channelId: 'ch-1' };
    await fakes.audit.append({ type: 'notified', ...ids, at: '2026-03-01T10:30:00.000Z', event: 'export.completed' });
    await fakes.audit.append({ type: 'notify-failed', ...ids, at: '2026-03-01T10:05:00.000Z', event: 'export.completed', reason: 'dead-lettered' });
    const entry = await auditEntry(exportId);
    expect(entry.notification).toEqual({ status: 'delivered', at: '2026-03-01T10:30:00.000Z', event: 'export.completed' });
    expect(entry.status).toBe('requested');
  });

  it('the trail refuses any reason but an HTTP status or dead-lettered (no URL, body or header can be kept for good)', () => {
    const ids = { exportId: 'e1', channelId: 'ch-1', at: '2026-03-01T10:00:00.000Z', event: 'export.completed' } as const;
    for (const reason of ['HTTP 400', 'HTTP 503', 'dead-lettered']) {
      expect(auditEventSchema.safeParse({ type: 'notify-failed', ...ids, reason }).success).toBe(true);
    }
    for (const reason of ['HTTP 400 {"echo":"https://api.example.com/v1/downloads/tok"}', 'https://bot.example.com/hook', 'X-Signature: sha256=ab', '', 'HTTP 4000']) {
      expect(auditEventSchema.safeParse({ type: 'notify-failed', ...ids, reason }).success).toBe(false);
    }
    expect(auditEventSchema.safeParse({ type: 'notified', ...ids, event: 'export.other' }).success).toBe(false);
  });
});

describe('DynamoAuditLog on dynalite: notified / notify-failed', () => {
  let dynamo: LocalDynamo;
  let audit: DynamoAuditLog;
  beforeAll(async () => {
    dynamo = await startDynalite([auditTable('audit')]);
    audit = new DynamoAuditLog(dynamo.doc, 'audit');
  });
  afterAll(async () => dynamo.stop());

  const requested = (exportId: string) =>
    audit.append({ type: 'requested', exportId, channelId: 'ch1', at: '2026-03-01T09:00:00.000Z', managerId: 'm1', managerName: 'Kim', kind: 'contacts', scope: 'all', filters: {}, reason: 'r' });

  it('one event each per export (fixed sort keys: a redelivered append changes nothing), assembled into the entry', async () => {
    await requested('n1');
    await requested('n2');
    await audit.append({ type: 'completed', exportId: 'n1', channelId: 'ch1', at: '2026-03-01T09:01:00.000Z', rowCount: 1, sha256: 'ab'.repeat(32) });
    await audit.append({ type: 'notified', exportId: 'n1', channelId: 'ch1', at: '2026-03-01T09:01:02.000Z', event: 'export.completed' });
    await audit.append({ type: 'notified', exportId: 'n1', channelId: 'ch1', at: '2026-03-01T09:09:00.000Z', event: 'export.completed' });
    await audit.append({ type: 'notify-failed', exportId: 'n2', channelId: 'ch1', at: '2026-03-01T09:05:00.000Z', event: 'export.failed', reason: 'dead-lettered' });
    await audit.append({ type: 'notify-failed', exportId: 'n2', channelId: 'ch1', at: '2026-03-01T09:06:00.000Z', event: 'export.failed', reason: 'HTTP 400' });

    const page = await audit.query({ channelId: 'ch1', limit: 10 });
    const byId = new Map(page.items.map((e) => [e.exportId, e]));
    expect(byId.get('n1')?.notification).toEqual({ status: 'delivered', at: '2026-03-01T09:01:02.000Z', event: 'export.completed' });
    expect(byId.get('n1')?.status).toBe('completed');
    expect(byId.get('n2')?.notification).toEqual({ status: 'failed', at: '2026-03-01T09:05:00.000Z', event: 'export.failed', reason: 'dead-lettered' });
  });

  it('a delivery after a dead letter: the entry says delivered', async () => {
    await requested('n3');
    await audit.append({ type: 'notify-failed', exportId: 'n3', channelId: 'ch1', at: '2026-03-01T09:05:00.000Z', event: 'export.completed', reason: 'dead-lettered' });
    await audit.append({ type: 'notified', exportId: 'n3', channelId: 'ch1', at: '2026-03-01T09:30:00.000Z', event: 'export.completed' });
    const entry = (await audit.query({ channelId: 'ch1', limit: 10 })).items.find((e) => e.exportId === 'n3');
    expect(entry?.notification).toEqual({ status: 'delivered', at: '2026-03-01T09:30:00.000Z', event: 'export.completed' });
  });
});
