import { beforeEach, describe, expect, it } from 'vitest';
import type { ExportJob, ExportStatus } from '../../shared/app/export-job';
import { finalizeExport, finishCancellation, type FinalizeDeps } from '../../shared/app/finalize-export';
import { handleDeadLetter } from '../../shared/app/handle-dead-letter';
import type { ChunkMessage, FinalizeMessage } from '../../shared/app/messages';
import { processChunk, type ChunkDeps } from '../../shared/app/process-chunk';
import type { StepDeps } from '../../shared/app/pipeline-steps';
import { cooldownKey } from '../../shared/domain';
import type { JobPatch } from '../../shared/ports/export-store';
import type { ObjectStore } from '../../shared/ports/object-store';
import type { PipelineLog } from '../../shared/ports/pipeline-log';
import { apiCallerFor, loadEvent, type ApiCaller } from './support/api-harness';
import { createFakes, FakeCooldownStore, FakeExportStore, RecordingQueue, type Fakes } from './support/fakes';

/**
 * A cancel changes the status first, then appends the `canceled` audit event and gives the
 * cooldown back. When either of those failed (a 500) and the client never retried, nothing else
 * finished them: the trail showed the export as `requested` for ever and the cooldown stayed
 * held, although every later pipeline step saw the export canceled. Those steps now finish the
 * cancel (runCancelFollowUps, shared with the API). The cancel goes through the API handler on
 * in-memory fakes; the pipeline steps are called directly on the same fakes.
 */

const secret = 'cancel-audit-test-secret-cancel-audit';
const PASSWORD = 'Zq7Secr3tPw';

/** The cooldown release throws `failRelease` times first (a throttled conditional delete). */
class FlakyCooldownStore extends FakeCooldownStore {
  failRelease = 0;
  override async release(key: string, holder: string): Promise<void> {
    if (this.failRelease > 0) {
      this.failRelease--;
      throw new Error('simulated cooldown table throttling');
    }
    return super.release(key, holder);
  }
}

/** Records what would be sent: a canceled export must never announce anything. */

let fakes: Fakes;
let cooldowns: FlakyCooldownStore;
let queue: RecordingQueue;
let swept: string[];
let pipelineLines: string[];

beforeEach(() => {
  fakes = createFakes();
  cooldowns = new FlakyCooldownStore();
  fakes.deps.cooldowns = cooldowns;
  queue = new RecordingQueue();
  swept = [];
  pipelineLines = [];
  ({ call, token } = apiCallerFor(fakes, secret));
});

let call: ApiCaller['call'];
let token: ApiCaller['token'];
const requestCases = async () => call(loadEvent('api-create-export-cases.json', { TOKEN: await token(), PASSWORD }));
const cancel = async (exportId: string) => call(loadEvent('api-cancel-export.json', { TOKEN: await token(), EXPORT_ID: exportId }));
const HOLD = cooldownKey('ch-1', 'm-1', 'cases');

/** The pipeline's step deps on the API's fakes (same jobs, audit trail and cooldowns). */
function stepDeps(over: Partial<StepDeps> = {}): StepDeps {
  const objects = {
    async deletePrefix(prefix: string) {
      swept.push(prefix);
      return 0;
    },
  } as unknown as ObjectStore;
  const record = (level: string) => (message: string, extra?: Record<string, unknown>) => void pipelineLines.push(`${level} ${message} ${JSON.stringify(extra ?? {})}`);
  const log: PipelineLog = { info: record('info'), warn: record('warn'), error: record('error') };
  return { store: fakes.store, objects, queue, clock: fakes.clock, audit: fakes.audit, cooldowns, log, ...over };
}
/** A canceled job's chunk never reads a source: only the step deps are used. */
const chunkDeps = (over: Partial<StepDeps> = {}): ChunkDeps => ({ ...stepDeps(over), cases: {} as never, users: {} as never, workspace: {} as never, maxRows: 1_000_000 });
const finalizeDeps = (over: Partial<StepDeps> = {}): FinalizeDeps => ({
  ...stepDeps(over),
  keyWrapper: {} as never,
  workspace: {} as never,
  linkSigningSecret: 'link-secret',
  linkTtlDays: 7,
});
const chunkMessage = (exportId: string): ChunkMessage => ({
  type: 'chunk',
  exportId,
  channelId: 'ch-1',
  chunkId: 'cases-2',
  sheet: 'cases',
  index: 2,
  source: { type: 'caseDay', day: '2026-02-01', fromIso: '2026-02-01T00:00:00.000Z', toIso: '2026-02-02T00:00:00.000Z' },
});
const finalizeMessage = (exportId: string): FinalizeMessage => ({ type: 'finalize', exportId, channelId: 'ch-1' });

/**
 * An export canceled over the API whose follow-ups failed and were never retried: its audit
 * append (`audit`), its cooldown release (`release`), or both. Then a chunk still in flight
 * touches the job, as the handler test does, so updatedAt is no longer the cancel's time.
 */
async function canceledWithoutFollowUps(failing: 'audit' | 'release' | 'both'): Promise<ExportJob> {
  const exportId = (await requestCases()).body.exportId as string;
  expect(cooldowns.items.get(HOLD)?.holder).toBe(exportId);
  if (failing !== 'release') fakes.audit.failNext = 'canceled';
  if (failing !== 'audit') cooldowns.failRelease = 1;
  expect((await cancel(exportId)).status).toBe(500);
  const job = fakes.store.jobs.get(exportId) as ExportJob;
  expect(job.status).toBe('canceled');
  expect(job.canceledAt).toBe(fakes.clock.now().toISOString());
  fakes.clock.advance(90_000);
  job.updatedAt = fakes.clock.now().toISOString();
  return structuredClone(job);
}

const auditOf = (exportId: string) => fakes.audit.events.filter((e) => e.exportId === exportId);
/** The one `canceled` event a cancel records: its own time, by the requester (the only one who may cancel). */
const canceledEvent = (job: ExportJob) => ({
  type: 'canceled',
  exportId: job.exportId,
  channelId: 'ch-1',
  at: job.canceledAt,
  managerId: 'm-1',
  // Where the cancel request came from (the sample event's address and user agent).
  ip: '203.0.113.7', userAgent: 'Mozilla/5.0 (export-console)',
});

describe('a cancel whose follow-ups failed and were never retried is finished by the pipeline', () => {
  it('a late chunk delivery (a first receive) appends the canceled event and gives the cooldown back', async () => {
    const job = await canceledWithoutFollowUps('both');
    expect(auditOf(job.exportId).map((e) => e.type)).toEqual(['requested']);
    expect(cooldowns.items.get(HOLD)?.holder).toBe(job.exportId);

    expect((await processChunk(chunkMessage(job.exportId), chunkDeps(), { receiveCount: 1 })).status).toBe('skipped');
    expect(auditOf(job.exportId)).toEqual([expect.objectContaining({ type: 'requested' }), canceledEvent(job)]);
    expect(cooldowns.items.has(HOLD)).toBe(false);
    // Its existing sweep is kept, and nothing is announced for a canceled export.
    expect(swept).toEqual([`parts/${job.exportId}/`]);
    expect(queue.sent).toEqual([]);
    // The manager may ask again; a second late delivery records nothing new.
    expect((await requestCases()).status).toBe(202);
    await processChunk(chunkMessage(job.exportId), chunkDeps(), { receiveCount: 2 });
    expect(auditOf(job.exportId).filter((e) => e.type === 'canceled')).toHaveLength(1);
  });

  it('a cancel whose release alone failed gets it from the pipeline, which frees only this export\'s hold', async () => {
    const job = await canceledWithoutFollowUps('release');
    expect(auditOf(job.exportId).map((e) => e.type)).toEqual(['requested', 'canceled']);
    await processChunk(chunkMessage(job.exportId), chunkDeps(), { receiveCount: 1 });
    expect(cooldowns.items.has(HOLD)).toBe(false);
    // The manager asks again; a later delivery of the canceled export leaves the newer hold alone.
    const newer = (await requestCases()).body.exportId as string;
    await processChunk(chunkMessage(job.exportId), chunkDeps(), { receiveCount: 1 });
    expect(cooldowns.items.get(HOLD)?.holder).toBe(newer);
    expect(auditOf(job.exportId).filter((e) => e.type === 'canceled')).toHaveLength(1);
  });

  it('the follow-up message the cancel sent before its transition finishes it, with no other step left to meet it', async () => {
    const job = await canceledWithoutFollowUps('both');
    // Sent once, by the request that made the transition (delivered 2 minutes later).
    expect(fakes.dispatcher.followUpsOf('cancel')).toEqual([job.exportId]);
    expect(await finishCancellation({ type: 'cancel', exportId: job.exportId, channelId: 'ch-1' }, stepDeps())).toBe('finished');
    expect(auditOf(job.exportId)).toContainEqual(canceledEvent(job));
    expect(cooldowns.items.has(HOLD)).toBe(false);
    expect(swept).toContain(`parts/${job.exportId}/`);
    // A second delivery records nothing new.
    const events = auditOf(job.exportId).length;
    expect(await finishCancellation({ type: 'cancel', exportId: job.exportId, channelId: 'ch-1' }, stepDeps())).toBe('finished');
    expect(auditOf(job.exportId)).toHaveLength(events);
  });

  it('no follow-up for a cancel refused as terminal, and one that finds no cancel (never committed) does nothing', async () => {
    const exportId = (await requestCases()).body.exportId as string;
    const job = fakes.store.jobs.get(exportId) as ExportJob;
    job.status = 'failed';
    expect((await cancel(exportId)).status).toBe(409);
    expect(fakes.dispatcher.followUpsOf('cancel')).toEqual([]);
    job.status = 'running';
    expect(await finishCancellation({ type: 'cancel', exportId, channelId: 'ch-1' }, stepDeps())).toBe('not-canceled');
    expect(auditOf(exportId).map((e) => e.type)).toEqual(['requested']);
    expect(cooldowns.items.get(HOLD)?.holder).toBe(exportId);
    expect(swept).toEqual([]);
  });

  it('the finalizer finding the export canceled finishes it', async () => {
    const job = await canceledWithoutFollowUps('both');
    expect((await finalizeExport(finalizeMessage(job.exportId), finalizeDeps(), { receiveCount: 1 })).status).toBe('skipped');
    expect(auditOf(job.exportId)).toEqual([expect.objectContaining({ type: 'requested' }), canceledEvent(job)]);
    expect(cooldowns.items.has(HOLD)).toBe(false);
    expect(queue.sent).toEqual([]);
  });

  it('the finalizer whose finalizing transition loses to the cancel finishes it', async () => {
    const exportId = (await requestCases()).body.exportId as string;
    Object.assign(fakes.store.jobs.get(exportId) as ExportJob, { status: 'running', chunksDone: 3, chunksTotal: 3 });
    const store = new FakeExportStore();
    store.jobs = fakes.store.jobs;
    let canceledAt: string | undefined;
    // The cancel (its follow-ups failing) lands between the finalizer's read and its transition.
    store.setStatus = async (channelId: string, id: string, to: ExportStatus, from: readonly ExportStatus[], patch?: JobPatch) => {
      if (to === 'finalizing' && canceledAt === undefined) {
        fakes.audit.failNext = 'canceled';
        cooldowns.failRelease = 1;
        expect((await cancel(exportId)).status).toBe(500);
        canceledAt = fakes.store.jobs.get(exportId)?.canceledAt;
      }
      return FakeExportStore.prototype.setStatus.call(store, channelId, id, to, from, patch);
    };
    expect((await finalizeExport(finalizeMessage(exportId), finalizeDeps({ store }), { receiveCount: 1 })).status).toBe('skipped');
    expect(canceledAt).toBeDefined();
    expect(auditOf(exportId).filter((e) => e.type === 'canceled')).toEqual([expect.objectContaining({ at: canceledAt, managerId: 'm-1' })]);
    expect(cooldowns.items.has(HOLD)).toBe(false);
  });

  it('a dead letter of a canceled export does not fail it: it finishes the cancel', async () => {
    const job = await canceledWithoutFollowUps('both');
    const outcome = await handleDeadLetter(JSON.stringify(chunkMessage(job.exportId)), stepDeps(), { queue: 'chunk-dlq' });
    expect(outcome).toBe('already-final');
    const after = fakes.store.jobs.get(job.exportId) as ExportJob;
    expect(after.status).toBe('canceled');
    expect(after.error).toBeUndefined();
    expect(auditOf(job.exportId)).toEqual([expect.objectContaining({ type: 'requested' }), canceledEvent(job)]);
    expect(cooldowns.items.has(HOLD)).toBe(false);
    expect(queue.sent).toEqual([]);
    // The file and parts/ sweeps it already did are kept.
    expect(swept).toEqual([`exports/ch-1/${job.exportId}/`, `parts/${job.exportId}/`]);
  });

  it('an audit or a cooldown release error in the pipeline retries the message (thrown, after the sweep and the other step)', async () => {
    const job = await canceledWithoutFollowUps('both');
    fakes.audit.failNext = 'canceled';
    await expect(processChunk(chunkMessage(job.exportId), chunkDeps(), { receiveCount: 1 })).rejects.toThrow(/audit table throttling/);
    expect(swept).toEqual([`parts/${job.exportId}/`]);
    // The release is not held back by the audit error.
    expect(cooldowns.items.has(HOLD)).toBe(false);
    await processChunk(chunkMessage(job.exportId), chunkDeps(), { receiveCount: 2 });
    expect(auditOf(job.exportId)).toEqual([expect.objectContaining({ type: 'requested' }), canceledEvent(job)]);

    // A release error: logged and thrown after the audit event is in, so the retry gives the hold
    // back (before, it was only logged, and the manager waited out the window).
    const other = await canceledWithoutFollowUps('both');
    cooldowns.failRelease = 1;
    await expect(processChunk(chunkMessage(other.exportId), chunkDeps(), { receiveCount: 1 })).rejects.toThrow(/cooldown table throttling/);
    expect(auditOf(other.exportId).map((e) => e.type)).toEqual(['requested', 'canceled']);
    expect(pipelineLines).toEqual(expect.arrayContaining([expect.stringMatching(/^warn cooldown release failed .*cooldown table throttling/)]));
    expect(cooldowns.items.has(HOLD)).toBe(true);
    expect((await processChunk(chunkMessage(other.exportId), chunkDeps(), { receiveCount: 2 })).status).toBe('skipped');
    expect(cooldowns.items.has(HOLD)).toBe(false);
    expect(auditOf(other.exportId).map((e) => e.type)).toEqual(['requested', 'canceled']);
  });
});

describe('a failed export gives its cooldown back', () => {
  it('a release error is thrown after the audit event and the notify, so the retry releases the hold (it was only logged)', async () => {
    const exportId = (await requestCases()).body.exportId as string;
    expect(cooldowns.items.get(HOLD)?.holder).toBe(exportId);
    cooldowns.failRelease = 1;
    // The finalize step's dead letter fails the export; its follow-ups cannot release the hold.
    await expect(handleDeadLetter(JSON.stringify(finalizeMessage(exportId)), stepDeps(), { queue: 'finalize-dlq' })).rejects.toThrow(/cooldown table throttling/);
    const failed = fakes.store.jobs.get(exportId) as ExportJob;
    expect(failed.status).toBe('failed');
    expect(failed.notifyEnqueued).toBeFalsy();
    expect(auditOf(exportId).map((e) => e.type)).toEqual(['requested', 'failed']);
    expect(queue.sent.map((m) => m.queue)).toEqual(['notify']);
    expect(cooldowns.items.has(HOLD)).toBe(true);
    expect(pipelineLines).toEqual(expect.arrayContaining([expect.stringMatching(/^warn cooldown release failed .*cooldown table throttling/)]));

    // The redelivered dead letter finishes it: the hold is back, the trail and the notify unchanged in kind.
    await handleDeadLetter(JSON.stringify(finalizeMessage(exportId)), stepDeps(), { queue: 'finalize-dlq' });
    expect(cooldowns.items.has(HOLD)).toBe(false);
    expect((fakes.store.jobs.get(exportId) as ExportJob).notifyEnqueued).toBe(true);
    expect(auditOf(exportId).map((e) => e.type)).toEqual(['requested', 'failed']);
    expect((await requestCases()).status).toBe(202);
  });
});

describe('the API cancel', () => {
  it('gives the cooldown back even when its audit append fails (the 500 no longer keeps the manager waiting)', async () => {
    const exportId = (await requestCases()).body.exportId as string;
    fakes.audit.failNext = 'canceled';
    expect((await cancel(exportId)).status).toBe(500);
    expect(cooldowns.items.has(HOLD)).toBe(false);
    expect((await requestCases()).status).toBe(202);
  });
});
