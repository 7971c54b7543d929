/**
 * Checks on JSON text that JSON.parse does not make: how deep it nests, and whether an object
 * gives a key twice (JSON.parse keeps the last value and the first vanishes without a word, so
 * `{"kind":"cases","kind":"contacts"}` would export contacts, and a proxy or client that reads
 * the first value would see another request than the one served); and, for the operator
 * commands' NDJSON lines, an object's top-level members in the order written. All but
 * scanJsonBeforeParse (and its depth-only view) run on text JSON.parse has already accepted, so
 * only strings (which may hold any punctuation) need telling apart from structure.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;

/**
 * The index of the quote closing the JSON string that opens at `start` (a `"`): the first quote
 * after it preceded by an even run of backslashes. Throws on an unterminated string, which a
 * text JSON.parse accepted cannot hold (without the throw, -1 would restart a scan at 0).
 */
export function jsonStringEnd(text: string, start: number): number {
  let i = start;
  for (;;) {
    i = text.indexOf('"', i + 1);
    if (i === -1) throw new Error('unterminated string in a JSON text');
    let b = i - 1;
    while (text.charCodeAt(b) === BACKSLASH) b--;
    if ((i - 1 - b) % 2 === 0) return i;
  }
}

/** The decoded value of the JSON string token text[start..end] (quotes included). */
function decodeJsonString(text: string, start: number, end: number): string {
  const raw = text.slice(start + 1, end);
  // Escapes (\", \u0041…) are decoded by JSON itself, from the quoted token.
  return raw.includes('\\') ? (JSON.parse(text.slice(start, end + 1)) as string) : raw;
}

export type JsonStructureProblem =
  /** `path` is where the text first goes deeper than allowed (its first `maxDepth + 1` steps). */
  | { rule: 'max-depth'; path: (string | number)[] }
  /** `path` names the key given twice, inside its object. */
  | { rule: 'duplicate-key'; path: (string | number)[] };

type Frame = { object: boolean; keys: Set<string> | undefined; key: string | number; expectKey: boolean };

/**
 * The first structural problem of `text` (valid JSON): nesting deeper than `maxDepth` containers,
 * or an object giving a key twice; undefined when it has neither. One pass over the text,
 * stopping at the first problem, so a hostile body costs no more than reading it: the path is
 * built only then, from the open containers (no copy per level).
 */
export function findJsonStructureProblem(text: string, maxDepth: number): JsonStructureProblem | undefined {
  const found = scanStructure(text, maxDepth, { keys: true, lenient: false });
  return found.tooDeep ?? found.repeatedKey;
}

/** Only the depth rule of scanJsonBeforeParse: for text JSON.parse has not seen yet. */
export function findJsonDepthProblem(text: string, maxDepth: number): JsonStructureProblem | undefined {
  return scanStructure(text, maxDepth, { keys: false, lenient: true }).tooDeep;
}

/**
 * Both rules in one pass over text JSON.parse has not seen yet (the API's body): a body nested a
 * million deep is refused after reading 33 levels of it, never parsed; a key given twice is
 * recorded and the scan goes on (a level too deep later still stops it), so the caller reports
 * the repeat only once JSON.parse has accepted the text and malformed text is told it is
 * malformed. Malformed text is no error here: a string left open ends the scan.
 */
export function scanJsonBeforeParse(text: string, maxDepth: number): { tooDeep?: JsonStructureProblem; repeatedKey?: JsonStructureProblem } {
  return scanStructure(text, maxDepth, { keys: true, lenient: true });
}

/**
 * `keys`: look for a key given twice. `lenient`: the text may be malformed (keys decoded as far
 * as they can be, an open string ends the scan), and a repeated key does not stop it.
 */
function scanStructure(
  text: string,
  maxDepth: number,
  mode: { keys: boolean; lenient: boolean },
): { tooDeep?: JsonStructureProblem; repeatedKey?: JsonStructureProblem } {
  let repeatedKey: JsonStructureProblem | undefined;
  const found = () => (repeatedKey ? { repeatedKey } : {});
  // Each open container, outermost first; its `key` is the step to the child being read.
  const frames: Frame[] = [];
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const ch = text.charCodeAt(i);
    if (ch === QUOTE) {
      let end: number;
      try {
        end = jsonStringEnd(text, i);
      } catch (error) {
        if (!mode.lenient) throw error;
        return found();
      }
      const top = frames[frames.length - 1];
      if (top?.object && top.expectKey) {
        const key = mode.lenient ? decodeKeyLeniently(text, i, end) : decodeJsonString(text, i, end);
        if (top.keys) {
          if (top.keys.has(key) && !repeatedKey) {
            repeatedKey = { rule: 'duplicate-key', path: [...frames.slice(0, -1).map((f) => f.key), key] };
            if (!mode.lenient) return found();
          }
          top.keys.add(key);
        }
        top.expectKey = false;
        top.key = key;
      }
      i = end;
    } else if (ch === OPEN_BRACE || ch === OPEN_BRACKET) {
      if (frames.length >= maxDepth) return { ...found(), tooDeep: { rule: 'max-depth', path: frames.map((f) => f.key) } };
      // An array's first child is at index 0; an object's key is set when it is read.
      frames.push(
        ch === OPEN_BRACE
          ? { object: true, keys: mode.keys ? new Set() : undefined, key: '', expectKey: true }
          : { object: false, keys: undefined, key: 0, expectKey: false },
      );
    } else if (ch === CLOSE_BRACE || ch === CLOSE_BRACKET) {
      frames.pop();
    } else if (ch === COMMA) {
      const top = frames[frames.length - 1];
      if (top?.object) top.expectKey = true;
      else if (top) top.key = (top.key as number) + 1;
    }
  }
  return found();
}

/** A key of text not yet known to be JSON: decoded when it can be, else as written between its quotes. */
function decodeKeyLeniently(text: string, start: number, end: number): string {
  try {
    return decodeJsonString(text, start, end);
  } catch {
    return text.slice(start + 1, end);
  }
}

/**
 * Counts the members of the JSON object in `text` (duplicates included, which JSON.parse
 * collapses) and, given `keys`, appends their keys in the order written. The order must come
 * from the text: Object.keys puts integer-like keys ("10", "2024") first. JSON.parse has already
 * accepted the text, so only strings (skipped whole: they may hold braces, colons and escaped
 * quotes) need telling apart from structure; a member is a `:` at depth 1, its key the string
 * just before it. Strings are skipped with indexOf, so the cost is mostly the punctuation.
 */
export function scanTopLevelMembers(text: string, keys?: string[]): number {
  let depth = 0;
  let members = 0;
  let lastStart = 0; // the last string seen at depth 1: the key when a `:` follows
  let lastEnd = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const ch = text.charCodeAt(i);
    if (ch === QUOTE) {
      const start = i;
      i = jsonStringEnd(text, i);
      lastStart = start;
      lastEnd = i;
    } else if (ch === COLON) {
      if (depth === 1) {
        members++;
        if (keys) keys.push(decodeJsonString(text, lastStart, lastEnd));
      }
    } else if (ch === OPEN_BRACE || ch === OPEN_BRACKET) depth++;
    else if (ch === CLOSE_BRACE || ch === CLOSE_BRACKET) depth--;
  }
  return members;
}
