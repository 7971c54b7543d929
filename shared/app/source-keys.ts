/**
 * Key layout of the source tables, shared by the seeder, the chunk reads and the CDK stack.
 *
 * CASES_TABLE: pk = `${channelId}#${YYYY-MM-DD}` (UTC day of the case's creation time),
 *              sk = `${createdAt as ISO-8601 UTC with ms}#${caseId}`. A day is one Query, and
 *              sk order is creation-time order, so the cases sheet is ordered by
 *              (userChatCaseCreatedAt, userChatCaseId) when chunks are concatenated day by day;
 *              ids within one instant compare by UTF-8 bytes (compareKeyStrings), not JS `<`.
 * USERS_TABLE: pk = `${channelId}#${shard}` (shard = FNV-1a(userId) mod USER_SHARDS, 2 digits),
 *              sk = userId. Shards are read in parallel, one chunk each, so the documented
 *              global order of contacts exports is (shard, userId as UTF-8 bytes): use
 *              compareUsersInExportOrder.
 *              A hash (not an id prefix) spreads users evenly whatever the id format is.
 * WORKSPACE_TABLE: pk = channelId, sk = `SETTINGS`, `PROFILE_SCHEMA#users`,
 *              `PROFILE_SCHEMA#chats`, `DIRECTORY` (teams and managers), `SEGMENT#${id}`
 *              (workspaceSk in workspace-context.ts).
 */
export const USER_SHARDS = 16;

export function caseDayOf(createdAt: Date | string | number): string {
  return new Date(createdAt).toISOString().slice(0, 10);
}

export function caseKey(channelId: string, caseId: string, createdAt: Date | string | number): { pk: string; sk: string } {
  const iso = new Date(createdAt).toISOString();
  return { pk: `${channelId}#${iso.slice(0, 10)}`, sk: `${iso}#${caseId}` };
}

export function casePk(channelId: string, day: string): string {
  return `${channelId}#${day}`;
}

function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
}

export function userShardOf(userId: string): number {
  return fnv1a(userId) % USER_SHARDS;
}

export function userPk(channelId: string, shard: number): string {
  return `${channelId}#${String(shard).padStart(2, '0')}`;
}

export function userKey(channelId: string, userId: string): { pk: string; sk: string } {
  return { pk: userPk(channelId, userShardOf(userId)), sk: userId };
}

/**
 * Orders strings the way DynamoDB orders string sort keys: by their UTF-8 bytes, which is
 * code point order. JS `<` compares UTF-16 code units instead, and the two disagree only when
 * the first differing unit is a surrogate (U+D800-U+DFFF, part of a code point above U+FFFF)
 * on one side and a unit in U+E000-U+FFFF on the other: UTF-16 puts the surrogate first,
 * UTF-8 puts it last (`'u-\u{1F600}' < 'u-\uFF21'` in JS, but not in DynamoDB). So compare code
 * units and remap just that range, with no allocation. Assumes well-formed UTF-16 (a lone
 * surrogate has no UTF-8 encoding; it still gets a consistent, total order here).
 */
export function compareKeyStrings(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const ca = a.charCodeAt(i);
    const cb = b.charCodeAt(i);
    if (ca === cb) continue;
    return codePointRank(ca) - codePointRank(cb);
  }
  return a.length - b.length;
}

/** Code unit remapped so that surrogates sort above U+E000-U+FFFF (code point order). */
function codePointRank(unit: number): number {
  if (unit < 0xd800) return unit;
  return unit >= 0xe000 ? unit - 0x800 : unit + 0x2000;
}

/**
 * The documented row order of the "User data" sheet (contacts exports and the cases' users):
 * shard, then userId in sort-key (UTF-8 byte) order, i.e. the order the shard Queries return.
 */
export function compareUsersInExportOrder(a: string, b: string): number {
  const sa = userShardOf(a);
  const sb = userShardOf(b);
  if (sa !== sb) return sa - sb;
  return compareKeyStrings(a, b);
}

/** UTC days (YYYY-MM-DD) touched by the half-open instant range [from, to). */
export function daysInRange(from: Date, to: Date): string[] {
  const days: string[] = [];
  if (to.getTime() <= from.getTime()) return days;
  const cursor = new Date(Date.UTC(from.getUTCFullYear(), from.getUTCMonth(), from.getUTCDate()));
  while (cursor.getTime() < to.getTime()) {
    days.push(cursor.toISOString().slice(0, 10));
    cursor.setUTCDate(cursor.getUTCDate() + 1);
  }
  return days;
}
