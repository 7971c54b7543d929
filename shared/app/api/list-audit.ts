import { z } from 'zod';
import { INPUT_ERRORS, requirePermission } from '../../domain';
import type { Principal } from '../../auth/principal';
import type { AuditEntry, DownloadsPage } from '../../ports/audit-log';
import { openCursor, pageLimitSchema, sealCursor } from './cursor';
import { invalidQuery } from './errors';
import type { ApiDeps } from './deps';
import { canonicalJson } from './hmac';
import { exportIdSchema, exportNotFound } from './read-exports';

/**
 * An audit entry as the API returns it. `links.downloads` is there when `downloads` lists fewer
 * uses than the link had: the endpoint that pages through every one of them, from the first.
 */
export type AuditEntryView = AuditEntry & { links?: { downloads: string } };
export type AuditPageView = { items: AuditEntryView[]; cursor?: string };

/**
 * A date (whole day, UTC) or a date-time with offset, whose UTC instant has a four-digit year:
 * the trail's keys are ISO text, and `9999-12-31T23:59:59-12:00` (year 10000 in UTC) would sort
 * before every key and make an empty, or for DynamoDB an invalid, range.
 */
const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/;
const isoDateTime = z.iso.datetime({ offset: true });
const isoDate = z.iso.date();
/**
 * RFC 3339 (5.6) lets `T` and `Z` be written in lower case, as the filter's date-times take them
 * (docs/domain.md); z.iso.datetime takes upper case only, so they are upper-cased first. Only
 * those two letters: anything else keeps its case and is judged as sent.
 */
function upperCaseTAndZ(value: string): string {
  const match = /^(\d{4}-\d{2}-\d{2})[tT](.*?)([zZ]?)$/.exec(value);
  return match ? `${match[1]}T${match[2]}${match[3]?.toUpperCase() ?? ''}` : value;
}

const instant = z
  .string()
  .overwrite(upperCaseTAndZ)
  // One check with one message and rule `format` (a union of the two said "Invalid input", and
  // its rule read `one-of`). The two usual mistakes are a date-time without an offset and an
  // unencoded `+`, which a query string turns into a space; a date written right but naming no
  // day (2026-02-30) is told that instead.
  .refine((value) => isoDateTime.safeParse(value).success || isoDate.safeParse(value).success, {
    error: (issue) =>
      typeof issue.input === 'string' && DATE_ONLY.test(issue.input)
        ? 'must be a date that exists (YYYY-MM-DD: 2026-02-30 has no day)'
        : 'must be a date (2026-03-01) or an ISO-8601 date-time with an offset (2026-03-01T09:00:00+09:00 or 2026-03-01T00:00:00Z); in a URL send "+" as %2B',
    params: { rule: 'format' },
    abort: true,
  })
  .refine((value) => /^\d{4}-/.test(toInstant(value, 'start')) && /^\d{4}-/.test(toInstant(value, 'end')), {
    message: 'must fall between the years 0000 and 9999 in UTC',
    params: { rule: 'year-range' },
  });

/** Paging of both audit reads: their limits and cursors follow one rule. */
const auditPageFields = {
  // Any text: openCursor tells an empty, over-long or altered one INVALID_CURSOR, as every bad cursor.
  cursor: z.string().optional(),
  limit: pageLimitSchema(50),
};

export const listAuditQuerySchema = z
  .strictObject({
    from: instant.optional(),
    to: instant.optional(),
    managerId: z.string().min(1, 'must not be empty').max(200, 'must be at most 200 characters').optional(),
    kind: z.enum(['cases', 'contacts'], { error: 'must be cases or contacts' }).optional(),
    ...auditPageFields,
  })
  .refine((q) => !q.from || !q.to || toInstant(q.from, 'start') <= toInstant(q.to, 'end'), {
    message: 'must not be before from',
    path: ['to'],
    params: { rule: 'window-order' },
  });

/**
 * The window's edge as the trail's times are written (UTC, milliseconds). A date is the whole
 * UTC day. A date-time finer than a millisecond is rounded inwards: `from` up, `to` down
 * (Date keeps milliseconds only and cut both down, so `from=…01.5629Z` took in an entry at
 * `…01.562Z`, before it, and `from=…5625Z&to=…5621Z` passed as a window).
 */
function toInstant(value: string, edge: 'start' | 'end'): string {
  if (DATE_ONLY.test(value)) return edge === 'start' ? `${value}T00:00:00.000Z` : `${value}T23:59:59.999Z`;
  const ms = Date.parse(value);
  const finer = /\.\d{3}(\d+)/.exec(value)?.[1];
  const up = edge === 'start' && finer !== undefined && /[1-9]/.test(finer) ? 1 : 0;
  return new Date(ms + up).toISOString();
}

/** GET /v1/audit: audit:read only, always the caller's own channel. */
export async function listAudit(deps: ApiDeps, principal: Principal, query: Record<string, string | undefined>): Promise<AuditPageView> {
  requirePermission(principal, 'audit:read');
  const parsed = listAuditQuerySchema.safeParse(query, INPUT_ERRORS);
  if (!parsed.success) throw invalidQuery(parsed.error);
  const q = parsed.data;
  const filters = {
    ...(q.from ? { from: toInstant(q.from, 'start') } : {}),
    ...(q.to ? { to: toInstant(q.to, 'end') } : {}),
    ...(q.managerId ? { managerId: q.managerId } : {}),
    ...(q.kind ? { kind: q.kind } : {}),
  };
  // The cursor is bound to the channel and to the query it pages through (not to the auditor:
  // auditors of one channel may hand each other a page).
  const scope = `audit\0${principal.channelId}\0${canonicalJson(filters)}`;
  const page = await deps.audit.query({
    channelId: principal.channelId,
    ...filters,
    ...(q.cursor !== undefined
      ? { cursor: openCursor(deps.hmacSecret, scope, q.cursor, 'this query (the same from, to, kind and managerId)') }
      : {}),
    limit: q.limit,
  });
  return {
    items: page.items.map((entry) => withDownloadsLink(deps, entry)),
    ...(page.cursor ? { cursor: sealCursor(deps.hmacSecret, scope, page.cursor) } : {}),
  };
}

/** The entry lists the most recent uses only; when it leaves some out, it says where they all are. */
function withDownloadsLink(deps: ApiDeps, entry: AuditEntry): AuditEntryView {
  if (entry.downloads.length >= entry.downloadCount && !entry.downloadCountCapped) return entry;
  return { ...entry, links: { downloads: `${deps.publicBaseUrl}/v1/audit/exports/${entry.exportId}/downloads` } };
}

export const listDownloadsQuerySchema = z.strictObject(auditPageFields);

/**
 * GET /v1/audit/exports/{exportId}/downloads: every use of an export's link, oldest first, for
 * audit:read holders of the export's channel. The audit entry lists only the most recent 100: a
 * link needs no bearer, so whoever holds a leaked one could otherwise push the first real
 * download out of view with 100 requests.
 */
export async function listExportDownloads(
  deps: ApiDeps,
  principal: Principal,
  exportId: string,
  query: Record<string, string | undefined>,
): Promise<DownloadsPage> {
  requirePermission(principal, 'audit:read');
  const parsed = listDownloadsQuerySchema.safeParse(query, INPUT_ERRORS);
  if (!parsed.success) throw invalidQuery(parsed.error);
  const q = parsed.data;
  // A malformed id cannot name an export: the same 404 as a missing one, and no table read.
  if (!exportIdSchema.safeParse(exportId).success) throw exportNotFound();
  // Bound to the channel and the export, as GET /v1/audit's cursor is to its query: another
  // export's cursor would start this export's read at a key outside it.
  const scope = `audit-downloads\0${principal.channelId}\0${exportId}`;
  const page = await deps.audit.listDownloads({
    channelId: principal.channelId,
    exportId,
    ...(q.cursor !== undefined ? { cursor: openCursor(deps.hmacSecret, scope, q.cursor, 'this export') } : {}),
    limit: q.limit,
  });
  // Another channel's export is as unknown as a missing one: existence is not disclosed.
  if (!page) throw exportNotFound();
  return { items: page.items, ...(page.cursor ? { cursor: sealCursor(deps.hmacSecret, scope, page.cursor) } : {}) };
}
