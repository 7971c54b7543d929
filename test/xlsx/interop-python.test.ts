import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { deriveEncryptionKeys } from '../../shared/xlsx/crypto';
import { writeEncryptedWorkbook } from '../../shared/xlsx/encrypted-workbook';
import { renderPart } from '../../shared/xlsx/part';
import type { ColumnSpec, Part, Row } from '../../shared/xlsx/types';
import { writeWorkbook } from '../../shared/xlsx/workbook';
import { HOSTILE_TEXTS, expectedText, memorySink } from './engine-test-support';

// Debian's packages, not the machine's default python3 (which lacks them).
const PYTHON = '/usr/bin/python3';
const INSTALL = 'apt-get install python3-msoffcrypto-tool python3-openpyxl';
const probe = spawnSync(PYTHON, ['-c', 'import msoffcrypto, openpyxl'], { encoding: 'utf8' });
const available = probe.status === 0;
if (!available && !process.env.CI) {
  console.warn(`interop-python: SKIPPED: msoffcrypto-tool/openpyxl not found for ${PYTHON}; install them with: ${INSTALL}`);
}

const READ_SCRIPT = `
import io, json, sys, datetime
import msoffcrypto, openpyxl
path, password = sys.argv[1], sys.argv[2]
with open(path, 'rb') as f:
    if password:
        office = msoffcrypto.OfficeFile(f)
        office.load_key(password=password)
        plain = io.BytesIO()
        office.decrypt(plain)
    else:
        plain = io.BytesIO(f.read())
wb = openpyxl.load_workbook(plain)
def cell(v):
    if isinstance(v, datetime.datetime):
        return {'date': v.isoformat()}
    return v
print(json.dumps([{
    'name': ws.title,
    'freeze': ws.freeze_panes,
    'filter': ws.auto_filter.ref,
    'bold': bool(ws['A1'].font.b),
    'rows': [[cell(v) for v in row] for row in ws.iter_rows(values_only=True)],
} for ws in wb.worksheets]))
`;

const dir = mkdtempSync(join(tmpdir(), 'xlsx-interop-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const TZ = 'Asia/Seoul';
const COLUMNS: ColumnSpec[] = [
  { key: 'id', header: 'id', type: 'string' },
  { key: 'text', header: 'text', type: 'string' },
  { key: 'n', header: 'n', type: 'number' },
  { key: 'ok', header: 'ok', type: 'boolean' },
  { key: 'at', header: 'at', type: 'date' },
  { key: 'secs', header: 'secs', type: 'duration' },
];
const ROWS: Row[] = HOSTILE_TEXTS.map((text, i) => ({
  id: String(i).padStart(5, '0'),
  text,
  n: i * 2.5 - 3,
  ok: i % 2 === 1,
  at: Date.UTC(2025, 6, 1, 0, 0, 0) + i * 3_600_500,
  secs: i * 60,
}));

function readBack(path: string, password: string): { name: string; freeze: string; filter: string; bold: boolean; rows: unknown[][] }[] {
  const r = spawnSync(PYTHON, ['-c', READ_SCRIPT, path, password], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`python failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

function expectRows(rows: unknown[][]): void {
  expect(rows[0]).toEqual(COLUMNS.map((c) => c.header));
  ROWS.forEach((row, i) => {
    const got = rows[i + 1]!;
    expect(got[0]).toBe(row.id);
    expect(got[1]).toBe(expectedText(String(row.text)));
    expect(got[2]).toBe(row.n);
    expect(got[3]).toBe(row.ok);
    // openpyxl gives naive local date-times: Seoul is UTC+9 all year
    const wall = Date.parse(`${(got[4] as { date: string }).date}Z`);
    expect(Math.abs(wall - ((row.at as number) + 9 * 3_600_000))).toBeLessThanOrEqual(1);
    expect(got[5]).toBe(row.secs);
  });
}

describe('interop with Debian msoffcrypto-tool and openpyxl', () => {
  it('has the Python tools (required in CI)', () => {
    if (process.env.CI) expect(available, `install them: ${INSTALL}`).toBe(true);
  });

  it.skipIf(!available)('msoffcrypto decrypts the encrypted file and openpyxl reads cells, names, frozen pane, filter', async () => {
    const parts: Part[] = [
      renderPart(COLUMNS, ROWS.slice(0, 7), { timeZone: TZ, startRow: 2 }),
      renderPart(COLUMNS, ROWS.slice(7), { timeZone: TZ, startRow: 9 }),
    ];
    const other = renderPart([{ key: 'k', header: '두번째', type: 'string' }], [{ k: 'v' }], { timeZone: TZ, startRow: 2 });
    const meta = (p: Part) => ({ rawLength: p.rawLength, compressedLength: p.compressedLength, crc32: p.crc32, rowCount: p.rowCount, firstRow: p.firstRow });
    const { params, packageKey } = await deriveEncryptionKeys('Passw0rd');
    const { out, bytes } = memorySink();
    await writeEncryptedWorkbook({
      sheets: [
        { name: 'Cases', columns: COLUMNS, parts: parts.map(meta) },
        { name: '사용자 데이터', columns: [{ key: 'k', header: '두번째', type: 'string' }], parts: [meta(other)] },
      ],
      readPart: async (s, p) => (s === 0 ? parts[p]!.data : other.data),
      params,
      packageKey,
      out,
    });
    const path = join(dir, 'enc.xlsx');
    writeFileSync(path, bytes());
    const book = readBack(path, 'Passw0rd');
    expect(book.map((s) => s.name)).toEqual(['Cases', '사용자 데이터']);
    expect(book[0]!.freeze).toBe('A2');
    expect(book[0]!.filter).toBe(`A1:F${ROWS.length + 1}`);
    expect(book[0]!.bold).toBe(true);
    expectRows(book[0]!.rows);
    expect(book[1]!.rows).toEqual([['두번째'], ['v']]);
    // and the wrong password is refused
    const wrong = spawnSync(PYTHON, ['-c', READ_SCRIPT, path, 'nope'], { encoding: 'utf8' });
    expect(wrong.status).not.toBe(0);
  });

  it.skipIf(!available)('openpyxl reads parts rendered without r attributes (position-independent parts)', async () => {
    const parts = [renderPart(COLUMNS, ROWS.slice(0, 5), { timeZone: TZ }), renderPart(COLUMNS, ROWS.slice(5), { timeZone: TZ })];
    const { out, bytes } = memorySink();
    await writeWorkbook({
      sheets: [{ name: 'NoR', columns: COLUMNS, parts: parts.map(({ data: _d, ...m }) => m) }],
      readPart: async (_s, p) => parts[p]!.data,
      out,
    });
    const path = join(dir, 'nor.xlsx');
    writeFileSync(path, bytes());
    const [sheet] = readBack(path, '');
    expectRows(sheet!.rows);
  });
});
