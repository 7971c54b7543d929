import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  constants,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { scanTopLevelMembers } from '../../bin/xlsx';
import { createEncryptingSink, createWritableSink, deriveEncryptionKeys } from '../../shared/xlsx';
import { XlsxPopulate, decryptWithXlsxPopulate, readWithExcelJs } from './engine-test-support';
import { unzipSync } from './zip-reader';
import { BatchBuilder, createBatchRenderer } from '../../bin/xlsx-rows';
import { decodeLineText, InputError } from '../../bin/cli-input';

const ROOT = resolve(__dirname, '../..');
const TSX = join(ROOT, 'node_modules/.bin/tsx');
const dir = mkdtempSync(join(tmpdir(), 'xlsx-cli-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// INIT_CWD is unset unless a test sets it: `npx vitest` run from another folder sets it there, and
// the CLI resolves relative paths against it (as npm run would), not against ROOT, its cwd here.
function run(args: string[], env: Record<string, string | undefined> = {}) {
  const result = spawnSync(TSX, ['bin/xlsx.ts', ...args], {
    cwd: ROOT,
    env: { ...process.env, EXPORT_PASSWORD: undefined, INIT_CWD: undefined, ...env },
    encoding: 'utf8',
  });
  return { code: result.status, stderr: result.stderr, stdout: result.stdout };
}

/** A fresh, empty folder under the test's own. */
function freshDir(name: string): string {
  const d = join(dir, name);
  mkdirSync(d);
  return d;
}

/** The CLI's temp folders in a TMPDIR given to it (tsx keeps its own cache there too). */
function cliTemps(tmp: string): string[] {
  return readdirSync(tmp).filter((name) => name.startsWith('xlsx-cli-'));
}

/** The CLI's temp output files for `out` (`<out>.<pid>.<random>.partial`) that exist now. */
function partials(out: string): string[] {
  return readdirSync(dirname(out)).filter((name) => name.startsWith(`${basename(out)}.`) && name.endsWith('.partial'));
}

/** The CLI under a file-size limit of 1 KiB (bash's `ulimit -f` counts KiB): its output write fails with EFBIG. */
function runWithFileSizeLimit(args: string[], env: Record<string, string | undefined> = {}) {
  const result = spawnSync('bash', ['-c', 'ulimit -f 1 && exec "$0" "$@"', TSX, 'bin/xlsx.ts', ...args], {
    cwd: ROOT,
    env: { ...process.env, EXPORT_PASSWORD: undefined, INIT_CWD: undefined, ...env },
    encoding: 'utf8',
  });
  return { code: result.status, stderr: result.stderr };
}

/** Starts the CLI without waiting, for tests that act while it runs. */
function start(args: string[], env: Record<string, string | undefined> = {}) {
  const child = spawn(TSX, ['bin/xlsx.ts', ...args], { cwd: ROOT, env: { ...process.env, EXPORT_PASSWORD: undefined, INIT_CWD: undefined, ...env } });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((res) =>
    child.once('close', (code, signal) => res({ code, signal, stderr })),
  );
  return { child, done, stderrSoFar: () => stderr };
}

/** A named pipe as --in: the run waits on it, so a test can act at a known point of the run. */
function makeFifo(name: string): string {
  const path = join(dir, name);
  expect(spawnSync('mkfifo', [path]).status).toBe(0);
  return path;
}

/**
 * Opens the pipe's write end once the CLI has opened its read end (it does so after its
 * up-front checks and after creating its temp folder).
 */
async function openPipeWriter(path: string, child: ChildProcess): Promise<number> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      return openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENXIO' || child.exitCode !== null || Date.now() > deadline) throw err;
      await sleep(50);
    }
  }
}

describe('npm run xlsx (bin/xlsx.ts)', () => {
  const input = join(dir, 'rows.ndjson');
  writeFileSync(
    input,
    [
      { id: '007', name: '김민준', at: '2025-07-01T09:30:00+09:00', secs: 90, ok: true },
      { id: '008', name: '=1+1', at: '2025-07-02T00:00:00Z', secs: null, ok: false },
      {},
      { id: '010', name: 'tab\there', at: null, secs: 1.5, ok: null },
    ]
      .map((r) => JSON.stringify(r))
      .join('\n') + '\n\n',
  );
  const columns = join(dir, 'columns.json');
  writeFileSync(
    columns,
    JSON.stringify([
      { key: 'id', header: 'ID', type: 'string' },
      { key: 'name', type: 'string' },
      { key: 'at', header: 'When', type: 'date' },
      { key: 'secs', type: 'duration' },
      { key: 'ok', type: 'boolean' },
    ]),
  );

  it('writes an encrypted workbook that decrypts and reads back', async () => {
    const out = join(dir, 'out.xlsx');
    const r = run(['--in', input, '--out', out, '--columns', columns, '--sheet', 'Export', '--timezone', 'Asia/Seoul'], {
      EXPORT_PASSWORD: 'Pw123456',
    });
    expect(r.stderr).toMatch(/wrote 4 rows/);
    expect(r.code).toBe(0);
    const file = readFileSync(out);
    expect(partials(out)).toEqual([]);
    const wb = await XlsxPopulate.fromDataAsync(file, { password: 'Pw123456' });
    expect(wb.sheet(0).name()).toBe('Export');
    const [sheet] = await readWithExcelJs(await decryptWithXlsxPopulate(file, 'Pw123456'));
    expect(sheet!.rows[0]).toEqual(['ID', 'name', 'When', 'secs', 'ok']);
    expect(sheet!.rows[1]).toEqual(['007', '김민준', new Date(Date.UTC(2025, 6, 1, 9, 30)), 90, true]);
    expect(sheet!.rows[2]).toEqual(['008', '=1+1', new Date(Date.UTC(2025, 6, 2, 9, 0)), null, false]);
    expect(sheet!.rows[3] ?? []).toEqual([]);
    expect(sheet!.rows[4]?.slice(0, 4)).toEqual(['010', 'tab\there', null, 1.5]);
    expect(r.stderr).not.toContain('Pw123456');
  });

  it('with --columns, an input without rows (empty, or blank lines only) is a workbook of the header row', async () => {
    for (const [name, text] of [
      ['empty', ''],
      ['blank', '\n  \n\t\r\n\u3000\n'],
    ] as const) {
      const input = join(dir, `no-rows-${name}.ndjson`);
      writeFileSync(input, text);
      const out = join(dir, `no-rows-${name}.xlsx`);
      const r = run(['--in', input, '--out', out, '--columns', columns, '--no-password']);
      expect({ name, code: r.code }).toEqual({ name, code: 0 });
      expect(r.stderr).toMatch(/^wrote 0 rows/);
      const [sheet] = await readWithExcelJs(readFileSync(out));
      expect(sheet!.rows).toEqual([['ID', 'name', 'When', 'secs', 'ok']]);
    }
  });

  it('infers columns from the first row without --columns', async () => {
    const out = join(dir, 'plain.xlsx');
    const simple = join(dir, 'simple.ndjson');
    writeFileSync(simple, '{"a":"x","b":2,"c":true}\n{"a":"y","b":3.5,"c":false}\n');
    const r = run(['--in', simple, '--out', out, '--no-password']);
    expect(r.code).toBe(0);
    const [sheet] = await readWithExcelJs(readFileSync(out));
    expect(sheet!.rows).toEqual([['a', 'b', 'c'], ['x', 2, true], ['y', 3.5, false]]);
  });

  it('a bad line exits 2 naming the line and the field, and leaves no output', () => {
    const bad = join(dir, 'bad.ndjson');
    writeFileSync(bad, '{"id":"1","at":"2025-07-01T00:00:00Z"}\n{"id":"2","at":"yesterday"}\n');
    const out = join(dir, 'bad.xlsx');
    const r = run(['--in', bad, '--out', out, '--columns', columns], { EXPORT_PASSWORD: 'Pw123456' });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/line 2: field "at" \(date\)/);
    expect(existsSync(out)).toBe(false);

    // A day that does not exist: Date.parse alone would roll it into the next month.
    for (const at of ['2023-02-29T12:00:00Z', '2025-04-31T00:00:00+09:00', '2025-01-01T24:30:00Z']) {
      writeFileSync(bad, `{"id":"1","at":"2025-07-01T00:00:00Z"}\n\n{"id":"3","at":"${at}"}\n`);
      const r3 = run(['--in', bad, '--out', out, '--columns', columns], { EXPORT_PASSWORD: 'Pw123456' });
      expect({ at, code: r3.code }).toEqual({ at, code: 2 });
      expect(r3.stderr).toMatch(/line 3: field "at" \(date\) must be a date and time that exist/);
      expect(r3.stderr).not.toContain(at);
      expect(existsSync(out)).toBe(false);
    }

    writeFileSync(bad, '{"id":"1"}\nnot json\n');
    const r2 = run(['--in', bad, '--out', out], { EXPORT_PASSWORD: 'Pw123456' });
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/line 2: not valid JSON/);
  });

  it('refuses a password on argv, and a missing EXPORT_PASSWORD', () => {
    const out = join(dir, 'x.xlsx');
    const r = run(['--in', input, '--out', out, '--password', 'Pw123456']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/must not be given on the command line/);
    expect(r.stderr).not.toContain('Pw123456');
    const r2 = run(['--in', input, '--out', out, '--sheet', 'Pw123456'], { EXPORT_PASSWORD: 'Pw123456' });
    expect(r2.code).toBe(2);
    const r3 = run(['--in', input, '--out', out]);
    expect(r3.code).toBe(2);
    expect(r3.stderr).toMatch(/EXPORT_PASSWORD is not set/);
    expect(existsSync(out)).toBe(false);
  });

  it('refuses an --out whose folder is missing or not a folder, before any temp file exists', () => {
    const tmp = freshDir('tmp-missing-folder');
    const missing = join(dir, 'no', 'such', 'o.xlsx');
    const r = run(['--in', input, '--out', missing, '--columns', columns], { EXPORT_PASSWORD: 'Pw123456', TMPDIR: tmp });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`xlsx: --out ${missing}: the folder ${join(dir, 'no', 'such')} does not exist\n`);
    expect(cliTemps(tmp)).toEqual([]);

    const underFile = join(input, 'o.xlsx');
    const r2 = run(['--in', input, '--out', underFile, '--no-password'], { TMPDIR: tmp });
    expect(r2.code).toBe(2);
    expect(r2.stderr).toBe(`xlsx: --out ${underFile}: ${input} is not a folder\n`);
    expect(cliTemps(tmp)).toEqual([]);
  });

  it('an output that cannot be opened fails with exit 1, a message and no temp files left', async () => {
    const fifo = makeFifo('open-fails.fifo');
    const folder = freshDir('open-fails');
    const out = join(folder, 'blocked.xlsx');
    const tmp = freshDir('tmp-open-fails');
    const { child, done } = start(['--in', fifo, '--out', out, '--no-password'], { TMPDIR: tmp });
    const fd = await openPipeWriter(fifo, child);
    writeSync(fd, '{"a":"x"}\n');
    rmSync(folder, { recursive: true }); // after the up-front checks: the temp file cannot be created
    closeSync(fd);
    const r = await done;
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^xlsx: failed: ENOENT.*blocked\.xlsx\.\d+\.[0-9a-f]{8}\.partial/);
    expect(r.stderr).not.toMatch(/^\s+at /m); // no stack trace
    expect(cliTemps(tmp)).toEqual([]);
    expect(existsSync(folder)).toBe(false);
  });

  it('refuses an --out that is the input (any spelling, a symlink or a hard link) and leaves the input alone', () => {
    const tmp = freshDir('tmp-same-file');
    const content = '{"a":"x"}\n{"a":"y"}\n';
    const same = join(dir, 'same.ndjson');
    writeFileSync(same, content);
    const link = join(dir, 'same-link.ndjson');
    symlinkSync(same, link);
    const hard = join(dir, 'same-hard.ndjson');
    linkSync(same, hard);
    for (const out of [same, relative(ROOT, same), join(dir, '.', '..', dir.split('/').pop()!, 'same.ndjson'), link, hard]) {
      const r = run(['--in', same, '--out', out, '--no-password'], { TMPDIR: tmp });
      expect({ out, code: r.code }).toEqual({ out, code: 2 });
      expect(r.stderr).toBe(`xlsx: --out ${out}: is the same file as --in ${same} (it would overwrite the input)\n`);
      expect(readFileSync(same, 'utf8')).toBe(content);
    }
    // The temp file written first is created new (never an existing `<out>.partial`), so an
    // input that has that name is read and left alone.
    const p = join(dir, 'p.xlsx');
    const asPartial = `${p}.partial`;
    writeFileSync(asPartial, content);
    const r2 = run(['--in', asPartial, '--out', p, '--no-password'], { TMPDIR: tmp });
    expect(r2.code).toBe(0);
    expect(readFileSync(asPartial, 'utf8')).toBe(content);
    expect(existsSync(p)).toBe(true);
    expect(partials(p)).toEqual(['p.xlsx.partial']);
    expect(cliTemps(tmp)).toEqual([]);
  });

  it('refuses an existing folder as --out up front and never leaves a .partial', () => {
    const out = freshDir('out-is-a-folder');
    const r = run(['--in', input, '--out', out, '--columns', columns, '--no-password']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`xlsx: --out ${out}: is a folder; give a file name, e.g. ${join(out, 'export.xlsx')}\n`);
    expect(partials(out)).toEqual([]);
    expect(readdirSync(out)).toEqual([]);
  });

  it('a failing final rename removes the partial workbook', async () => {
    const fifo = makeFifo('rename.fifo');
    const out = join(dir, 'rename-target.xlsx');
    const tmp = freshDir('tmp-rename');
    const { child, done } = start(['--in', fifo, '--out', out, '--no-password'], { TMPDIR: tmp });
    const fd = await openPipeWriter(fifo, child);
    writeSync(fd, '{"a":"x"}\n{"a":"y"}\n');
    mkdirSync(join(out, 'child'), { recursive: true }); // after the up-front checks: the rename will fail
    closeSync(fd);
    const r = await done;
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^xlsx: failed: .*rename/);
    expect(partials(out)).toEqual([]);
    expect(cliTemps(tmp)).toEqual([]);
  });

  it('a signal mid-run removes the temp folder', async () => {
    const fifo = makeFifo('signal.fifo');
    const out = join(dir, 'signal.xlsx');
    const tmp = freshDir('tmp-signal');
    const { child, done } = start(['--in', fifo, '--out', out, '--no-password'], { TMPDIR: tmp });
    const fd = await openPipeWriter(fifo, child);
    writeSync(fd, '{"a":"x"}\n');
    expect(cliTemps(tmp)).toHaveLength(1); // the temp folder exists while the run waits for input
    child.kill('SIGTERM');
    // It ends while the pipe's writer is still open (the signal is re-raised with its default
    // action: process.exit() would wait for the read blocked on the pipe until the writer
    // wrote or closed). The writer is closed only after, or after 10 s if it never ends.
    const ended = await Promise.race([done.then(() => true), sleep(10_000).then(() => false)]);
    closeSync(fd);
    const r = await done;
    expect(ended).toBe(true);
    expect(cliTemps(tmp)).toEqual([]);
    expect(r.stderr).toBe('xlsx: stopped by SIGTERM\n');
    expect(r.code === 143 || r.signal === 'SIGTERM').toBe(true);
    expect(existsSync(out)).toBe(false);
    expect(partials(out)).toEqual([]);
  });

  it('refuses invalid UTF-8 naming the line, skips a leading BOM, and splits lines as readline does', async () => {
    const f = join(dir, 'utf8.ndjson');
    const out = join(dir, 'utf8.xlsx');
    const invalid = [
      Buffer.from([0xff, 0xfe]), // never valid
      Buffer.from([0xc3, 0x28]), // a lead byte without its continuation
      Buffer.from([0xed, 0xa0, 0x80]), // an encoded surrogate
      Buffer.from([0xe2, 0x82]), // truncated (at the end of the line)
    ];
    for (const bad of invalid) {
      writeFileSync(f, Buffer.concat([Buffer.from('{"id":"a","n":1}\n{"id":"b'), bad, Buffer.from('","n":2}\n')]));
      const r = run(['--in', f, '--out', out, '--no-password']);
      expect({ bad: [...bad], code: r.code, stderr: r.stderr }).toEqual({ bad: [...bad], code: 2, stderr: 'xlsx: line 2: not valid UTF-8\n' });
      expect(existsSync(out)).toBe(false);
    }
    // Truncated at the very end of the file, without a final newline.
    writeFileSync(f, Buffer.concat([Buffer.from('{"id":"a","n":1}\r\n{"id":"b","n":2}\r\n{"id":"'), Buffer.from([0xea, 0xb9])]));
    const rEnd = run(['--in', f, '--out', out, '--no-password']);
    expect(rEnd.stderr).toBe('xlsx: line 3: not valid UTF-8\n');

    // A BOM at the start of the file is skipped; CRLF, a lone CR and LF all end a line.
    writeFileSync(f, '\uFEFF{"id":"a","n":1}\r\n{"id":"b","n":2}\r{"id":"c","n":3}\n');
    const r = run(['--in', f, '--out', out, '--no-password']);
    expect(r.code).toBe(0);
    const [sheet] = await readWithExcelJs(readFileSync(out));
    expect(sheet!.rows).toEqual([['id', 'n'], ['a', 1], ['b', 2], ['c', 3]]);
    // Anywhere else, a BOM is text: not valid JSON.
    writeFileSync(f, '{"id":"a","n":1}\n\uFEFF{"id":"b","n":2}\n');
    expect(run(['--in', f, '--out', join(dir, 'utf8-2.xlsx'), '--no-password']).stderr).toBe('xlsx: line 2: not valid JSON\n');

    // Characters and CRLF split across the 64 KiB read chunks: counted and decoded as one.
    const idOnly = join(dir, 'id-only.json');
    writeFileSync(idOnly, JSON.stringify([{ key: 'id', type: 'string' }]));
    const head = `{"id":"a","pad":"${'x'.repeat(65_536 - 20)}"}`; // 65,535 bytes: CR ends the first chunk, LF starts the next
    const long = '김'.repeat(10_000); // 30,000 bytes: one character straddles the second chunk's end
    const tail = `{"id":"b","pad":"${'y'.repeat(65_536 - 30_000 - 40)}${long}"}`;
    writeFileSync(f, `${head}\r\n${tail}\r\n\r\nnot json\n`);
    const r2 = run(['--in', f, '--out', join(dir, 'utf8-3.xlsx'), '--columns', idOnly, '--no-password']);
    expect(r2.stderr).toBe('xlsx: line 4: not valid JSON\n');
    writeFileSync(f, `${head}\r\n{"id":"${long}"}\r\n${tail}\r\n`);
    const out4 = join(dir, 'utf8-4.xlsx');
    expect(run(['--in', f, '--out', out4, '--columns', idOnly, '--no-password']).code).toBe(0);
    const [sheet4] = await readWithExcelJs(readFileSync(out4));
    expect(sheet4!.rows).toEqual([['id'], ['a'], [long], ['b']]);
  });

  it('refuses numbers too large to represent (1e400 parses to Infinity) naming line and field', () => {
    const f = join(dir, 'inf.ndjson');
    const out = join(dir, 'inf.xlsx');
    writeFileSync(f, '{"id":"a","n":1}\n{"id":"b","n":1e400}\n');
    const r = run(['--in', f, '--out', out, '--no-password']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('xlsx: line 2: field "n" (number) must be a finite number, got a number too large to represent\n');
    expect(existsSync(out)).toBe(false);

    writeFileSync(f, '{"id":"a","at":null,"secs":-1e999}\n');
    const r2 = run(['--in', f, '--out', out, '--columns', columns, '--no-password']);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toBe('xlsx: line 1: field "secs" (duration) must be a finite number, got a number too large to represent\n');

    writeFileSync(f, '{"id":1e400}\n');
    const r3 = run(['--in', f, '--out', out, '--columns', columns, '--no-password']);
    expect(r3.code).toBe(2);
    expect(r3.stderr).toMatch(/^xlsx: line 1: field "id" \(string\) must be text, a finite number or a boolean/);
    expect(existsSync(out)).toBe(false);
  });

  it('refuses only an argument that is the password, not one that contains it', () => {
    const out = join(dir, 'report1.xlsx');
    const r = run(['--in', input, '--out', out, '--columns', columns], { EXPORT_PASSWORD: '1' });
    expect(r.stderr).toMatch(/wrote 4 rows/);
    expect(r.code).toBe(0);
    for (const args of [['--sheet=Pw123456'], ['--sheet', 'Pw123456'], ['--password=other'], ['-p', 'other']]) {
      const r2 = run(['--in', input, '--out', join(dir, 'z.xlsx'), ...args], { EXPORT_PASSWORD: 'Pw123456' });
      expect({ args, code: r2.code }).toEqual({ args, code: 2 });
      expect(r2.stderr).toBe('xlsx: the password must not be given on the command line: set EXPORT_PASSWORD instead\n');
    }
  });

  it('rejects a bad columns file naming the entry', () => {
    const badColumns = join(dir, 'bad-columns.json');
    writeFileSync(badColumns, JSON.stringify([{ key: 'a', type: 'text' }]));
    const r = run(['--in', input, '--out', join(dir, 'y.xlsx'), '--columns', badColumns], { EXPORT_PASSWORD: 'Pw123456' });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/0\.type/);
  });

  it('reads a field named like an Object.prototype member only from the row: a row without it gives an empty cell', async () => {
    const f = join(dir, 'proto.ndjson');
    const out = join(dir, 'proto.xlsx');
    writeFileSync(f, '{"id":1,"constructor":"Ferrari","toString":"x","__proto__":"p"}\n{"id":2}\n');
    const r = run(['--in', f, '--out', out, '--no-password']);
    expect(r.stderr).toMatch(/wrote 2 rows/);
    expect(r.code).toBe(0);
    const [sheet] = await readWithExcelJs(readFileSync(out));
    expect(sheet!.rows).toEqual([['id', 'constructor', 'toString', '__proto__'], [1, 'Ferrari', 'x', 'p'], [2]]);

    const protoColumns = join(dir, 'proto-columns.json');
    writeFileSync(protoColumns, JSON.stringify([{ key: 'id', type: 'number' }, { key: 'constructor', type: 'string' }, { key: 'hasOwnProperty', type: 'boolean' }]));
    const r2 = run(['--in', f, '--out', out, '--columns', protoColumns, '--no-password']);
    expect(r2.code).toBe(0);
    const [sheet2] = await readWithExcelJs(readFileSync(out));
    expect(sheet2!.rows).toEqual([['id', 'constructor', 'hasOwnProperty'], [1, 'Ferrari'], [2]]);
  });

  it('never opens an existing <out>.partial: a symlink planted there is not followed', async () => {
    const folder = freshDir('planted');
    const victim = join(folder, 'victim.txt');
    writeFileSync(victim, 'precious');
    const out = join(folder, 'sym.xlsx');
    symlinkSync(victim, `${out}.partial`);
    const r = run(['--in', input, '--out', out, '--columns', columns, '--no-password']);
    expect(r.code).toBe(0);
    expect(readFileSync(victim, 'utf8')).toBe('precious');
    expect(readdirSync(folder).sort()).toEqual(['sym.xlsx', 'sym.xlsx.partial', 'victim.txt']); // the link is not ours: left as it was
    const [sheet] = await readWithExcelJs(readFileSync(out));
    expect(sheet!.rows[0]).toEqual(['ID', 'name', 'When', 'secs', 'ok']);
  });

  it.skipIf(process.platform === 'win32')('an output write that fails reports the system error (EFBIG), not that the stream closed', () => {
    const tmp = freshDir('tmp-efbig');
    const f = join(dir, 'small.ndjson');
    writeFileSync(f, '{"a":"x"}\n{"a":"y"}\n'); // its parts fit in 1 KiB; the workbook does not
    for (const [label, extra, env] of [
      ['plain', ['--no-password'], {}],
      ['encrypted', [], { EXPORT_PASSWORD: 'Pw123456' }],
    ] as const) {
      const out = join(dir, `efbig-${label}.xlsx`);
      const r = runWithFileSizeLimit(['--in', f, '--out', out, ...extra], { ...env, TMPDIR: tmp });
      expect({ label, code: r.code, stderr: r.stderr }).toEqual({ label, code: 1, stderr: 'xlsx: failed: EFBIG: file too large, write\n' });
      expect(existsSync(out)).toBe(false);
      expect(partials(out)).toEqual([]);
      expect(cliTemps(tmp)).toEqual([]);
    }
  });

  it('refuses a bad --sheet while parsing the command line, naming the option (exit 2, no temp files)', () => {
    const tmp = freshDir('tmp-sheet');
    const out = join(dir, 'sheet.xlsx');
    for (const [sheet, rule] of [
      ['a/b', /may not contain : \\ \/ \? \* \[ \]/],
      ['History', /may not be named "History"/],
      ['history', /may not be named "History"/],
      ['', /must be 1 to 31 characters/],
      ['x'.repeat(32), /must be 1 to 31 characters/],
      ["'quoted'", /nor start or end with an apostrophe/],
    ] as const) {
      const r = run(['--in', input, '--out', out, '--columns', columns, '--sheet', sheet, '--no-password'], { TMPDIR: tmp });
      expect({ sheet, code: r.code }).toEqual({ sheet, code: 2 });
      expect(r.stderr).toMatch(/^xlsx: --sheet: /);
      expect(r.stderr).toMatch(rule);
      expect(r.stderr).not.toMatch(/sheets\.0/);
      expect(cliTemps(tmp)).toEqual([]); // refused before the rows are read
      expect(existsSync(out)).toBe(false);
    }
  });

  it('refuses a folder as --in up front, and an inferred column without a name naming the line', () => {
    const tmp = freshDir('tmp-in-folder');
    const folder = freshDir('in-is-a-folder');
    const out = join(dir, 'in-folder.xlsx');
    const r = run(['--in', folder, '--out', out, '--no-password'], { TMPDIR: tmp });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`xlsx: --in ${folder}: is not a file (it is a folder)\n`);
    expect(cliTemps(tmp)).toEqual([]);

    const f = join(dir, 'empty-key.ndjson');
    writeFileSync(f, '\n{"":1,"b":2}\n');
    const r2 = run(['--in', f, '--out', out, '--no-password']);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toBe('xlsx: line 2: field "" has an empty name, which cannot be a column: pass --columns to choose the columns\n');
    expect(existsSync(out)).toBe(false);
  });

  it('inferred columns keep the order of the first line, integer-like keys included', async () => {
    const f = join(dir, 'order.ndjson');
    const out = join(dir, 'order.xlsx');
    writeFileSync(f, '{"region":"EU","2025":3,"2024":2,"10":1,"a\\"b":"}{:,","\\u00e9":true}\n{"region":"US","10":4}\n');
    const r = run(['--in', f, '--out', out, '--no-password']);
    expect(r.code).toBe(0);
    const [sheet] = await readWithExcelJs(readFileSync(out));
    expect(sheet!.rows[0]).toEqual(['region', '2025', '2024', '10', 'a"b', 'é']);
    expect(sheet!.rows[1]).toEqual(['EU', 3, 2, 1, '}{:,', true]);
    expect(sheet!.rows[2]).toEqual(['US', null, null, 4]);
  });

  it('without --columns, refuses a later field that is not a column; with --columns, extra fields are ignored', async () => {
    const f = join(dir, 'extra.ndjson');
    const out = join(dir, 'extra.xlsx');
    writeFileSync(f, '{"a":1}\n{"a":2}\n{"a":3,"b":"x"}\n');
    const r = run(['--in', f, '--out', out, '--no-password']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'xlsx: line 3: field "b" is not a column (without --columns the columns are line 1\'s fields): pass --columns to choose the columns\n',
    );
    expect(existsSync(out)).toBe(false);

    const aOnly = join(dir, 'a-only.json');
    writeFileSync(aOnly, JSON.stringify([{ key: 'a', type: 'number' }]));
    const r2 = run(['--in', f, '--out', out, '--columns', aOnly, '--no-password']);
    expect(r2.code).toBe(0);
    const [sheet] = await readWithExcelJs(readFileSync(out));
    expect(sheet!.rows).toEqual([['a'], [1], [2], [3]]);
  });

  it('refuses a key given twice in one line (JSON.parse would keep only the last), on any line', () => {
    const f = join(dir, 'dup.ndjson');
    const out = join(dir, 'dup.xlsx');
    const aOnly = join(dir, 'a-only-2.json');
    writeFileSync(aOnly, JSON.stringify([{ key: 'a', type: 'number' }]));
    for (const [text, line] of [
      ['{"a":1,"b":2,"a":3}\n', 1],
      ['{"a":1,"b":2}\n{"b":3,"a":4,"a":5}\n', 2],
      ['{"a":1,"b":2}\n{"a":4,"\\u0061":5}\n', 2], // the same key, spelled with an escape
    ] as const) {
      writeFileSync(f, text);
      for (const extra of [[], ['--columns', aOnly]]) {
        const r = run(['--in', f, '--out', out, '--no-password', ...extra]);
        expect({ text, extra, code: r.code, stderr: r.stderr }).toEqual({
          text,
          extra,
          code: 2,
          stderr: `xlsx: line ${line}: field "a" appears more than once (JSON keeps only the last value)\n`,
        });
      }
    }
    expect(existsSync(out)).toBe(false);
  });

  it('shows a key from the input escaped: control and format characters never reach the terminal raw', () => {
    const f = join(dir, 'esc-keys.ndjson');
    const out = join(dir, 'esc-keys.xlsx');
    // ESC [2J clears a terminal, a newline would split the message, U+202E reverses what follows.
    writeFileSync(f, '{"a":1}\n' + JSON.stringify({ a: 1, '\u001b[2J\u001b[31mFAKE OK\n\u202e\u0085': 1 }) + '\n');
    const r = run(['--in', f, '--out', out, '--no-password']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'xlsx: line 2: field "\\u001b[2J\\u001b[31mFAKE OK\\n\\u202e\\u0085" is not a column (without --columns the columns are line 1\'s fields): pass --columns to choose the columns\n',
    );
    expect(existsSync(out)).toBe(false);
  });

  it('refuses a field given twice in a columns entry (JSON.parse would keep the last), and --out naming the columns file', () => {
    const twice = join(dir, 'columns-twice.json');
    writeFileSync(twice, '[{"key":"a","type":"date","type":"string"}]');
    const one = join(dir, 'one-row.ndjson');
    writeFileSync(one, '{"a":"x"}\n');
    const out = join(dir, 'columns-twice.xlsx');
    const r = run(['--in', one, '--out', out, '--no-password', '--columns', twice]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({
      code: 2,
      stderr: `xlsx: --columns ${twice}: 0.type: given more than once (JSON keeps only the last value)\n`,
    });
    const columnsFile = join(dir, 'columns-as-out.json');
    const text = JSON.stringify([{ key: 'a', type: 'string' }]);
    writeFileSync(columnsFile, text);
    const same = run(['--in', one, '--out', columnsFile, '--no-password', '--columns', columnsFile]);
    expect({ code: same.code, stderr: same.stderr }).toEqual({
      code: 2,
      stderr: `xlsx: --out ${columnsFile}: is the same file as --columns ${columnsFile} (it would overwrite the columns file)\n`,
    });
    expect(readFileSync(columnsFile, 'utf8')).toBe(text);
    expect(existsSync(out)).toBe(false);
  });

  it('refuses, before any work, an --out in a folder where no file can be created (exit 2, naming --out as typed)', () => {
    // /proc is a folder in which even root can create no file (ENOENT): the run used to render
    // every row and derive the keys first, then fail with exit 1 naming its temp file.
    const tmp = freshDir('tmp-no-create');
    const r = run(['--in', input, '--out', '/proc/export.xlsx'], { EXPORT_PASSWORD: 'Pw123456', TMPDIR: tmp });
    expect({ code: r.code, stderr: r.stderr }).toEqual({
      code: 2,
      stderr: 'xlsx: --out /proc/export.xlsx: no file can be created in its folder /proc (ENOENT)\n',
    });
    expect(cliTemps(tmp)).toEqual([]);
  });

  it('refuses an --out that exists and is not a regular file (a symlink, a named pipe, a socket) up front, and leaves it alone', async () => {
    const tmp = freshDir('tmp-not-regular');
    const folder = freshDir('not-regular');
    const target = join(folder, 'target.xlsx');
    writeFileSync(target, 'kept');
    const link = join(folder, 'link.xlsx');
    symlinkSync(target, link);
    const dangling = join(folder, 'dangling.xlsx');
    symlinkSync(join(folder, 'nowhere.xlsx'), dangling);
    const fifo = join(folder, 'pipe.xlsx');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const socketPath = join(folder, 'sock.xlsx');
    const server = createServer();
    await new Promise<void>((done) => server.listen(socketPath, done));
    // Not /dev/null, the device of the report: the same lstat check refuses it, and a regression
    // run as root would replace the machine's /dev/null with a workbook.
    try {
      for (const [out, kind] of [
        [link, 'a symbolic link'],
        [dangling, 'a symbolic link'],
        [fifo, 'a named pipe'],
        [socketPath, 'a socket'],
      ] as const) {
        const r = run(['--in', input, '--out', out, '--columns', columns, '--no-password'], { TMPDIR: tmp });
        expect({ out, code: r.code, stderr: r.stderr }).toEqual({
          out,
          code: 2,
          stderr: `xlsx: --out ${out}: exists and is ${kind}, not a regular file: --out must be a new file or a regular file to replace (a symbolic link is refused, not followed)\n`,
        });
        expect(cliTemps(tmp)).toEqual([]); // refused before any work
        expect(partials(out)).toEqual([]);
      }
    } finally {
      await new Promise<void>((done) => server.close(() => done()));
    }
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(lstatSync(dangling).isSymbolicLink()).toBe(true);
    expect(lstatSync(fifo).isFIFO()).toBe(true);
    expect(readFileSync(target, 'utf8')).toBe('kept');
  });

  it('an existing regular --out that is replaced keeps its permission bits', async () => {
    for (const mode of [0o600, 0o640, 0o644]) {
      const out = join(dir, `mode-${mode.toString(8)}.xlsx`);
      writeFileSync(out, 'old');
      chmodSync(out, mode);
      const r = run(['--in', input, '--out', out, '--columns', columns, '--no-password']);
      expect(r.code).toBe(0);
      expect({ mode: mode.toString(8), now: (statSync(out).mode & 0o777).toString(8) }).toEqual({ mode: mode.toString(8), now: mode.toString(8) });
      const [sheet] = await readWithExcelJs(readFileSync(out));
      expect(sheet!.rows[0]).toEqual(['ID', 'name', 'When', 'secs', 'ok']);
    }
  });

  it('refuses an --out ending in a slash before any work (resolve() would drop it; the temp file would not)', () => {
    const tmp = freshDir('tmp-trailing-slash');
    for (const out of [`${join(dir, 'no-such-folder')}/`, `${input}/`, `${join(dir, 'x.xlsx')}/..`]) {
      const r = run(['--in', input, '--out', out, '--columns', columns, '--no-password'], { TMPDIR: tmp });
      const last = out.endsWith('/') ? '/' : '..';
      expect({ out, code: r.code, stderr: r.stderr }).toEqual({
        out,
        code: 2,
        stderr: `xlsx: --out ${out}: ends in "${last}", which names a folder: --out must name a file, e.g. ${join(out, 'export.xlsx')}\n`,
      });
      expect(cliTemps(tmp)).toEqual([]);
    }
    expect(readFileSync(input, 'utf8')).toContain('김민준');
  });

  it('refuses, before any work, an --out name that leaves no room for the temp file suffix; a name that fits works', () => {
    const tmp = freshDir('tmp-long-name');
    const folder = freshDir('long-names');
    const tooLong = join(folder, `${'a'.repeat(235)}.xlsx`); // 240 bytes: fits alone, not with .<pid>.<random>.partial
    const r = run(['--in', input, '--out', tooLong, '--columns', columns, '--no-password'], { TMPDIR: tmp });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /^xlsx: --out \S+: the file name is 240 bytes; at most 2[3-4]\d here \(a file name may have 255 bytes, and the temp file written beside it adds \d+: \.<pid>\.<random>\.partial\)\n$/,
    );
    expect(cliTemps(tmp)).toEqual([]);
    // Counted in bytes (UTF-8), not characters: 78 Hangul syllables are 234 bytes.
    const multibyte = join(folder, `${'가'.repeat(78)}.xlsx`); // 239 bytes
    expect(run(['--in', input, '--out', multibyte, '--columns', columns, '--no-password'], { TMPDIR: tmp }).stderr).toMatch(/the file name is 239 bytes/);
    const fits = join(folder, `${'b'.repeat(225)}.xlsx`); // 230 bytes: the suffix is at most 25 (a 7-digit pid)
    const ok = run(['--in', input, '--out', fits, '--columns', columns, '--no-password'], { TMPDIR: tmp });
    expect(ok.code).toBe(0);
    expect(existsSync(fits)).toBe(true);
    expect(readdirSync(folder)).toEqual([basename(fits)]);
  });

  it('refuses an EXPORT_PASSWORD over 255 characters while parsing the command line, naming the variable, never the password', () => {
    const tmp = freshDir('tmp-long-password');
    const out = join(dir, 'long-password.xlsx');
    const password = `Pw${'9'.repeat(254)}`; // 256 characters
    const r = run(['--in', input, '--out', out, '--columns', columns], { EXPORT_PASSWORD: password, TMPDIR: tmp });
    expect(r).toEqual({
      code: 2,
      stdout: '',
      stderr: 'xlsx: EXPORT_PASSWORD: must be 1 to 255 characters (UTF-16 code units, the limit of Office encryption)\n',
    });
    expect(cliTemps(tmp)).toEqual([]);
    expect(existsSync(out)).toBe(false);
    // 255 is allowed, and a long one is ignored with --no-password.
    expect(run(['--in', input, '--out', out, '--columns', columns], { EXPORT_PASSWORD: password.slice(1), TMPDIR: tmp }).code).toBe(0);
    expect(run(['--in', input, '--out', out, '--columns', columns, '--no-password'], { EXPORT_PASSWORD: password, TMPDIR: tmp }).code).toBe(0);
  });

  it('refuses an option given twice, naming it, instead of taking the last', () => {
    const tmp = freshDir('tmp-repeated');
    const out = join(dir, 'repeated.xlsx');
    for (const [extra, option] of [
      [['--in', input], '--in'],
      [['--sheet', 'A', '--sheet', 'B'], '--sheet'],
      [['--out', join(dir, 'other.xlsx')], '--out'],
      [['--no-password'], '--no-password'],
    ] as const) {
      const r = run(['--in', input, '--out', out, '--columns', columns, '--no-password', ...extra], { TMPDIR: tmp });
      expect({ extra, code: r.code, first: r.stderr.split('\n')[0] }).toEqual({
        extra,
        code: 2,
        first: `xlsx: ${option}: given more than once (each option may be given once)`,
      });
      expect(r.stderr).toContain('usage: EXPORT_PASSWORD=');
    }
    expect(cliTemps(tmp)).toEqual([]);
    expect(existsSync(out)).toBe(false);
  });

  it('refuses an integer past 2^53 given as a JSON number for a text column (its digits are already lost); number columns take it', async () => {
    const f = join(dir, 'big-int.ndjson');
    const out = join(dir, 'big-int.xlsx');
    const idAndN = join(dir, 'id-and-n.json');
    writeFileSync(idAndN, JSON.stringify([{ key: 'id', type: 'string' }, { key: 'n', type: 'number' }]));
    for (const big of ['12345678901234567890', '9007199254740993', '-9007199254740993', '1e300']) {
      writeFileSync(f, `{"id":"a","n":1}\n{"id":${big},"n":2}\n`);
      const r = run(['--in', f, '--out', out, '--columns', idAndN, '--no-password']);
      expect({ big, code: r.code, stderr: r.stderr }).toEqual({
        big,
        code: 2,
        stderr: `xlsx: line 2: field "id" (string) must be text, a boolean or a number within ±9007199254740991 (quote a larger integer as a string: as a JSON number it loses digits), got an integer beyond that range\n`,
      });
      expect(existsSync(out)).toBe(false);
    }
    // Inferred columns: a text column (from line 1) is refused the same way.
    writeFileSync(f, '{"id":"a"}\n{"id":12345678901234567890}\n');
    expect(run(['--in', f, '--out', out, '--no-password']).stderr).toMatch(/^xlsx: line 2: field "id" \(string\) must be text, a boolean or a number within/);
    // The largest safe integer is text with every digit; quoted, any integer is; a number column takes a double.
    writeFileSync(f, '{"id":9007199254740991,"n":12345678901234567890}\n{"id":"12345678901234567890","n":-9007199254740993}\n');
    expect(run(['--in', f, '--out', out, '--columns', idAndN, '--no-password']).code).toBe(0);
    const [sheet] = await readWithExcelJs(readFileSync(out));
    expect(sheet!.rows).toEqual([['id', 'n'], ['9007199254740991', 12345678901234567000], ['12345678901234567890', -9007199254740992]]);
  });

  it('resolves relative --in, --out and --columns against INIT_CWD (the folder npm run was started in), else its own folder', async () => {
    const callers = freshDir('caller-folder');
    writeFileSync(join(callers, 'rows.ndjson'), '{"id":"r1","n":1}\n');
    writeFileSync(join(callers, 'cols.json'), JSON.stringify([{ key: 'id', type: 'string' }]));
    const r = run(['--in', 'rows.ndjson', '--out', 'out.xlsx', '--columns', 'cols.json', '--no-password'], { INIT_CWD: callers });
    expect(r.stderr).toMatch(/wrote 1 rows/);
    expect(r.code).toBe(0);
    expect(existsSync(join(ROOT, 'out.xlsx'))).toBe(false);
    const [sheet] = await readWithExcelJs(readFileSync(join(callers, 'out.xlsx')));
    expect(sheet!.rows).toEqual([['id'], ['r1']]);
    // Messages keep the operator's spelling.
    const missing = run(['--in', 'rows.ndjson', '--out', 'sub/out.xlsx', '--no-password'], { INIT_CWD: callers });
    expect(missing.stderr).toBe(`xlsx: --out sub/out.xlsx: the folder ${join(callers, 'sub')} does not exist\n`);
  });

  it('reads a columns file that starts with a byte order mark, and refuses an unknown field in an entry naming it', async () => {
    const bom = join(dir, 'bom-columns.json');
    writeFileSync(bom, `\uFEFF${JSON.stringify([{ key: 'id', header: 'ID', type: 'string' }])}`);
    const out = join(dir, 'bom-columns.xlsx');
    const r = run(['--in', input, '--out', out, '--columns', bom, '--no-password']);
    expect(r.code).toBe(0);
    const [sheet] = await readWithExcelJs(readFileSync(out));
    expect(sheet!.rows[0]).toEqual(['ID']);

    const typo = join(dir, 'typo-columns.json');
    writeFileSync(typo, JSON.stringify([{ key: 'id', type: 'string' }, { key: 'name', heading: 'Name', type: 'string' }]));
    const r2 = run(['--in', input, '--out', join(dir, 'typo.xlsx'), '--columns', typo, '--no-password']);
    expect({ code: r2.code, stderr: r2.stderr }).toEqual({
      code: 2,
      stderr: `xlsx: --columns ${typo}: 1.heading: is not a column field (a column has key, header, type and width)\n`,
    });
    expect(existsSync(join(dir, 'typo.xlsx'))).toBe(false);
  });

  it('without --columns, refuses a first-row key that is empty once sanitised, naming the line and its position', () => {
    const f = join(dir, 'blank-key.ndjson');
    const out = join(dir, 'blank-key.xlsx');
    for (const key of ['\\ud800', '\\u0001\\u0002', '\\uffff']) {
      writeFileSync(f, `\n{"a":1,"${key}":2}\n`);
      const r = run(['--in', f, '--out', out, '--no-password']);
      expect({ key, code: r.code, stderr: r.stderr }).toEqual({
        key,
        code: 2,
        stderr:
          'xlsx: line 2: field 2 (counting from 1) has a name that is empty once the characters a cell cannot hold (control characters, lone surrogates, U+FFFE, U+FFFF) are removed, which cannot be a column: pass --columns to choose the columns\n',
      });
      expect(existsSync(out)).toBe(false);
    }
  });
});

describe('the key scanner behind inferred columns (scanTopLevelMembers)', () => {
  const keysOf = (text: string): string[] => {
    JSON.parse(text); // the scanner is only given text JSON.parse accepted
    const keys: string[] = [];
    const count = scanTopLevelMembers(text, keys);
    expect(count).toBe(keys.length);
    return keys;
  };

  it('returns top-level keys in the order written, decoding escapes and skipping nested values', () => {
    expect(keysOf('{"region":"EU","2025":3,"2024":2,"10":1}')).toEqual(['region', '2025', '2024', '10']);
    expect(keysOf('{"a\\"b":1,"c\\\\":2,"\\\\\\"":3,"\\u0041\\n":4}')).toEqual(['a"b', 'c\\', '\\"', 'A\n']);
    expect(keysOf('{"x":{"y:":"}{","z":[1,{"q":2}],"w":"\\"},"},"v":["a:",{"b":"]"}],"":null}')).toEqual(['x', 'v', '']);
    expect(keysOf(' \t{ "a" : "b:c,d" , "e" :\r\n[ ] , "f":{} }  ')).toEqual(['a', 'e', 'f']);
    expect(keysOf('{"a":"ends in a backslash\\\\","b":"\\\\\\\\"}')).toEqual(['a', 'b']);
    expect(keysOf('{}')).toEqual([]);
    expect(keysOf('{"a":1,"a":2}')).toEqual(['a', 'a']);
  });

  it('throws on an unterminated string instead of scanning for ever (it is exported: any caller may pass one)', () => {
    for (const text of ['{"a', '{"a":"b', '{"a\\":"\\"}']) expect(() => scanTopLevelMembers(text, []), text).toThrow(/unterminated/);
  });
});

describe('output errors keep their cause (what the CLI prints on ENOSPC)', () => {
  // A failed write destroys the stream at once (`errored` is set) but emits 'error' a tick
  // later: a sink used in between must report the system error, not "no longer writable".
  const enospc = (): NodeJS.ErrnoException => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
  const acceptingStream = () =>
    new Writable({
      write(_chunk, _encoding, callback) {
        callback();
      },
    });

  it('createWritableSink rejects with the stream error', async () => {
    const out = acceptingStream();
    const sink = createWritableSink(out);
    await sink.write(Buffer.from('a'));
    const error = enospc();
    out.destroy(error);
    await expect(sink.write(Buffer.from('b'))).rejects.toBe(error);
    await expect(sink.end()).rejects.toBe(error);
  });

  it('the encrypting sink rejects with the stream error as the cause', async () => {
    const keys = await deriveEncryptionKeys('Pw123456', { spinCount: 1000 });
    const out = acceptingStream();
    out.on('error', () => undefined); // as the CLI does: the stream's owner listens, not only the sink
    const sink = createEncryptingSink({ ...keys, packageSize: 10_000, out, parallel: false });
    await sink.write(Buffer.alloc(1000));
    const error = enospc();
    out.destroy(error);
    const failure = await sink.write(Buffer.alloc(1000)).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(failure?.message).toBe('output stream failed');
    expect(failure?.cause).toBe(error);
  });
});

describe('npm run xlsx on worker threads (inputs of more than one batch of 10,000 rows)', () => {
  const ROWS = 25_000;
  /** Line `n`'s row, as text; rows cross both batch boundaries (after rows 10,000 and 20,000). */
  const rowText = (i: number): string =>
    JSON.stringify({ id: String(i).padStart(6, '0'), name: i % 7 === 0 ? `김${i}` : `row ${i}`, at: new Date(Date.UTC(2025, 6, 1) + i * 61_000).toISOString(), n: i / 4, ok: i % 2 === 0 });
  /**
   * ROWS rows with blank lines among them (ASCII spaces, a tab, U+3000 alone: trim() calls all
   * of those blank) and CRLF endings in the middle: line numbers and row numbers part ways.
   * `edit` replaces the text of given line numbers.
   */
  function writeInput(path: string, edit: (line: number, text: string) => string | Buffer = (_l, t) => t): void {
    const pieces: (string | Buffer)[] = [];
    let line = 0;
    const push = (text: string, eol = '\n') => {
      line++;
      const edited = edit(line, text);
      pieces.push(edited, eol);
    };
    for (let i = 1; i <= ROWS; i++) {
      if (i % 3_001 === 0) push('   ');
      if (i % 4_999 === 0) push('\t');
      if (i === 12_000) push('\u3000');
      push(rowText(i), i > 15_000 && i < 15_100 ? '\r\n' : '\n');
    }
    writeFileSync(path, Buffer.concat(pieces.map((p) => (typeof p === 'string' ? Buffer.from(p) : p))));
  }
  /** The line number of row i (1-based data row), as writeInput lays the lines out. */
  function lineOfRow(i: number): number {
    let blanks = 0;
    for (let k = 1; k <= i; k++) blanks += (k % 3_001 === 0 ? 1 : 0) + (k % 4_999 === 0 ? 1 : 0) + (k === 12_000 ? 1 : 0);
    return i + blanks;
  }

  it('writes the same file as the main thread alone, every row in order', async () => {
    const d = freshDir('workers-same');
    const input = join(d, 'rows.ndjson');
    writeInput(input);
    const onWorkers = join(d, 'workers.xlsx');
    const onMain = join(d, 'main.xlsx');
    const tmp = freshDir('workers-same-tmp');
    const r1 = run(['--in', input, '--out', onWorkers, '--no-password', '--workers', '2'], { TMPDIR: tmp });
    expect(r1.stderr).toMatch(/^wrote 25,000 rows/);
    expect(r1.code).toBe(0);
    const r2 = run(['--in', input, '--out', onMain, '--no-password', '--workers', '0']);
    expect(r2.code).toBe(0);
    // Same batches either way, so the same parts: every entry byte for byte but the creation time.
    const entries = (file: string) => {
      const { 'docProps/core.xml': _created, ...rest } = unzipSync(readFileSync(file));
      return rest;
    };
    const fromWorkers = entries(onWorkers);
    const fromMain = entries(onMain);
    expect(fromWorkers['xl/worksheets/sheet1.xml']!.length).toBeGreaterThan(1_000_000);
    expect(Object.keys(fromWorkers).sort()).toEqual(Object.keys(fromMain).sort());
    // Buffer#equals: a deep toEqual walks megabytes element by element.
    for (const [name, bytes] of Object.entries(fromWorkers)) expect({ name, same: bytes.equals(fromMain[name]!) }).toEqual({ name, same: true });
    expect(cliTemps(tmp)).toEqual([]);

    const [sheet] = await readWithExcelJs(readFileSync(onWorkers));
    expect(sheet!.rows).toHaveLength(ROWS + 1);
    expect(sheet!.rows[0]).toEqual(['id', 'name', 'at', 'n', 'ok']);
    for (const i of [1, 9_999, 10_000, 10_001, 12_000, 15_050, 20_000, 20_001, ROWS]) {
      const src = JSON.parse(rowText(i)) as { id: string; name: string; at: string; n: number; ok: boolean };
      expect(sheet!.rows[i]).toEqual([src.id, src.name, src.at, src.n, src.ok]);
    }
  });

  it('names the first bad line of the file, whichever thread found it first, and leaves nothing behind', () => {
    const d = freshDir('workers-bad');
    const input = join(d, 'rows.ndjson');
    const out = join(d, 'out.xlsx');
    const tmp = freshDir('workers-bad-tmp');
    const early = lineOfRow(12_345); // the second batch
    const late = lineOfRow(23_000); // the third batch, found as soon or sooner
    const cases: { name: string; edit: (line: number, text: string) => string | Buffer; expected: RegExp }[] = [
      {
        name: 'two bad lines in different batches',
        edit: (l, t) => (l === early ? t.slice(0, -1) : l === late ? t.replace('"ok":', '"ok":"x","zz":') : t),
        expected: new RegExp(`^xlsx: line ${early}: not valid JSON\\n$`),
      },
      {
        name: 'a late line refused while reading (invalid UTF-8 first), an earlier one rendered',
        edit: (l, t) => (l === early ? t.replace(/"n":[^,]+/, '"n":"many"') : l === late ? Buffer.from([0xc3, 0x28]) : t),
        expected: new RegExp(`^xlsx: line ${early}: field "n" \\(number\\) must be a number, got string\\n$`),
      },
      {
        name: 'only the bad UTF-8 in a worker batch',
        edit: (l, t) => (l === late ? Buffer.concat([Buffer.from(t.slice(0, 10)), Buffer.from([0xff]), Buffer.from(t.slice(10))]) : t),
        expected: new RegExp(`^xlsx: line ${late}: not valid UTF-8\\n$`),
      },
    ];
    const columnsFile = join(d, 'columns.json');
    writeFileSync(
      columnsFile,
      JSON.stringify([
        { key: 'id', type: 'string' },
        { key: 'n', type: 'number' },
      ]),
    );
    for (const c of cases) {
      writeInput(input, c.edit);
      const r = run(['--in', input, '--out', out, '--columns', columnsFile, '--workers', '2'], { EXPORT_PASSWORD: 'Pw123456', TMPDIR: tmp });
      expect({ name: c.name, code: r.code, stderr: r.stderr }).toEqual({ name: c.name, code: 2, stderr: expect.stringMatching(c.expected) });
      expect(existsSync(out)).toBe(false);
      expect(partials(out)).toEqual([]);
      expect(cliTemps(tmp)).toEqual([]);
    }
  });

  it('starts no worker for an input of exactly one full batch: only a row after it does', async () => {
    const fifo = makeFifo('one-batch.fifo');
    const d = freshDir('one-batch');
    const tmp = freshDir('one-batch-tmp');
    const { child, done } = start(['--in', fifo, '--out', join(d, 'o.xlsx'), '--no-password', '--workers', '2'], { TMPDIR: tmp });
    const fd = await openPipeWriter(fifo, child);
    const bundled = () => cliTemps(tmp).some((t) => existsSync(join(tmp, t, 'xlsx-worker.mjs')));
    // The pipe was opened non-blocking: a write may take part of the text, or none (EAGAIN) while the pipe is full.
    const writeAll = async (text: string) => {
      const bytes = Buffer.from(text);
      for (let at = 0; at < bytes.length; ) {
        try {
          at += writeSync(fd, bytes, at);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
          await sleep(5);
        }
      }
    };
    let rows = '';
    for (let i = 1; i <= 10_000; i++) rows += `{"a":${i}}\n`;
    await writeAll(rows);
    // The batch is full, but no more input has come: nothing to share with a worker yet.
    await sleep(1_500);
    expect(bundled()).toBe(false);
    await writeAll('{"a":10001}\n');
    for (const deadline = Date.now() + 30_000; !bundled() && Date.now() < deadline; ) await sleep(50);
    expect(bundled()).toBe(true);
    closeSync(fd);
    const r = await done;
    expect(r.stderr).toMatch(/^wrote 10,001 rows/);
    expect(r.code).toBe(0);
    expect(cliTemps(tmp)).toEqual([]);
  });

  it('checks a line past the row limit as any line: not JSON is told first, and an earlier bad line before either', () => {
    const d = freshDir('row-limit');
    const input = join(d, 'rows.ndjson');
    const out = join(d, 'o.xlsx');
    const body = (edit?: (i: number) => string | undefined) => {
      const lines: string[] = [];
      for (let i = 1; i <= 1_000_000; i++) lines.push(edit?.(i) ?? '{"a":1}');
      return `${lines.join('\n')}\n`;
    };
    const cases: [string, string, RegExp][] = [
      ['one row too many', `${body()}{"a":2}\n`, /^xlsx: line 1000001: more than 1,000,000 data rows\n$/],
      ['one row too many, not JSON', `${body()}{"a":2\n`, /^xlsx: line 1000001: not valid JSON\n$/],
      ['a bad row before the limit', `${body((i) => (i === 999_990 ? '{"a":"x"}' : undefined))}{"a":2}\n`, /^xlsx: line 999990: field "a" \(number\)/],
    ];
    for (const [name, text, expected] of cases) {
      writeFileSync(input, text);
      const r = run(['--in', input, '--out', out, '--no-password']);
      expect({ name, code: r.code, stderr: r.stderr }).toEqual({ name, code: 2, stderr: expect.stringMatching(expected) });
    }
  });

  it('a SIGTERM while the worker is being bundled leaves no temp folder (esbuild, a process of its own, writes nothing)', async () => {
    const d = freshDir('bundle-signal');
    const input = join(d, 'rows.ndjson');
    // Rows of ~1 KB: the first batch (4 MiB) fills in the fifth chunk read, and the bundle starts with the sixth.
    const pad = 'x'.repeat(1_000);
    let text = '';
    for (let i = 0; i < 30_000; i++) text += `{"a":${i},"b":"${pad}"}\n`;
    writeFileSync(input, text);
    for (const delayMs of [50, 100, 150, 200]) {
      const tmp = freshDir(`bundle-signal-${delayMs}`);
      // The command's own process, not tsx's wrapper: the wrapper relays a signal and kills the
      // command outright when it has not acknowledged it within ~60 ms, which a busy machine
      // can miss; this test is about the command's handling of the signal.
      const child = spawn(process.execPath, ['--import', 'tsx', 'bin/xlsx.ts', '--in', input, '--out', join(d, 'o.xlsx'), '--no-password', '--workers', '2'], {
        cwd: ROOT,
        env: { ...process.env, EXPORT_PASSWORD: undefined, INIT_CWD: undefined, TMPDIR: tmp },
      });
      const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => child.once('close', (code, signal) => res({ code, signal })));
      // tsx's own child process is an esbuild too: wait for the run's temp folder instead.
      for (const deadline = Date.now() + 30_000; cliTemps(tmp).length === 0 && Date.now() < deadline; ) await sleep(2);
      await sleep(delayMs);
      child.kill('SIGTERM');
      const r = await done;
      // Whatever the build was doing, give it time to have written a file had it been going to.
      await sleep(1_000);
      expect({ delayMs, leftovers: cliTemps(tmp) }).toEqual({ delayMs, leftovers: [] });
      expect(r.code === 143 || r.signal === 'SIGTERM' || r.code === 0).toBe(true);
    }
  });

  it('refuses a --workers that is not a whole number from 0 to 64, naming the option', () => {
    const d = freshDir('workers-option');
    const input = join(d, 'rows.ndjson');
    writeFileSync(input, '{"a":1}\n');
    for (const value of ['x', '-1', '65', '1.5', '']) {
      const r = run(['--in', input, '--out', join(d, 'o.xlsx'), '--no-password', `--workers=${value}`]);
      expect({ value, code: r.code }).toEqual({ value, code: 2 });
      expect(r.stderr).toMatch(/^xlsx: --workers: must be a whole number from 0 to 64/);
    }
    expect(run(['--in', input, '--out', join(d, 'o.xlsx'), '--no-password', '--workers', '64']).code).toBe(0);
  });
});

describe('decodeLineText (bin/cli-input.ts)', () => {
  it('tells a line too long for a string from one that is not UTF-8, naming the line', () => {
    const tooLong = { decode: () => { throw Object.assign(new Error('Cannot create a string longer than 0x1fffffe8 characters'), { code: 'ERR_STRING_TOO_LONG' }); } };
    expect(() => decodeLineText(tooLong as never, new Uint8Array(3), 7)).toThrow(
      new InputError('line 7: 3 bytes, longer than the 536,870,888 characters a line may have'),
    );
    const strict = new TextDecoder('utf-8', { fatal: true });
    expect(() => decodeLineText(strict, new Uint8Array([0x61, 0xff]), 8)).toThrow(new InputError('line 8: not valid UTF-8'));
    expect(decodeLineText(strict, new TextEncoder().encode('{"a":"김"}'), 9)).toBe('{"a":"김"}');
    // Anything else is not the input's fault: it is not dressed up as a refusal.
    const broken = { decode: () => { throw new RangeError('something else'); } };
    expect(() => decodeLineText(broken as never, new Uint8Array(1), 10)).toThrow(RangeError);
  });
});

describe('BatchBuilder (bin/xlsx-rows.ts)', () => {
  it('keeps line numbers past 2^31 exact (two billion blank lines come before the row)', () => {
    const builder = new BatchBuilder(16);
    const line = 2 ** 31 + 5;
    const bytes = Buffer.from('xx{"a":1}yy');
    builder.add(line, 2, bytes, 2, 9);
    builder.add(line + 1, 3, bytes, 2, 9);
    const batch = builder.take();
    expect(Array.from(batch.lines)).toEqual([line, line + 1]);
    expect(Array.from(batch.ends)).toEqual([7, 14]);
    expect(Buffer.from(batch.bytes).toString()).toBe('{"a":1}{"a":1}');
    expect(batch.startRow).toBe(2);
    expect(builder.rowCount).toBe(0);
  });
});

describe('createBatchRenderer (bin/xlsx-rows.ts)', () => {
  it('renderYielding gives the event loop turns while it renders (so a signal is acted on), and renders what render does', async () => {
    const context = { columns: [{ key: 'a', header: 'a', type: 'number' as const }], strict: true, columnsLine: 1, timeZone: 'UTC' };
    const builder = new BatchBuilder();
    for (let i = 0; i < 1_000; i++) {
      const bytes = Buffer.from(`{"a":${i}}`);
      builder.add(i + 1, i + 2, bytes, 0, bytes.length);
    }
    const batch = builder.take();
    const renderer = createBatchRenderer(context);
    let turns = 0;
    let ticking = true;
    const tick = () => {
      turns++;
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    const yielded = await renderer.renderYielding(batch);
    ticking = false;
    // 1,000 rows in steps of 256: the loop ran between the steps.
    expect(turns).toBeGreaterThanOrEqual(3);
    const whole = renderer.render(batch);
    expect(yielded.data.equals(whole.data)).toBe(true);
    expect({ ...yielded, data: undefined }).toEqual({ ...whole, data: undefined });
    expect(whole.rowCount).toBe(1_000);
  });
});
