import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { deriveEncryptionKeys } from '../../shared/xlsx/crypto';
import { writeEncryptedWorkbook } from '../../shared/xlsx/encrypted-workbook';
import { renderPart } from '../../shared/xlsx/part';
import type { ColumnSpec, Part, Row } from '../../shared/xlsx/types';
import { memorySink } from './engine-test-support';

/*
 * The pipeline's chunks render parts WITHOUT row/cell `r` attributes (a chunk does not know its
 * absolute row number; the attributes are optional in ECMA-376). xlsx-populate and ExcelJS cannot
 * parse such sheets, openpyxl can; this test shows that a spreadsheet application does too:
 * Debian's msoffcrypto-tool decrypts our agile-encrypted file and LibreOffice Calc (headless)
 * converts every sheet to CSV, which must hold exactly the cells we wrote, in place.
 */
const PYTHON = '/usr/bin/python3';
const INSTALL = 'apt-get install libreoffice-calc-nogui python3-msoffcrypto-tool';
const hasSoffice = spawnSync('soffice', ['--version'], { encoding: 'utf8' }).status === 0;
const hasMsoffcrypto = spawnSync(PYTHON, ['-c', 'import msoffcrypto'], { encoding: 'utf8' }).status === 0;
const available = hasSoffice && hasMsoffcrypto;
if (!available && !process.env.CI) {
  console.warn(`interop-libreoffice: SKIPPED: LibreOffice or msoffcrypto-tool missing; install them with: ${INSTALL}`);
}

const dir = mkdtempSync(join(tmpdir(), 'xlsx-lo-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const TZ = 'Asia/Seoul';
const COLUMNS: ColumnSpec[] = [
  { key: 'id', header: 'id', type: 'string' },
  { key: 'name', header: 'name', type: 'string' },
  { key: 'n', header: 'n', type: 'number' },
  { key: 'ok', header: 'ok', type: 'boolean' },
  { key: 'at', header: 'at', type: 'date' },
  { key: 'secs', header: 'secs', type: 'duration' },
];

// Gaps are the point: without `r`, an empty cell before a value must still keep later cells in
// their own column, and parts rendered apart must continue one another's rows.
function makeRows(count: number, offset: number): Row[] {
  return Array.from({ length: count }, (_, i) => {
    const k = i + offset;
    return {
      id: k % 7 === 3 ? null : `00${k}`,
      name: k % 5 === 0 ? '' : `김민준, "quote" <${k}> & 🙂`,
      n: k % 4 === 1 ? undefined : k * 1.5,
      ok: k % 3 === 0,
      at: k % 6 === 2 ? null : new Date(Date.UTC(2025, 6, 1 + (k % 28), k % 24, 30, 0)),
      secs: k % 2 === 0 ? k * 60 : null,
    };
  });
}

function expectedCsvRow(row: Row): string[] {
  const text = (v: unknown): string => (v === null || v === undefined ? '' : String(v));
  const at = row.at instanceof Date ? row.at : null;
  // Asia/Seoul has no DST: UTC+9, written in the engine's yyyy-mm-dd hh:mm:ss format.
  const local = at ? new Date(at.getTime() + 9 * 3600_000).toISOString().replace('T', ' ').slice(0, 19) : '';
  return [
    text(row.id),
    text(row.name),
    row.n === undefined || row.n === null ? '' : String(row.n),
    row.ok === true ? 'TRUE' : 'FALSE',
    local,
    text(row.secs),
  ];
}

/** Minimal RFC 4180 reader: LibreOffice quotes fields with commas and doubles inner quotes. */
function parseCsv(textIn: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < textIn.length; i++) {
    const ch = textIn[i]!;
    if (quoted) {
      if (ch === '"' && textIn[i + 1] === '"') { field += '"'; i++; }
      else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') { row.push(field); field = ''; }
    else if (ch === '\n') { row.push(field); rows.push(row); row = []; field = ''; }
    else if (ch !== '\r') field += ch;
  }
  if (field !== '' || row.length > 0) { row.push(field); rows.push(row); }
  return rows;
}

/** The displayed text of every cell of every table in LibreOffice's HTML rendering. */
function htmlTables(html: string): string[][][] {
  const decode = (t: string) =>
    t
      .replace(/<[^>]*>/g, '')
      .replace(/&#(\d+);/g, (_m, d: string) => String.fromCodePoint(Number(d)))
      .replace(/&quot;/g, '"')
      .replace(/&lt;/g, '<')
      .replace(/&gt;/g, '>')
      .replace(/&nbsp;/g, ' ')
      .replace(/&amp;/g, '&')
      .trim();
  return html
    .split(/<table\b/i)
    .slice(1)
    .map((table) =>
      table
        .split(/<tr\b/i)
        .slice(1)
        .map((tr) => tr.split(/<td\b[^>]*>/i).slice(1).map((td) => decode(td.replace(/<\/td>[\s\S]*$/i, '')))),
    );
}

describe.skipIf(!available && !process.env.CI)('interop: LibreOffice reads the pipeline-shaped (no `r`) encrypted workbook', () => {
  // A cold LibreOffice start with a fresh profile, after a 100,000-spin key derivation, can take
  // most of the default 120 s on a loaded 2-core CI machine: this test gets its own ceiling.
  it('decrypts with msoffcrypto-tool and every cell lands in its row and column in LibreOffice', async () => {
    expect(available, `LibreOffice and msoffcrypto-tool must be installed in CI: ${INSTALL}`).toBe(true);
    const rowsA = makeRows(40, 0);
    const rowsB = makeRows(25, 40);
    const rowsUsers = makeRows(10, 100);
    // Parts rendered separately, as chunk Lambdas do: no startRow, so no `r` attributes.
    const parts: Part[][] = [
      [renderPart(COLUMNS, rowsA, { timeZone: TZ }), renderPart(COLUMNS, rowsB, { timeZone: TZ })],
      [renderPart(COLUMNS, rowsUsers, { timeZone: TZ })],
    ];
    const password = 'LibreOffice1';
    const { params, packageKey } = await deriveEncryptionKeys(password);
    const sink = memorySink();
    await writeEncryptedWorkbook({
      sheets: [
        { name: 'UserChatCase data', columns: COLUMNS, parts: parts[0]!.map(({ data: _d, ...meta }) => meta) },
        { name: 'User data', columns: COLUMNS, parts: parts[1]!.map(({ data: _d, ...meta }) => meta) },
      ],
      readPart: async (s, p) => parts[s]![p]!.data,
      params,
      packageKey,
      out: sink.out,
    });
    const encrypted = join(dir, 'export.xlsx');
    const plain = join(dir, 'plain.xlsx');
    writeFileSync(encrypted, sink.bytes());
    const dec = spawnSync(PYTHON, ['-m', 'msoffcrypto', '-p', password, encrypted, plain], { encoding: 'utf8' });
    expect(dec.status, dec.stderr).toBe(0);

    // 44 = comma, 34 = double quote, 76 = UTF-8, 1 = from line 1; -1 (last token) = every sheet
    // to its own file (LibreOffice >= 7.2). A private profile dir keeps parallel runs apart.
    const filter = 'csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,true,false,false,-1';
    const conv = spawnSync(
      'soffice',
      [`-env:UserInstallation=file://${join(dir, 'profile')}`, '--headless', '--norestore', '--convert-to', filter, '--outdir', dir, plain],
      { encoding: 'utf8', timeout: 240_000 },
    );
    expect(conv.status, `${conv.stdout}\n${conv.stderr}`).toBe(0);
    const csvFiles = readdirSync(dir).filter((f) => f.endsWith('.csv')).sort();
    expect(csvFiles).toEqual(['plain-User data.csv', 'plain-UserChatCase data.csv']);

    const header = COLUMNS.map((c) => c.header);
    const cases = parseCsv(readFileSync(join(dir, 'plain-UserChatCase data.csv'), 'utf8'));
    expect(cases[0]).toEqual(header);
    expect(cases.slice(1)).toEqual([...rowsA, ...rowsB].map(expectedCsvRow));
    const users = parseCsv(readFileSync(join(dir, 'plain-User data.csv'), 'utf8'));
    expect(users[0]).toEqual(header);
    expect(users.slice(1)).toEqual(rowsUsers.map(expectedCsvRow));

    // What LibreOffice shows (its HTML rendering writes each cell as displayed, as its PDF and
    // screen do): booleans read TRUE/FALSE in every row (without the boolean style, every boolean
    // cell after the first showed 1 or 0), dates in the date-time format.
    const html = spawnSync(
      'soffice',
      [`-env:UserInstallation=file://${join(dir, 'profile')}`, '--headless', '--norestore', '--convert-to', 'html', '--outdir', dir, plain],
      { encoding: 'utf8', timeout: 240_000 },
    );
    expect(html.status, `${html.stdout}\n${html.stderr}`).toBe(0);
    const shown = htmlTables(readFileSync(join(dir, 'plain.html'), 'utf8'));
    const DISPLAYED = ['ok', 'at'].map((key) => COLUMNS.findIndex((c) => c.key === key));
    const pick = (row: readonly string[]) => DISPLAYED.map((i) => row[i] ?? '');
    expect(shown.map((table) => table.slice(1).map(pick))).toEqual(
      [[...rowsA, ...rowsB], rowsUsers].map((rows) => rows.map((row) => pick(expectedCsvRow(row)))),
    );
  }, 300_000);
});
