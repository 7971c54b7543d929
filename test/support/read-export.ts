import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// @ts-expect-error xlsx-populate ships no types for its Encryptor
import Encryptor from 'xlsx-populate/lib/Encryptor.js';

export type Sheets = Record<string, unknown[][]>;

/**
 * Decrypts an exported file with xlsx-populate's decryptor (independent of our encryptor) and
 * reads every sheet's cells with Debian's openpyxl. The pipeline's parts leave out the optional
 * row/cell `r` attributes (a chunk doesn't know its absolute row), which xlsx-populate's and
 * ExcelJS's sheet parsers require; openpyxl, like LibreOffice, reads them as the spec allows.
 * Dates come back as naive ISO strings in the workbook's (the channel's) local time.
 */
export async function decryptAndRead(bytes: Buffer, password: string): Promise<Sheets> {
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
    const json = execFileSync('/usr/bin/python3', ['-c', script, file], { maxBuffer: 512 * 1024 * 1024 }).toString('utf8');
    return JSON.parse(json) as Sheets;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
