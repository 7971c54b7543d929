/**
 * Names the functions publish metrics under and the alarms read them by: a mismatch leaves an
 * alarm watching a metric nobody emits, so both sides import them from here. No imports, so the
 * CDK app can use it without pulling in runtime code.
 */
export const METRICS_NAMESPACE = 'ExportService';
export const SERVICE_NAME = 'export-service';
/** Records an SQS handler failed in one batch (partial batch failures leave the function's Errors at 0). */
export const RECORD_FAILURES_METRIC = 'recordFailures';
/**
 * Bot events the bot refused for good (a 4xx other than 408/429): nothing retries them, so the
 * managers of those exports are never told. One is worth a look (a rotated signing secret, a
 * moved webhook refuses every event from then on).
 */
export const BOT_REFUSALS_METRIC = 'botNotificationsRefused';
/**
 * Dead letters the DLQ consumer handled, by `message` (the message's type: chunk, finalize, notify,
 * revoke, cancel, or `unreadable`) and `outcome` (handleDeadLetter's answer).
 */
export const DEAD_LETTERS_METRIC = 'deadLetters';
/**
 * Batches a pipeline function refused whole for a missing or bad setting (the `invalid
 * configuration` line): every record fails until the setting is fixed, and only the finalizer and
 * the dlq function had an alarm on their record failures. Alarmed for every pipeline function.
 */
export const CONFIG_ERRORS_METRIC = 'invalidConfiguration';
/** The pipeline functions' names as their handlers publish them (the `function` dimension). */
export const PIPELINE_FUNCTION_METRIC_NAMES = ['chunk', 'finalizer', 'notifier', 'dlq'] as const;
/** Exports a chunk or the finalizer failed, whatever the code (a user's too many rows included). */
export const EXPORT_FAILURES_METRIC = 'exportFailures';
/**
 * Exports failed by a code that means the service, not the request, went wrong: a part that does
 * not match its meta, encryption parameters that do not open, the job's data expired before it
 * was finished. These fail at once, without retries or a dead letter, so no other alarm sees them.
 */
export const INTERNAL_FAILURES_METRIC = 'exportFailuresInternal';
export const INTERNAL_FAILURE_CODES: readonly string[] = ['PART_MISMATCH', 'ENCRYPTION_PARAMS_INVALID', 'EXPORT_DATA_EXPIRED'];
/**
 * The api's best-effort clean-ups that failed (a cancel or revoke follow-up not sent, a canceled or
 * revoked export's file or parts not deleted): the api publishes no metrics of its own, so a log
 * metric filter counts its WARN lines by these message patterns (CloudWatch Logs globs).
 */
export const API_CLEANUP_FAILURES_METRIC = 'apiCleanupFailures';
export const API_CLEANUP_FAILURE_MESSAGES: readonly string[] = ['*follow-up not sent*', '*export not deleted*'];
