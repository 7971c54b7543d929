import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { localChunkConcurrency, startLocalStack, type LocalStack } from '../../infra/local/stack';
import { ConfigError } from '../../shared/config';

/** A port of 127.0.0.1 held by this test until `close` (another program on the port npm start wants). */
async function holdPort(): Promise<{ port: number; server: Server }> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return { port: (server.address() as AddressInfo).port, server };
}

const close = (server: Server) => new Promise<void>((resolve) => server.close(() => resolve()));

/** True while any process of this process group lives. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('npm start', () => {
  it('on a port already in use: one line naming the port and PORT=…, the folder released, nothing left running', async () => {
    const held = await holdPort();
    const root = await mkdtemp(join(tmpdir(), 'export-start-'));
    const dataDir = join(root, 'new'); // LOCAL_DATA_DIR=<new>: a folder that does not exist yet
    // Its own process group, so whatever it starts can be found (and, on a hang, stopped) as one.
    const child = spawn(join(process.cwd(), 'node_modules/.bin/tsx'), ['infra/local/start.ts'], {
      env: { ...process.env, PORT: String(held.port), LOCAL_DATA_DIR: dataDir },
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const pgid = child.pid ?? 0;
    try {
      const code = await new Promise<number | null>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`npm start still runs after 90 s:\n${stdout}\n${stderr}`)), 90_000);
        child.once('exit', (exitCode) => {
          clearTimeout(timer);
          resolve(exitCode);
        });
      });
      // Node's own warnings (the AWS SDK's) may also be on stderr: the line that is ours.
      expect(code).toBe(1);
      expect(stderr.split('\n').filter((l) => l.startsWith('npm start:'))).toEqual([
        `npm start: port ${held.port} on 127.0.0.1 is already in use (another npm start or another program): ` +
          `stop it, or set PORT=… to a free port (e.g. PORT=${held.port === 3001 ? 3002 : 3001} npm start)`,
      ]);
      expect(stderr).not.toContain('EADDRINUSE');
      expect(stderr).not.toMatch(/^\s+at /m); // no stack trace
      // The folder is free for the next try, and no process of that start lives on.
      expect(existsSync(join(dataDir, 'stack.lock'))).toBe(false);
      expect(existsSync(join(dataDir, 'endpoints.json'))).toBe(false);
      for (let i = 0; i < 50 && groupAlive(pgid); i++) await new Promise((r) => setTimeout(r, 100));
      expect(groupAlive(pgid)).toBe(false);
      // And the program that held the port still holds it.
      expect(held.server.listening).toBe(true);
    } finally {
      if (pgid && groupAlive(pgid)) process.kill(-pgid, 'SIGKILL');
      await close(held.server);
      await rm(root, { recursive: true, force: true });
    }
  });
});

/**
 * Runs `npm start` (infra/local/start.ts) with `env` and expects it to refuse at once: exit 1, one
 * `npm start:` line equal to `line`, no stack trace, and the data folder never created (refused
 * before the emulators start and the folder is taken). Kills its process group whatever happens.
 */
async function expectRefusedAtStart(env: Record<string, string>, line: string): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'export-start-'));
  const dataDir = join(root, 'new');
  const child = spawn(join(process.cwd(), 'node_modules/.bin/tsx'), ['infra/local/start.ts'], {
    env: { ...process.env, ...env, LOCAL_DATA_DIR: dataDir },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const pgid = child.pid ?? 0;
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`npm start still runs after 60 s:\n${stderr}`)), 60_000);
      child.once('exit', (exitCode) => {
        clearTimeout(timer);
        resolve(exitCode);
      });
    });
    expect(code).toBe(1);
    expect(stderr.split('\n').filter((l) => l.startsWith('npm start:'))).toEqual([line]);
    expect(stderr).not.toMatch(/^\s+at /m);
    expect(existsSync(dataDir)).toBe(false);
  } finally {
    if (pgid && groupAlive(pgid)) process.kill(-pgid, 'SIGKILL');
    await rm(root, { recursive: true, force: true });
  }
}

describe('npm start with a PORT it cannot use', () => {
  it.each(['abc', '70000', '-1', '3000.5', '0x50'])(
    'PORT=%s: one line naming PORT and the rule, before anything starts (no data folder, no stack trace)',
    async (port) => {
      await expectRefusedAtStart({ PORT: port }, `npm start: PORT must be a whole number from 0 to 65535 (0: any free port); got ${JSON.stringify(port)}`);
    },
    90_000,
  );
});

describe('npm start with a LOCAL_CHUNK_CONCURRENCY it cannot use', () => {
  it('reads it as the other numeric settings: unset is 4, a whole number from 1 to 64 is taken', () => {
    expect(localChunkConcurrency({})).toBe(4);
    expect(localChunkConcurrency({ LOCAL_CHUNK_CONCURRENCY: '1' })).toBe(1);
    expect(localChunkConcurrency({ LOCAL_CHUNK_CONCURRENCY: ' 64 ' })).toBe(64);
    // Bare Number() read these as NaN or 0 chunk pollers: exports stayed queued forever.
    for (const bad of ['', ' ', 'abc', '0', '-2', '65', '2.5', '0x10', 'Infinity']) {
      expect(() => localChunkConcurrency({ LOCAL_CHUNK_CONCURRENCY: bad }), bad).toThrow(ConfigError);
      expect(() => localChunkConcurrency({ LOCAL_CHUNK_CONCURRENCY: bad }), bad).toThrow(
        `invalid environment: LOCAL_CHUNK_CONCURRENCY: must be a whole number from 1 to 64 (chunk handlers at a time; 4 when unset); got ${JSON.stringify(bad)}`,
      );
    }
  });

  it("is read from the caller's env too (startLocalStack({ env }), as every other setting), before anything starts", async () => {
    await expect(startLocalStack({ port: 0, seed: false, pollers: false, env: { LOCAL_CHUNK_CONCURRENCY: 'abc' } })).rejects.toThrow(/LOCAL_CHUNK_CONCURRENCY: must be a whole number from 1 to 64/);
  });

  it.each(['', 'abc', '0'])(
    'LOCAL_CHUNK_CONCURRENCY=%j: one line naming it and the rule, before anything starts (no data folder, no stack trace)',
    async (value) => {
      await expectRefusedAtStart(
        { PORT: '0', LOCAL_CHUNK_CONCURRENCY: value },
        `npm start: invalid environment: LOCAL_CHUNK_CONCURRENCY: must be a whole number from 1 to 64 (chunk handlers at a time; 4 when unset); got ${JSON.stringify(value)}`,
      );
    },
    90_000,
  );
});

describe('npm start with your own bot half set', () => {
  it(
    'BOT_WEBHOOK_URL without BOT_SIGNING_SECRET: one line naming the missing one, before anything starts',
    async () => {
      await expectRefusedAtStart(
        { PORT: '0', BOT_WEBHOOK_URL: 'http://127.0.0.1:9/hook', BOT_SIGNING_SECRET: '' },
        "npm start: invalid environment: BOT_SIGNING_SECRET: required with BOT_WEBHOOK_URL (the key your bot checks X-Signature with)",
      );
    },
    90_000,
  );
});

describe('the local stack while it seeds', () => {
  it('answers 503 saying it is still seeding, with Retry-After, never "undefined"; then the API answers', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'export-seeding-'));
    // A free port known before the stack binds it: the API is asked while startLocalStack still runs.
    const probe = await holdPort();
    const port = probe.port;
    await close(probe.server);
    let stack: LocalStack | undefined;
    let settled = false;
    const starting = startLocalStack({ dataDir, port, pollers: false, seed: { channelId: 'seeding', users: 1000, cases: 1000 } }).then(
      (s) => {
        stack = s;
        settled = true;
      },
      (error: unknown) => {
        settled = true;
        throw error;
      },
    );
    const answers: { status: number; retryAfter: string | null; body: { error?: { code?: string; message?: string } } }[] = [];
    try {
      while (!settled) {
        try {
          const res = await fetch(`http://127.0.0.1:${port}/v1/exports`);
          answers.push({ status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as (typeof answers)[number]['body'] });
        } catch {
          // Not bound yet.
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      await starting;
      const waiting = answers.filter((a) => a.status === 503);
      expect(waiting.length).toBeGreaterThan(0);
      for (const a of waiting) {
        expect(a.body.error?.code).toBe('API_UNAVAILABLE');
        expect(a.body.error?.message).toMatch(/^the local stack is still (starting|seeding demo data|loading the api): try again in a minute$/);
        expect(JSON.stringify(a.body)).not.toContain('undefined');
        expect(a.retryAfter).toBe('60');
      }
      expect(waiting.some((a) => a.body.error?.message?.includes('still seeding demo data'))).toBe(true);
      // Started: the API itself answers (no token: 401).
      const after = await fetch(`${stack?.apiUrl}/v1/exports`);
      expect(after.status).toBe(401);
    } finally {
      await starting.catch(() => undefined);
      await stack?.stop();
      expect(await readdir(dataDir)).not.toContain('stack.lock');
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
