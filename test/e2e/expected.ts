import type { CellValue, ColumnSpec, Row } from '../../shared/xlsx/types';
import { localWallClockMs } from '../support/wall-clock';

/**
 * What a correct file must contain, computed from the generator's records with the domain's
 * column catalog and row mappers (never from the pipeline's code), in the form openpyxl reads
 * it back: dates as naive local date-times in the export's time zone.
 */
export type ExpectedSheet = { header: string[]; rows: unknown[][] };

export function expectedSheet(columns: readonly ColumnSpec[], rows: Iterable<Row>, timeZone: string): ExpectedSheet {
  const out: unknown[][] = [];
  for (const row of rows) out.push(columns.map((c) => expectedCell(row[c.key], c, timeZone)));
  return { header: columns.map((c) => c.header), rows: out };
}

function expectedCell(value: CellValue, column: ColumnSpec, timeZone: string): unknown {
  if (value === null || value === undefined || value === '') return null;
  if (column.type === 'date') {
    const ms = value instanceof Date ? value.getTime() : typeof value === 'number' ? value : Date.parse(String(value));
    return { localMs: localWallClockMs(ms, timeZone) };
  }
  return value;
}

/**
 * Compares the sheet read back with the expected one: same header, same number of rows, same
 * values in the same order. Dates may differ by the 1 ms an Excel serial number can lose.
 * Returns the first difference (readable in a failed assertion), or undefined.
 */
export function firstDifference(actual: unknown[][] | undefined, expected: ExpectedSheet): string | undefined {
  if (!actual) return 'sheet missing';
  const [header, ...rows] = actual;
  if (JSON.stringify(header) !== JSON.stringify(expected.header)) return `header ${JSON.stringify(header)} != ${JSON.stringify(expected.header)}`;
  if (rows.length !== expected.rows.length) return `row count ${rows.length} != ${expected.rows.length}`;
  for (let r = 0; r < rows.length; r += 1) {
    const got = rows[r] ?? [];
    const want = expected.rows[r] ?? [];
    for (let c = 0; c < want.length; c += 1) {
      const g = got[c] === '' || got[c] === undefined ? null : got[c];
      const w = want[c];
      if (w && typeof w === 'object' && 'localMs' in w) {
        const gotMs = typeof g === 'string' ? Date.parse(`${g}Z`) : Number.NaN;
        if (!(Math.abs(gotMs - (w as { localMs: number }).localMs) <= 1)) {
          return `row ${r + 1} column ${expected.header[c]}: ${String(g)} != ${new Date((w as { localMs: number }).localMs).toISOString()}`;
        }
      } else if (g !== w) {
        return `row ${r + 1} column ${expected.header[c]}: ${JSON.stringify(g)} != ${JSON.stringify(w)}`;
      }
    }
  }
  return undefined;
}
