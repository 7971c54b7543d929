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
