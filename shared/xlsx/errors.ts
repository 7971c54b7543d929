/** Base of the engine's errors: they name the field and the rule broken, never HTTP. */
export class XlsxEngineError extends Error {
  constructor(
    message: string,
    readonly field?: string,
    readonly rule?: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** A cell value does not fit its column's type (e.g. text in a number column). */
export class CellValueError extends XlsxEngineError {}

/** A workbook plan breaks a structural rule (sheet name, row limit, empty columns...). */
export class WorkbookPlanError extends XlsxEngineError {}

/** A part's bytes, as streamed, do not match its recorded metadata: the data is corrupt. */
export class PartIntegrityError extends XlsxEngineError {}
