import { beforeEach, describe, expect, it } from 'vitest';
import type { ExportJob } from '../../shared/app/export-job';
import { assembleAuditEntry } from '../../shared/adapters/aws/dynamo-audit-log';
import type { StoredAuditEvent } from '../../shared/ports/audit-log';
import { apiCallerFor, loadEvent, type ApiCaller } from './support/api-harness';
import { createFakes, type Fakes } from './support/fakes';

/**
 * An audit entry must say when an export ended and, for a cancel, who stopped it: the trail
 * records both, and an entry reading only `"status": "canceled"` leaves the auditor guessing.
 */

const secret = 'audit-entry-test-secret-audit-entry-test';
let fakes: Fakes;
let call: ApiCaller['call'];
let token: ApiCaller['token'];

beforeEach(() => {
  fakes = createFakes();
  ({ call, token } = apiCallerFor(fakes, secret));
});

describe('GET /v1/audit: when an export ended, and who canceled it', () => {
  it('a cancel through the API shows in the entry with its time and the manager who canceled', async () => {
    const created = await call(loadEvent('api-create-export-contacts.json', { TOKEN: await token(), PASSWORD: 'Zq7Secr3tPw' }));
    expect(created.status).toBe(202);
    const exportId = created.body.exportId as string;
    fakes.clock.advance(60_000);
    expect((await call(loadEvent('api-cancel-export.json', { TOKEN: await token(), EXPORT_ID: exportId }))).status).toBe(200);
    const canceledAt = (fakes.store.jobs.get(exportId) as ExportJob).canceledAt;
    expect(canceledAt).toBeDefined();

    const list = loadEvent('api-list-audit.json', { TOKEN: await token({ managerId: 'm-9', permissions: ['audit:read'] }) });
    list.queryStringParameters = {};
    const res = await call(list);
    expect(res.status).toBe(200);
    expect(res.body.items).toEqual([
      expect.objectContaining({ exportId, status: 'canceled', canceledAt, canceledBy: { managerId: 'm-1', ip: '203.0.113.7', userAgent: 'Mozilla/5.0 (export-console)' } }),
    ]);
    expect(res.body.items[0]).not.toHaveProperty('failedAt');
    expect(res.body.items[0]).not.toHaveProperty('completedAt');
  });

  const requested: StoredAuditEvent = {
    type: 'requested',
    exportId: 'e1',
    channelId: 'ch-1',
    at: '2026-03-01T10:00:00.000Z',
    managerId: 'm-1',
    managerName: 'Kim',
    kind: 'contacts',
    scope: 'all',
    filters: {},
    reason: 'r',
  };
  const ids = { exportId: 'e1', channelId: 'ch-1' };

  it('a failure shows its time next to its error', () => {
    const entry = assembleAuditEntry(requested, [
      requested,
      { type: 'failed', ...ids, at: '2026-03-01T10:07:00.000Z', code: 'TOO_MANY_ROWS', message: 'too many' },
    ]);
    expect(entry).toMatchObject({ status: 'failed', error: { code: 'TOO_MANY_ROWS', message: 'too many' }, failedAt: '2026-03-01T10:07:00.000Z' });
    expect(entry).not.toHaveProperty('canceledAt');
  });

  it('a completion keeps its time; no failure or cancel fields appear without their events', () => {
    const entry = assembleAuditEntry(requested, [
      { type: 'completed', ...ids, at: '2026-03-01T10:05:00.000Z', rowCount: 3, sha256: 'ab'.repeat(32) },
      // Read after the completion (DynamoDB's sort-key order): the completion decides.
      { type: 'failed', ...ids, at: '2026-03-01T10:07:00.000Z', code: 'PIPELINE_FAILED', message: 'late' },
    ]);
    expect(entry).toMatchObject({ status: 'completed', completedAt: '2026-03-01T10:05:00.000Z' });
    expect(entry).not.toHaveProperty('error');
    expect(entry).not.toHaveProperty('failedAt');
    expect(entry).not.toHaveProperty('canceledAt');
    expect(entry).not.toHaveProperty('canceledBy');
  });

  it('a cancel without a recorded manager still shows its time, and names no one', () => {
    const entry = assembleAuditEntry(requested, [{ type: 'canceled', ...ids, at: '2026-03-01T10:02:00.000Z' }]);
    expect(entry).toMatchObject({ status: 'canceled', canceledAt: '2026-03-01T10:02:00.000Z' });
    expect(entry).not.toHaveProperty('canceledBy');
  });

  it('ignores a cancel of another export or channel handed in by mistake', () => {
    const entry = assembleAuditEntry(requested, [
      { type: 'canceled', exportId: 'e2', channelId: 'ch-1', at: '2026-03-01T10:02:00.000Z', managerId: 'm-2' },
      { type: 'canceled', exportId: 'e1', channelId: 'ch-2', at: '2026-03-01T10:02:00.000Z', managerId: 'm-2' },
    ]);
    expect(entry.status).toBe('requested');
    expect(entry).not.toHaveProperty('canceledAt');
    expect(entry).not.toHaveProperty('canceledBy');
  });
});
