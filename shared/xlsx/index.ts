/**
 * The xlsx engine: rows -> sync-flushed deflate parts -> one ZIP64-capable package -> ECMA-376
 * agile encryption, all streaming. No AWS SDK and no domain imports: callers hand in parts and
 * output streams. See docs/engine.md.
 */
export {
  columnSpecSchema,
  columnTypeSchema,
  partMetaSchema,
  sheetPlanSchema,
  MAX_CELL_CHARS,
  MAX_SHEET_DATA_ROWS,
  type CellValue,
  type ColumnSpec,
  type ColumnType,
  type Part,
  type PartMeta,
  type ReadPart,
  type RenderOptions,
  type Row,
  type SheetPlan,
  type WorkbookProperties,
} from './types';
export { CellValueError, PartIntegrityError, WorkbookPlanError, XlsxEngineError } from './errors';
export { sanitizeText } from './sanitize-text';
export { assertTimeZone, createExcelDateConverter, createLocalTimeConverter } from './time-zone';
export { createRowEncoder, type RowEncoder } from './row-encoder';
export { CELL_STYLES_VERSION, compileRowRenderer, columnLetters, type RowRenderOptions, type RowRenderer } from './render-row';
export {
  createAsyncPartEncoder,
  createPartEncoder,
  renderPart,
  transferableBytes,
  DEFAULT_DEFLATE_LEVEL,
  type AsyncPartEncoder,
  type PartEncoder,
  type PartOptions,
} from './part';
export { crc32, crc32Combine } from './crc32';
export { createWritableSink, type ByteSink, type WritableSink } from './byte-sink';
export {
  planWorkbook,
  writePackage,
  writeWorkbook,
  type WorkbookLayout,
  type WorkbookPlanOptions,
  type WriteWorkbookInput,
} from './workbook';
export { writeEncryptedWorkbook, type WriteEncryptedWorkbookInput } from './encrypted-workbook';
export * from './crypto';
