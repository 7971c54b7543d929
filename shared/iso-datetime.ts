import { daysInMonth } from './zone-offset';

/**
 * ISO-8601 date-time text with an offset, checked field by field. Shared by the xlsx engine
 * (date cells, the operator command) and the domain's import parser, so both refuse the same
 * texts. It depends on shared/zone-offset.ts only: the engine imports nothing from the domain.
 */

// Strict on purpose: a date without an offset would be read in an unknown zone.
const ISO_WITH_OFFSET =
  /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})$/i;

/**
 * Epoch ms of ISO-8601 date-time text with an offset; undefined when the text is not of that
 * form, NaN when it is but names a date or time that does not exist. V8's Date.parse alone is
 * not enough: it takes days 29-31 in any month and rolls them into the next one (2023-02-29 is
 * read as 2023-03-01), so every calendar field is checked here first. 24:00 (with nothing
 * after it but zeros) is the end of the day, as ISO 8601 and ECMAScript define it; offsets may
 * be up to ±23:59, as RFC 3339 writes them; a leap second (:60) has no JavaScript time.
 */
export function parseIsoWithOffset(text: string): number | undefined {
  if (!ISO_WITH_OFFSET.test(text)) return undefined;
  return isRealDateTime(text) ? Date.parse(text) : Number.NaN;
}

/** Two ASCII digits at i (the regex has already checked they are digits). */
function twoDigits(s: string, i: number): number {
  return (s.charCodeAt(i) - 48) * 10 + (s.charCodeAt(i + 1) - 48);
}

/** For text ISO_WITH_OFFSET matches: fixed positions up to the minutes, the offset from the end. */
function isRealDateTime(s: string): boolean {
  const year = twoDigits(s, 0) * 100 + twoDigits(s, 2);
  const month = twoDigits(s, 5);
  const day = twoDigits(s, 8);
  const hour = twoDigits(s, 11);
  const minute = twoDigits(s, 14);
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return false;
  if (minute > 59) return false;
  const len = s.length;
  const last = s.charCodeAt(len - 1);
  let end = len; // where the offset starts
  if (last === 0x5a || last === 0x7a) end = len - 1; // Z or z
  else {
    const colon = s.charCodeAt(len - 3) === 0x3a;
    end = colon ? len - 6 : len - 5;
    if (twoDigits(s, end + 1) > 23 || twoDigits(s, len - 2) > 59) return false;
  }
  if (end > 16 && twoDigits(s, 17) > 59) return false; // seconds
  if (hour === 24) return /^24:00(?::00(?:\.0+)?)?$/.test(s.slice(11, end));
  return hour <= 23;
}
