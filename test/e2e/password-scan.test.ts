import { HeadObjectCommand, ListObjectsV2Command, GetObjectCommand } from '@aws-sdk/client-s3';
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalStack, type LocalStack } from '../../infra/local/stack';
import { generateWorkspace } from '../../shared/domain';
import { http, managerToken, waitForExport } from './support';

/**
 * The password is used only inside the api handler to derive the key. During and after real
 * exports, search every table item, queue message (captured at the pollers), S3 object key,
 * metadata and JSON object, bot message and log line (stdout/stderr of the in-process handlers)
 * for the password in plain, base64, base64url, hex, UTF-16LE and URL-encoded forms.
 */
const CHANNEL = 'e2e-scan';
const CONTACTS_PASSWORD = 'Xk9!scanMe#2026';
const CASES_PASSWORD = 'ScanCases7Qx';
let stack: LocalStack;
const output: string[] = [];
const restore: (() => void)[] = [];

function capture(stream: NodeJS.WriteStream): void {
  const original = stream.write;
  stream.write = ((chunk: unknown, ...rest: unknown[]) => {
    output.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8'));
    // Debug-level lines are kept for the scan, not echoed: they would flood the test output.
    const callback = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
    callback?.();
    return true;
  }) as typeof stream.write;
  restore.push(() => {
    stream.write = original as typeof stream.write;
  });
}

function forms(password: string): string[] {
  const utf8 = Buffer.from(password, 'utf8');
  const utf16 = Buffer.from(password, 'utf16le');
  return [
    password,
    encodeURIComponent(password),
    utf8.toString('base64'),
    utf8.toString('base64url'),
    utf8.toString('hex'),
    utf8.toString('hex').toUpperCase(),
    utf16.toString('base64'),
    utf16.toString('hex'),
    // JSON-escaped UTF-16 (as a string inside a JSON document).
    JSON.stringify(password).slice(1, -1),
  ];
}

function findLeaks(haystack: string, where: string): string[] {
  const leaks: string[] = [];
  for (const password of [CONTACTS_PASSWORD, CASES_PASSWORD]) {
    for (const form of forms(password)) if (haystack.includes(form)) leaks.push(`${where}: a form of the password (${form.length} chars)`);
  }
  return leaks;
}

async function scanTables(): Promise<string[]> {
  const leaks: string[] = [];
  for (const table of Object.values(stack.tables)) {
    let start: Record<string, unknown> | undefined;
    do {
      const page = await stack.clients.ddb.send(new ScanCommand({ TableName: table, ...(start ? { ExclusiveStartKey: start as never } : {}) }));
      for (const item of page.Items ?? []) leaks.push(...findLeaks(JSON.stringify(item), `table ${table}`));
      start = page.LastEvaluatedKey as Record<string, unknown> | undefined;
    } while (start);
  }
  return leaks;
}

async function scanBucket(): Promise<{ leaks: string[]; objects: number }> {
  const leaks: string[] = [];
  let objects = 0;
  let token: string | undefined;
  do {
    const page = await stack.clients.s3.send(new ListObjectsV2Command({ Bucket: stack.bucket, ...(token ? { ContinuationToken: token } : {}) }));
    for (const object of page.Contents ?? []) {
      objects += 1;
      const key = object.Key ?? '';
      leaks.push(...findLeaks(key, 'S3 key'));
      const head = await stack.clients.s3.send(new HeadObjectCommand({ Bucket: stack.bucket, Key: key }));
      leaks.push(...findLeaks(JSON.stringify({ metadata: head.Metadata, type: head.ContentType, disposition: head.ContentDisposition }), `S3 metadata of ${key}`));
      if (key.endsWith('.json')) {
        const body = await stack.clients.s3.send(new GetObjectCommand({ Bucket: stack.bucket, Key: key }));
        leaks.push(...findLeaks(await body.Body?.transformToString('utf8') ?? '', `S3 object ${key}`));
      }
    }
    token = page.NextContinuationToken;
  } while (token);
  return { leaks, objects };
}

beforeAll(async () => {
  capture(process.stdout);
  capture(process.stderr);
  stack = await startLocalStack({
    port: 0,
    seed: { channelId: CHANNEL, users: 150, cases: 300, seed: 3 },
    // Every log line the handlers can write, debug included.
    env: { POWERTOOLS_LOG_LEVEL: 'DEBUG', POWERTOOLS_METRICS_DISABLED: 'true', SELECTION_BATCH: '25' },
    queues: { chunk: { visibilityTimeout: 30 }, finalize: { visibilityTimeout: 20 }, notify: { visibilityTimeout: 5 } },
  });
});
afterAll(async () => {
  await stack?.stop();
  for (const undo of restore) undo();
});

describe('password scan', () => {
  it('finds the password nowhere: tables, queue messages, S3 keys/metadata, bot messages, logs', async () => {
    const workspace = generateWorkspace({ channelId: CHANNEL, seed: 3, users: 150, cases: 300 });
    const selection = [...workspace.users].slice(0, 60).map((u) => u.id);
    const contactsToken = await managerToken(CHANNEL, 'scanner-1');
    const casesToken = await managerToken(CHANNEL, 'scanner-2');
    const contacts = await http(stack, 'POST', '/v1/exports', {
      token: contactsToken,
      headers: { 'Idempotency-Key': 'scan-contacts-0001' },
      body: { kind: 'contacts', scope: 'selection', userIds: selection, reason: 'scan', password: CONTACTS_PASSWORD },
    });
    const cases = await http(stack, 'POST', '/v1/exports', {
      token: casesToken,
      body: { kind: 'cases', from: '2025-07-01', to: '2025-09-30', reason: 'scan', password: CASES_PASSWORD },
    });
    expect(contacts.status).toBe(202);
    expect(cases.status).toBe(202);
    // Refused requests that carry a password: malformed JSON, a broken password rule, a replay.
    await http(stack, 'POST', '/v1/exports', { token: casesToken, body: `{"kind":"cases","password":"${CASES_PASSWORD}",` });
    await http(stack, 'POST', '/v1/exports', {
      token: await managerToken(CHANNEL, 'scanner-3'),
      body: { kind: 'cases', from: '2025-07-01', to: '2025-07-02', reason: 'scan', password: `${CASES_PASSWORD}!` },
    });
    await http(stack, 'POST', '/v1/exports', {
      token: contactsToken,
      headers: { 'Idempotency-Key': 'scan-contacts-0001' },
      body: { kind: 'contacts', scope: 'selection', userIds: ['x'], reason: 'scan', password: CONTACTS_PASSWORD },
    });


    // During the export ...
    const during = await scanTables();
    // ... and after it.
    const doneContacts = await waitForExport(stack, contactsToken, contacts.body.exportId as string);
    const doneCases = await waitForExport(stack, casesToken, cases.body.exportId as string);
    expect(doneContacts.status).toBe('completed');
    expect(doneContacts.rowCount).toBe(60);
    expect(doneCases.status).toBe('completed');
    await new Promise((resolve) => setTimeout(resolve, 500));
    const after = await scanTables();
    const bucket = await scanBucket();
    const deliveries = Object.values(stack.deliveries).flat();
    expect(deliveries.length).toBeGreaterThan(5);
    const queueLeaks = deliveries.flatMap((record) => findLeaks(JSON.stringify({ body: record.body, attributes: record.messageAttributes }), 'queue message'));
    const botLeaks = stack.bot.messages.flatMap((m) => findLeaks(JSON.stringify(m), 'bot message'));
    const logText = output.join('');
    expect(logText).toMatch(/"message":"request handled"/);
    expect(logText).toMatch(/chunk processed/);
    const logLeaks = findLeaks(logText, 'log output');

    // The scan can find what it looks for: the request bodies we sent hold the password.
    expect(findLeaks(JSON.stringify({ password: CASES_PASSWORD }), 'self-check')).not.toHaveLength(0);
    expect(bucket.objects).toBeGreaterThan(0);
    expect([...during, ...after, ...bucket.leaks, ...queueLeaks, ...botLeaks, ...logLeaks]).toEqual([]);
  });
});
