/**
 * The column and row shapes come from the xlsx engine's contract (docs/contracts.md); the domain
 * re-exports them so its callers need one import. Type-only: the domain depends on no engine code.
 */
export type { CellValue, ColumnSpec, ColumnType, Row } from '../xlsx/types';
