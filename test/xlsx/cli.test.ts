import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  constants,
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { XlsxPopulate, decryptWithXlsxPopulate, readWithExcelJs } from './engine-test-support';

const ROOT = resolve(__dirname, '../..');
const TSX = join(ROOT, 'node_modules/.bin/tsx');
const dir = mkdtempSync(join(tmpdir(), 'xlsx-cli-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(args: string[], env: Record<string, string | undefined> = {}) {
  const result = spawnSync(TSX, ['bin/xlsx.ts', ...args], {
    cwd: ROOT,
    env: { ...process.env, EXPORT_PASSWORD: undefined, ...env },
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

/** Starts the CLI without waiting, for tests that act while it runs. */
function start(args: string[], env: Record<string, string | undefined> = {}) {
  const child = spawn(TSX, ['bin/xlsx.ts', ...args], { cwd: ROOT, env: { ...process.env, EXPORT_PASSWORD: undefined, ...env } });
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
    expect(existsSync(`${out}.partial`)).toBe(false);
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

  it('an output that cannot be opened fails with exit 1, a message and no temp files left', () => {
    const tmp = freshDir('tmp-open-fails');
    const out = join(dir, 'blocked.xlsx');
    mkdirSync(`${out}.partial`); // a folder where the partial file would go: opening it fails
    writeFileSync(join(`${out}.partial`, 'keep'), 'not ours');
    const r = run(['--in', input, '--out', out, '--columns', columns], { EXPORT_PASSWORD: 'Pw123456', TMPDIR: tmp });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^xlsx: failed: EISDIR.*blocked\.xlsx\.partial/);
    expect(r.stderr).not.toMatch(/^\s+at /m); // no stack trace
    expect(cliTemps(tmp)).toEqual([]);
    expect(existsSync(out)).toBe(false);
    expect(readFileSync(join(`${out}.partial`, 'keep'), 'utf8')).toBe('not ours');
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
    // <out>.partial is written first: it must not be the input either.
    const p = join(dir, 'p.xlsx');
    const asPartial = `${p}.partial`;
    writeFileSync(asPartial, content);
    const r2 = run(['--in', asPartial, '--out', p, '--no-password'], { TMPDIR: tmp });
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/p\.xlsx\.partial, written first, is the same file as --in/);
    expect(readFileSync(asPartial, 'utf8')).toBe(content);
    expect(existsSync(p)).toBe(false);
    expect(cliTemps(tmp)).toEqual([]);
  });

  it('refuses an existing folder as --out up front and never leaves a .partial', () => {
    const out = freshDir('out-is-a-folder');
    const r = run(['--in', input, '--out', out, '--columns', columns, '--no-password']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`xlsx: --out ${out}: is a folder; give a file name, e.g. ${join(out, 'export.xlsx')}\n`);
    expect(existsSync(`${out}.partial`)).toBe(false);
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
    expect(existsSync(`${out}.partial`)).toBe(false);
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
    expect(existsSync(`${out}.partial`)).toBe(false);
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
});
