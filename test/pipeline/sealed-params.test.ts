import { randomBytes } from 'node:crypto';
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import { GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { describe, expect, it } from 'vitest';
import type { LocalStack } from '../../infra/local/stack';
import { newExportId, type JobEncryption } from '../../shared/app/export-job';
import { JobEncryptionError, openEncryptionParams, readJobEncryptionParams, sealEncryptionParams } from '../../shared/app/job-encryption';
import { deriveEncryptionKeys } from '../../shared/xlsx';
import { decryptAndRead, downloadThroughLink, http, managerToken, waitForExport } from '../e2e/support';
import { readExportFile, storesFor, submitExport, TEST_PASSWORD, useLocalStack, waitFor, waitForJob, QUIET_ENV } from './helpers';

/**
 * The job item must not hold the agile encryption params in the clear: with the password
 * verifier and the encrypted package key, a reader of the exports table could test password
 * guesses offline and, with the password, open the file without KMS. They are sealed under the
 * package key (shared/app/job-encryption.ts); the finalizer opens them after unwrapping it.
 */

const CHANNEL = 'sealed-params';
const USERS = 40;
const PASSWORD = 'Seal4Me9xQ';

/**
 * The params as the finished file's EncryptionInfo holds them: they are the very values the job
 * carried (keyData and password salts, verifier input and value, encrypted key value and HMAC
 * key). The XML sits in the file's mini stream, whose sectors are contiguous, so it can be read
 * from the bytes directly.
 */
function paramsInFile(bytes: Buffer): Record<string, string[]> {
  const text = bytes.toString('latin1');
  const found: Record<string, string[]> = {};
  for (const m of text.matchAll(/\b(saltValue|encryptedVerifierHashInput|encryptedVerifierHashValue|encryptedKeyValue|encryptedHmacKey)="([A-Za-z0-9+/=]+)"/g)) {
    (found[m[1]!] ??= []).push(m[2]!);
  }
  return found;
}

/** Every item of every table, as DynamoDB JSON text, and every queue message the pollers took. */
async function everythingStored(stack: LocalStack): Promise<{ where: string; text: string }[]> {
  const out: { where: string; text: string }[] = [];
  for (const table of Object.values(stack.tables)) {
    let start: Record<string, unknown> | undefined;
    do {
      const page = await stack.clients.ddb.send(new ScanCommand({ TableName: table, ...(start ? { ExclusiveStartKey: start as never } : {}) }));
      for (const item of page.Items ?? []) out.push({ where: `table ${table}`, text: JSON.stringify(item) });
      start = page.LastEvaluatedKey as Record<string, unknown> | undefined;
    } while (start);
  }
  for (const [name, records] of Object.entries(stack.deliveries)) {
    for (const record of records) out.push({ where: `${name} message`, text: JSON.stringify({ body: record.body, attributes: record.messageAttributes }) });
  }
  return out;
}

describe('encryption params at rest (local stack)', () => {
  let stack: LocalStack;
  useLocalStack(
    {
      port: 0,
      seed: { channelId: CHANNEL, users: USERS, cases: 20, seed: 11 },
      env: { ...QUIET_ENV, SELECTION_BATCH: '25' },
      queues: { chunk: { visibilityTimeout: 30 }, finalize: { visibilityTimeout: 20 }, notify: { visibilityTimeout: 5 } },
    },
    (started) => (stack = started),
  );

  it('POST /v1/exports stores no verifier, encrypted key value or salt of the params, and the file still opens with the password', async () => {
    const token = await managerToken(CHANNEL, 'sealer-1');
    const created = await http(stack, 'POST', '/v1/exports', {
      token,
      body: { kind: 'contacts', scope: 'all', reason: 'sealed params', password: PASSWORD },
    });
    expect(created.status).toBe(202);
    const exportId = created.body.exportId as string;

    // The job item as stored (raw DynamoDB JSON, not the parsed job) while the export runs: checked below.
    const jobItem = await waitFor(async () => (await everythingStored(stack)).find((s) => s.where === `table ${stack.tables.exports}` && s.text.includes(`"sk":{"S":"JOB"}`) && s.text.includes(exportId)));

    const done = await waitForExport(stack, token, exportId);
    expect(done.status).toBe('completed');
    expect(done.rowCount).toBe(USERS);

    // The file opens with the password (xlsx-populate's decryptor, then openpyxl).
    const { bytes } = await downloadThroughLink(stack, done.link as string);
    const sheets = await decryptAndRead(bytes, PASSWORD);
    expect((sheets['User data'] ?? []).length).toBe(USERS + 1);

    // The params the job carried are the file's EncryptionInfo values: none is anywhere in the
    // tables (job item included, during and after the export) or in a queue message.
    const params = paramsInFile(bytes);
    expect(params.saltValue).toHaveLength(2);
    for (const name of ['encryptedVerifierHashInput', 'encryptedVerifierHashValue', 'encryptedKeyValue', 'encryptedHmacKey']) expect(params[name], name).toHaveLength(1);
    const values = Object.values(params).flat();
    expect(values.every((v) => v.length >= 24)).toBe(true);
    const leaks = [jobItem, ...(await everythingStored(stack))].flatMap(({ where, text }) =>
      Object.entries(params).flatMap(([name, list]) => (list.some((v) => text.includes(v)) ? [`${where}: ${name}`] : [])),
    );
    expect(leaks).toEqual([]);
    // What the job item holds instead: the sealed params and the wrapped key, nothing else.
    const item = JSON.parse(jobItem.text) as { encryption?: { M?: Record<string, { S?: string }> } };
    expect(Object.keys(item.encryption?.M ?? {}).sort()).toEqual(['sealedParams', 'wrappedKey']);
    expect(item.encryption?.M?.sealedParams?.S).toMatch(/^ep1\.[A-Za-z0-9+/]+=*$/);

    // The API returns neither form, nor the wrapped key, in any answer about the export.
    const answers = [
      created.body,
      done,
      (await http(stack, 'GET', `/v1/exports/${exportId}`, { token })).body,
      (await http(stack, 'GET', '/v1/exports', { token })).body,
    ].map((body) => JSON.stringify(body));
    expect(answers[3]).toContain(exportId);
    for (const answer of answers) {
      expect(answer).not.toMatch(/sealedParams|"params"|wrappedKey|encryption|ep1\./);
      for (const value of values) expect(answer).not.toContain(value);
    }
  });

  it('a job created before params were sealed (plain params on the item) still finalizes to a file the password opens', async () => {
    const job = await submitExport(stack, { kind: 'contacts', scope: 'all' }, { channelId: CHANNEL, params: 'plain' });
    expect('params' in job.encryption && !('sealedParams' in job.encryption)).toBe(true);
    const stored = await storesFor(stack).store.getJob(CHANNEL, job.exportId);
    expect(stored?.encryption).toEqual(job.encryption);
    const done = await waitForJob(stack, job, (j) => j.status === 'completed' || j.status === 'failed');
    expect(done.error).toBeUndefined();
    expect(done.status).toBe('completed');
    const sheets = await readExportFile(stack, done);
    expect((sheets['User data'] ?? []).length).toBe(USERS + 1);
  });

  it('sealed params bound to another export are refused: the export fails with ENCRYPTION_PARAMS_INVALID once, no retries, no DLQ, the bot is told', async () => {
    const job = await submitExport(stack, { kind: 'contacts', scope: 'all' }, { channelId: CHANNEL, params: { sealedFor: 'another-export-id' } });
    const done = await waitForJob(stack, job, (j) => (j.status === 'failed' || j.status === 'completed') && j.notifyEnqueued === true);
    expect(done.status).toBe('failed');
    expect(done.error).toEqual({ code: 'ENCRYPTION_PARAMS_INVALID', message: 'the export could not be encrypted; request it again' });
    expect(done.objectKey).toBeUndefined();
    const message = await waitFor(() => stack.bot.messages.find((m) => (m.body as { exportId?: string }).exportId === job.exportId));
    expect((message.body as { type: string }).type).toBe('export.failed');
    // Not a crash loop: the one finalize delivery returned and its message was deleted (a thrown
    // delivery would sit in flight until its visibility timeout, then come back until the DLQ).
    await waitFor(async () => {
      const { Attributes: a } = await stack.clients.sqs.send(
        new GetQueueAttributesCommand({ QueueUrl: stack.queues.finalize.url, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }),
      );
      return a?.ApproximateNumberOfMessages === '0' && a.ApproximateNumberOfMessagesNotVisible === '0' ? true : undefined;
    }, 10_000);
    const about = (name: keyof LocalStack['deliveries']) => stack.deliveries[name].filter((r) => r.body.includes(job.exportId));
    expect(about('finalizer')).toHaveLength(1);
    expect(about('dlq')).toHaveLength(0);
    // No file was written for it.
    expect(await storesFor(stack).objects.list(`exports/${CHANNEL}/${job.exportId}/`)).toEqual([]);
  });
});

describe('sealEncryptionParams / readJobEncryptionParams', () => {
  it('opens for its own export with its package key only; another export, another key, an altered byte or format are refused', async () => {
    const { params, packageKey } = await deriveEncryptionKeys('Pw7x9Qz2Lk', { spinCount: 1 });
    const exportId = newExportId(new Date(), randomBytes);
    const sealed = sealEncryptionParams(params, packageKey, exportId);
    // A fresh IV each time: two seals of the same params differ.
    expect(sealEncryptionParams(params, packageKey, exportId)).not.toBe(sealed);
    for (const value of Object.values(params)) if (typeof value === 'string') expect(sealed).not.toContain(value);
    expect(openEncryptionParams(sealed, packageKey, exportId)).toEqual(params);
    expect(readJobEncryptionParams({ sealedParams: sealed, wrappedKey: 'w' }, packageKey, exportId)).toEqual(params);

    const refusal = (run: () => unknown): JobEncryptionError => {
      try {
        run();
      } catch (error) {
        expect(error).toBeInstanceOf(JobEncryptionError);
        return error as JobEncryptionError;
      }
      throw new Error('not refused');
    };
    expect(refusal(() => openEncryptionParams(sealed, packageKey, `${exportId}x`)).reason).toBe('authentication');
    // Another export's sealed params copied onto this job: another package key.
    const other = await deriveEncryptionKeys('Pw7x9Qz2Lk', { spinCount: 1 });
    expect(refusal(() => openEncryptionParams(sealEncryptionParams(other.params, other.packageKey, exportId), packageKey, exportId)).reason).toBe('authentication');
    const bytes = Buffer.from(sealed.slice(4), 'base64');
    bytes[bytes.length - 1]! ^= 1;
    expect(refusal(() => openEncryptionParams(`ep1.${bytes.toString('base64')}`, packageKey, exportId)).reason).toBe('authentication');
    expect(refusal(() => openEncryptionParams(`ep2.${sealed.slice(4)}`, packageKey, exportId)).reason).toBe('format');
    expect(refusal(() => openEncryptionParams('ep1.AAAA', packageKey, exportId)).reason).toBe('format');
    // Sealed params that open but are not the engine's.
    expect(refusal(() => openEncryptionParams(sealEncryptionParams({ spinCount: 1 }, packageKey, exportId), packageKey, exportId)).reason).toBe('params');
    // None of the refusals tell the params or the key.
    const message = refusal(() => openEncryptionParams(sealed, packageKey, 'elsewhere')).message;
    expect(message).not.toContain(packageKey.toString('base64'));
    for (const value of Object.values(params)) expect(message).not.toContain(String(value));
  });

  it('a legacy job (plain params) is read as it is; invalid plain params are refused the same way', async () => {
    const { params, packageKey } = await deriveEncryptionKeys('Pw7x9Qz2Lk', { spinCount: 1 });
    const legacy: JobEncryption = { params: params as unknown as Record<string, unknown>, wrappedKey: 'w' };
    expect(readJobEncryptionParams(legacy, packageKey, 'e1')).toEqual(params);
    expect(() => readJobEncryptionParams({ params: { a: 1 }, wrappedKey: 'w' }, packageKey, 'e1')).toThrow(JobEncryptionError);
  });
});
