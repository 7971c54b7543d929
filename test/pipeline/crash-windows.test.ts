import { describe, expect, it } from 'vitest';
import type { LocalStack } from '../../infra/local/stack';
import type { DynamoExportStore } from '../../shared/adapters/aws/dynamo-export-store';
import type { S3ObjectStore } from '../../shared/adapters/aws/s3-object-store';
import type { ExportJob } from '../../shared/app/export-job';
import { finalizeExport, type FinalizeOutcome } from '../../shared/app/finalize-export';
import { handleDeadLetter } from '../../shared/app/handle-dead-letter';
import { objectKeys, type FinalizeMessage } from '../../shared/app/messages';
import { buildChunkMessages } from '../../shared/app/plan-chunks';
import { processChunk } from '../../shared/app/process-chunk';
import { FollowUpsFailedError, type StepDeps } from '../../shared/app/pipeline-steps';
import { cooldownKey } from '../../shared/domain';
import { silentLog } from '../../shared/ports/pipeline-log';
import { FakeAuditLog, FakeCooldownStore, RecordingQueue } from '../api/support/fakes';
import { chunkDepsFor, exportReadyToFinalize, finalizeDepsFor, storesFor, submitExport, useSeededStack } from './helpers';

/**
 * A Lambda killed, or a request failing, at the edges of the pipeline's last steps: windows
 * after which no later message names the export, so the step that sees them must finish what is
 * owed (a cancel's audit event and cooldown, parts/ in the clear, a second copy of the file).
 * Crashes and races are injected by wrapping the store or the object store; every interleaving
 * is fixed, not timed. Found by a crash/timeout review (2026-12-02).
 */

const CHANNEL = 'crash-windows';
const LINK_SECRET = 'link-secret-crash-windows';
let stack: LocalStack;
useSeededStack({ channelId: CHANNEL, users: 60, cases: 200, seed: 7 }, (s) => (stack = s));

const partsOf = (exportId: string) => storesFor(stack).objects.list(objectKeys.partsPrefix(exportId));
const filesOf = (exportId: string) => storesFor(stack).objects.list(objectKeys.filePrefix(CHANNEL, exportId));
const finalizeMessage = (job: Pick<ExportJob, 'exportId'>): FinalizeMessage => ({ type: 'finalize', exportId: job.exportId, channelId: CHANNEL });
const stepDeps = (): StepDeps => ({ ...storesFor(stack), clock: { now: () => new Date() }, log: silentLog });

/** The export's cooldown held, as the request took it, and an audit log to read. */
function ports(exportId: string, kind: 'cases' | 'contacts') {
  const audit = new FakeAuditLog();
  const cooldowns = new FakeCooldownStore();
  cooldowns.items.set(cooldownKey(CHANNEL, 'm1', kind), { holder: exportId, expiresAt: Date.now() + 3_600_000, acquiredAt: new Date().toISOString() });
  return { audit, cooldowns };
}

/** The API cancel's transition alone: its sweep, audit append and release all failed (a 500 nobody retried). */
async function cancelInStoreOnly(exportId: string): Promise<void> {
  expect(await storesFor(stack).store.setStatus(CHANNEL, exportId, 'canceled', ['queued', 'running', 'finalizing'], { canceledAt: new Date().toISOString() })).toBe(true);
}

/** A store whose completion commits and then "kills" the Lambda (timeout, OOM) before anything after it. */
function killedAfterCompletion(): DynamoExportStore {
  const { store } = storesFor(stack);
  const crashing = Object.create(store) as DynamoExportStore;
  crashing.setStatus = async (...args) => {
    const moved = await store.setStatus(...args);
    if (args[2] === 'completed' && moved) throw new Error('Lambda killed right after the completion committed');
    return moved;
  };
  return crashing;
}

/** A finalizer run that uploaded the file, then failed to save its link token (throttled): it throws, its upload stays. */
async function uploadedNotCompleted(exportId: string): Promise<{ steps: StepDeps; ready: ExportJob }> {
  const steps = stepDeps();
  const ready = await exportReadyToFinalize(stack, CHANNEL, exportId, steps);
  const tokenFails = Object.create(storesFor(stack).store) as DynamoExportStore;
  tokenFails.saveDownloadToken = async () => {
    throw new Error('ProvisionedThroughputExceededException');
  };
  await expect(finalizeExport(finalizeMessage(ready), finalizeDepsFor(stack, { ...steps, store: tokenFails }, LINK_SECRET), { receiveCount: 1 })).rejects.toThrow();
  expect(await filesOf(exportId)).toHaveLength(1);
  return { steps, ready };
}

describe('crash windows at the end of the pipeline', () => {
  it('contacts: a cancel landing right after the last chunk is marked is finished by that chunk (audit, cooldown, parts)', async () => {
    const job = await submitExport(stack, { kind: 'contacts', scope: 'all' }, { channelId: CHANNEL });
    const p = ports(job.exportId, 'contacts');
    const queue = new RecordingQueue();
    const messages = buildChunkMessages(job, {}, 2000);
    const deps = chunkDepsFor(stack, { ...p, queue });
    for (const m of messages.slice(0, -1)) expect((await processChunk(m, deps, { receiveCount: 1 })).status).toBe('done');
    const { store } = storesFor(stack);
    const racing = Object.create(store) as DynamoExportStore;
    racing.markChunkDone = async (...args) => {
      const result = await store.markChunkDone(...args);
      await cancelInStoreOnly(job.exportId);
      return result;
    };
    await processChunk(messages.at(-1)!, chunkDepsFor(stack, { ...p, queue, store: racing }), { receiveCount: 1 });
    // No finalize: and no later message will name the export, so this delivery finished the cancel.
    expect(queue.sent).toEqual([]);
    expect((await store.getJob(CHANNEL, job.exportId))?.status).toBe('canceled');
    expect(p.audit.events.map((e) => e.type)).toEqual(['canceled']);
    expect(p.cooldowns.items.size).toBe(0);
    expect(await partsOf(job.exportId)).toEqual([]);
  });

  it('cases: a cancel landing while the users phase is planned is finished by the planning chunk', async () => {
    const job = await submitExport(stack, { kind: 'cases', from: '2025-07-01', to: '2025-07-03', timezone: 'Asia/Seoul' }, { channelId: CHANNEL });
    const p = ports(job.exportId, 'cases');
    const queue = new RecordingQueue();
    const messages = buildChunkMessages(job, {}, 2000);
    const deps = chunkDepsFor(stack, { ...p, queue });
    for (const m of messages.slice(0, -1)) expect((await processChunk(m, deps, { receiveCount: 1 })).status).toBe('done');
    const { objects } = storesFor(stack);
    const racing = Object.create(objects) as S3ObjectStore;
    racing.put = async (key, body, options) => {
      // The refs plan is the users-phase holder's first write.
      if (key === objectKeys.refsPlan(job.exportId)) await cancelInStoreOnly(job.exportId);
      return objects.put(key, body, options);
    };
    await processChunk(messages.at(-1)!, chunkDepsFor(stack, { ...p, queue, objects: racing }), { receiveCount: 1 });
    expect((await storesFor(stack).store.getJob(CHANNEL, job.exportId))?.status).toBe('canceled');
    expect(queue.sent).toEqual([]);
    expect(p.audit.events.map((e) => e.type)).toEqual(['canceled']);
    expect(p.cooldowns.items.size).toBe(0);
    expect(await partsOf(job.exportId)).toEqual([]);
  });

  it('finalizer: a retry that finds the export revoked (killed after its completion, revoked meanwhile) sweeps parts/', async () => {
    const steps = stepDeps();
    const ready = await exportReadyToFinalize(stack, CHANNEL, 'cw0000000001', steps);
    const { store, objects } = storesFor(stack);
    const audit = new FakeAuditLog();
    await expect(finalizeExport(finalizeMessage(ready), finalizeDepsFor(stack, { ...steps, store: killedAfterCompletion(), audit }, LINK_SECRET), { receiveCount: 1 })).rejects.toThrow(/killed/);
    expect((await partsOf(ready.exportId)).length).toBeGreaterThan(0);
    // The manager saw it completed and revoked it; the file is gone (the API's finishRevoke).
    expect(await store.setStatus(CHANNEL, ready.exportId, 'revoked', ['completed'], { revokedAt: new Date().toISOString(), revokedBy: 'm1', revokeReason: 'leak' })).toBe(true);
    await objects.deletePrefix(objectKeys.filePrefix(CHANNEL, ready.exportId));
    // The finalize message comes back after its visibility timeout.
    const retry = await finalizeExport(finalizeMessage(ready), finalizeDepsFor(stack, { ...steps, audit }, LINK_SECRET), { receiveCount: 2 });
    expect(retry.status).toBe('skipped');
    expect(await partsOf(ready.exportId)).toEqual([]);
    // Nothing announced for a revoked export.
    expect((await store.getJob(CHANNEL, ready.exportId))?.notifyEnqueued).toBeUndefined();
  });

  it('finalizer: an earlier run\'s upload does not survive a completing run killed before it listed the strays', async () => {
    const { steps, ready } = await uploadedNotCompleted('cw0000000002');
    const { store } = storesFor(stack);
    // Run 2 completes and is killed before its follow-ups.
    await expect(finalizeExport(finalizeMessage(ready), finalizeDepsFor(stack, { ...steps, store: killedAfterCompletion() }, LINK_SECRET), { receiveCount: 2 })).rejects.toThrow(/killed/);
    expect(await filesOf(ready.exportId)).toHaveLength(2);
    // Run 3 finds it completed: it finishes the follow-ups and deletes run 1's copy.
    expect((await finalizeExport(finalizeMessage(ready), finalizeDepsFor(stack, steps, LINK_SECRET), { receiveCount: 3 })).status).toBe('skipped');
    const job = await store.getJob(CHANNEL, ready.exportId);
    expect((await filesOf(ready.exportId)).map((f) => f.key)).toEqual([job?.objectKey]);
    expect(job?.notifyEnqueued).toBe(true);
    expect(await partsOf(ready.exportId)).toEqual([]);
  });

  it('finalizer: a parts/ sweep that fails after the completion brings the message back, and the retry sweeps (one notify)', async () => {
    const steps = stepDeps();
    const ready = await exportReadyToFinalize(stack, CHANNEL, 'cw0000000003', steps);
    const { objects } = storesFor(stack);
    const flaky = Object.create(objects) as S3ObjectStore;
    let failures = 1;
    flaky.deletePrefix = async (prefix) => {
      if (prefix === objectKeys.partsPrefix(ready.exportId) && failures-- > 0) throw new Error('S3 DeleteObjects: InternalError');
      return objects.deletePrefix(prefix);
    };
    const queue = new RecordingQueue();
    const thrown = await finalizeExport(finalizeMessage(ready), finalizeDepsFor(stack, { ...steps, objects: flaky, queue }, LINK_SECRET), { receiveCount: 1 }).catch((e: unknown) => e);
    expect(thrown).toBeInstanceOf(FollowUpsFailedError);
    expect((thrown as Error).message).toMatch(/InternalError/);
    // It carries this run's completion, which the handler counts (the retry reports skipped).
    expect((thrown as FollowUpsFailedError<FinalizeOutcome>).outcome).toMatchObject({ status: 'completed', rowCount: ready.rowsWritten });
    expect((await partsOf(ready.exportId)).length).toBeGreaterThan(0);
    expect((await finalizeExport(finalizeMessage(ready), finalizeDepsFor(stack, { ...steps, objects: flaky, queue }, LINK_SECRET), { receiveCount: 2 })).status).toBe('skipped');
    expect(await partsOf(ready.exportId)).toEqual([]);
    expect(queue.sent.filter((m) => m.queue === 'notify')).toHaveLength(1);
    expect(await filesOf(ready.exportId)).toHaveLength(1);
  });

  it('dlq: a given-up finalize whose failure cannot be audited still deletes the uploaded file and parts/ first', async () => {
    // Its token save throttled every time until the DLQ.
    const { steps, ready } = await uploadedNotCompleted('cw0000000004');
    const { store } = storesFor(stack);
    const audit = new FakeAuditLog();
    const down = Object.create(audit) as FakeAuditLog;
    down.append = async () => {
      throw new Error('DynamoDB PutItem: ServiceUnavailable');
    };
    const dead = JSON.stringify(finalizeMessage(ready));
    const thrown = await handleDeadLetter(dead, { ...steps, queue: new RecordingQueue(), audit: down }, { queue: 'finalize-dlq' }).catch((e: unknown) => e);
    expect(thrown).toBeInstanceOf(FollowUpsFailedError);
    expect((thrown as Error).message).toMatch(/ServiceUnavailable/);
    // What the dlq handler counts (exportFailures): this dead letter failed the export.
    expect((thrown as FollowUpsFailedError).outcome).toEqual({ failedWith: 'PIPELINE_FAILED' });
    expect((await store.getJob(CHANNEL, ready.exportId))?.status).toBe('failed');
    // The data did not wait for the audit table.
    expect(await filesOf(ready.exportId)).toEqual([]);
    expect(await partsOf(ready.exportId)).toEqual([]);
    // The redelivered dead letter appends the failure once the table is back.
    expect(await handleDeadLetter(dead, { ...steps, queue: new RecordingQueue(), audit }, { queue: 'finalize-dlq' })).toBe('already-final');
    expect(audit.events.map((e) => e.type)).toEqual(['failed']);
  });
});
