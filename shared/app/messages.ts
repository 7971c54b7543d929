import { z } from 'zod';
import { sheetKeySchema } from './export-job';

/**
 * Queue message bodies. They carry ids, ranges and S3 keys only: never source data, never a
 * password, token or key (a queue message is readable by anyone who can read the queue).
 */
const ids = { exportId: z.string().min(1), channelId: z.string().min(1) };

export const chunkSourceSchema = z.discriminatedUnion('type', [
  /** Cases of one UTC day bucket whose start instant is in [fromIso, toIso). */
  z.object({ type: z.literal('caseDay'), day: z.iso.date(), fromIso: z.iso.datetime(), toIso: z.iso.datetime() }),
  /** Every user of one key-range slice of USERS_TABLE. */
  z.object({ type: z.literal('userShard'), shard: z.int().min(0) }),
  /** Users by id: the ids live in S3 (selections can be 1,000,000 ids; a message is at most 256 KB). */
  z.object({ type: z.literal('userIdsObject'), key: z.string().min(1) }),
  /** A handful of ids inline (scope "user"). */
  z.object({ type: z.literal('userIds'), ids: z.array(z.string().min(1)).min(1).max(100) }),
]);
export type ChunkSource = z.infer<typeof chunkSourceSchema>;

export const chunkMessageSchema = z.object({
  type: z.literal('chunk'),
  ...ids,
  /** Unique within the export; the completed-chunk set holds these. */
  chunkId: z.string().min(1),
  sheet: sheetKeySchema,
  /** Position of the part in its sheet: parts are concatenated in this order. */
  index: z.int().min(0),
  source: chunkSourceSchema,
});
export type ChunkMessage = z.infer<typeof chunkMessageSchema>;

export const finalizeMessageSchema = z.object({ type: z.literal('finalize'), ...ids });
export type FinalizeMessage = z.infer<typeof finalizeMessageSchema>;

/**
 * Seconds a follow-up message (revoke, cancel) waits in the queue before it can be received:
 * longer than any API request may take (API Gateway ends a request at 29 s; the api function's
 * timeout is 28 s), so it is read after the request that sent it has ended, whether its
 * transition committed or not. Two minutes leave room for a slow cold start.
 */
export const FOLLOW_UP_DELAY_SECONDS = 120;

/**
 * What a revocation owes after its transition (the audit events, the file and parts/ deleted),
 * sent by the API before the transition and delivered late (FOLLOW_UP_DELAY_SECONDS), when the
 * request that sent it has ended one way or the other: a revocation whose request died or failed
 * after the transition is finished by this message, not only by a client's retry. On the
 * finalize queue: the finalizer already deletes files and parts and appends audit events.
 */
export const revokeMessageSchema = z.object({ type: z.literal('revoke'), ...ids });
export type RevokeMessage = z.infer<typeof revokeMessageSchema>;

/**
 * The same for a cancel (parts/ swept, the `canceled` audit event, the cooldown back): the
 * pipeline's later steps finish a cancel they meet, but an export canceled before any chunk was
 * sent, or after the last step that would meet it, has none left.
 */
export const cancelMessageSchema = z.object({ type: z.literal('cancel'), ...ids });
export type CancelMessage = z.infer<typeof cancelMessageSchema>;

/** A follow-up message, as the API sends them. */
export type FollowUpMessage = RevokeMessage | CancelMessage;

/** What the finalize queue carries. */
export const finalizeQueueMessageSchema = z.discriminatedUnion('type', [finalizeMessageSchema, revokeMessageSchema, cancelMessageSchema]);

export const notifyMessageSchema = z.object({
  type: z.literal('notify'),
  ...ids,
  event: z.enum(['export.completed', 'export.failed']),
});
export type NotifyMessage = z.infer<typeof notifyMessageSchema>;

export const pipelineMessageSchema = z.discriminatedUnion('type', [chunkMessageSchema, finalizeMessageSchema, notifyMessageSchema, revokeMessageSchema, cancelMessageSchema]);
export type PipelineMessage = z.infer<typeof pipelineMessageSchema>;

/** Deterministic S3 keys: a chunk that runs twice overwrites its own part with the same bytes. */
export const objectKeys = {
  partsPrefix: (exportId: string) => `parts/${exportId}/`,
  part: (exportId: string, sheet: string, index: number) => `parts/${exportId}/${sheet}/${String(index).padStart(6, '0')}`,
  partMeta: (exportId: string, sheet: string, index: number) => `parts/${exportId}/${sheet}/${String(index).padStart(6, '0')}.meta.json`,
  caseRefs: (exportId: string, index: number) => `parts/${exportId}/refs/${String(index).padStart(6, '0')}.json`,
  /** The CRC-32 of each case chunk's refs the users phase was planned from (see StoredPartMeta.refsCrc32). */
  refsPlan: (exportId: string) => `parts/${exportId}/refs/planned.json`,
  userIdBatch: (exportId: string, name: string, index: number) => `parts/${exportId}/ids/${name}-${String(index).padStart(6, '0')}.json`,
  /**
   * A job definition too large for the job item. Named by its content's digest, not fixed: two
   * concurrent attempts of one request (an Idempotency-Key retry) that read different workspace
   * states write different objects, so the job that wins never reads the loser's.
   */
  definition: (exportId: string, sha256: string) => `parts/${exportId}/definition-${sha256}.json`,
  /** Where an export's file lives; the slash keeps `e1` from matching `e10`. */
  filePrefix: (channelId: string, exportId: string) => `exports/${channelId}/${exportId}/`,
  /**
   * One object per finalizer run (`runId` is random): two runs of one export (a duplicate
   * finalize message) may stitch different bytes, and with one shared key the loser's upload
   * could land last, so the stored file would not be the one whose sha256, size and row count
   * the job records. The completion records the winner's key (`objectKey`); the others go.
   */
  file: (channelId: string, exportId: string, runId: string, fileName: string) => `${objectKeys.filePrefix(channelId, exportId)}${runId}/${fileName}`,
};
