import { MAX_CELL_CHARS } from './types';

// Characters XML 1.0 forbids (C0 controls except tab/LF/CR, U+FFFE, U+FFFF) plus every surrogate
// (paired ones are checked again in the slow path), and the characters that need escaping.
// One regex test keeps the common case (plain text) to a single scan with no allocation.
export const NEEDS_WORK = /[\u0000-\u0008\u000B\u000C\u000E-\u001F&<>\r\uD800-\uDFFF\uFFFE\uFFFF]/;
const FORBIDDEN = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/;

/**
 * Makes text safe to store in an Excel cell, and returns the text a reader will get back:
 * 1. removes what XML 1.0 forbids: C0 control characters other than tab, LF and CR; lone
 *    (unpaired) surrogates; U+FFFE and U+FFFF;
 * 2. then cuts to Excel's limit of 32,767 UTF-16 code units; if the cut would split a surrogate
 *    pair (an emoji, say), the whole pair is dropped, giving 32,766 units.
 */
export function sanitizeText(text: string): string {
  let s = text;
  if (NEEDS_WORK.test(s)) s = stripForbidden(s);
  if (s.length > MAX_CELL_CHARS) {
    const last = s.charCodeAt(MAX_CELL_CHARS - 1);
    s = s.slice(0, last >= 0xd800 && last <= 0xdbff ? MAX_CELL_CHARS - 1 : MAX_CELL_CHARS);
  }
  return s;
}

function stripForbidden(s: string): string {
  let hasSurrogate = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdfff) {
      hasSurrogate = true;
      break;
    }
  }
  if (!hasSurrogate) return FORBIDDEN.test(s) ? s.replace(globalForbidden, '') : s;
  let out = '';
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    let drop = false;
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
      if (next >= 0xdc00 && next <= 0xdfff) {
        i++; // a valid pair: keep both halves
        continue;
      }
      drop = true;
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      drop = true;
    } else if ((c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) || c === 0xfffe || c === 0xffff) {
      drop = true;
    }
    if (drop) {
      out += s.slice(start, i);
      start = i + 1;
    }
  }
  return start === 0 ? s : out + s.slice(start);
}
const globalForbidden = new RegExp(FORBIDDEN.source, 'g');

const ESCAPE = /[&<>\r]/;
const ESCAPE_ALL = /[&<>\r]/g;
function escapeChar(c: string): string {
  // CR as a character reference: a literal CR would be turned into LF by every XML parser.
  return c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : '&#13;';
}

/** Escapes sanitised text for element content (quotes need no escaping there). */
export function escapeXmlText(s: string): string {
  return ESCAPE.test(s) ? s.replace(ESCAPE_ALL, escapeChar) : s;
}

/** Escapes text for a double-quoted XML attribute value. */
export function escapeXmlAttribute(s: string): string {
  return sanitizeText(s)
    .replace(/[&<>"\r\n\t]/g, (c) =>
      c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '"' ? '&quot;' : `&#${c.charCodeAt(0)};`,
    );
}

/**
 * Whether an inline string whose (sanitised) text starts with UTF-16 unit `first` and ends with
 * `last` needs `xml:space="preserve"`: when either end is at or below U+0020 (space, or tab, LF,
 * CR: the only C0 characters sanitising keeps) or is another character JavaScript's `/\s/`
 * matches. Without it readers may trim the ends, and xlsx-populate drops any text node that is
 * all `/\s/`, so a cell of just "\u00a0" or "\u3000" read back empty. One decision for both
 * renderers. It is on the encoder's hot path: ends in U+0021-U+009F (ASCII text) cost two
 * comparisons each, as before the non-ASCII spaces were added.
 */
export function needsSpacePreserve(first: number, last: number): boolean {
  return first <= 0x20 || last <= 0x20 || (first >= 0xa0 && isWideSpace(first)) || (last >= 0xa0 && isWideSpace(last));
}

/**
 * `/\s/` above U+009F: U+00A0, U+1680, U+2000-200A, U+2028, U+2029, U+202F, U+205F, U+3000,
 * U+FEFF. Hangul and CJK (above U+3000) take the first branch: one more comparison.
 */
function isWideSpace(c: number): boolean {
  if (c > 0x3000) return c === 0xfeff;
  return c === 0xa0 || c === 0x1680 || (c >= 0x2000 && (c <= 0x200a || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000));
}

/**
 * A text cell after its `<c`: `attrs` (e.g. ` t="inlineStr">`) then the inline string, or '' when the text is empty after sanitising
 * (an empty string is written as an empty cell). Inline strings are never formulas, so text
 * starting with = + - @ stays text.
 */
export function renderTextCell(text: string, attrs: string): string {
  let s = text;
  let escaped = s;
  if (NEEDS_WORK.test(s) || s.length > MAX_CELL_CHARS) {
    s = sanitizeText(s);
    escaped = escapeXmlText(s);
  }
  if (s.length === 0) return '';
  const open = needsSpacePreserve(s.charCodeAt(0), s.charCodeAt(s.length - 1)) ? '<is><t xml:space="preserve">' : '<is><t>';
  return attrs + open + escaped + '</t></is></c>';
}
