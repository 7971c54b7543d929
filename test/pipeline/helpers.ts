import { randomBytes } from 'node:crypto';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { decryptAndRead } from '../support/read-export';
import { deriveEncryptionKeys } from '../../shared/xlsx';
import { LocalKeyWrapper } from '../../shared/adapters/local/local-key-wrapper';
import { DynamoExportStore } from '../../shared/adapters/aws/dynamo-export-store';
import { DynamoCasesSource, DynamoUsersSource, DynamoWorkspaceSource } from '../../shared/adapters/aws/dynamo-source-data';
import { S3ObjectStore } from '../../shared/adapters/aws/s3-object-store';
import { SqsMessageQueue } from '../../shared/adapters/aws/sqs-message-queue';
import { newExportId, type ExportJob, type JobEncryption, type JobRequest } from '../../shared/app/export-job';
import { sealEncryptionParams } from '../../shared/app/job-encryption';
import { buildChunkMessages, planChunks } from '../../shared/app/plan-chunks';
import { resolveJobDefinition, storeJobDefinition } from '../../shared/app/job-definition';
import { compileRequestPredicate } from '../../shared/app/workspace-context';
import { processChunk, type ChunkDeps } from '../../shared/app/process-chunk';
import type { FinalizeDeps } from '../../shared/app/finalize-export';
import type { NotifyDeps } from '../../shared/app/notify-export';
import type { StepDeps } from '../../shared/app/pipeline-steps';
import { silentLog } from '../../shared/ports/pipeline-log';
import { afterAll, beforeAll, expect } from 'vitest';
import { startLocalStack, type LocalStack } from '../../infra/local/stack';

export const TEST_PASSWORD = 'Pw7x9Qz2Lk';

export function storesFor(stack: LocalStack) {
  const ddb = DynamoDBDocumentClient.from(stack.clients.ddb, { marshallOptions: { removeUndefinedValues: true } });
  return {
    ddb,
    store: new DynamoExportStore(ddb, stack.tables.exports),
    objects: new S3ObjectStore(stack.clients.s3, stack.bucket),
    queue: new SqsMessageQueue(stack.clients.sqs, {
      chunk: stack.queues.chunk.url,
      finalize: stack.queues.finalize.url,
      notify: stack.queues.notify.url,
    }),
  };
}

/** processChunk's dependencies on the emulators, with some replaced. */
export function chunkDepsFor(stack: LocalStack, over: Partial<ChunkDeps> = {}): ChunkDeps {
  const { ddb, objects, queue, store } = storesFor(stack);
  return {
    store,
    objects,
    queue,
    clock: { now: () => new Date() },
    log: silentLog,
    cases: new DynamoCasesSource(ddb, stack.tables.cases),
    users: new DynamoUsersSource(ddb, stack.tables.users),
    workspace: new DynamoWorkspaceSource(ddb, stack.tables.workspace),
    maxRows: 1_000_000,
    ...over,
  };
}

/** finalizeExport's dependencies on the emulators: the given step deps plus the key wrapper and link settings. */
export function finalizeDepsFor(stack: LocalStack, steps: StepDeps, linkSigningSecret: string, over: Partial<FinalizeDeps> = {}): FinalizeDeps {
  return {
    ...steps,
    keyWrapper: new LocalKeyWrapper(stack.env.LOCAL_WRAP_KEY ?? ''),
    workspace: new DynamoWorkspaceSource(storesFor(stack).ddb, stack.tables.workspace),
    linkSigningSecret,
    linkTtlDays: 7,
    ...over,
  };
}

/** A contacts export (scope all) whose chunks have all run through processChunk: ready for the finalizer. */
export async function exportReadyToFinalize(stack: LocalStack, channelId: string, exportId: string, steps: StepDeps): Promise<ExportJob> {
  const job = await submitExport(stack, { kind: 'contacts', scope: 'all' }, { channelId, exportId });
  const deps = chunkDepsFor(stack, steps);
  for (const message of buildChunkMessages(job, {}, 100)) await processChunk(message, deps, { receiveCount: 1 });
  const ready = await storesFor(stack).store.getJob(channelId, exportId);
  expect(ready?.chunksDone).toBe(ready?.chunksTotal);
  return ready!;
}

/**
 * What the API's requestExport does, minus HTTP: derive the keys from the password (a low
 * spin count keeps tests fast; readers take it from EncryptionInfo), wrap the package key,
 * read and pin the export's definition (segment conditions, profile schemas) as the API's
 * plan() does, create the job without the password, plan the chunks.
 * `legacyJob`: a job as the version before pinned definitions created it (none; its chunks and
 * finalizer read the workspace), for the tests of jobs still in flight across that deploy.
 * `params`: how the job carries the encryption params. `sealed` (default) as requestExport
 * stores them; `plain` as the version before they were sealed did; `{ sealedFor }` sealed with
 * the right package key but bound to another exportId (a forged or copied item).
 */
export async function submitExport(
  stack: LocalStack,
  request: JobRequest,
  options: {
    channelId: string;
    userIds?: string[];
    timeZone?: string;
    beforePlan?: (exportId: string) => void;
    exportId?: string;
    legacyJob?: boolean;
    params?: 'sealed' | 'plain' | { sealedFor: string };
  } = { channelId: 'c1' },
): Promise<ExportJob> {
  const { ddb, store, objects, queue } = storesFor(stack);
  const exportId = options.exportId ?? newExportId(new Date(), randomBytes);
  const timeZone = options.timeZone ?? 'Asia/Seoul';
  let pinned: Pick<ExportJob, 'definition' | 'definitionKey'> = {};
  if (!options.legacyJob) {
    const workspace = { source: new DynamoWorkspaceSource(ddb, stack.tables.workspace), channelId: options.channelId };
    const definition = await resolveJobDefinition(request, workspace);
    await compileRequestPredicate(request, definition, workspace, { now: new Date(), timeZone });
    pinned = await storeJobDefinition(exportId, definition, objects);
  }
  const { params, packageKey } = await deriveEncryptionKeys(TEST_PASSWORD, { spinCount: 1000 });
  const wrapper = new LocalKeyWrapper(stack.env.LOCAL_WRAP_KEY ?? '');
  const form = options.params ?? 'sealed';
  const wrappedKey = await wrapper.wrap(packageKey, { exportId });
  const encryption: JobEncryption =
    form === 'plain'
      ? { params: params as unknown as Record<string, unknown>, wrappedKey }
      : { sealedParams: sealEncryptionParams(params, packageKey, form === 'sealed' ? exportId : form.sealedFor), wrappedKey };
  packageKey.fill(0);
  const now = new Date().toISOString();
  const job: ExportJob = {
    exportId,
    channelId: options.channelId,
    managerId: 'm1',
    managerName: '김매니저',
    kind: request.kind,
    request,
    reason: 'test',
    status: 'queued',
    createdAt: now,
    updatedAt: now,
    chunksTotal: 0,
    chunksDone: 0,
    rowsWritten: 0,
    encryption,
    timeZone,
    ...pinned,
  };
  if (!(await store.createJob(job))) throw new Error('job exists');
  options.beforePlan?.(exportId);
  await planChunks(job, options.userIds ? { userIds: options.userIds } : {}, { store, objects, queue });
  return job;
}

export async function waitForJob(
  stack: LocalStack,
  job: Pick<ExportJob, 'channelId' | 'exportId'>,
  until: (job: ExportJob) => boolean,
  timeoutMs = 90_000,
): Promise<ExportJob> {
  const { store } = storesFor(stack);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const current = await store.getJob(job.channelId, job.exportId);
    if (current && until(current)) return current;
    if (Date.now() > deadline) throw new Error(`timed out waiting; last status ${current?.status}`);
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
}

export async function waitFor<T>(probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
}

/** Downloads the finished file, decrypts it and reads its sheets (see `decryptAndRead`). */
export async function readExportFile(stack: LocalStack, job: ExportJob): Promise<Record<string, unknown[][]>> {
  if (!job.objectKey) throw new Error('job has no file');
  const result = await stack.clients.s3.send(new GetObjectCommand({ Bucket: stack.bucket, Key: job.objectKey }));
  const bytes = Buffer.from((await result.Body?.transformToByteArray()) ?? new Uint8Array());
  return decryptAndRead(bytes, TEST_PASSWORD);
}

/**
 * Starts a local stack (on free ports) before the enclosing block's tests and stops it after
 * them; `set` receives it once started.
 */
/** Log and metrics kept quiet: the emulator tests read what they check, not stdout. */
export const QUIET_ENV = { POWERTOOLS_LOG_LEVEL: 'ERROR', POWERTOOLS_METRICS_DISABLED: 'true' } as const;

/**
 * A local stack on free ports with `seed` generated, no pollers (each delivery is a direct call,
 * so every interleaving is fixed), logs quiet: what most pipeline tests run on.
 */
export function useSeededStack(seed: NonNullable<NonNullable<Parameters<typeof startLocalStack>[0]>['seed']>, set: (stack: LocalStack) => void): void {
  useLocalStack({ port: 0, pollers: false, seed, env: QUIET_ENV }, set);
}

/**
 * Notifier deps for tests: the given store, bot and link secret, a fixed bot secret and base URL,
 * three attempts without backoff or sleeping, no waiting on a held lease; `over` changes any.
 */
export function notifyDepsFor(
  parts: Pick<NotifyDeps, 'store' | 'bot' | 'linkSigningSecret'> & Partial<NotifyDeps>,
): NotifyDeps {
  return {
    clock: { now: () => new Date() },
    log: silentLog,
    botSigningSecret: 'bot-secret',
    publicBaseUrl: 'https://api.example.com',
    attempts: 3,
    backoffMs: 0,
    sleep: async () => undefined,
    leaseWaitMs: 0,
    ...parts,
  };
}

export function useLocalStack(options: Parameters<typeof startLocalStack>[0], set: (stack: LocalStack) => void): void {
  let started: LocalStack | undefined;
  beforeAll(async () => {
    started = await startLocalStack(options);
    set(started);
  });
  afterAll(async () => {
    await started?.stop();
  });
}
