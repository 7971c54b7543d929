import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
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

  it('rejects a bad columns file naming the entry', () => {
    const badColumns = join(dir, 'bad-columns.json');
    writeFileSync(badColumns, JSON.stringify([{ key: 'a', type: 'text' }]));
    const r = run(['--in', input, '--out', join(dir, 'y.xlsx'), '--columns', badColumns], { EXPORT_PASSWORD: 'Pw123456' });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/0\.type/);
  });
});
