import { describe, expect, it } from 'vitest';
import type { LocalStack } from '../../infra/local/stack';
import type { S3ObjectStore } from '../../shared/adapters/aws/s3-object-store';
import type { ExportJob } from '../../shared/app/export-job';
import { finalizeExport } from '../../shared/app/finalize-export';
import { objectKeys, type FinalizeMessage } from '../../shared/app/messages';
import { buildChunkMessages } from '../../shared/app/plan-chunks';
import { processChunk } from '../../shared/app/process-chunk';
import type { StepDeps } from '../../shared/app/pipeline-steps';
import { cooldownKey } from '../../shared/domain';
import { silentLog } from '../../shared/ports/pipeline-log';
import { FakeAuditLog, FakeCooldownStore } from '../api/support/fakes';
import { chunkDepsFor, exportReadyToFinalize, finalizeDepsFor, storesFor, submitExport, useSeededStack } from './helpers';

/**
 * The pipeline paths that find an export canceled in the middle of their work (a chunk after its
 * writes, the finalizer while it reads parts or before its completion) finish a cancel whose
 * own follow-ups failed in the API: the `canceled` audit event (the cancel's time, the
 * requester) and the cooldown back. The cancel here is the store's transition alone, which is
 * what a cancel whose audit append and release both threw leaves behind (the API's handling is
 * in test/api/cancel-audit.test.ts); everything else runs on the emulators.
 */

const CHANNEL = 'cancel-audit';
const LINK_SECRET = 'link-secret-for-cancel-audit';
let stack: LocalStack;
useSeededStack({ channelId: CHANNEL, users: 60, cases: 0, seed: 5 }, (s) => (stack = s));

/** submitExport's jobs belong to manager m1; every export here is a contacts one. */
const HOLD = cooldownKey(CHANNEL, 'm1', 'contacts');
const finalizeMessage = (job: Pick<ExportJob, 'exportId'>): FinalizeMessage => ({ type: 'finalize', exportId: job.exportId, channelId: CHANNEL });

function ports(exportId: string) {
  const audit = new FakeAuditLog();
  const cooldowns = new FakeCooldownStore();
  // The hold the request took, which the failed cancel did not give back.
  cooldowns.items.set(HOLD, { holder: exportId, expiresAt: Date.now() + 3_600_000, acquiredAt: new Date().toISOString() });
  return { audit, cooldowns };
}

/** What the API's cancel writes first: the transition with its time (the follow-ups then failed). */
async function cancelInStoreOnly(exportId: string, from: ExportJob['status'][]): Promise<string> {
  const canceledAt = new Date(Date.now() - 60_000).toISOString();
  expect(await storesFor(stack).store.setStatus(CHANNEL, exportId, 'canceled', from, { canceledAt })).toBe(true);
  return canceledAt;
}

function expectCancelFinished(p: ReturnType<typeof ports>, exportId: string, canceledAt: string): void {
  expect(p.audit.events).toEqual([{ type: 'canceled', exportId, channelId: CHANNEL, at: canceledAt, managerId: 'm1' }]);
  expect(p.cooldowns.items.has(HOLD)).toBe(false);
}

describe('pipeline steps that find the export canceled mid-work finish the cancel', () => {
  it('a chunk that finds the cancel after its writes', async () => {
    const job = await submitExport(stack, { kind: 'contacts', scope: 'all' }, { channelId: CHANNEL });
    const p = ports(job.exportId);
    const { objects } = storesFor(stack);
    let canceledAt: string | undefined;
    const racing = Object.create(objects) as S3ObjectStore;
    racing.put = async (key, body, options) => {
      if (canceledAt === undefined) canceledAt = await cancelInStoreOnly(job.exportId, ['queued', 'running']);
      return objects.put(key, body, options);
    };
    const message = buildChunkMessages(job, {}, 2000)[0]!;
    const outcome = await processChunk(message, chunkDepsFor(stack, { objects: racing, ...p }), { receiveCount: 1 });
    expect(outcome.status).toBe('skipped');
    expectCancelFinished(p, job.exportId, canceledAt!);
    expect(await objects.list(objectKeys.partsPrefix(job.exportId))).toEqual([]);
  });

  it('the finalizer canceled while it reads parts (the sweep deleted them under it)', async () => {
    const ready = await exportReadyToFinalize(stack, CHANNEL, 'ca0d17000001', { ...storesFor(stack), clock: { now: () => new Date() }, log: silentLog });
    const p = ports(ready.exportId);
    const { objects } = storesFor(stack);
    let canceledAt: string | undefined;
    const watched = Object.create(objects) as S3ObjectStore;
    watched.getBuffer = async (key: string) => {
      // The first part body read: the cancel lands and its sweep empties parts/.
      if (canceledAt === undefined && !key.endsWith('.json') && !key.includes('meta')) {
        canceledAt = await cancelInStoreOnly(ready.exportId, ['finalizing']);
        await objects.deletePrefix(objectKeys.partsPrefix(ready.exportId));
      }
      return objects.getBuffer(key);
    };
    const steps: StepDeps = { ...storesFor(stack), objects: watched, clock: { now: () => new Date() }, log: silentLog, ...p };
    const outcome = await finalizeExport(finalizeMessage(ready), finalizeDepsFor(stack, steps, LINK_SECRET), { receiveCount: 1 });
    expect(outcome.status).toBe('skipped');
    expect(canceledAt).toBeDefined();
    expectCancelFinished(p, ready.exportId, canceledAt!);
  });

  it('the finalizer whose completion is refused because the export was canceled meanwhile', async () => {
    const ready = await exportReadyToFinalize(stack, CHANNEL, 'ca0d17000002', { ...storesFor(stack), clock: { now: () => new Date() }, log: silentLog });
    const p = ports(ready.exportId);
    const { objects } = storesFor(stack);
    let canceledAt: string | undefined;
    const watched = Object.create(objects) as S3ObjectStore;
    watched.upload = async (key, body, options) => {
      await objects.upload(key, body, options);
      canceledAt = await cancelInStoreOnly(ready.exportId, ['finalizing']);
    };
    const steps: StepDeps = { ...storesFor(stack), objects: watched, clock: { now: () => new Date() }, log: silentLog, ...p };
    const outcome = await finalizeExport(finalizeMessage(ready), finalizeDepsFor(stack, steps, LINK_SECRET), { receiveCount: 1 });
    expect(outcome.status).toBe('skipped');
    expect(canceledAt).toBeDefined();
    expectCancelFinished(p, ready.exportId, canceledAt!);
    expect(await objects.list(objectKeys.partsPrefix(ready.exportId))).toEqual([]);
  });
});
