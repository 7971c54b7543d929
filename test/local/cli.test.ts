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
  const seed = (args: string[]) =>
    run(join(process.cwd(), 'node_modules/.bin/tsx'), ['bin/seed.ts', ...args], { env: { ...process.env, LOCAL_DATA_DIR: dataDir } });

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
      [['--channel', 'de#mo', '--manager', 'm1', '--permission', 'export:download'], '--channel: must not contain "#" or control characters'],
      [['--channel', 'demo', '--manager', 'm#1'], '--manager: must not contain "#" or control characters'],
      [['--channel', 'demo', '--manager', 'm1', '--expires', '12x'], '--expires: must look like 30s, 15m, 12h, 7d or 1w'],
      [['--channel', 'demo', '--manager', 'm1', '--expires', '2d'], '--expires: at most 86400 seconds; the stack refuses a token valid for longer (JWT_MAX_LIFETIME_SECONDS)'],
      [['--channel', 'demo'], '--manager is required'],
    ] as const) {
      const res = await token([...args]);
      expect(res.code).toBe(1);
      expect(ours(res.stderr)).toEqual([line, expect.stringMatching(/^usage: npm run token -- --channel C/)]);
      expect(res.stderr).not.toContain('"code"');
    }
    const ok = await token(['--channel', 'demo', '--manager', 'm1', '--permission', 'export:download', '--expires', '2h']);
    expect(ok.code).toBe(0);
    expect(ok.stdout.trim()).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
  });
});
