import { createRequire } from 'node:module';
import zlib from 'node:zlib';
import { marshall } from '@aws-sdk/util-dynamodb';
import { QueryCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoExportStore } from '../../shared/adapters/aws/dynamo-export-store';
import { createPipelineDispatcher } from '../../shared/app/api/pipeline-dispatcher';
import { exportJobSchema, FILTER_IN_DEFINITION, type ExportJob, type JobDefinition } from '../../shared/app/export-job';
import { DEFINITION_INLINE_MAX_BYTES, DefinitionMissingError, loadJobDefinition, storeJobDefinition } from '../../shared/app/job-definition';
import { buildChunkMessages } from '../../shared/app/plan-chunks';
import { processChunk, type ChunkDeps } from '../../shared/app/process-chunk';
import { userShardOf } from '../../shared/app/source-keys';
import { compileRequestPredicate, workspaceSk } from '../../shared/app/workspace-context';
import { compileFilter, MAX_FILTER_BYTES, NotFoundError, parseExportRequest, ValidationError, type ProfileSchema } from '../../shared/domain';
import type { ObjectStore } from '../../shared/ports/object-store';
import { silentLog } from '../../shared/ports/pipeline-log';
import type { RawItem, WorkspaceSource } from '../../shared/ports/source-data';
import { deriveEncryptionKeys } from '../../shared/xlsx';
import { startDynalite, type LocalDynamo } from '../api/support/dynalite';
import { exportsTableSpec, tableInput } from '../../infra/local/resources';
import { makeJob } from './job-fixture';
import { sealEncryptionParams } from '../../shared/app/job-encryption';

/** An in-memory workspace that counts reads per sort key. */
function memoryWorkspace(items: Record<string, RawItem>) {
  const reads: string[] = [];
  const source: WorkspaceSource = {
    getItem: async (_channelId, sk) => {
      reads.push(sk);
      return items[sk] ?? null;
    },
  };
  return { source, reads, items };
}

function memoryObjects() {
  const stored = new Map<string, Buffer>();
  const objects = {
    put: async (key: string, body: Buffer | string) => void stored.set(key, Buffer.from(body)),
    getBuffer: async (key: string) => stored.get(key) ?? null,
  };
  return { stored, objects };
}

const tagFilter = (tag: string) => ({ join: 'and', groups: [{ join: 'and', conditions: [{ field: 'tags', op: 'eq', value: tag }] }] });
const gradeSchema: ProfileSchema = { keys: [{ key: 'grade', type: 'string', order: 1, archived: false }] };

/** A profile schema whose JSON is about `bytes` long. */
function schemaOfSize(bytes: number): ProfileSchema {
  const keys: ProfileSchema['keys'] = [];
  while (JSON.stringify({ keys }).length < bytes) keys.push({ key: `k${keys.length}`, type: 'list', order: keys.length, archived: false });
  return { keys };
}

// dynalite computes item sizes with DynamoDB's rules and refuses items over 400 KB.
const { itemSize } = createRequire(import.meta.url)('dynalite/db') as { itemSize: (item: Record<string, unknown>) => number };

/** One-digit numbers: 2 bytes of JSON each, 3 bytes in DynamoDB, the worst ratio a filter can have. */
function numberFilter(field: string, maxBytes: number) {
  const values = [7];
  const filter = { join: 'and', groups: [{ join: 'and', conditions: [{ field, op: 'in', values }] }] };
  // Every further value adds ",7".
  values.push(...Array<number>(Math.floor((maxBytes - Buffer.byteLength(JSON.stringify(filter))) / 2)).fill(7));
  expect(Buffer.byteLength(JSON.stringify(filter))).toBeGreaterThan(maxBytes - 2);
  expect(Buffer.byteLength(JSON.stringify(filter))).toBeLessThanOrEqual(maxBytes);
  return filter;
}

describe('the API pins the export definition at the request (plan)', () => {
  function dispatcherWith(items: Record<string, RawItem>) {
    const workspace = memoryWorkspace(items);
    const { stored, objects } = memoryObjects();
    const dispatcher = createPipelineDispatcher({
      store: {} as never,
      objects: objects as unknown as ObjectStore,
      queue: {} as never,
      workspace: workspace.source,
      selectionBatch: 2000,
      log: silentLog,
    });
    return { dispatcher, workspace, stored };
  }
  const contacts = (body: Record<string, unknown>) =>
    parseExportRequest({ kind: 'contacts', password: 'secret1', reason: 'r', ...body });

  it('C4: a segment export carries the segment conditions read now and the profile schemas; the job keeps the segmentId', async () => {
    const { dispatcher } = dispatcherWith({
      [workspaceSk.segment('s1')]: { id: 's1', name: 'vip', filter: tagFilter('VIP') },
      [workspaceSk.userProfileSchema]: gradeSchema,
    });
    const plan = await dispatcher.plan({ exportId: 'e1', channelId: 'ch', request: contacts({ scope: 'segment', segmentId: 's1' }) });
    expect(plan.jobRequest).toMatchObject({ kind: 'contacts', scope: 'segment', segmentId: 's1' });
    expect(plan.extra?.definition).toEqual({ segmentFilter: tagFilter('VIP'), userProfileSchema: gradeSchema, chatProfileSchema: { keys: [] } });
    expect(plan.extra?.definitionKey).toBeUndefined();
    // What the job item holds parses back to the same definition.
    const job = exportJobSchema.parse({ ...makeJob(), request: plan.jobRequest, ...plan.extra });
    expect(job.definition?.segmentFilter).toEqual(tagFilter('VIP'));
    // …and the API's audit entry records the same conditions (the segment may change later).
    expect(plan.segmentFilter).toEqual(tagFilter('VIP'));
  });

  it("a request's filter travels with the definition, not in the job's request: a 100,000-byte filter goes to S3 with it", async () => {
    const { dispatcher, stored } = dispatcherWith({ [workspaceSk.userProfileSchema]: gradeSchema });
    const small = await dispatcher.plan({ exportId: 'e5', channelId: 'ch', request: contacts({ scope: 'filter', filter: tagFilter('VIP') }) });
    expect(small.jobRequest).toEqual({ kind: 'contacts', scope: 'filter', filter: FILTER_IN_DEFINITION });
    expect(small.extra?.definition).toEqual({ requestFilter: tagFilter('VIP'), userProfileSchema: gradeSchema, chatProfileSchema: { keys: [] } });

    const filter = numberFilter('sessionCount', MAX_FILTER_BYTES);
    const big = await dispatcher.plan({ exportId: 'e6', channelId: 'ch', request: contacts({ scope: 'filter', filter }) });
    expect(big.jobRequest).toEqual({ kind: 'contacts', scope: 'filter', filter: FILTER_IN_DEFINITION });
    expect(big.extra?.definition).toBeUndefined();
    const key = big.extra?.definitionKey ?? '';
    expect(JSON.parse(stored.get(key)?.toString('utf8') ?? 'null')).toEqual({ requestFilter: filter, userProfileSchema: gradeSchema, chatProfileSchema: { keys: [] } });
    // What a chunk rewrites is a small item again: under 3 KB here, where the filter made it ~150 KB.
    const item = { ...makeJob({ exportId: 'e6' }), request: big.jobRequest, ...big.extra };
    expect(itemSize(marshall(item, { removeUndefinedValues: true }) as Record<string, unknown>)).toBeLessThan(3 * 1024);
  });

  it('a cases filter travels with the definition too', async () => {
    const { dispatcher } = dispatcherWith({});
    const filter = { join: 'and', groups: [{ join: 'and', conditions: [{ field: 'replyCount', op: 'gte', value: 2 }] }] };
    const request = parseExportRequest({ kind: 'cases', from: '2025-07-01', to: '2025-07-02', timezone: 'Asia/Seoul', password: '1234', reason: 'r', filter });
    const plan = await dispatcher.plan({ exportId: 'e7', channelId: 'ch', request });
    expect(plan.jobRequest).toEqual({ kind: 'cases', from: '2025-07-01', to: '2025-07-02', timezone: 'Asia/Seoul', filter: FILTER_IN_DEFINITION });
    // A request without a filter gets no placeholder.
    const none = await dispatcher.plan({ exportId: 'e7b', channelId: 'ch', request: parseExportRequest({ kind: 'cases', from: '2025-07-01', to: '2025-07-02', timezone: 'Asia/Seoul', password: '1234', reason: 'r' }) });
    expect(none.jobRequest).toEqual({ kind: 'cases', from: '2025-07-01', to: '2025-07-02', timezone: 'Asia/Seoul' });
    expect(plan.extra?.definition?.requestFilter).toEqual(filter);
  });

  it('every export pins the profile schemas (they decide the columns), also scopes that read no segment', async () => {
    const { dispatcher } = dispatcherWith({ [workspaceSk.userProfileSchema]: gradeSchema });
    const plan = await dispatcher.plan({ exportId: 'e2', channelId: 'ch', request: contacts({ scope: 'all' }) });
    expect(plan.extra?.definition).toEqual({ userProfileSchema: gradeSchema, chatProfileSchema: { keys: [] } });
  });

  it('a segment that does not exist is refused at the request (404 SEGMENT_NOT_FOUND), nothing stored', async () => {
    const { dispatcher, stored } = dispatcherWith({});
    const planned = dispatcher.plan({ exportId: 'e3', channelId: 'ch', request: contacts({ scope: 'segment', segmentId: 'gone' }) });
    await expect(planned).rejects.toBeInstanceOf(NotFoundError);
    await expect(planned).rejects.toMatchObject({ code: 'SEGMENT_NOT_FOUND' });
    expect(stored.size).toBe(0);
  });

  it("C4: a segment whose saved conditions no longer fit the workspace is SEGMENT_INVALID naming the segment's path, not a FILTER_* error on a filter the request never sent", async () => {
    const archived: ProfileSchema = { keys: [{ key: 'tier', type: 'string', order: 1, archived: true }, { key: 'spend', type: 'number', order: 2, archived: false }] };
    const cases: [unknown, string, RegExp][] = [
      [{ field: 'profile.tier', op: 'eq', value: 'gold' }, 'segment.filter.groups[0].conditions[0].field', /archived.*C5/],
      [{ field: 'profile.spend', op: 'contains', value: '1' }, 'segment.filter.groups[0].conditions[0].op', /./],
    ];
    for (const [condition, field, reason] of cases) {
      const { dispatcher, stored } = dispatcherWith({
        [workspaceSk.segment('s9')]: { id: 's9', name: 'old', filter: { join: 'and', groups: [{ join: 'and', conditions: [condition] }] } },
        [workspaceSk.userProfileSchema]: archived,
      });
      const planned = dispatcher.plan({ exportId: 'e9', channelId: 'ch', request: contacts({ scope: 'segment', segmentId: 's9' }) });
      await expect(planned).rejects.toBeInstanceOf(ValidationError);
      await expect(planned).rejects.toMatchObject({ code: 'SEGMENT_INVALID', rule: 'C4', field, message: expect.stringMatching(reason) });
      expect(stored.size).toBe(0);
    }
    // A request's own filter keeps its FILTER_* code and path.
    const { dispatcher } = dispatcherWith({ [workspaceSk.userProfileSchema]: archived });
    const own = dispatcher.plan({ exportId: 'e10', channelId: 'ch', request: contacts({ scope: 'filter', filter: { join: 'and', groups: [{ join: 'and', conditions: [{ field: 'profile.tier', op: 'eq', value: 'gold' }] }] } }) });
    await expect(own).rejects.toMatchObject({ code: 'FILTER_UNKNOWN_FIELD', field: 'filter.groups[0].conditions[0].field' });
  });

  it('C2: a filter date-time that does not exist is refused at the request (400 naming the field), nothing stored', async () => {
    // Date.parse alone would read 2023-02-29 as March 1 and export from the wrong day.
    const { dispatcher, stored } = dispatcherWith({});
    const filter = { join: 'and', groups: [{ join: 'and', conditions: [{ field: 'lastSeenAt', op: 'gte', value: '2023-02-29T00:00:00Z' }] }] };
    const planned = dispatcher.plan({ exportId: 'e5', channelId: 'ch', request: contacts({ scope: 'filter', filter }) });
    await expect(planned).rejects.toBeInstanceOf(ValidationError); // the API answers it with a 400
    await expect(planned).rejects.toMatchObject({
      code: 'FILTER_INVALID',
      field: 'filter.groups[0].conditions[0].value',
      message: expect.stringMatching(/date and time that exist/),
    });
    expect(stored.size).toBe(0);
  });

  it('a definition too large for the job item goes to S3 under its digest, before the job exists, and reads back the same', async () => {
    const big = schemaOfSize(DEFINITION_INLINE_MAX_BYTES + 1_000);
    const { dispatcher, stored, workspace } = dispatcherWith({ [workspaceSk.userProfileSchema]: big });
    const plan = await dispatcher.plan({ exportId: 'e4', channelId: 'ch', request: contacts({ scope: 'all' }) });
    expect(plan.extra?.definition).toBeUndefined();
    expect(plan.extra?.definitionKey).toMatch(/^parts\/e4\/definition-[0-9a-f]{64}\.json$/);
    expect([...stored.keys()]).toEqual([plan.extra?.definitionKey]);
    const job = exportJobSchema.parse({ ...makeJob({ exportId: 'e4' }), ...plan.extra });
    const reads = workspace.reads.length;
    const loaded = await loadJobDefinition(job, { objects: { getBuffer: async (k) => stored.get(k) ?? null }, workspace: workspace.source });
    expect(loaded).toEqual({ userProfileSchema: big, chatProfileSchema: { keys: [] } });
    expect(workspace.reads.length).toBe(reads);
  });
});

describe('the job item stays small: every chunk rewrites it, and a write costs a unit per KB', () => {
  it('a 20,000-byte profile schema (~150 keys) goes to S3, not into the job item', async () => {
    // At the earlier 100,000-byte budget it stayed inline, and each chunk write cost ~20 units more.
    const schema = schemaOfSize(20_000);
    const { stored, objects } = memoryObjects();
    const pinned = await storeJobDefinition('e20', { userProfileSchema: schema, chatProfileSchema: { keys: [] } }, objects);
    expect(pinned.definition).toBeUndefined();
    expect(pinned.definitionKey).toMatch(/^parts\/e20\/definition-[0-9a-f]{64}\.json$/);
    expect(stored.size).toBe(1);
  });

  it('a schema of ~80 keys stays inline (no S3 read per chunk)', async () => {
    const schema = schemaOfSize(10_000);
    const { stored, objects } = memoryObjects();
    const pinned = await storeJobDefinition('e10k', { userProfileSchema: schema, chatProfileSchema: { keys: [] } }, objects);
    expect(pinned.definition?.userProfileSchema).toEqual(schema);
    expect(stored.size).toBe(0);
  });
});

describe('loadJobDefinition', () => {
  it('a job from before definitions were pinned reads both profile schemas from the workspace', async () => {
    const workspace = memoryWorkspace({ [workspaceSk.userProfileSchema]: gradeSchema });
    const loaded = await loadJobDefinition(makeJob(), { objects: { getBuffer: async () => null }, workspace: workspace.source });
    expect(loaded).toEqual({ userProfileSchema: gradeSchema, chatProfileSchema: { keys: [] } });
    expect(workspace.reads.sort()).toEqual([workspaceSk.chatProfileSchema, workspaceSk.userProfileSchema]);
  });

  it('a definition object that is missing is the final EXPORT_DATA_EXPIRED (the export fails at once), never an empty definition', async () => {
    const job = makeJob({ definitionKey: 'parts/e1/definition-00.json' });
    await expect(loadJobDefinition(job, { objects: { getBuffer: async () => null }, workspace: memoryWorkspace({}).source })).rejects.toBeInstanceOf(
      DefinitionMissingError,
    );
  });

  it('storeJobDefinition keeps a definition at the budget inline and writes nothing', async () => {
    const { stored, objects } = memoryObjects();
    const definition: JobDefinition = { userProfileSchema: gradeSchema, chatProfileSchema: { keys: [] } };
    expect(await storeJobDefinition('e1', definition, objects, Buffer.byteLength(JSON.stringify(definition)))).toEqual({ definition });
    expect(stored.size).toBe(0);
  });
});

describe('a chunk of a pinned job', () => {
  const channelId = 'ch1';
  const users = ['p1', 'p2', 'p3', 'p4'].map((id, i) => ({ id, createdAt: 0, tags: [i % 2 ? 'B' : 'A'], profile: { grade: `g-${id}` } }));

  /** A running contacts job of scope `filter` whose request holds `filter` and whose definition has none (as jobs before the move). */
  const filterJob = (filter: unknown) =>
    makeJob({
      channelId,
      status: 'running',
      chunksTotal: 16,
      request: { kind: 'contacts', scope: 'filter', filter },
      definition: { userProfileSchema: gradeSchema, chatProfileSchema: { keys: [] } },
    });

  /** Runs every chunk of `job` over `users` and returns the sheet XML its parts hold. */
  async function runChunks(job: ExportJob, workspace: WorkspaceSource, objects: ReturnType<typeof memoryObjects>): Promise<string> {
    const deps: ChunkDeps = {
      store: {
        getJob: async () => job,
        setStatus: async () => true,
        isChunkDone: async () => false,
        markChunkDone: async () => ({ firstTime: true, done: 1, total: 16, rowsWritten: 0 }),
      } as unknown as ChunkDeps['store'],
      objects: objects.objects as unknown as ChunkDeps['objects'],
      queue: {} as ChunkDeps['queue'],
      clock: { now: () => new Date('2026-01-01T00:00:00Z') },
      log: silentLog,
      cases: {} as ChunkDeps['cases'],
      users: {
        async *queryShard(_ch: string, shard: number) {
          yield users.filter((u) => userShardOf(u.id) === shard);
        },
      } as unknown as ChunkDeps['users'],
      workspace,
      maxRows: 1_000_000,
    };
    for (const message of buildChunkMessages(job, {}, 2000)) expect((await processChunk(message, deps, { receiveCount: 1 })).status).toBe('done');
    return [...objects.stored.entries()]
      .filter(([key]) => !key.endsWith('.json'))
      .map(([, body]) => zlib.inflateRawSync(body, { finishFlush: zlib.constants.Z_SYNC_FLUSH }).toString('utf8'))
      .join('');
  }

  it('evaluates the pinned segment conditions with the pinned schema, and reads neither from the workspace', async () => {
    // The workspace now says something else entirely: a chunk that read it would export other rows and columns.
    const workspace = memoryWorkspace({
      [workspaceSk.segment('s1')]: { id: 's1', name: 'edited', filter: tagFilter('B') },
      [workspaceSk.userProfileSchema]: { keys: [{ key: 'other', type: 'string', order: 1, archived: false }] },
    });
    const job = makeJob({
      channelId,
      status: 'running',
      chunksTotal: 16,
      request: { kind: 'contacts', scope: 'segment', segmentId: 's1' },
      definition: { segmentFilter: tagFilter('A'), userProfileSchema: gradeSchema, chatProfileSchema: { keys: [] } },
    });
    const xml = await runChunks(job, workspace.source, memoryObjects());
    expect(workspace.reads).toEqual([]);
    expect(xml).toContain('g-p1');
    expect(xml).toContain('g-p3');
    expect(xml).not.toContain('p2');
    expect(xml).not.toContain('p4');
  });

  it("applies the request's filter kept with the definition in S3 (the job's request has none)", async () => {
    const workspace = memoryWorkspace({ [workspaceSk.userProfileSchema]: gradeSchema });
    // Tag B and a list of grades long enough that the definition cannot stay in the job item.
    const grades = Array.from({ length: 3_000 }, (_u, i) => `x-${i}`).concat(['g-p4']);
    const filter = {
      join: 'and',
      groups: [{ join: 'and', conditions: [{ field: 'tags', op: 'eq', value: 'B' }, { field: 'profile.grade', op: 'in', values: grades }] }],
    };
    const request = parseExportRequest({ kind: 'contacts', scope: 'filter', filter, password: 'secret1', reason: 'r' });
    const objects = memoryObjects();
    const plan = await createPipelineDispatcher({
      store: {} as never,
      objects: objects.objects as unknown as ObjectStore,
      queue: {} as never,
      workspace: workspace.source,
      selectionBatch: 2000,
      log: silentLog,
    }).plan({ exportId: 'e8', channelId, request });
    expect(plan.extra?.definitionKey).toEqual(expect.any(String));
    expect(plan.jobRequest).toMatchObject({ filter: FILTER_IN_DEFINITION });
    const job = exportJobSchema.parse({ ...makeJob({ exportId: 'e8', channelId, status: 'running', chunksTotal: 16 }), request: plan.jobRequest, ...plan.extra });
    const xml = await runChunks(job, workspace.source, objects);
    expect(xml).toContain('g-p4');
    for (const other of ['g-p1', 'g-p2', 'g-p3']) expect(xml).not.toContain(other);
  });

  it('fails closed where the definition lost the filter: the placeholder in the request compiles to FILTER_INVALID, as it does in a chunk of a version from before the move (which exported every row without it)', async () => {
    const workspace = memoryWorkspace({});
    const job = filterJob(FILTER_IN_DEFINITION);
    await expect(compileRequestPredicate(job.request, job.definition!, { source: workspace.source, channelId }, { now: new Date(), timeZone: 'UTC' })).rejects.toMatchObject({
      code: 'FILTER_INVALID',
    });
    // What an older chunk does with the request alone: compile it against its strict schema.
    expect(() => compileFilter(FILTER_IN_DEFINITION, 'users', { now: new Date() })).toThrow(expect.objectContaining({ code: 'FILTER_INVALID' }));
  });

  it('a job created before filters moved to the definition still applies the filter in its request', async () => {
    const workspace = memoryWorkspace({});
    const job = filterJob(tagFilter('B'));
    const xml = await runChunks(job, workspace.source, memoryObjects());
    expect(xml).toContain('g-p2');
    expect(xml).toContain('g-p4');
    for (const other of ['g-p1', 'g-p3']) expect(xml).not.toContain(other);
  });
});
