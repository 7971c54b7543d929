import { escapeXmlAttribute, escapeXmlText, renderTextCell, sanitizeText } from './sanitize-text';
import { columnLetters, STYLE_HEADER } from './render-row';
import type { ColumnSpec, ColumnType, WorkbookProperties } from './types';

const XML_DECL = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n';
const NS_MAIN = 'http://schemas.openxmlformats.org/spreadsheetml/2006/main';
const NS_REL = 'http://schemas.openxmlformats.org/officeDocument/2006/relationships';
const NS_PKG_REL = 'http://schemas.openxmlformats.org/package/2006/relationships';

export const DATE_TIME_FORMAT = 'yyyy-mm-dd hh:mm:ss';
/** For STYLE_BOOLEAN (see render-row.ts); LibreOffice maps exactly this code to its BOOLEAN format. */
const BOOLEAN_FORMAT = '&quot;TRUE&quot;;&quot;TRUE&quot;;&quot;FALSE&quot;';

const DEFAULT_WIDTH: Record<ColumnType, number> = {
  string: 24,
  number: 12,
  boolean: 9,
  date: 20,
  duration: 12,
};

/**
 * East Asian Wide and Fullwidth code points (UAX #11), which take two columns in a spreadsheet
 * font as in a terminal: Hangul (leading conjoining Jamo, compatibility Jamo, Jamo Extended-A,
 * syllables), CJK radicals, symbols and punctuation, kana, Bopomofo, CJK ideographs (every
 * plane-2 and plane-3 code point, as UAX #11 defaults them), Yi, CJK compatibility and vertical
 * forms, fullwidth forms, Tangut/Khitan/Nushu and kana supplements, enclosed ideographs.
 * Halfwidth forms (U+FF61-FFDC) and the ambiguous circled numbers U+3248-324F stay narrow.
 * Checked code point by code point against Python's unicodedata.east_asian_width (Unicode 14).
 */
const WIDE =
  /[\u{1100}-\u{115F}\u{2329}\u{232A}\u{2E80}-\u{303E}\u{3041}-\u{3247}\u{3250}-\u{33FF}\u{3400}-\u{4DBF}\u{4E00}-\u{9FFF}\u{A000}-\u{A4CF}\u{A960}-\u{A97F}\u{AC00}-\u{D7A3}\u{F900}-\u{FAFF}\u{FE10}-\u{FE19}\u{FE30}-\u{FE6F}\u{FF01}-\u{FF60}\u{FFE0}-\u{FFE6}\u{16FE0}-\u{16FE4}\u{16FF0}-\u{16FF1}\u{17000}-\u{18CFF}\u{18D00}-\u{18D08}\u{1AFF0}-\u{1B2FF}\u{1F200}-\u{1F2FF}\u{20000}-\u{2FFFD}\u{30000}-\u{3FFFD}]/u;

/**
 * An emoji, drawn two columns wide whatever it is made of: one shown as emoji by default (flags'
 * regional indicators included), or one that U+FE0F asks to show as emoji ("❤️", "1️⃣").
 */
const EMOJI = /\p{Emoji_Presentation}|\p{Emoji}\u{FE0F}/u;

/**
 * Code points that add no width of their own: combining marks, format characters (ZWJ; variation
 * selectors are marks), and the conjoining Hangul vowels and finals (U+1160-11FF, U+D7B0-D7FF)
 * that a decomposed syllable (NFD, as macOS file names give it) puts after its leading consonant.
 */
const ZERO_WIDTH = /[\p{Mn}\p{Me}\p{Cf}\u{1160}-\u{11FF}\u{D7B0}-\u{D7FF}]/u;

let graphemes: Intl.Segmenter | undefined;

/**
 * Columns `text` takes in a monospaced East Asian sense. An emoji is 2 however many code points
 * (a surrogate pair, skin tone, ZWJ family, flag) make it, so text is walked by grapheme cluster;
 * inside any other cluster each code point counts (so a halfwidth kana with its halfwidth voicing
 * mark, drawn as two cells, stays 2): Wide/Fullwidth 2, marks and format characters 0, others 1.
 * ASCII counts 1 per UTF-16 unit, exactly as `length` did, so ASCII widths do not move.
 */
export function displayWidth(text: string): number {
  // The common case, and the one whose widths must stay as they were.
  if (/^[\u0000-\u007F]*$/.test(text)) return text.length;
  graphemes ??= new Intl.Segmenter('en', { granularity: 'grapheme' });
  let width = 0;
  for (const { segment } of graphemes.segment(text)) {
    if (EMOJI.test(segment)) {
      width += 2;
      continue;
    }
    for (const char of segment) width += ZERO_WIDTH.test(char) ? 0 : WIDE.test(char) ? 2 : 1;
  }
  return width;
}

/**
 * Width from the spec, or the type's default; widened for a header that would not fit (capped at
 * 60: the header is the one text of a column everyone must read, and the service gave explicit
 * widths that cut a third of its headers, `marketingConsentEmail` and `marketingConsentTexting`
 * both showing "marketingC"); and a date column is never narrower than its `yyyy-mm-dd hh:mm:ss`
 * needs (a width-16 profile date showed ##### in every row). A given width above both stays.
 */
export function columnWidth(column: ColumnSpec): number {
  const given = column.width ?? DEFAULT_WIDTH[column.type];
  const floor = column.type === 'date' ? DEFAULT_WIDTH.date : 0;
  return Math.max(given, floor, Math.min(60, Math.ceil(displayWidth(column.header) * 1.2) + 2));
}

export function sheetRange(columnCount: number, dataRows: number): string {
  return `A1:${columnLetters(columnCount - 1)}${dataRows + 1}`;
}

export function renderContentTypes(sheetCount: number): string {
  let overrides = '';
  for (let i = 1; i <= sheetCount; i++) {
    overrides += `<Override PartName="/xl/worksheets/sheet${i}.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>`;
  }
  return (
    XML_DECL +
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">' +
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>' +
    '<Default Extension="xml" ContentType="application/xml"/>' +
    '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>' +
    overrides +
    '<Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>' +
    '<Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>' +
    '<Override PartName="/docProps/app.xml" ContentType="application/vnd.openxmlformats-officedocument.extended-properties+xml"/>' +
    '</Types>'
  );
}

export function renderRootRels(): string {
  return (
    XML_DECL +
    `<Relationships xmlns="${NS_PKG_REL}">` +
    `<Relationship Id="rId1" Type="${NS_REL}/officeDocument" Target="xl/workbook.xml"/>` +
    '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties" Target="docProps/core.xml"/>' +
    `<Relationship Id="rId3" Type="${NS_REL}/extended-properties" Target="docProps/app.xml"/>` +
    '</Relationships>'
  );
}

export type SheetSummary = { name: string; columnCount: number; dataRows: number };

/** A sheet name inside a formula reference: quoted, with apostrophes doubled. */
function quoteSheetName(name: string): string {
  return `'${name.replace(/'/g, "''")}'`;
}

export function renderWorkbook(sheets: readonly SheetSummary[]): string {
  let list = '';
  let names = '';
  sheets.forEach((s, i) => {
    // The same sanitised name in both places, so the filter always names the sheet as written
    // (planWorkbook refuses names sanitising would change; this holds for direct callers too).
    const name = sanitizeText(s.name);
    list += `<sheet name="${escapeXmlAttribute(name)}" sheetId="${i + 1}" r:id="rId${i + 1}"/>`;
    // Excel records every auto-filter range under this hidden name; readers expect it.
    const last = columnLetters(s.columnCount - 1);
    names += `<definedName name="_xlnm._FilterDatabase" localSheetId="${i}" hidden="1">${escapeXmlText(
      `${quoteSheetName(name)}!$A$1:$${last}$${s.dataRows + 1}`,
    )}</definedName>`;
  });
  return (
    XML_DECL +
    `<workbook xmlns="${NS_MAIN}" xmlns:r="${NS_REL}">` +
    '<bookViews><workbookView activeTab="0"/></bookViews>' +
    `<sheets>${list}</sheets><definedNames>${names}</definedNames>` +
    '</workbook>'
  );
}

export function renderWorkbookRels(sheetCount: number): string {
  let rels = '';
  for (let i = 1; i <= sheetCount; i++) {
    rels += `<Relationship Id="rId${i}" Type="${NS_REL}/worksheet" Target="worksheets/sheet${i}.xml"/>`;
  }
  rels += `<Relationship Id="rId${sheetCount + 1}" Type="${NS_REL}/styles" Target="styles.xml"/>`;
  return XML_DECL + `<Relationships xmlns="${NS_PKG_REL}">${rels}</Relationships>`;
}

/**
 * Cell formats: 0 default, 1 bold header (STYLE_HEADER), 2 date-time (STYLE_DATE_TIME), 3 boolean
 * (STYLE_BOOLEAN). Only ever appended to: parts rendered by earlier code name earlier indexes.
 */
export function renderStyles(): string {
  const font = '<sz val="11"/><name val="Calibri"/><family val="2"/>';
  return (
    XML_DECL +
    `<styleSheet xmlns="${NS_MAIN}">` +
    '<numFmts count="2">' +
    `<numFmt numFmtId="164" formatCode="${DATE_TIME_FORMAT}"/>` +
    `<numFmt numFmtId="165" formatCode="${BOOLEAN_FORMAT}"/>` +
    '</numFmts>' +
    `<fonts count="2"><font>${font}</font><font><b/>${font}</font></fonts>` +
    '<fills count="2"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/></fill></fills>' +
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>' +
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>' +
    '<cellXfs count="4">' +
    '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>' +
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>' +
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>' +
    '<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>' +
    '</cellXfs>' +
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>' +
    '</styleSheet>'
  );
}

export function renderCoreProperties(props: Required<Pick<WorkbookProperties, 'created'>> & WorkbookProperties): string {
  // W3CDTF without milliseconds, as Office writes it.
  const when = props.created.toISOString().replace(/\.\d{3}Z$/, 'Z');
  return (
    XML_DECL +
    '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" ' +
    'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" ' +
    'xmlns:dcmitype="http://purl.org/dc/dcmitype/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">' +
    (props.title ? `<dc:title>${escapeXmlText(sanitizeText(props.title))}</dc:title>` : '') +
    (props.creator ? `<dc:creator>${escapeXmlText(sanitizeText(props.creator))}</dc:creator>` : '') +
    `<dcterms:created xsi:type="dcterms:W3CDTF">${when}</dcterms:created>` +
    `<dcterms:modified xsi:type="dcterms:W3CDTF">${when}</dcterms:modified>` +
    '</cp:coreProperties>'
  );
}

export function renderAppProperties(): string {
  return (
    XML_DECL +
    '<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-properties" ' +
    'xmlns:vt="http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes">' +
    '<Application>export-service</Application><DocSecurity>0</DocSecurity>' +
    '</Properties>'
  );
}

/**
 * Everything in a worksheet before the data rows: dimension, frozen header pane, column
 * widths, and the bold header row (row 1, always with `r` attributes).
 */
export function renderSheetPrologue(columns: readonly ColumnSpec[], dataRows: number, selected: boolean): string {
  let cols = '';
  columns.forEach((c, i) => {
    cols += `<col min="${i + 1}" max="${i + 1}" width="${columnWidth(c)}" customWidth="1"/>`;
  });
  let header = '<row r="1">';
  columns.forEach((c, i) => {
    const tail = renderTextCell(c.header, ` s="${STYLE_HEADER}" t="inlineStr">`);
    if (tail !== '') header += `<c r="${columnLetters(i)}1"${tail}`;
  });
  header += '</row>';
  return (
    XML_DECL +
    `<worksheet xmlns="${NS_MAIN}" xmlns:r="${NS_REL}">` +
    `<dimension ref="${sheetRange(columns.length, dataRows)}"/>` +
    `<sheetViews><sheetView${selected ? ' tabSelected="1"' : ''} workbookViewId="0">` +
    '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>' +
    '<selection pane="bottomLeft" activeCell="A2" sqref="A2"/>' +
    '</sheetView></sheetViews>' +
    '<sheetFormatPr defaultRowHeight="15"/>' +
    `<cols>${cols}</cols>` +
    `<sheetData>${header}`
  );
}

export function renderSheetEpilogue(columnCount: number, dataRows: number): string {
  return `</sheetData><autoFilter ref="${sheetRange(columnCount, dataRows)}"/></worksheet>`;
}
