/**
 * Key layout of the source tables, shared by the seeder, the chunk reads and the CDK stack.
 *
 * CASES_TABLE: pk = `${channelId}#${YYYY-MM-DD}` (UTC day of the case's creation time),
 *              sk = `${createdAt as ISO-8601 UTC with ms}#${caseId}`. A day is one Query, and
 *              sk order is creation-time order, so the cases sheet is ordered by
 *              (userChatCaseCreatedAt, userChatCaseId) when chunks are concatenated day by day.
 * USERS_TABLE: pk = `${channelId}#${shard}` (shard = FNV-1a(userId) mod USER_SHARDS, 2 digits),
 *              sk = userId. Shards are read in parallel, one chunk each, so the documented
 *              global order of contacts exports is (shard, userId): use compareUsersInExportOrder.
 *              A hash (not an id prefix) spreads users evenly whatever the id format is.
 * WORKSPACE_TABLE: pk = channelId, sk = `SETTINGS`, `PROFILE_SCHEMA`, `SEGMENT#${id}`,
 *              `TEAM#${id}`, `MANAGER#${id}`.
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

/** The documented row order of the "User data" sheet (contacts exports and the cases' users). */
export function compareUsersInExportOrder(a: string, b: string): number {
  const sa = userShardOf(a);
  const sb = userShardOf(b);
  if (sa !== sb) return sa - sb;
  return a < b ? -1 : a > b ? 1 : 0;
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
