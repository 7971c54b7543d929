import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { HeadBucketCommand } from '@aws-sdk/client-s3';
import { createHmac } from 'node:crypto';
import { startLocalStack, type LocalStack } from '../../infra/local/stack';
import { signDevToken } from '../../shared/auth';
import { MAX_REQUEST_BODY_BYTES } from '../../shared/http/limits';

describe('local stack', () => {
  let stack: LocalStack;

  beforeAll(async () => {
    stack = await startLocalStack({ port: 0, pollers: false, queues: { chunk: { visibilityTimeout: 1, maxReceiveCount: 2 } } });
  });

  afterAll(async () => {
    await stack?.stop();
  });

  it('creates the tables and the bucket', async () => {
    const tables = await stack.clients.ddb.send(new ListTablesCommand({}));
    expect(tables.TableNames?.sort()).toEqual(['audit', 'cases', 'cooldowns', 'exports', 'users', 'workspace']);
    await stack.clients.s3.send(new HeadBucketCommand({ Bucket: stack.bucket }));
  });

  it('moves a message that is received too often to the DLQ (redrive)', async () => {
    const sqs = stack.clients.sqs;
    await sqs.send(new SendMessageCommand({ QueueUrl: stack.queues.chunk.url, MessageBody: '{"probe":1}' }));
    let receives = 0;
    for (let i = 0; i < 40 && receives < 3; i++) {
      const r = await sqs.send(new ReceiveMessageCommand({ QueueUrl: stack.queues.chunk.url, WaitTimeSeconds: 1, MaxNumberOfMessages: 1 }));
      if (r.Messages?.length) receives++;
      else if (receives === 2) break;
    }
    expect(receives).toBe(2);
    // After the visibility timeout the third receive moves it to the DLQ instead of returning it.
    let inDlq = false;
    for (let i = 0; i < 10 && !inDlq; i++) {
      await sqs.send(new ReceiveMessageCommand({ QueueUrl: stack.queues.chunk.url, WaitTimeSeconds: 1, MaxNumberOfMessages: 1 }));
      const dlq = await sqs.send(new ReceiveMessageCommand({ QueueUrl: stack.queues.chunk.dlqUrl, WaitTimeSeconds: 1 }));
      inDlq = (dlq.Messages ?? []).some((m) => m.Body === '{"probe":1}');
    }
    expect(inDlq).toBe(true);
  });

  it('passes the path to the api as API Gateway does: encoded slashes stay in the id, bad encodings are a 400', async () => {
    const token = await signDevToken({ channelId: 'ch-path', managerId: 'm1', name: 'Kim', permissions: ['export:download'], expiresIn: '1h' });
    const get = async (path: string, method = 'GET') => {
      const res = await fetch(`${stack.apiUrl}${path}`, { method, headers: { Authorization: `Bearer ${token}` } });
      return { status: res.status, body: (await res.json()) as { error?: { code: string; field?: string } } };
    };
    for (const path of ['/v1/exports/%', '/v1/downloads/%E0%A4%A']) {
      const bad = await get(path);
      expect(bad.status).toBe(400);
      expect(bad.body.error).toMatchObject({ code: 'INVALID_PATH', field: 'path' });
    }
    // One id `abc/cancel` (unknown here), not the cancel route of `abc`: GET there would be a 405.
    const slash = await get('/v1/exports/abc%2Fcancel');
    expect(slash.status).toBe(404);
    expect(slash.body.error?.code).toBe('EXPORT_NOT_FOUND');
    expect((await get('/v1/exports/abc%2Fcancel', 'POST')).status).toBe(405);
  });

  it('keeps signed, fresh bot messages in the inbox; refuses and does not keep forged or stale ones', async () => {
    const body = JSON.stringify({ type: 'export.completed', exportId: 'x' });
    const sign = (timestamp: string) => `sha256=${createHmac('sha256', stack.env.BOT_SIGNING_SECRET ?? '').update(`${timestamp}.${body}`).digest('hex')}`;
    const now = String(Math.floor(Date.now() / 1000));
    const hourAgo = String(Number(now) - 3600);
    const sig = sign(now);
    const post = (headers: Record<string, string>) => fetch(stack.env.BOT_WEBHOOK_URL ?? '', { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });
    expect((await post({ 'x-signature': sig, 'x-timestamp': now })).status).toBe(200);
    expect((await post({ 'x-signature': 'sha256=00', 'x-timestamp': now })).status).toBe(401);
    expect((await post({ 'x-signature': `${sig}é`, 'x-timestamp': now })).status).toBe(401); // not a thrown timingSafeEqual
    expect((await post({ 'x-signature': sign(hourAgo), 'x-timestamp': hourAgo })).status).toBe(401); // stale
    expect((await post({ 'x-signature': sign(hourAgo), 'x-timestamp': now })).status).toBe(401); // a replay with a fresh header
    expect((await post({ 'x-signature': `sha256=${createHmac('sha256', stack.env.BOT_SIGNING_SECRET ?? '').update(body).digest('hex')}`, 'x-timestamp': now })).status).toBe(401); // body alone signed
    expect((await post({ 'x-signature': sig })).status).toBe(401);
    const inbox = (await (await fetch(`${stack.apiUrl}/v1/dev/inbox`)).json()) as { items: { body: unknown }[]; refused: number };
    expect(inbox.items.map((m) => m.body)).toEqual([{ type: 'export.completed', exportId: 'x' }]);
    expect(inbox.refused).toBe(6);
  });

  it('answers only to its own host names (no DNS rebinding into the inbox or the API)', async () => {
    const { request } = await import('node:http');
    const status = (host: string) =>
      new Promise<number>((resolve, reject) => {
        const url = new URL(`${stack.apiUrl}/v1/dev/inbox`);
        const req = request({ host: url.hostname, port: url.port, path: url.pathname, headers: { host } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
    const port = new URL(stack.apiUrl).port;
    expect(await status('attacker.example')).toBe(421);
    expect(await status(`attacker.example:${port}`)).toBe(421);
    expect(await status(`127.0.0.1:${port}`)).toBe(200);
    expect(await status(`localhost:${port}`)).toBe(200);
  });

  it('answers a CORS preflight itself with 204, as API Gateway does (it was the api\'s 405)', async () => {
    const res = await fetch(`${stack.apiUrl}/v1/exports`, { method: 'OPTIONS', headers: { origin: 'https://elsewhere.example', 'access-control-request-method': 'POST' } });
    expect(res.status).toBe(204);
    expect(res.headers.get('vary')).toBe('Origin');
    // This stack has no ADMIN_ORIGIN: no origin is allowed.
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    expect(res.headers.get('access-control-allow-methods')).toBe('GET,POST,OPTIONS');
  });

  it('answers a body over the service\'s limit with 413 BODY_TOO_LARGE in the api envelope, as the web ACL does on AWS, and stops reading it', async () => {
    const { request } = await import('node:http');
    const { connect } = await import('node:net');
    const url = new URL(`${stack.apiUrl}/v1/exports`);
    const total = 64 * 1024 * 1024;
    const chunk = Buffer.alloc(1024 * 1024, 0x20);
    // Streams up to 64 MiB with backpressure and stops sending once answered, as curl and fetch do.
    const send = (declareLength: boolean) =>
      new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
        let answered = false;
        let sent = 0;
        const req = request(
          {
            host: url.hostname,
            port: url.port,
            path: url.pathname,
            method: 'POST',
            headers: { 'content-type': 'application/json', ...(declareLength ? { 'content-length': String(total) } : {}) },
          },
          (res) => {
            answered = true;
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (d: string) => (body += d));
            res.on('end', () => {
              resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
              req.destroy();
            });
          },
        );
        req.on('error', (error) => {
          if (!answered) reject(error);
        });
        const pump = (): void => {
          while (!answered && sent < total) {
            sent += chunk.length;
            if (!req.write(chunk)) {
              req.once('drain', pump);
              return;
            }
          }
          if (!answered) req.end();
        };
        pump();
      });
    for (const declareLength of [true, false]) {
      const res = await send(declareLength);
      expect(res.status, `content-length: ${declareLength}`).toBe(413);
      const error = (JSON.parse(res.body) as { error: Record<string, unknown> }).error;
      expect(error).toEqual({ code: 'BODY_TOO_LARGE', message: `the request body must be at most ${MAX_REQUEST_BODY_BYTES} bytes`, field: 'body', rule: 'max-bytes', requestId: expect.any(String) });
      expect(res.headers['x-request-id']).toBe(error.requestId);
      // As every api answer: never cached.
      expect(res.headers['cache-control']).toBe('no-store');
    }
    // A client that never stops sending is cut off well before its 64 MiB: the stack does not
    // go on reading (a raw socket, so the cut is the stack's, not a client library's).
    const rude = await new Promise<{ sent: number; closed: boolean }>((resolve) => {
      const socket = connect(Number(url.port), url.hostname);
      let sent = 0;
      let closed = false;
      socket.on('data', () => undefined);
      socket.on('error', () => undefined);
      socket.on('close', () => {
        closed = true;
        resolve({ sent, closed });
      });
      socket.write(`POST /v1/exports HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/json\r\nContent-Length: ${total}\r\n\r\n`);
      const pump = (): void => {
        while (!closed && sent < total) {
          sent += chunk.length;
          if (!socket.write(chunk)) {
            socket.once('drain', pump);
            return;
          }
        }
        if (!closed) resolve({ sent, closed });
      };
      pump();
    });
    expect(rude.closed).toBe(true);
    expect(rude.sent).toBeLessThan(total);
    // And the stack goes on answering.
    expect((await fetch(`${stack.apiUrl}/v1/dev/inbox`)).status).toBe(200);
  });

  it('passes the body bytes to the api as sent: bytes that are not UTF-8 are a 400, never stored as U+FFFD', async () => {
    const token = await signDevToken({ channelId: 'ch-bytes', managerId: 'm1', name: 'Kim', permissions: ['export:download', 'audit:read'], expiresIn: '1h' });
    const body = (reason: string) => JSON.stringify({ kind: 'contacts', scope: 'all', reason, password: 'Secret123' });
    const post = async (bytes: Buffer, contentType = 'application/json') => {
      const res = await fetch(`${stack.apiUrl}/v1/exports`, { method: 'POST', body: bytes, headers: { authorization: `Bearer ${token}`, 'content-type': contentType } });
      return { status: res.status, body: (await res.json()) as { exportId?: string; error?: { code: string; message: string } } };
    };
    // `café` in Latin-1 (0xE9): the api sees the byte and refuses it, labelled or not.
    const latin1 = await post(Buffer.from(body('café sync'), 'latin1'));
    expect(latin1.status).toBe(400);
    expect(latin1.body.error).toMatchObject({ code: 'MALFORMED_JSON', message: expect.stringMatching(/not valid UTF-8/) });
    const labelled = await post(Buffer.from(body('café sync'), 'latin1'), 'application/json; charset=iso-8859-1');
    expect(labelled.status).toBe(415);
    expect(labelled.body.error?.code).toBe('UNSUPPORTED_CONTENT_TYPE');
    // The same text in UTF-8 is taken and audited as sent.
    const utf8 = await post(Buffer.from(body('café sync'), 'utf8'));
    expect(utf8.status).toBe(202);
    const audit = (await (await fetch(`${stack.apiUrl}/v1/audit`, { headers: { authorization: `Bearer ${token}` } })).json()) as { items: { exportId: string; reason: string }[] };
    expect(audit.items.map((e) => [e.exportId, e.reason])).toEqual([[utf8.body.exportId, 'café sync']]);
  });
});

describe('local stack on disk (npm start)', () => {
  it('keeps data and secrets across restarts, seeds once, and fails exports a shutdown interrupted', async () => {
    const { mkdtemp, rm, readFile } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { DynamoDBDocumentClient, QueryCommand } = await import('@aws-sdk/lib-dynamodb');
    const { DynamoExportStore } = await import('../../shared/adapters/aws/dynamo-export-store');
    const { DynamoCooldownStore } = await import('../../shared/adapters/aws/dynamo-cooldown-store');
    const { cooldownKey } = await import('../../shared/domain');
    const dataDir = await mkdtemp(join(tmpdir(), 'export-local-'));
    const job = {
      exportId: 'interrupted-1',
      channelId: 'disk',
      managerId: 'm1',
      managerName: 'Kim',
      kind: 'contacts' as const,
      request: { kind: 'contacts' as const, scope: 'all' as const },
      reason: 'r',
      status: 'running' as const,
      createdAt: '2025-07-01T00:00:00.000Z',
      updatedAt: '2025-07-01T00:00:00.000Z',
      chunksTotal: 16,
      chunksDone: 3,
      rowsWritten: 10,
      encryption: { params: {}, wrappedKey: 'w' },
      timeZone: 'Asia/Seoul',
    };
    try {
      const first = await startLocalStack({ dataDir, port: 0, pollers: false, seed: { channelId: 'disk', users: 30, cases: 20 } });
      const secrets = await readFile(join(dataDir, 'secrets.json'), 'utf8');
      expect(JSON.parse(await readFile(join(dataDir, 'endpoints.json'), 'utf8')).apiUrl).toBe(first.apiUrl);
      const firstDoc = DynamoDBDocumentClient.from(first.clients.ddb);
      await new DynamoExportStore(firstDoc, first.tables.exports).createJob(job);
      // The export holds its manager's cooldown, as a real request does.
      const held = await new DynamoCooldownStore(firstDoc, 'cooldowns').acquire({ key: cooldownKey('disk', 'm1', 'contacts'), holder: 'interrupted-1', now: new Date(), durationSeconds: 1800 });
      expect(held.acquired).toBe(true);
      await first.stop();

      const second = await startLocalStack({ dataDir, port: 0, pollers: false, seed: { channelId: 'disk', users: 999, cases: 999 } });
      try {
        // The segment ids npm start prints: the ones seeded (suffixed per seed), read back on a restart.
        expect(first.seeded?.segmentIds).toHaveLength(3);
        expect(first.seeded?.segmentIds.every((id) => /^seg-[a-z-]+-[0-9a-f]{6}$/.test(id))).toBe(true);
        expect(second.seeded).toEqual({ channelId: 'disk', users: 30, cases: 20, segmentIds: [...(first.seeded?.segmentIds ?? [])].sort() });
        expect(await readFile(join(dataDir, 'secrets.json'), 'utf8')).toBe(secrets);
        const after = await new DynamoExportStore(DynamoDBDocumentClient.from(second.clients.ddb), second.tables.exports).getJob('disk', 'interrupted-1');
        expect(after?.status).toBe('failed');
        expect(after?.error?.code).toBe('INTERRUPTED');
        // Failed the way the pipeline fails an export: the cooldown given back, the trail told,
        // the bot's message queued for the pollers.
        expect(after?.notifyEnqueued).toBe(true);
        const secondDoc = DynamoDBDocumentClient.from(second.clients.ddb);
        const retry = await new DynamoCooldownStore(secondDoc, 'cooldowns').acquire({ key: cooldownKey('disk', 'm1', 'contacts'), holder: 'next-export', now: new Date(), durationSeconds: 1800 });
        expect(retry.acquired).toBe(true);
        const trail = await secondDoc.send(new QueryCommand({ TableName: 'audit', KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': 'EXPORT#interrupted-1' } }));
        expect(trail.Items?.map((i) => i.type)).toEqual(['failed']);

        // A second `npm start` on the same folder is refused before it opens anything, naming
        // the running one; the running one is unharmed.
        const { DataDirBusyError } = await import('../../infra/local/data-dir-lock');
        const refused = await startLocalStack({ dataDir, port: 0, pollers: false }).then(
          () => undefined,
          (error: unknown) => error,
        );
        expect(refused).toBeInstanceOf(DataDirBusyError);
        expect((refused as Error).message).toContain(`pid ${process.pid}, API at ${second.apiUrl}`);
        expect((await new DynamoExportStore(secondDoc, second.tables.exports).getJob('disk', 'interrupted-1'))?.status).toBe('failed');
      } finally {
        await second.stop();
      }
      // Stopped: the folder is free again.
      const { existsSync } = await import('node:fs');
      expect(existsSync(join(dataDir, 'stack.lock'))).toBe(false);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('the data folder lock', () => {
  it('takes over a lock whose process is gone, refuses a live or just-created one, and releases only its own', async () => {
    const { mkdtemp, rm, writeFile, readFile, utimes } = await import('node:fs/promises');
    const { existsSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { spawnSync } = await import('node:child_process');
    const { lockDataDir, DataDirBusyError, LOCK_FILE } = await import('../../infra/local/data-dir-lock');
    const dir = await mkdtemp(join(tmpdir(), 'export-lock-'));
    const file = join(dir, LOCK_FILE);
    try {
      // A pid that ran and ended: a stack killed with -9 leaves such a lock.
      const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
      await writeFile(file, JSON.stringify({ pid: Number(gone.stdout), startedAt: '2026-01-01T00:00:00.000Z' }));
      const release = await lockDataDir(dir);
      expect(JSON.parse(await readFile(file, 'utf8')).pid).toBe(process.pid);
      await expect(lockDataDir(dir)).rejects.toBeInstanceOf(DataDirBusyError);
      await release();
      expect(existsSync(file)).toBe(false);

      // Empty: a stack between its create and its write. Refused while fresh, taken once old.
      await writeFile(file, '');
      await expect(lockDataDir(dir)).rejects.toThrow(/is starting/);
      const old = new Date(Date.now() - 60_000);
      await utimes(file, old, old);
      const again = await lockDataDir(dir);
      // Someone else's lock now (ours was removed and replaced): the release leaves it alone.
      await writeFile(file, JSON.stringify({ pid: process.pid, startedAt: 'another holder' }));
      await again();
      expect(existsSync(file)).toBe(true);
      await rm(file);

      // A dead stack's pid now used by another program (a reboot): not a stack, taken over.
      const { spawn } = await import('node:child_process');
      const other = spawn('sleep', ['30'], { stdio: 'ignore' });
      try {
        await writeFile(file, JSON.stringify({ pid: other.pid, startedAt: '2026-01-01T00:00:00.000Z' }));
        const taken = await lockDataDir(dir);
        expect(JSON.parse(await readFile(file, 'utf8')).pid).toBe(process.pid);
        await taken();
      } finally {
        other.kill();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('of several takeovers of one stale lock started together, exactly one wins', async () => {
    const { mkdtemp, rm, writeFile, readdir } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { spawnSync } = await import('node:child_process');
    const { lockDataDir, DataDirBusyError, LOCK_FILE } = await import('../../infra/local/data-dir-lock');
    const dir = await mkdtemp(join(tmpdir(), 'export-lock-race-'));
    try {
      const gone = Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
      for (let round = 0; round < 25; round++) {
        await writeFile(join(dir, LOCK_FILE), JSON.stringify({ pid: gone, startedAt: `round ${round}` }));
        const outcomes = await Promise.allSettled([lockDataDir(dir), lockDataDir(dir), lockDataDir(dir)]);
        const won = outcomes.filter((o) => o.status === 'fulfilled');
        expect(won, `round ${round}`).toHaveLength(1);
        for (const o of outcomes) if (o.status === 'rejected') expect(o.reason).toBeInstanceOf(DataDirBusyError);
        await (won[0] as PromiseFulfilledResult<() => Promise<void>>).value();
        // Nothing left behind: no lock, no takeover guard.
        expect(await readdir(dir)).toEqual([]);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("the local stack's own answers (413, 503, 500)", () => {
  it('carry the CORS headers for the admin origin, as the api and, on AWS, the web ACL do; none for another origin', async () => {
    const { preflightHeaders, stackAnswerHeaders } = await import('../../infra/local/http-to-apigw');
    const { CORS_EXPOSED_HEADERS } = await import('../../shared/http/cors');
    const saved = process.env.ADMIN_ORIGIN;
    process.env.ADMIN_ORIGIN = 'https://admin.example.com';
    try {
      const req = (origin?: string) => ({ headers: origin ? { origin } : {} }) as unknown as import('node:http').IncomingMessage;
      expect(stackAnswerHeaders(req('https://admin.example.com'), 'r-1')).toEqual({
        'content-type': 'application/json; charset=utf-8',
        'cache-control': 'no-store',
        'x-content-type-options': 'nosniff',
        'x-request-id': 'r-1',
        'access-control-allow-origin': 'https://admin.example.com',
        'access-control-expose-headers': CORS_EXPOSED_HEADERS,
        vary: 'Origin',
      });
      expect(stackAnswerHeaders(req('https://evil.example.com'), 'r-2')).not.toHaveProperty('access-control-allow-origin');
      expect(stackAnswerHeaders(req(), 'r-3')).not.toHaveProperty('access-control-allow-origin');
      // OPTIONS on a route's path, as API Gateway's preflight routes answer it: the admin origin and
      // the lists, whatever the request's origin (the browser compares); other paths go to the api.
      const options = (origin?: string) =>
        ({ method: 'OPTIONS', headers: { ...(origin ? { origin } : {}), 'access-control-request-method': 'POST' } }) as unknown as import('node:http').IncomingMessage;
      const expected = {
        'access-control-allow-origin': 'https://admin.example.com',
        'access-control-allow-methods': 'GET,POST,OPTIONS',
        'access-control-allow-headers': 'Authorization,Content-Type,Idempotency-Key',
        'access-control-max-age': '3600',
        vary: 'Origin',
      };
      for (const path of ['/v1/exports', '/v1/exports/e1/cancel', '/v1/downloads/tok', '/v1/audit/exports/e1/downloads']) {
        expect(preflightHeaders(options('https://admin.example.com'), path), path).toEqual(expected);
      }
      expect(preflightHeaders(options('https://evil.example.com'), '/v1/exports')).toEqual(expected);
      expect(preflightHeaders(options(), '/v1/exports')).toEqual(expected);
      for (const path of ['/v1/dev/inbox', '/v1/nothing', '/']) expect(preflightHeaders(options('https://admin.example.com'), path), path).toBeUndefined();
      expect(preflightHeaders({ method: 'GET', headers: {} } as unknown as import('node:http').IncomingMessage, '/v1/exports')).toBeUndefined();
    } finally {
      if (saved === undefined) delete process.env.ADMIN_ORIGIN;
      else process.env.ADMIN_ORIGIN = saved;
    }
  });
});
