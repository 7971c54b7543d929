import type { z } from 'zod';

/**
 * Rules for free text people type (a reason) or an identity provider sends (a display name),
 * before it is stored in the audit trail, shown to auditors and posted by the bot.
 *
 * - A lone surrogate (half of a UTF-16 pair, which JSON's `\ud800` escape can produce) is not
 *   text: DynamoDB may refuse the item it is in (a 500 after the checks passed), and no reader
 *   shows it the same way.
 * - Control characters (C0 but tab, line feed and carriage return; DEL; C1) and the bidi
 *   embedding, override and isolate controls (U+202A-U+202E, U+2066-U+2069) change how the rest
 *   of the text is displayed: a terminal escape sequence in a log viewer, or "legit \u202Eevil"
 *   reading differently from what is stored. The left-to-right, right-to-left and Arabic letter
 *   marks (U+200E, U+200F, U+061C) stay: right-to-left text needs them and they reorder nothing
 *   on their own.
 * - Every other format character (\p{Cf}) and the combining grapheme joiner U+034F show nothing,
 *   so text holding one is not the text a reader sees: `re\u200Bfund` is stored, an auditor
 *   searching for "refund" does not find it. Kept: the zero-width joiner and non-joiner (U+200D,
 *   U+200C: emoji sequences, Persian and Indic scripts) and the tag characters of a subdivision
 *   flag (TAG_FLAG). Variation selectors (U+FE00-U+FE0F) are marks (Mn), not format characters,
 *   and stay. The few visible Cf characters (the Arabic number signs U+0600-U+0605 and the like)
 *   go too: one rule a reader can check beats an exception nobody types. The Hangul fillers
 *   U+3164 and U+FFA0 go too: they count as letters but show nothing (a "reason" of fillers
 *   alone passed the letter-or-digit rule); the conjoining fillers U+115F/U+1160, which old
 *   Hangul needs inside syllables, stay.
 * - Text that must match customer data (the quick search, a filter's texts) takes a narrower
 *   rule (`matching`): customer names and notes pasted from the web or a CSV do hold soft
 *   hyphens, zero-width spaces and byte order marks, and a filter that could not name them could
 *   not match those rows exactly. It still refuses what changes how the rest displays (controls,
 *   bidi controls) and what hides text (tags, U+2060-U+2064, U+FFF9-U+FFFB), as before.
 * A refusal names the first such character and where it is: invisible, it cannot be found by eye.
 */

/** Any lone surrogate (with the u flag a proper pair is one code point, never \p{Cs}). */
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * The characters free text may not contain (see above): control characters (C0 but tab, line
 * feed and carriage return; DEL; C1), every format character but the joiners and direction
 * marks, U+034F, the Hangul fillers U+3164 and U+FFA0, and the whole tag block (U+E0000-U+E007F, used to smuggle ASCII past a reader;
 * a flag's tags are taken out before this is applied). A lookahead, not a `v`-flag set
 * difference: the compile target (ES2022) has no `v` flag.
 */
const DISPLAY_CONTROL = /(?![\t\n\r\u200C-\u200F\u061C])[\p{Cc}\p{Cf}\u034F\u3164\uFFA0\u{E0000}-\u{E007F}]/u;

/** The narrower set for text matched against customer data (see above): the rule before \p{Cf}. */
const MATCHING_CONTROL = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFFF9-\uFFFB\u{E0000}-\u{E007F}]/u;

/** Which rule a field takes: `prose` for what people write for people, `matching` for what is compared with data. */
export type DisplayControlRule = 'prose' | 'matching';

/**
 * The one use of tag characters that shows something: a subdivision flag (U+1F3F4, tags, then
 * CANCEL TAG U+E007F, e.g. Scotland's). Such a sequence is kept; a stray tag is not.
 */
const TAG_FLAG = /\u{1F3F4}[\u{E0020}-\u{E007E}]+\u{E007F}/gu;

/** A flag (kept, captured) or any character DISPLAY_CONTROL names (removed), for cleanDisplayText. */
const FLAG_OR_DISPLAY_CONTROL = new RegExp(`(${TAG_FLAG.source})|${DISPLAY_CONTROL.source}`, 'gu');

/** Whether `text` holds a character the rule refuses, flag emoji aside. */
export function hasDisplayControl(text: string, rule: DisplayControlRule = 'prose'): boolean {
  return (rule === 'prose' ? DISPLAY_CONTROL : MATCHING_CONTROL).test(text.replace(TAG_FLAG, ''));
}

/**
 * The first character the rule refuses, as a refusal names it: `U+200B at character 3`
 * (characters counted as code points from 1, as the reason's length is). A flag's tags are
 * skipped, as hasDisplayControl skips them. Undefined when there is none.
 */
export function describeDisplayControl(text: string, rule: DisplayControlRule = 'prose'): string | undefined {
  const pattern = rule === 'prose' ? DISPLAY_CONTROL : MATCHING_CONTROL;
  const flagged = new Set<number>();
  for (const match of text.matchAll(TAG_FLAG)) for (let i = 0; i < match[0].length; i++) flagged.add(match.index + i);
  let position = 0;
  for (let i = 0; i < text.length; ) {
    const codePoint = text.codePointAt(i) ?? 0;
    const char = String.fromCodePoint(codePoint);
    position++;
    if (!flagged.has(i) && pattern.test(char)) {
      return `U+${codePoint.toString(16).toUpperCase().padStart(4, '0')} at character ${position}`;
    }
    i += char.length;
  }
  return undefined;
}

/** The message of a refusal: the rule's wording, then the character found, in parentheses. */
export function displayControlMessage(subject: string, text: unknown, rule: DisplayControlRule = 'prose'): string {
  const found = typeof text === 'string' ? describeDisplayControl(text, rule) : undefined;
  return `${subject}${DISPLAY_CONTROL_MESSAGE}${found ? ` (${found})` : ''}`;
}

/**
 * How a refusal of such text reads (rule `display-control`), after the field's name: one wording
 * for every field the audit trail shows (reason, query, filter texts, ids).
 */
const DISPLAY_CONTROL_MESSAGE =
  'must not contain control characters, bidi overrides (U+202A-U+202E, U+2066-U+2069) or invisible tag and format characters';

/**
 * `schema` refusing such text (rule `display-control`), its message led by `subject` when the
 * issue's path alone would not name the field. A refine, not a regex: kept out of the API
 * Gateway model, whose regex dialect is not JavaScript's; it does not abort, so a union holding
 * it names this issue at the operand's path.
 */
export function refuseDisplayControl(schema: z.ZodString, subject = '', rule: DisplayControlRule = 'prose'): z.ZodString {
  return schema.refine((value) => !hasDisplayControl(value, rule), {
    error: (issue) => displayControlMessage(subject, issue.input, rule),
    params: { rule: 'display-control' },
  });
}

/** At least one letter or digit, in any script: what makes a reason more than blank or invisible. */
export const HAS_LETTER_OR_DIGIT = /[\p{L}\p{N}]/u;

/** True when `text` is well-formed UTF-16 (no lone surrogate). */
function isWellFormedText(text: string): boolean {
  return !LONE_SURROGATE.test(text);
}

/**
 * A display name from a token, made safe to store and show: display controls removed, lone
 * surrogates replaced by U+FFFD. Refusing the token instead would lock its holder out for a
 * name they did not choose; the name identifies nobody (the managerId does).
 */
export function cleanDisplayText(text: string): string {
  return text.replace(FLAG_OR_DISPLAY_CONTROL, (_match, flag: string | undefined) => flag ?? '').replace(/\p{Cs}/gu, '\uFFFD');
}

/**
 * Whether JSON text may decode to a lone surrogate: only its `\uD800`-`\uDFFF` escapes can
 * (raw bytes that are not UTF-8 decode to U+FFFD). Lets a body without one skip the walk below.
 */
export function mayHoldSurrogateEscape(jsonText: string): boolean {
  return /\\u[dD][89abcdefABCDEF]/.test(jsonText);
}

/**
 * The first string (a value or an object key) in a parsed JSON value that is not well-formed,
 * as a path like `filter.groups[0].value`, or undefined. Iterative, so a deeply nested value
 * cannot overflow the stack, and each entry links to its parent instead of carrying a copy of
 * its path: copying made a value nested n deep cost n^2 (60,000 levels took 43 s); the path is
 * built once, for the string found.
 */
export function findMalformedText(value: unknown): (string | number)[] | undefined {
  type Entry = { value: unknown; step: string | number | undefined; parent: Entry | undefined };
  const pathOf = (entry: Entry): (string | number)[] => {
    const path: (string | number)[] = [];
    for (let e: Entry | undefined = entry; e?.step !== undefined; e = e.parent) path.push(e.step);
    return path.reverse();
  };
  const stack: Entry[] = [{ value, step: undefined, parent: undefined }];
  while (stack.length > 0) {
    const entry = stack.pop()!;
    const v = entry.value;
    if (typeof v === 'string') {
      if (!isWellFormedText(v)) return pathOf(entry);
    } else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push({ value: v[i], step: i, parent: entry });
    } else if (v !== null && typeof v === 'object') {
      const entries = Object.entries(v as Record<string, unknown>);
      for (let i = entries.length - 1; i >= 0; i--) {
        const [key, child] = entries[i]!;
        // A bad key is reported at its parent: the key itself cannot be shown faithfully.
        if (!isWellFormedText(key)) return pathOf(entry);
        stack.push({ value: child, step: key, parent: entry });
      }
    }
  }
  return undefined;
}

/**
 * Where the value JSON.parse made of `text` holds a lone surrogate (which only a `\ud800`-style
 * escape can produce, as raw bytes are decoded strictly): the path of the string, `[]` for a
 * top-level key; undefined when it holds none. No UTF-8 encodes a lone surrogate, so it is not
 * text. The one check for API bodies and the operator commands' NDJSON lines.
 */
export function loneSurrogatePath(text: string, parsed: unknown): (string | number)[] | undefined {
  return mayHoldSurrogateEscape(text) ? findMalformedText(parsed) : undefined;
}
