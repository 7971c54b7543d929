import { z } from 'zod';

/**
 * The audit trail: append-only. Every export has one `requested` event (who, when, what, why)
 * and later events appended as separate entries. No port method updates or deletes an entry.
 * The password never appears here: `filters` is the request minus the password.
 */
const base = {
  exportId: z.string().min(1),
  channelId: z.string().min(1),
  /** ISO-8601 UTC. */
  at: z.iso.datetime({ offset: true }),
};

/**
 * Where a person's request came from (shared/app/api/client.ts cuts and cleans both): on every
 * act done through the API, so an auditor can tell who requested, canceled or revoked from where,
 * as for a download. Absent on events from before they were recorded, and when unknown.
 */
const client = {
  ip: z.string().max(64).optional(),
  userAgent: z.string().optional(),
};

/**
 * One sheet of a completed file: its name, its data rows (the header aside), and its columns as
 * its header row names them. Contact columns follow the workspace's profile schema as it was at
 * the request, and the job that pinned it is kept 400 days, the trail for good: the names are
 * recorded here. The digest always (it identifies the list, however long); the names when the
 * file's lists fit MAX_AUDIT_COLUMNS_BYTES together, which every real schema does (Excel's 16,384
 * columns of long names would not fit an audit item).
 */
export const auditSheetSchema = z.object({
  name: z.string(),
  rowCount: z.number().int().nonnegative(),
  columnCount: z.number().int().nonnegative(),
  /** SHA-256 (hex) of the JSON array of the header row's texts, in order. */
  columnsSha256: z.string().regex(/^[0-9a-f]{64}$/),
  columns: z.array(z.string()).optional(),
});
export type AuditSheet = z.infer<typeof auditSheetSchema>;

/** The column names of all sheets together, as JSON, that an audit event carries at most. */
export const MAX_AUDIT_COLUMNS_BYTES = 64_000;

/** Why a use of the link was refused: the status that ended the link, or its window (`expired`). */
export const auditGoneCauseSchema = z.enum(['expired', 'revoked', 'canceled', 'failed']);
export type AuditGoneCause = z.infer<typeof auditGoneCauseSchema>;

export const auditRequestedEventSchema = z.object({
  ...base,
  type: z.literal('requested'),
  managerId: z.string().min(1),
  managerName: z.string(),
  kind: z.enum(['cases', 'contacts']),
  /** Contacts: all | filter | segment | query | selection | user; cases: 'range'. */
  scope: z.string(),
  /** The validated request without the password (filter JSON, query, segment, selection count). */
  filters: z.record(z.string(), z.unknown()),
  range: z.object({ from: z.string().optional(), to: z.string().optional(), timezone: z.string().optional() }).optional(),
  reason: z.string(),
  ...client,
});

export const auditCompletedEventSchema = z.object({
  ...base,
  type: z.literal('completed'),
  /** The main sheet's data rows (cases: the cases; contacts: the users); `sheets` has each one's. */
  rowCount: z.number().int().nonnegative(),
  sha256: z.string(),
  fileSize: z.number().int().nonnegative().optional(),
  fileName: z.string().optional(),
  /** Every sheet of the file, in order (absent on events from before it was recorded). */
  sheets: z.array(auditSheetSchema).optional(),
  /**
   * When the link stops working (LINK_TTL_DAYS after completion, configurable): with it an
   * auditor can tell an expired link from a live one without the job, which is not kept for good.
   */
  linkExpiresAt: z.iso.datetime({ offset: true }).optional(),
});

export const auditFailedEventSchema = z.object({
  ...base,
  type: z.literal('failed'),
  code: z.string(),
  message: z.string(),
});

export const auditCanceledEventSchema = z.object({
  ...base,
  type: z.literal('canceled'),
  /** Manager who canceled, when known. */
  managerId: z.string().optional(),
  /** Why, when the cancel said (its body's `reason` is optional). */
  reason: z.string().optional(),
  ...client,
});

/**
 * A completed export's link was withdrawn (POST /v1/exports/{id}/revoke): by whom (the requester
 * or an auditor of the channel) and why. Once per export, like `canceled`.
 */
export const auditRevokedEventSchema = z.object({
  ...base,
  type: z.literal('revoked'),
  managerId: z.string().min(1),
  reason: z.string(),
  ...client,
});

export const auditDownloadedEventSchema = z.object({
  ...base,
  type: z.literal('downloaded'),
  /** The manager when the download carried a valid bearer token; a bot link is often opened without one. */
  managerId: z.string().optional(),
  ...client,
  /** Whether the link was still valid (a 410 is recorded too: attempts after expiry are worth auditing). */
  outcome: z.enum(['redirected', 'gone']).default('redirected'),
  /** With `gone`: why the link no longer worked (absent on events from before it was recorded). */
  goneBecause: auditGoneCauseSchema.optional(),
});

/** The bot event a notification was about (the notify message's `event`). */
const notifyEventSchema = z.enum(['export.completed', 'export.failed']);

/**
 * Why the manager was not told: `HTTP {status}` when the bot refused the event for good, or
 * `dead-lettered` when every retry failed. Nothing else is accepted, so no URL, token, header or
 * bot answer (which could echo the signed event, link included) can reach the trail, kept for good.
 */
export const notifyFailureReasonSchema = z.union([z.literal('dead-lettered'), z.string().regex(/^HTTP [1-5]\d{2}$/)]);

/** The bot accepted the post: the manager was sent the message (and, when completed, the link). */
export const auditNotifiedEventSchema = z.object({
  ...base,
  type: z.literal('notified'),
  event: notifyEventSchema,
});

/** The bot refused the post for good, or it could not be reached through every retry. */
export const auditNotifyFailedEventSchema = z.object({
  ...base,
  type: z.literal('notify-failed'),
  event: notifyEventSchema,
  reason: notifyFailureReasonSchema,
});

export const auditEventSchema = z.discriminatedUnion('type', [
  auditRequestedEventSchema,
  auditCompletedEventSchema,
  auditFailedEventSchema,
  auditCanceledEventSchema,
  auditRevokedEventSchema,
  auditDownloadedEventSchema,
  auditNotifiedEventSchema,
  auditNotifyFailedEventSchema,
]);
export type AuditEvent = z.input<typeof auditEventSchema>;
export type StoredAuditEvent = z.infer<typeof auditEventSchema>;
export type AuditRequestedEvent = z.infer<typeof auditRequestedEventSchema>;
export type AuditDownloadedEvent = z.infer<typeof auditDownloadedEventSchema>;

/**
 * Whether the requester was told through the bot: `delivered` when it accepted the post,
 * `failed` (with `reason`, see notifyFailureReasonSchema) when it refused or could not be reached.
 * The same shape in the audit entry and the export view.
 */
export type NotificationOutcome = {
  status: 'delivered' | 'failed';
  at: string;
  event: 'export.completed' | 'export.failed';
  reason?: string;
};

/** One use of a download link as the auditor sees it. */
export type AuditDownload = {
  at: string;
  managerId?: string;
  ip?: string;
  userAgent?: string;
  outcome: 'redirected' | 'gone';
  goneBecause?: AuditGoneCause;
};

/** Where a person's act came from, when the trail recorded it (see `client` above). */
export type AuditClient = { ip?: string; userAgent?: string };

/** One export as the auditor sees it: the request plus everything that happened to it. */
export type AuditEntry = {
  exportId: string;
  channelId: string;
  /** The requester, and where the request came from when recorded (`ip`, `userAgent`). */
  requestedBy: { managerId: string; name: string } & AuditClient;
  requestedAt: string;
  kind: 'cases' | 'contacts';
  scope: string;
  filters: Record<string, unknown>;
  range?: { from?: string; to?: string; timezone?: string };
  reason: string;
  /**
   * Last known outcome from the trail: requested until a completed/failed/canceled event exists;
   * `revoked` once the trail holds a revocation (which outranks the completion it follows).
   */
  status: 'requested' | 'completed' | 'failed' | 'canceled' | 'revoked';
  rowCount?: number;
  sha256?: string;
  fileSize?: number;
  fileName?: string;
  /** Each sheet's name, rows and columns (see auditSheetSchema), when the trail recorded them. */
  sheets?: AuditSheet[];
  /** The `completed` event's time. */
  completedAt?: string;
  /**
   * When the link stops (or stopped) working, when recorded. A use after it shows as `gone` with
   * `goneBecause: expired`; `status` stays `completed` (the trail records acts, not the clock).
   */
  linkExpiresAt?: string;
  error?: { code: string; message: string };
  /** The `failed` event's time; present with `error` (a completion hides both, as it does the status). */
  failedAt?: string;
  /**
   * The `canceled` event's time and who canceled: present whenever the trail holds a cancel, so a
   * stopped export is never shown without its time and actor. `canceledBy` is absent for a
   * cancel recorded without a manager; the event stores no name, so unlike `requestedBy` it has
   * none.
   */
  canceledAt?: string;
  canceledBy?: { managerId: string } & AuditClient;
  /** Why the export was canceled, when the cancel said. */
  cancelReason?: string;
  /**
   * The `revoked` event's time, who revoked the link and why: present whenever the trail holds a
   * revocation. The file's facts (rowCount, sha256, fileSize, fileName, completedAt) stay: the
   * auditor must still be able to tell which file went out before the link was withdrawn.
   */
  revokedAt?: string;
  revokedBy?: { managerId: string } & AuditClient;
  revokeReason?: string;
  /**
   * Whether the bot told the requester: absent until the trail holds a `notified` or
   * `notify-failed` event. `delivered` wins when it holds both (a dead-lettered notification that
   * a later delivery got through): the manager was told in the end.
   */
  notification?: NotificationOutcome;
  /**
   * The most recent MAX_LISTED_DOWNLOADS uses of the link, oldest first. A link needs no bearer,
   * so whoever holds it can add uses without limit (refused ones after expiry too): listing them
   * all would let one link make its own audit entry too large to return. Every use, from the
   * first, is paged by AuditLog.listDownloads: without it, 100 requests with a leaked link would
   * push the first real download out of every auditor's view.
   */
  downloads: AuditDownload[];
  /**
   * Every use of the link, including those `downloads` leaves out; a lower bound when
   * `downloadCountCapped` is set.
   */
  downloadCount: number;
  /**
   * Set (only) when the link was used more often than the adapter counts per entry (10,000 uses
   * in DynamoDB): counting a flooded link's every use would make the audit page time out.
   */
  downloadCountCapped?: true;
};

export const MAX_LISTED_DOWNLOADS = 100;

export type AuditQuery = {
  channelId: string;
  /** Inclusive bounds on the request time (ISO-8601). */
  from?: string;
  to?: string;
  managerId?: string;
  kind?: 'cases' | 'contacts';
  /** Opaque, from a previous page. */
  cursor?: string;
  limit: number;
};

export type AuditPage = { items: AuditEntry[]; cursor?: string };

/** Every use of one export's link, oldest first, a page at a time. */
export type DownloadsQuery = {
  channelId: string;
  exportId: string;
  /** Opaque, from a previous page of the same export. */
  cursor?: string;
  limit: number;
};

/** `cursor` is absent on the last page. */
export type DownloadsPage = { items: AuditDownload[]; cursor?: string };

export interface AuditLog {
  /**
   * Appends one event. Idempotent for the once-per-export events (requested, completed, failed,
   * canceled, revoked, notified, notify-failed): appending the same one again (an SQS redelivery) is a
   * no-op, never an overwrite.
   */
  append(event: AuditEvent): Promise<void>;
  /** One entry per export, newest request first. */
  query(query: AuditQuery): Promise<AuditPage>;
  /**
   * The uses of one export's link, oldest first. Null when the trail holds no request of that
   * export in that channel (another channel's export is as unknown as a missing one).
   */
  listDownloads(query: DownloadsQuery): Promise<DownloadsPage | null>;
}
