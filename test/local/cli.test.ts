import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalStack, type LocalStack } from '../../infra/local/stack';

const run = promisify(execFile);
// stderr also carries Node's own warnings (the AWS SDK's about Node versions).
const profileWarnings = (stderr: string) => stderr.split('\n').filter((l) => l.includes('profile.'));

/** `npm run seed` against a running local stack, as a user runs it (it finds the stack through LOCAL_DATA_DIR). */
describe('npm run seed', () => {
  let stack: LocalStack;
  let dataDir: string;
  const seed = (args: string[], localDataDir = dataDir) =>
    run(join(process.cwd(), 'node_modules/.bin/tsx'), ['bin/seed.ts', ...args], { env: { ...process.env, LOCAL_DATA_DIR: localDataDir } });
  const failure = (p: Promise<unknown>) =>
    p.then(
      () => ({ code: 0, stderr: '' }),
      (error: { code?: number; stderr?: string }) => ({ code: error.code, stderr: error.stderr ?? '' }),
    );

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'export-seed-'));
    stack = await startLocalStack({ dataDir, port: 0, pollers: false });
  });

  afterAll(async () => {
    await stack?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('refuses a --channel a token could never name (it names a storage folder), before writing anything', async () => {
    for (const channel of ['a/b', '고객센터', '..']) {
      const failed = await seed(['--channel', channel, '--users', '1', '--cases', '0']).then(
        () => undefined,
        (error: { code?: number; stderr?: string }) => error,
      );
      expect(failed?.code, channel).toBe(1); // the seed command's exit code for any refused argument
      expect(failed?.stderr).toMatch(/--channel: must (be letters, digits|not be "\." or "\.\.")/);
    }
  });

  it('pointed at another folder than the stack\'s, says to start one or to set LOCAL_DATA_DIR to the folder npm start uses', async () => {
    const elsewhere = await mkdtemp(join(tmpdir(), 'export-seed-elsewhere-'));
    try {
      const res = await failure(seed(['--channel', 'c2', '--users', '200', '--cases', '300'], elsewhere));
      expect(res.code).toBe(1);
      expect(res.stderr).toContain(
        `the local stack is not running (no ${join(elsewhere, 'endpoints.json')}); start it with npm start first, ` +
          'or set LOCAL_DATA_DIR to the folder npm start uses',
      );
    } finally {
      await rm(elsewhere, { recursive: true, force: true });
    }
  });

  it('reads the kind from a file name only when its first word is users or cases; any other name needs --kind', async () => {
    const createdAt = '2025-07-01T00:00:00Z';
    const body = [{ id: 'k1', createdAt }, { id: 'k2', createdAt }].map((l) => JSON.stringify(l)).join('\n');
    const files: Record<string, string> = {};
    for (const name of ['showcase-users.ndjson', 'contacts.ndjson', 'casestudy.ndjson', 'users-2025-07.ndjson', 'Users.ndjson']) {
      files[name] = join(dataDir, name);
      await writeFile(files[name], body);
    }
    // "case" inside the name once made showcase-users.ndjson a cases import (its user lines refused or, worse, loaded).
    for (const name of ['showcase-users.ndjson', 'contacts.ndjson', 'casestudy.ndjson']) {
      const res = await failure(seed(['--channel', 'kinds', '--import', files[name] ?? '']));
      expect(res.code, name).toBe(1);
      const ours = res.stderr.split('\n').filter((l) => l.startsWith('--'));
      expect(ours, name).toEqual([
        `--kind: is required: the file name "${name}" does not start with the word users or cases (as users.ndjson or cases-2025-07.ndjson do); add --kind users or --kind cases`,
      ]);
    }
    // Refused before connecting: the same answer with no stack to reach.
    const nowhere = await mkdtemp(join(tmpdir(), 'export-seed-nowhere-'));
    try {
      const res = await failure(seed(['--channel', 'kinds', '--import', files['showcase-users.ndjson'] ?? ''], nowhere));
      expect(res.stderr).toContain('--kind: is required');
      expect(res.stderr).not.toContain('not running');
    } finally {
      await rm(nowhere, { recursive: true, force: true });
    }
    expect((await seed(['--channel', 'kinds', '--import', files['showcase-users.ndjson'] ?? '', '--kind', 'users'])).stdout).toContain(
      'imported 2 users into channel "kinds"',
    );
    for (const name of ['users-2025-07.ndjson', 'Users.ndjson']) {
      expect((await seed(['--channel', 'kinds', '--import', files[name] ?? ''])).stdout, name).toContain('imported 2 users into channel "kinds"');
    }
  });

  it('prints the segment ids it generated: scope "segment" needs one', async () => {
    const { stdout } = await seed(['--channel', 'gen', '--users', '3', '--cases', '0']);
    expect(stdout).toMatch(/^segments: seg-vip-[0-9a-f]{6}, seg-recent-buyers-[0-9a-f]{6}, seg-dormant-[0-9a-f]{6}$/m);
  });

  it('warns once per profile key the channel does not declare, with a count, on stderr', async () => {
    await seed(['--channel', 'imp', '--users', '1', '--cases', '0']);
    const file = join(dataDir, 'users.ndjson');
    const createdAt = '2025-07-01T00:00:00Z';
    const lines = [
      { id: 'u1', createdAt, 'profile.grade': 'gold', 'profile.shoeSize': 270 },
      { id: 'u2', createdAt, 'profile.shoeSize': 250, 'profile.petName': 'Bori' },
      { id: 'u3', createdAt, 'profile.grade': 'silver' },
    ];
    await writeFile(file, lines.map((l) => JSON.stringify(l)).join('\n'));
    const declared = await seed(['--channel', 'imp', '--import', file]);
    expect(declared.stdout).toContain('imported 3 users into channel "imp"');
    expect(profileWarnings(declared.stderr)).toEqual([
      'warning: profile.shoeSize (2 records) is not declared in the user profile schema of channel "imp": exports leave it out (the import does not declare keys)',
      'warning: profile.petName (1 record) is not declared in the user profile schema of channel "imp": exports leave it out (the import does not declare keys)',
    ]);
    // A channel without a profile schema declares nothing; a value is never printed.
    const bare = await seed(['--channel', 'bare', '--import', file]);
    expect(profileWarnings(bare.stderr).map((l) => l.slice(0, l.indexOf(' is not')))).toEqual([
      'warning: profile.grade (2 records)',
      'warning: profile.shoeSize (2 records)',
      'warning: profile.petName (1 record)',
    ]);
    expect(bare.stderr).not.toContain('Bori');
  });
});

describe('npm run token', () => {
  const token = (args: string[]) =>
    run(join(process.cwd(), 'node_modules/.bin/tsx'), ['bin/token.ts', ...args]).then(
      (r) => ({ code: 0, ...r }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
    );
  // Node's own warnings (the AWS SDK's) may precede ours on stderr.
  const ours = (stderr: string) => stderr.split('\n').filter((l) => /^(--|usage:|Unknown)/.test(l));

  it('answers a bad value with one line naming its flag, then the usage, like every other bad argument', async () => {
    for (const [args, line] of [
      [['--channel', 'de#mo', '--manager', 'm1', '--permission', 'export:download'], '--channel: must not contain "#", control characters or lone surrogates'],
      [['--channel', 'demo', '--manager', 'm#1'], '--manager: must not contain "#", control characters or lone surrogates'],
      [['--channel', 'demo', '--manager', 'm1', '--expires', '12x'], '--expires: must look like 30s, 15m, 12h, 7d or 1w'],
      [['--channel', 'demo', '--manager', 'm1', '--expires', '2d'], '--expires: at most 86400 seconds; the stack refuses a token valid for longer (JWT_MAX_LIFETIME_SECONDS)'],
      [['--channel', 'demo'], '--manager is required'],
      // A token with a permission the service never checks would get a 403 everywhere.
      [['--channel', 'demo', '--manager', 'm1', '--permission', 'bogus'], '--permission: must be one of export:download, audit:read (not "bogus")'],
      [['--channel', 'demo', '--manager', 'm1', '--permission', 'export:download', '--permission', 'audit:write'], '--permission: must be one of export:download, audit:read (not "audit:write")'],
    ] as const) {
      const res = await token([...args]);
      expect(res.code).toBe(1);
      expect(ours(res.stderr)).toEqual([line, expect.stringMatching(/^usage: npm run token -- --channel C/)]);
      expect(res.stderr).not.toContain('"code"');
    }
    const ok = await token(['--channel', 'demo', '--manager', 'm1', '--permission', 'export:download', '--expires', '2h']);
    expect(ok.code).toBe(0);
    expect(ok.stdout.trim()).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    const both = await token(['--channel', 'demo', '--manager', 'm1', '--permission', 'export:download', '--permission', 'audit:read']);
    expect(both.code).toBe(0);
    const claims = JSON.parse(Buffer.from(both.stdout.trim().split('.')[1] ?? '', 'base64url').toString('utf8')) as { permissions: string[] };
    expect(claims.permissions).toEqual(['export:download', 'audit:read']);
    expect(both.stderr).not.toContain('note:');
  });

  it('without --permission still prints a token, and says on stderr that it gets 403 everywhere', async () => {
    const res = await token(['--channel', 'demo', '--manager', 'm1']);
    expect(res.code).toBe(0);
    expect(res.stdout.trim()).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    expect(res.stderr.split('\n').filter((l) => l.startsWith('note:'))).toEqual([
      'note: no --permission given: this token gets 403 from every endpoint (add --permission export:download and/or audit:read)',
    ]);
  });
});
