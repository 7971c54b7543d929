import { z } from 'zod';

/** The value types a column can hold; each maps to one cell representation in SpreadsheetML. */
export const columnTypeSchema = z.enum(['string', 'number', 'boolean', 'date', 'duration']);
export type ColumnType = z.infer<typeof columnTypeSchema>;

export const columnSpecSchema = z.object({
  key: z.string().min(1),
  header: z.string(),
  type: columnTypeSchema,
  /** Column width in Excel character units; defaults depend on the type. */
  width: z.number().positive().max(255).optional(),
});
export type ColumnSpec = z.infer<typeof columnSpecSchema>;

export type CellValue = string | number | boolean | Date | null | undefined;
export type Row = Readonly<Record<string, CellValue>>;

export const partMetaSchema = z.object({
  rawLength: z.number().int().nonnegative(),
  compressedLength: z.number().int().nonnegative(),
  crc32: z.number().int().nonnegative().max(0xffffffff),
  rowCount: z.number().int().nonnegative(),
  /**
   * Absolute sheet row of the part's first data row, present when the part was rendered with
   * `startRow` (rows carry `r`). The plan checks it against the rows before it, because rows
   * out of order make Excel call the file corrupt.
   */
  firstRow: z.number().int().min(2).optional(),
});
export type PartMeta = z.infer<typeof partMetaSchema>;

/** Raw deflate bytes ending in a sync flush (no final block), so parts concatenate into one stream. */
export type Part = PartMeta & { data: Buffer };

export const sheetPlanSchema = z.object({
  name: z.string(),
  columns: z.array(columnSpecSchema).min(1),
  parts: z.array(partMetaSchema),
});
export type SheetPlan = z.infer<typeof sheetPlanSchema>;

export type RenderOptions = {
  /** IANA time zone in which dates are shown, e.g. `Asia/Seoul`. */
  timeZone: string;
};

export type WorkbookProperties = {
  title?: string;
  creator?: string;
  /** Creation time written to docProps/core.xml; fixed here so a plan and its write agree. */
  created?: Date;
};

/** Returns a part's compressed bytes, whole or streamed (e.g. from S3). */
export type ReadPart = (
  sheetIndex: number,
  partIndex: number,
) => Promise<Buffer | AsyncIterable<Uint8Array>>;

export const MAX_CELL_CHARS = 32_767;
/** Excel's sheet limit is 1,048,576 rows; one goes to the header. */
export const MAX_SHEET_DATA_ROWS = 1_048_575;
