import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalStack, type LocalStack } from '../../infra/local/stack';

const run = promisify(execFile);
// stderr also carries Node's own warnings (the AWS SDK's about Node versions).
const profileWarnings = (stderr: string) => stderr.split('\n').filter((l) => l.includes('profile.'));

/** `npm run seed` against a running local stack, as a user runs it (it finds the stack through LOCAL_DATA_DIR). */
describe('npm run seed', () => {
  let stack: LocalStack;
  let dataDir: string;
  // INIT_CWD unset unless a test sets it: seed resolves --import against it, as npm run sets it.
  const seed = (args: string[], localDataDir = dataDir, env: Record<string, string | undefined> = {}) =>
    run(join(process.cwd(), 'node_modules/.bin/tsx'), ['bin/seed.ts', ...args], {
      env: { ...process.env, LOCAL_DATA_DIR: localDataDir, INIT_CWD: undefined, ...env },
    });
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
      expect(failed?.code, channel).toBe(2); // the seed command's exit code for any refused argument, as npm run xlsx's
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
      expect(res.code, name).toBe(2);
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

  /** How many items of `channel` a source table holds (users are keyed `<channel>#<shard>`, cases `<channel>#<day>`). */
  const itemsOf = async (table: string, channel: string): Promise<number> => {
    let count = 0;
    let start: Record<string, never> | undefined;
    do {
      const page = await stack.clients.ddb.send(
        new ScanCommand({
          TableName: table,
          FilterExpression: 'begins_with(pk, :p)',
          ExpressionAttributeValues: { ':p': { S: `${channel}#` } },
          Select: 'COUNT',
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
      );
      count += page.Count ?? 0;
      start = page.LastEvaluatedKey as Record<string, never> | undefined;
    } while (start);
    return count;
  };
  const ourLines = (stderr: string) => stderr.split('\n').filter((l) => /^(Import|--)/.test(l));

  it('refuses a record id given on two lines before writing anything, naming both lines (in one batch or in two)', async () => {
    const createdAt = '2024-01-01T00:00:00Z';
    const sameBatch = join(dataDir, 'users-dupid.ndjson');
    await writeFile(sameBatch, [{ id: 'u7', name: 'A', createdAt }, { id: 'u7', name: 'B', createdAt }].map((l) => JSON.stringify(l)).join('\n'));
    const r = await failure(seed(['--channel', 'dups', '--import', sameBatch]));
    expect({ code: r.code, lines: ourLines(r.stderr) }).toEqual({
      code: 2,
      lines: ['Import line 2, field id: the same id as line 1 (each record may appear once)'],
    });
    // Batches hold 2,000 records: the repeat lands in the second, after the first was written.
    const lines = Array.from({ length: 2500 }, (_, i) => JSON.stringify({ id: `bulk${i}`, name: 'N', createdAt }));
    lines[2399] = JSON.stringify({ id: 'bulk3', name: 'again', createdAt });
    const twoBatches = join(dataDir, 'users-dup-late.ndjson');
    await writeFile(twoBatches, lines.join('\n'));
    const r2 = await failure(seed(['--channel', 'dups', '--import', twoBatches]));
    expect({ code: r2.code, lines: ourLines(r2.stderr) }).toEqual({
      code: 2,
      lines: ['Import line 2400, field id: the same id as line 4 (each record may appear once)'],
    });
    // A case id twice, even with two start instants (two item keys): one case would be exported twice.
    const caseLine = (createdAt: string) =>
      JSON.stringify({ userChatCaseId: 'k1', userChatCase: 1, userChatId: 'c1', direction: 'inbound', userChatState: 'closed', userId: 'u1', createdAt, mediumName: 'phoneNumber' });
    const cases = join(dataDir, 'cases-dup.ndjson');
    await writeFile(cases, [caseLine('2025-07-01T00:00:00Z'), '', caseLine('2025-07-02T00:00:00Z')].join('\n'));
    const r3 = await failure(seed(['--channel', 'dups', '--import', cases]));
    expect({ code: r3.code, lines: ourLines(r3.stderr) }).toEqual({
      code: 2,
      lines: ['Import line 3, field userChatCaseId: the same userChatCaseId as line 1 (each record may appear once)'],
    });
    expect(await itemsOf(stack.tables.users, 'dups')).toBe(0);
    expect(await itemsOf(stack.tables.cases, 'dups')).toBe(0);
  });

  it('reads the import file as strictly as npm run xlsx reads its input: bad UTF-8, a key twice, a lone surrogate refused naming the line; a BOM skipped', async () => {
    const createdAt = '2024-01-01T00:00:00Z';
    const file = join(dataDir, 'users-strict.ndjson');
    for (const [content, line] of [
      [Buffer.concat([Buffer.from(`{"id":"s1","createdAt":"${createdAt}"}\n{"id":"s2","name":"`), Buffer.from([0xff, 0xfe]), Buffer.from(`","createdAt":"${createdAt}"}\n`)]), 'Import line 2: not valid UTF-8'],
      [`{"id":"s1","name":"A","name":"B","createdAt":"${createdAt}"}\n`, 'Import line 1, field name: appears more than once (JSON keeps only the last value)'],
      // Inside the profile too: one of the two values vanished as silently.
      [`{"id":"s1","createdAt":"${createdAt}","profile":{"grade":"A","grade":"B"}}\n`, 'Import line 1, field profile.grade: appears more than once (JSON keeps only the last value)'],
      [`{"id":"s1","createdAt":"${createdAt}"}\r\n{"id":"s2","name":"A\\ud800Z","createdAt":"${createdAt}"}\r\n`, 'Import line 2, field name: holds a lone surrogate (half of a UTF-16 pair, e.g. a \\ud800 escape), which is not text'],
      [`{"id":"s1","\\udc00":1,"createdAt":"${createdAt}"}\n`, 'Import line 1, a field name: holds a lone surrogate (half of a UTF-16 pair, e.g. a \\ud800 escape), which is not text'],
    ] as const) {
      await writeFile(file, content);
      const r = await failure(seed(['--channel', 'strict', '--import', file]));
      expect({ line, code: r.code, lines: ourLines(r.stderr) }).toEqual({ line, code: 2, lines: [line] });
    }
    expect(await itemsOf(stack.tables.users, 'strict')).toBe(0);
    await writeFile(file, `\uFEFF{"id":"s1","createdAt":"${createdAt}"}\r\n{"id":"s2","createdAt":"${createdAt}"}\r\n`);
    expect((await seed(['--channel', 'strict', '--import', file])).stdout).toContain('imported 2 users into channel "strict"');
    expect(await itemsOf(stack.tables.users, 'strict')).toBe(2);
  });

  it('refuses an empty or non-decimal count, and an option given twice, naming the option (exit 2, before connecting)', async () => {
    const nowhere = await mkdtemp(join(tmpdir(), 'export-seed-counts-'));
    try {
      for (const [args, line] of [
        [['--users', '', '--cases', ''], '--users: must be a whole number from 0 to 2000000'],
        [['--users', '1', '--cases', ' '], '--cases: must be a whole number from 0 to 2000000'],
        [['--users', '1e3'], '--users: must be a whole number from 0 to 2000000'],
        [['--users', '0x10'], '--users: must be a whole number from 0 to 2000000'],
        [['--users', '1', '--seed', ''], '--seed: must be a whole number from 0 to 9007199254740991'],
        [['--users', '1', '--users', '2'], '--users: given more than once (each option may be given once)'],
        [['--users', '1', '--channel', 'other'], '--channel: given more than once (each option may be given once)'],
      ] as const) {
        const r = await failure(seed(['--channel', 'counts', ...args], nowhere));
        expect({ args, code: r.code, first: ourLines(r.stderr)[0] }).toEqual({ args, code: 2, first: line });
        expect(r.stderr).not.toContain('not running');
      }
    } finally {
      await rm(nowhere, { recursive: true, force: true });
    }
  });

  it('resolves a relative --import against INIT_CWD (the folder npm run was started in)', async () => {
    const callers = await mkdtemp(join(tmpdir(), 'export-seed-caller-'));
    try {
      await writeFile(join(callers, 'users.ndjson'), JSON.stringify({ id: 'rel1', createdAt: '2024-01-01T00:00:00Z' }));
      const r = await seed(['--channel', 'rel', '--import', 'users.ndjson'], dataDir, { INIT_CWD: callers });
      expect(r.stdout).toContain('imported 1 users into channel "rel"');
    } finally {
      await rm(callers, { recursive: true, force: true });
    }
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
      expect(res.code).toBe(2); // bad usage, as for npm run xlsx and npm run seed
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
      'note: no --permission given: this token can only cancel or revoke its own exports, every other route it is sent to answers 403 (add --permission export:download and/or audit:read)',
    ]);
  });

  it('refuses an option given twice (but --permission) and a lifetime that is not positive, naming the option (exit 2)', async () => {
    const base = ['--channel', 'demo', '--manager', 'm1', '--permission', 'export:download'];
    for (const [args, line] of [
      [['--channel', 'C2'], '--channel: given more than once (each option may be given once)'],
      [['--expires', '1h', '--expires', '2h'], '--expires: given more than once (each option may be given once)'],
      [['--expires', '0s'], '--expires: must be a positive lifetime, e.g. 30s or 12h (a token valid for 0 seconds is expired when printed)'],
      [['--expires', '0h'], '--expires: must be a positive lifetime, e.g. 30s or 12h (a token valid for 0 seconds is expired when printed)'],
    ] as const) {
      const res = await token([...base, ...args]);
      expect({ args, code: res.code, stdout: res.stdout, ours: ours(res.stderr) }).toEqual({
        args,
        code: 2,
        stdout: '',
        ours: [line, expect.stringMatching(/^usage: npm run token -- --channel C/)],
      });
    }
    const ok = await token([...base, '--expires', '1s']);
    expect(ok.code).toBe(0);
    const claims = JSON.parse(Buffer.from(ok.stdout.trim().split('.')[1] ?? '', 'base64url').toString('utf8')) as { iat: number; exp: number };
    expect(claims.exp - claims.iat).toBe(1);
  });
});
