import { describe, expect, it } from 'vitest';
import type { LocalStack } from '../../infra/local/stack';
import { DynamoAuditLog } from '../../shared/adapters/aws/dynamo-audit-log';
import { finalizeExport } from '../../shared/app/finalize-export';
import { objectKeys } from '../../shared/app/messages';
import type { StepDeps } from '../../shared/app/pipeline-steps';
import { silentLog } from '../../shared/ports/pipeline-log';
import { http, managerToken } from '../e2e/support';
import { exportReadyToFinalize, finalizeDepsFor, storesFor, useSeededStack } from './helpers';

/**
 * A revoke on the local stack: the real composition root over HTTP (DynamoDB, S3 and the audit
 * table on the emulators). The export is built by direct pipeline calls; the link, the revoke,
 * the 410s and the file's deletion from the bucket are what a client and an auditor would see.
 */

const CHANNEL = 'revoke-local';
let stack: LocalStack;
useSeededStack({ channelId: CHANNEL, users: 40, cases: 10, seed: 5 }, (s) => (stack = s));

describe('revoke on the local stack', () => {
  it('an auditor revokes a completed export: the link answers 410, the file is gone from the bucket, the trail says who and why', async () => {
    const { store, objects, queue, ddb } = storesFor(stack);
    const audit = new DynamoAuditLog(ddb, stack.tables.audit);
    const steps: StepDeps = { store, objects, queue, audit, clock: { now: () => new Date() }, log: silentLog };
    const ready = await exportReadyToFinalize(stack, CHANNEL, 'ab0c0ffee001', steps);
    // The API's `requested` event, which a direct submission skips: the trail lists the export from it.
    await audit.append({ type: 'requested', exportId: ready.exportId, channelId: CHANNEL, at: ready.createdAt, managerId: 'm1', managerName: 'Kim', kind: 'contacts', scope: 'all', filters: {}, reason: 'test' });
    // The finalizer with the stack's link secret, so the API resolves the link it stores.
    const finalized = await finalizeExport({ type: 'finalize', exportId: ready.exportId, channelId: CHANNEL }, finalizeDepsFor(stack, steps, stack.env.LINK_SIGNING_SECRET ?? ''), {
      receiveCount: 1,
    });
    expect(finalized.status).toBe('completed');
    expect((await objects.list(objectKeys.filePrefix(CHANNEL, ready.exportId))).length).toBe(1);

    const requester = await managerToken(CHANNEL, 'm1');
    const view = await http(stack, 'GET', `/v1/exports/${ready.exportId}`, { token: requester });
    expect(view.body.status).toBe('completed');
    const linkPath = new URL(view.body.link as string).pathname;
    expect((await http(stack, 'GET', linkPath)).status).toBe(302);

    const auditor = await managerToken(CHANNEL, 'm-audit', ['audit:read']);
    const revoked = await http(stack, 'POST', `/v1/exports/${ready.exportId}/revoke`, { token: auditor, body: { reason: '링크가 잘못된 방에 공유됨' } });
    expect(revoked.status).toBe(200);
    expect(revoked.body).toMatchObject({ status: 'revoked', revokedBy: { managerId: 'm-audit' }, revokeReason: '링크가 잘못된 방에 공유됨' });
    expect(revoked.body.link).toBeUndefined();

    // The file is deleted from the bucket; the link is gone for GET and HEAD.
    expect(await objects.list(objectKeys.filePrefix(CHANNEL, ready.exportId))).toEqual([]);
    const gone = await http(stack, 'GET', linkPath);
    expect(gone.status).toBe(410);
    expect(gone.body.error).toMatchObject({ code: 'LINK_GONE' });
    expect(gone.body.error.message).toMatch(/revoked/);
    expect((await http(stack, 'HEAD', linkPath)).status).toBe(410);
    const again = await http(stack, 'GET', `/v1/exports/${ready.exportId}`, { token: requester });
    expect(again.body).toMatchObject({ status: 'revoked', revokedBy: { managerId: 'm-audit' } });
    expect(again.body.link).toBeUndefined();

    // The stored job, and the trail: revoked, by whom and why, the file's facts, both uses of the link.
    expect(await store.getJob(CHANNEL, ready.exportId)).toMatchObject({ status: 'revoked', revokedBy: 'm-audit', revokeReason: '링크가 잘못된 방에 공유됨' });
    const trail = await http(stack, 'GET', '/v1/audit', { token: auditor });
    const entry = (trail.body.items as Record<string, any>[]).find((e) => e.exportId === ready.exportId);
    expect(entry).toMatchObject({
      status: 'revoked',
      revokedBy: { managerId: 'm-audit' },
      revokeReason: '링크가 잘못된 방에 공유됨',
      sha256: finalized.sha256,
      rowCount: finalized.rowCount,
      downloadCount: 2,
    });
    expect((entry?.downloads as { outcome: string }[]).map((d) => d.outcome)).toEqual(['redirected', 'gone']);
    // A second revoke by the requester: 200 with the first revocation.
    const second = await http(stack, 'POST', `/v1/exports/${ready.exportId}/revoke`, { token: requester, body: { reason: 'me too' } });
    expect(second.status).toBe(200);
    expect(second.body.revokedBy).toEqual({ managerId: 'm-audit' });
  });
});
