import type { Writable } from 'node:stream';
import zlib from 'node:zlib';
import { createWritableSink, type ByteSink } from './byte-sink';
import { crc32, crc32Combine } from './crc32';
import { PartIntegrityError, WorkbookPlanError } from './errors';
import {
  renderAppProperties,
  renderContentTypes,
  renderCoreProperties,
  renderRootRels,
  renderSheetEpilogue,
  renderSheetPrologue,
  renderStyles,
  renderWorkbook,
  renderWorkbookRels,
} from './package-xml';
import { deflateSlice } from './part';
import { sanitizeText } from './sanitize-text';
import {
  MAX_SHEET_DATA_ROWS,
  sheetPlanSchema,
  type ReadPart,
  type SheetPlan,
  type WorkbookProperties,
} from './types';
import { encodeCentralDirectory, encodeLocalHeader, toDosDateTime, type ZipEntryPlaced } from './zip';

export type WorkbookPlanOptions = {
  properties?: WorkbookProperties;
};

/** One sheet entry's own pieces around its parts: sync-flushed prologue, final-block epilogue. */
type SheetPieces = { sheetIndex: number; prologue: Buffer; epilogue: Buffer };

export type PlannedEntry = ZipEntryPlaced & {
  localHeader: Buffer;
  /** Whole compressed body for small entries; absent for sheets, which stream their parts. */
  body?: Buffer;
  sheet?: SheetPieces;
};

export type WorkbookLayout = {
  /** Exact size in bytes of the ZIP package, known before anything is written. */
  packageSize: number;
  entries: PlannedEntry[];
  centralDirectory: Buffer;
  sheets: SheetPlan[];
  properties: WorkbookProperties & { created: Date };
};

// Excel refuses these in sheet names.
const SHEET_NAME_FORBIDDEN = /[:\\/?*[\]]/;

/** Why a name cannot be a sheet name: the rule (as in WorkbookPlanError.rule) and what it says. */
export type SheetNameProblem = { rule: 'length-1-31' | 'excel-sheet-name' | 'unique'; message: string };

/**
 * Excel's rules for one sheet name, or undefined when `name` follows them. Exported so callers
 * (the operator command's --sheet) refuse a bad name before any work, with the plan's own rules.
 */
export function validateSheetName(name: string): SheetNameProblem | undefined {
  if (name.length < 1 || name.length > 31) return { rule: 'length-1-31', message: 'a sheet name must be 1 to 31 characters' };
  if (SHEET_NAME_FORBIDDEN.test(name) || /^'|'$/.test(name) || !isCleanName(name)) {
    return {
      rule: 'excel-sheet-name',
      message:
        'a sheet name may not contain : \\ / ? * [ ], control characters or unpaired surrogates, nor start or end with an apostrophe',
    };
  }
  // Excel keeps "History" (in any case) for its change-tracking sheet. The rule stays 'unique',
  // as plans have always reported it, so callers matching on rules see no change.
  if (name.toLowerCase() === 'history') return { rule: 'unique', message: 'a sheet may not be named "History" (in any case): Excel reserves it' };
  return undefined;
}

function validateSheets(sheets: readonly SheetPlan[]): SheetPlan[] {
  if (sheets.length === 0) throw new WorkbookPlanError('a workbook needs at least one sheet', 'sheets', 'min-1');
  const seen = new Set<string>();
  return sheets.map((raw, i) => {
    const parsed = sheetPlanSchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const path = ['sheets', i, ...(issue?.path ?? [])].join('.');
      throw new WorkbookPlanError(`${path}: ${issue?.message ?? 'invalid'}`, path, issue?.code ?? 'invalid');
    }
    const sheet = parsed.data;
    const field = `sheets.${i}.name`;
    const problem = validateSheetName(sheet.name);
    if (problem) throw new WorkbookPlanError(`${field}: ${problem.message}`, field, problem.rule);
    const folded = sheet.name.toLowerCase();
    if (seen.has(folded)) {
      throw new WorkbookPlanError(`${field}: sheet names must be unique (ignoring case)`, field, 'unique');
    }
    seen.add(folded);
    const keys = new Set<string>();
    for (const c of sheet.columns) {
      if (keys.has(c.key)) throw new WorkbookPlanError(`sheets.${i}.columns: duplicate key "${c.key}"`, `sheets.${i}.columns`, 'unique-keys');
      keys.add(c.key);
    }
    if (sheet.columns.length > 16_384) {
      throw new WorkbookPlanError(`sheets.${i}.columns: Excel allows at most 16,384 columns`, `sheets.${i}.columns`, 'max-16384');
    }
    let rows = 0;
    sheet.parts.forEach((p, partIndex) => {
      if (p.firstRow !== undefined && p.firstRow !== rows + 2) {
        const path = `sheets.${i}.parts.${partIndex}.firstRow`;
        throw new WorkbookPlanError(
          `${path}: the part was rendered for row ${p.firstRow} but follows ${rows} data rows (row ${rows + 2})`,
          path,
          'contiguous-rows',
        );
      }
      rows += p.rowCount;
    });
    if (rows > MAX_SHEET_DATA_ROWS) {
      throw new WorkbookPlanError(
        `sheets.${i}.parts: ${rows} data rows exceed Excel's ${MAX_SHEET_DATA_ROWS} per sheet (plus the header)`,
        `sheets.${i}.parts`,
        'max-rows',
      );
    }
    return sheet;
  });
}

/**
 * No C0 control character (not even tab, LF or CR, which cell text keeps), and nothing the
 * cell-text rules would strip: XML 1.0 forbids it, and a name changed on the way into the file
 * would no longer match the filter's definedName that quotes it.
 */
function isCleanName(name: string): boolean {
  return !/[\u0000-\u001F]/.test(name) && name === sanitizeText(name);
}

/** Earliest year a ZIP (MS-DOS) date can hold: an entry's time cannot be put before it. */
const MIN_CREATED_YEAR = 1980;
/** Latest year W3CDTF (docProps/core.xml) can write: four digits; toISOString gives `+010000` past it. */
const MAX_CREATED_YEAR = 9999;

/**
 * The creation time goes into docProps/core.xml (W3CDTF) and every ZIP header (DOS time), so it
 * must be a real date both can hold. Refused, not clamped: a wrong date in a finished file is
 * worse than an error naming the field.
 */
function validateCreated(created: unknown): Date {
  const field = 'properties.created';
  if (!(created instanceof Date) || Number.isNaN(created.getTime())) {
    throw new WorkbookPlanError(`${field}: must be a valid Date`, field, 'valid-date');
  }
  const year = created.getUTCFullYear();
  if (year < MIN_CREATED_YEAR || year > MAX_CREATED_YEAR) {
    throw new WorkbookPlanError(
      `${field}: the year (UTC) must be ${MIN_CREATED_YEAR} to ${MAX_CREATED_YEAR} (ZIP dates start in ${MIN_CREATED_YEAR}; W3CDTF has four-digit years)`,
      field,
      'date-range',
    );
  }
  return created;
}

function deflateWhole(text: string): { body: Buffer; crc32: number; size: number } {
  const raw = Buffer.from(text, 'utf8');
  return { body: zlib.deflateRawSync(raw, { level: 6 }), crc32: crc32(raw), size: raw.length };
}

/**
 * Lays out the whole package from the parts' metadata alone: every header, the central
 * directory and the exact package size, before a byte is written (the encryptor needs the
 * size up front). Writing with the returned layout reproduces these bytes exactly.
 */
export function planWorkbook(sheets: readonly SheetPlan[], options: WorkbookPlanOptions = {}): WorkbookLayout {
  const valid = validateSheets(sheets);
  const properties = { ...options.properties, created: validateCreated(options.properties?.created ?? new Date()) };
  const when = toDosDateTime(properties.created);
  const summaries = valid.map((s) => ({
    name: s.name,
    columnCount: s.columns.length,
    dataRows: s.parts.reduce((n, p) => n + p.rowCount, 0),
  }));

  type Draft = Omit<PlannedEntry, 'offset' | 'localHeader'>;
  const drafts: Draft[] = [];
  const addStatic = (name: string, text: string): void => {
    const d = deflateWhole(text);
    drafts.push({ name, crc32: d.crc32, compressedSize: d.body.length, uncompressedSize: d.size, body: d.body });
  };
  addStatic('[Content_Types].xml', renderContentTypes(valid.length));
  addStatic('_rels/.rels', renderRootRels());
  addStatic('docProps/core.xml', renderCoreProperties(properties));
  addStatic('docProps/app.xml', renderAppProperties());
  addStatic('xl/workbook.xml', renderWorkbook(summaries));
  addStatic('xl/_rels/workbook.xml.rels', renderWorkbookRels(valid.length));
  addStatic('xl/styles.xml', renderStyles());

  valid.forEach((sheet, sheetIndex) => {
    const dataRows = summaries[sheetIndex]!.dataRows;
    const prologueRaw = Buffer.from(renderSheetPrologue(sheet.columns, dataRows, sheetIndex === 0), 'utf8');
    const epilogueRaw = Buffer.from(renderSheetEpilogue(sheet.columns.length, dataRows), 'utf8');
    const prologue = deflateSlice(prologueRaw, 6);
    // The epilogue closes the deflate stream with the final block (Z_FINISH).
    const epilogue = zlib.deflateRawSync(epilogueRaw, { level: 6 });
    let crc = crc32(prologueRaw);
    let raw = prologueRaw.length;
    let compressed = prologue.length;
    for (const p of sheet.parts) {
      crc = crc32Combine(crc, p.crc32, p.rawLength);
      raw += p.rawLength;
      compressed += p.compressedLength;
    }
    crc = crc32Combine(crc, crc32(epilogueRaw), epilogueRaw.length);
    raw += epilogueRaw.length;
    compressed += epilogue.length;
    drafts.push({
      name: `xl/worksheets/sheet${sheetIndex + 1}.xml`,
      crc32: crc,
      compressedSize: compressed,
      uncompressedSize: raw,
      sheet: { sheetIndex, prologue, epilogue },
    });
  });

  let offset = 0;
  const entries: PlannedEntry[] = drafts.map((d) => {
    const localHeader = encodeLocalHeader(d, when);
    const entry: PlannedEntry = { ...d, offset, localHeader };
    offset += localHeader.length + d.compressedSize;
    return entry;
  });
  const centralDirectory = encodeCentralDirectory(entries, offset, when);
  return { packageSize: offset + centralDirectory.length, entries, centralDirectory, sheets: valid, properties };
}

/**
 * Streams the planned package into a sink. Parts are checked as they stream: a part longer or
 * shorter than its metadata rejects (corrupt data is never written silently; excess bytes are
 * not written at all).
 */
export async function writePackage(layout: WorkbookLayout, readPart: ReadPart, sink: ByteSink): Promise<number> {
  let written = 0;
  const put = async (b: Buffer): Promise<void> => {
    if (b.length === 0) return;
    written += b.length;
    await sink.write(b);
  };
  for (const entry of layout.entries) {
    await put(entry.localHeader);
    if (entry.body) {
      await put(entry.body);
      continue;
    }
    const sheet = entry.sheet!;
    await put(sheet.prologue);
    const parts = layout.sheets[sheet.sheetIndex]!.parts;
    for (let partIndex = 0; partIndex < parts.length; partIndex++) {
      const expected = parts[partIndex]!.compressedLength;
      const where = `sheet ${sheet.sheetIndex} part ${partIndex}`;
      const source = await readPart(sheet.sheetIndex, partIndex);
      let seen = 0;
      const take = async (chunk: Uint8Array): Promise<void> => {
        const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        if (seen + b.length > expected) {
          throw new PartIntegrityError(
            `${where}: more bytes than its compressedLength ${expected}`,
            `parts.${partIndex}.compressedLength`,
            'length-matches',
          );
        }
        seen += b.length;
        await put(b);
      };
      if (Buffer.isBuffer(source) || source instanceof Uint8Array) await take(source);
      else for await (const chunk of source) await take(chunk);
      if (seen !== expected) {
        throw new PartIntegrityError(
          `${where}: ${seen} bytes streamed but its compressedLength is ${expected}`,
          `parts.${partIndex}.compressedLength`,
          'length-matches',
        );
      }
    }
    await put(sheet.epilogue);
  }
  await put(layout.centralDirectory);
  if (written !== layout.packageSize) {
    throw new Error(`internal: wrote ${written} package bytes, planned ${layout.packageSize}`);
  }
  return written;
}

export type WriteWorkbookInput = {
  sheets: readonly SheetPlan[];
  readPart: ReadPart;
  out: Writable;
  properties?: WorkbookProperties;
};

/** Writes an unencrypted XLSX into `out`, ends it, and resolves with the package size. */
export async function writeWorkbook(input: WriteWorkbookInput): Promise<{ size: number }> {
  const layout = planWorkbook(input.sheets, { properties: input.properties });
  const sink = createWritableSink(input.out);
  try {
    await writePackage(layout, input.readPart, sink);
    await sink.end();
  } catch (err) {
    // Leave no half-written stream open: the caller must discard the output.
    input.out.destroy();
    throw err;
  }
  return { size: layout.packageSize };
}
