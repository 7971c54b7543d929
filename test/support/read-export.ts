import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// @ts-expect-error xlsx-populate ships no types for its Encryptor
import Encryptor from 'xlsx-populate/lib/Encryptor.js';

export type Sheets = Record<string, unknown[][]>;

// Debian's interpreter, not the python3 first on PATH (a pyenv or venv one lacks the apt packages).
const PYTHON = '/usr/bin/python3';
/** The apt packages the suite's Python readers need (.ci/run installs the same ones). */
export const PYTHON_READERS_INSTALL = 'apt-get install -y python3-openpyxl python3-msoffcrypto-tool';

/**
 * Why `python` cannot read an exported file with openpyxl, or undefined when it can. The pipeline
 * and end-to-end tests need it to check cells (unlike the dedicated interop tests, they do not
 * skip without it): a missing package fails them with this message rather than a Python
 * traceback from deep inside a test.
 */
export function openpyxlProblem(python = PYTHON): string | undefined {
  const probe = spawnSync(python, ['-c', 'import openpyxl'], { encoding: 'utf8' });
  if (probe.status === 0) return undefined;
  const cause = probe.error ? `${python} cannot be run (${probe.error.message})` : `${python} cannot import openpyxl`;
  return `reading exported files needs Debian's openpyxl: ${cause}; install the test suite's Python packages with: ${PYTHON_READERS_INSTALL}`;
}

let checked: { problem: string | undefined } | undefined;

/**
 * Decrypts an exported file with xlsx-populate's decryptor (independent of our encryptor) and
 * reads every sheet's cells with Debian's openpyxl. The pipeline's parts leave out the optional
 * row/cell `r` attributes (a chunk doesn't know its absolute row), which xlsx-populate's and
 * ExcelJS's sheet parsers require; openpyxl, like LibreOffice, reads them as the spec allows.
 * Dates come back as naive ISO strings in the workbook's (the channel's) local time.
 */
export async function decryptAndRead(bytes: Buffer, password: string): Promise<Sheets> {
  // Once per test file: the answer does not change while it runs.
  checked ??= { problem: openpyxlProblem() };
  if (checked.problem) throw new Error(checked.problem);
  const decrypted = (await new Encryptor().decryptAsync(bytes, password)) as Buffer;
  const dir = mkdtempSync(join(tmpdir(), 'export-read-'));
  try {
    const file = join(dir, 'file.xlsx');
    writeFileSync(file, decrypted);
    const script = [
      'import json, sys, datetime, openpyxl',
      'wb = openpyxl.load_workbook(sys.argv[1], read_only=True)',
      'conv = lambda v: v.isoformat() if isinstance(v, (datetime.datetime, datetime.date)) else v',
      'print(json.dumps({ws.title: [[conv(c) for c in row] for row in ws.iter_rows(values_only=True)] for ws in wb.worksheets}))',
    ].join('\n');
    const json = execFileSync(PYTHON, ['-c', script, file], { maxBuffer: 512 * 1024 * 1024 }).toString('utf8');
    return JSON.parse(json) as Sheets;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
