import { describe, expect, it } from 'vitest';
import type { SQSEvent } from 'aws-lambda';
import { DeleteCommand } from '@aws-sdk/lib-dynamodb';
import type { LocalStack } from '../../infra/local/stack';
import type { SqsHandler } from '../../infra/local/sqs-poller';
import { createSourceWriter } from '../../infra/local/seed-data';
import type { ExportJob } from '../../shared/app/export-job';
import { compareUsersInExportOrder } from '../../shared/app/source-keys';
import { workspaceItems } from '../../shared/app/workspace-context';
import type { ProfileSchema, Segment } from '../../shared/domain';
import { http, managerToken } from '../e2e/support';
import { readExportFile, storesFor, submitExport, TEST_PASSWORD, useLocalStack, waitFor, waitForJob, QUIET_ENV } from './helpers';

/**
 * One definition per export (C4, C5): the segment's conditions and the profile schemas are
 * read at the request and every chunk and the finalizer use that copy. Exports are requested
 * over HTTP (the API's own plan), so these tests also run against code that pinned nothing.
 * Each test has its own channel: a chunk container's cache of another test's reads cannot help
 * or hide anything here.
 */

const user = (id: string, tags: string[], profile: Record<string, unknown> = {}) => ({
  id,
  name: id,
  member: false,
  tags,
  sessionCount: 0,
  createdAt: Date.UTC(2025, 0, 1),
  marketingConsentEmail: false,
  marketingConsentTexting: false,
  blocked: false,
  profile,
});
const taggedSegment = (tag: string): Segment => ({
  id: 'seg-1',
  name: 'tagged',
  filter: { join: 'and', groups: [{ join: 'and', conditions: [{ field: 'tags', op: 'eq', value: tag }] }] },
});
/**
 * The chunks that run next start as cold containers would: nothing cached from before. Imported
 * late, as the stack does, so its logger is built after the stack set the log level.
 */
async function coldContainers(): Promise<void> {
  (await import('../../shared/adapters/aws/pipeline-deps')).resetPipelineDeps();
}
const terminal = (j: ExportJob) => ['completed', 'failed', 'canceled'].includes(j.status);

/**
 * Holds the chunk deliveries of one channel after the first `allow` of them until released:
 * a test changes the workspace between the chunks of one export.
 */
const hold = { channelId: '', allow: Number.POSITIVE_INFINITY, passed: 0, release: () => {}, released: Promise.resolve() };
function holdChunks(channelId: string, allow: number): void {
  let release = () => {};
  const released = new Promise<void>((resolve) => (release = resolve));
  Object.assign(hold, { channelId, allow, passed: 0, release, released });
}
function gateChunks(name: string, handler: SqsHandler): SqsHandler {
  if (name !== 'chunk') return handler;
  return async (event: SQSEvent, context) => {
    const body = JSON.parse(event.Records[0]?.body ?? '{}') as { channelId?: string };
    if (body.channelId === hold.channelId) {
      if (hold.passed >= hold.allow) await hold.released;
      else hold.passed++;
    }
    return handler(event, context);
  };
}

describe('one definition per export: segment conditions and profile schemas pinned at the request', () => {
  let stack: LocalStack;
  useLocalStack(
    {
      port: 0,
      env: { ...QUIET_ENV, KEY_SPIN_COUNT: '1000' },
      queues: { chunk: { visibilityTimeout: 30 }, finalize: { visibilityTimeout: 20 }, notify: { visibilityTimeout: 5 } },
      wrapHandler: gateChunks,
    },
    (started) => (stack = started),
  );

  async function seedWorkspace(channelId: string, input: { segment?: Segment; userProfileSchema?: ProfileSchema; users?: ReturnType<typeof user>[] }) {
    const writer = createSourceWriter(storesFor(stack).ddb);
    const items = workspaceItems({
      channel: { channelId, name: channelId, timeZone: 'Asia/Seoul' },
      userProfileSchema: input.userProfileSchema ?? { keys: [] },
      chatProfileSchema: { keys: [] },
      directory: { teams: [], managers: [] },
      segments: input.segment ? [input.segment] : [],
    });
    await writer.putWorkspaceItems(channelId, items as never);
    if (input.users) await writer.putUsers(channelId, input.users);
  }

  let managers = 0;
  /** POST /v1/exports as a new manager each time (the C8 cooldown has its own tests). */
  async function requestExport(channelId: string, body: Record<string, unknown>): Promise<Pick<ExportJob, 'channelId' | 'exportId'>> {
    managers += 1;
    const token = await managerToken(channelId, `pin-m${managers}`);
    const res = await http(stack, 'POST', '/v1/exports', { token, body: { kind: 'contacts', ...body, password: TEST_PASSWORD, reason: 'definition check' } });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    return { channelId, exportId: String(res.body.exportId) };
  }

  async function finishedFile(job: Pick<ExportJob, 'channelId' | 'exportId'>): Promise<unknown[][]> {
    const done = await waitForJob(stack, job, terminal);
    expect(done.status, JSON.stringify(done.error)).toBe('completed');
    return (await readExportFile(stack, done))['User data'] ?? [];
  }

  const ids = (rows: unknown[][]) => rows.slice(1).map((r) => r[0]);

  it('C4: a segment edited between two exports: the second export, requested right after the edit, uses the edited conditions', async () => {
    const ch = 'pin-edited';
    await seedWorkspace(ch, { segment: taggedSegment('A'), users: [user('ua', ['A']), user('ub', ['B'])] });
    expect(ids(await finishedFile(await requestExport(ch, { scope: 'segment', segmentId: 'seg-1' })))).toEqual(['ua']);
    await seedWorkspace(ch, { segment: taggedSegment('B') });
    expect(ids(await finishedFile(await requestExport(ch, { scope: 'segment', segmentId: 'seg-1' })))).toEqual(['ub']);
  });

  it('C4: a segment edited (then deleted) while its export runs does not change that export: the rows match the conditions at the request', async () => {
    const ch = 'pin-inflight';
    // Users in every shard, so chunks before and after the edit both have rows to disagree on.
    const users = Array.from({ length: 64 }, (_u, i) => user(`inflight-${String(i).padStart(2, '0')}`, [i % 2 === 0 ? 'A' : 'B']));
    await seedWorkspace(ch, { segment: taggedSegment('A'), users });
    holdChunks(ch, 3);
    const job = await requestExport(ch, { scope: 'segment', segmentId: 'seg-1' });
    await waitFor(async () => ((await storesFor(stack).store.getJob(ch, job.exportId))?.chunksDone ?? 0) >= 3 || undefined);
    await seedWorkspace(ch, { segment: taggedSegment('B') });
    await coldContainers();
    hold.release();
    const expected = users.filter((u) => u.tags.includes('A')).map((u) => u.id).sort(compareUsersInExportOrder);
    expect(ids(await finishedFile(job))).toEqual(expected);

    // Deleted while an export runs: that export still completes with the conditions it was requested with.
    await seedWorkspace(ch, { segment: taggedSegment('A') });
    holdChunks(ch, 2);
    const second = await requestExport(ch, { scope: 'segment', segmentId: 'seg-1' });
    await waitFor(async () => ((await storesFor(stack).store.getJob(ch, second.exportId))?.chunksDone ?? 0) >= 2 || undefined);
    await storesFor(stack).ddb.send(new DeleteCommand({ TableName: stack.tables.workspace, Key: { pk: ch, sk: 'SEGMENT#seg-1' } }));
    await coldContainers();
    hold.release();
    expect(ids(await finishedFile(second))).toEqual(expected);
  });

  it('C5: a profile key archived and another added while the export runs: it completes with the columns and values of the request', async () => {
    const ch = 'pin-schema';
    const schema = (grade: { archived: boolean }, extra: boolean): ProfileSchema => ({
      keys: [
        { key: 'grade', type: 'string', order: 1, archived: grade.archived },
        { key: 'tier', type: 'string', order: 2, archived: false },
        ...(extra ? [{ key: 'addedLater', type: 'string' as const, order: 3, archived: false }] : []),
      ],
    });
    const users = Array.from({ length: 48 }, (_u, i) => user(`schema-${String(i).padStart(2, '0')}`, [], { grade: `g${i}`, tier: 't', addedLater: 'x' }));
    await seedWorkspace(ch, { userProfileSchema: schema({ archived: false }, false), users });
    holdChunks(ch, 3);
    const job = await requestExport(ch, { scope: 'all' });
    await waitFor(async () => ((await storesFor(stack).store.getJob(ch, job.exportId))?.chunksDone ?? 0) >= 3 || undefined);
    await seedWorkspace(ch, { userProfileSchema: schema({ archived: true }, true) });
    await coldContainers();
    hold.release();
    const rows = await finishedFile(job);
    const header = rows[0] as string[];
    expect(header.filter((h) => h.startsWith('profile.') && !['profile.name', 'profile.mobileNumber', 'profile.email'].includes(h))).toEqual([
      'profile.grade',
      'profile.tier',
    ]);
    const grade = header.indexOf('profile.grade');
    expect(rows.slice(1).map((r) => [r[0], r[grade]])).toEqual(
      users.map((u) => u.id).sort(compareUsersInExportOrder).map((id) => [id, `g${Number(id.slice(-2))}`]),
    );
  });

  it('a job created by the previous version (no pinned definition) still completes, reading the workspace uncached', async () => {
    const ch = 'pin-legacy';
    const grade = { key: 'grade', type: 'string' as const, order: 1, archived: false };
    const users = [user('la', ['A'], { grade: 'ga', tier: 'ta' }), user('lb', ['B'], { grade: 'gb', tier: 'tb' })];
    await seedWorkspace(ch, { segment: taggedSegment('A'), userProfileSchema: { keys: [grade] }, users });
    const legacy = (request: Parameters<typeof submitExport>[1]) => submitExport(stack, request, { channelId: ch, legacyJob: true });
    const first = await legacy({ kind: 'contacts', scope: 'segment', segmentId: 'seg-1' });
    expect(first.definition).toBeUndefined();
    expect(first.definitionKey).toBeUndefined();
    const firstRows = await finishedFile(first);
    expect(ids(firstRows)).toEqual(['la']);
    expect(firstRows[0]).toContain('profile.grade');
    // Edited right after: the old job format has no copy, so its chunks read the segment, never
    // a warm container's cached one.
    await seedWorkspace(ch, { segment: taggedSegment('B'), userProfileSchema: { keys: [grade] } });
    expect(ids(await finishedFile(await legacy({ kind: 'contacts', scope: 'segment', segmentId: 'seg-1' })))).toEqual(['lb']);
    // A key added right after: chunks and finalizer read the same (current) schema, so no
    // COLUMNS_CHANGED from a warm chunk's older copy.
    await seedWorkspace(ch, { segment: taggedSegment('B'), userProfileSchema: { keys: [grade, { key: 'tier', type: 'string', order: 2, archived: false }] } });
    const withTier = await finishedFile(await legacy({ kind: 'contacts', scope: 'segment', segmentId: 'seg-1' }));
    expect(withTier[0]).toContain('profile.tier');
    // A case export of the old format goes through the finalizer's fallback too.
    const cases = await legacy({ kind: 'cases', from: '2025-07-01', to: '2025-07-02', timezone: 'Asia/Seoul' });
    const done = await waitForJob(stack, cases, terminal);
    expect(done.status, JSON.stringify(done.error)).toBe('completed');
    expect(done.rowCount).toBe(0);
  });
});
