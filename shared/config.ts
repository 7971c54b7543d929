import { z } from 'zod';
import { DEFAULT_CLAIM_WAIT_MS } from './ports/export-store';
import { TOKEN_LIFETIME_BOUNDS_SECONDS } from './auth/token-lifetime';
import { MAX_SHEET_DATA_ROWS } from './xlsx/types';

/**
 * Environment every Lambda (and the local stack) reads once at cold start. A missing or bad
 * variable fails at start-up with its name, never later in the middle of an export.
 * Secrets: on AWS the *_ARN variables name Secrets Manager entries (resolved by the adapter);
 * the plain variables are for the local stack only.
 */
const NUMBER_TEXT = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

/**
 * A numeric setting given as text (an environment variable, a `cdk -c` value) or as a number
 * (cdk.json). Not z.coerce.number(): it reads '' and ' ' as 0, '0x10' as 16 and 'Infinity' as
 * Infinity, so an empty variable would quietly become 0 (a 0-minute cooldown turns rule C8 off).
 */
export function intSetting(min: number, max: number) {
  // One message for every refusal, the rule included: zod applies a schema's `error` to each of
  // its checks, so `MAX_ROWS=2000000` was told "must be a number".
  const rule = max === Number.MAX_SAFE_INTEGER ? `must be a whole number, at least ${min}` : `must be a whole number from ${min} to ${max}`;
  return z.preprocess(
    (value) => (typeof value === 'string' && NUMBER_TEXT.test(value.trim()) ? Number(value) : value),
    z.number({ error: rule }).int().min(min).max(max),
  );
}

export function positiveIntSetting(max = Number.MAX_SAFE_INTEGER) {
  return intSetting(1, max);
}

/** C8's window in whole minutes, for the api's env and the CDK context alike; 0 turns it off. */
export const cooldownMinutesSetting = intSetting(0, 24 * 60);

/** JWT_MAX_LIFETIME_SECONDS, for the api's and the authorizer's env, the CDK context and the token CLI alike. */
export const tokenLifetimeSetting = intSetting(TOKEN_LIFETIME_BOUNDS_SECONDS.min, TOKEN_LIFETIME_BOUNDS_SECONDS.max);

/**
 * LINK_TTL_DAYS and the CDK's linkTtlDays: 1-30 days. The code after it assumes that window (the
 * bot's and the 410's "links work for N days", the `exports/` lifecycle of N + 1 days); a longer
 * one keeps a file the link has long stopped reaching, and a leaked link useful for months.
 */
export const linkTtlDaysSetting = intSetting(1, 30);

/**
 * MAX_ROWS: 1 to 1,048,575, the data rows one sheet holds below its header (MAX_SHEET_DATA_ROWS).
 * A larger value let an export of more rows than that run to the finalizer, whose workbook
 * refuses the sheet (shared/xlsx/workbook.ts), instead of failing with TOO_MANY_ROWS; and the
 * api's policy, which allows no more either, had to clamp it.
 */
export const maxRowsSetting = intSetting(1, MAX_SHEET_DATA_ROWS);

const positiveInt = positiveIntSetting();

export const configSchema = z.object({
  AWS_REGION: z.string().default('us-east-1'),
  EXPORTS_TABLE: z.string().min(1),
  COOLDOWNS_TABLE: z.string().min(1).default('cooldowns'),
  AUDIT_TABLE: z.string().min(1).default('audit'),
  CASES_TABLE: z.string().min(1),
  USERS_TABLE: z.string().min(1),
  WORKSPACE_TABLE: z.string().min(1),
  EXPORT_BUCKET: z.string().min(1),
  CHUNK_QUEUE_URL: z.string().min(1),
  FINALIZE_QUEUE_URL: z.string().min(1),
  NOTIFY_QUEUE_URL: z.string().min(1),
  KMS_KEY_ID: z.string().min(1),
  /** base64 of 32 bytes; required when KMS_KEY_ID is `local`. */
  LOCAL_WRAP_KEY: z.string().optional(),
  PUBLIC_BASE_URL: z.string().url(),
  BOT_WEBHOOK_URL: z.string().url().optional(),
  BOT_SIGNING_SECRET: z.string().optional(),
  BOT_SIGNING_SECRET_ARN: z.string().optional(),
  LINK_SIGNING_SECRET: z.string().optional(),
  LINK_SIGNING_SECRET_ARN: z.string().optional(),
  LINK_TTL_DAYS: linkTtlDaysSetting.default(7),
  /**
   * Days an export's job and link-token items stay in EXPORTS_TABLE (DynamoDB TTL) after the job
   * was created / the link expired. Until then a late use of the link is a 410 with an audited
   * attempt; after it, a 404. The audit trail (AUDIT_TABLE) keeps everything regardless.
   */
  EXPORT_RECORD_RETENTION_DAYS: positiveInt.default(400),
  /** Size rule: more matching rows than this fails the export (tests lower it); see maxRowsSetting. */
  MAX_ROWS: maxRowsSetting.default(1_000_000),
  // No USER_SHARDS: the shard count is part of the users table's key layout (source-keys.ts), a
  // constant, not a setting (a deployment that changed it would read the wrong partitions).
  SELECTION_BATCH: positiveInt.default(2000),
  /**
   * First retry delay of a failed SQS record, doubled per receive (capped at 15 min). Without it a
   * failed chunk would wait out the whole visibility timeout (6x the function timeout: 90 min).
   */
  RETRY_BASE_SECONDS: positiveInt.default(30),
  /**
   * How long a chunk delivery that finds the next step (users phase, finalize) claimed waits for
   * its holder before handing over to a retry. Keep it well under the chunk queue's visibility
   * timeout: a delivery still waiting when that runs out is received again, and every receive
   * counts toward the dead-letter limit.
   */
  CLAIM_WAIT_MS: positiveInt.default(DEFAULT_CLAIM_WAIT_MS),
  /** The notifier's POST attempts per delivery, and the first pause between them (doubled). */
  NOTIFY_ATTEMPTS: positiveIntSetting(10).default(3),
  NOTIFY_BACKOFF_MS: intSetting(0, 10_000).default(250),
  /** Endpoints of the local emulators; unset on AWS. */
  DYNAMODB_ENDPOINT: z.string().url().optional(),
  S3_ENDPOINT: z.string().url().optional(),
  SQS_ENDPOINT: z.string().url().optional(),
});
export type Config = z.infer<typeof configSchema>;

/** How long one POST to the bot may take before it is given up (http-bot-webhook.ts). */
export const BOT_POST_TIMEOUT_MS = 10_000;
/**
 * What one notify delivery may spend on its attempts: well under the notifier's 60 s timeout
 * (infra FUNCTION_SIZING; a stack test holds the two together), which must also cover the
 * job's reads and writes. A delivery cut off by the timeout fails as a whole and waits out
 * the queue's visibility timeout instead of the retry delay it would have set.
 */
export const NOTIFY_DELIVERY_BUDGET_MS = 45_000;

/** The longest a delivery's attempts can take: every POST timing out, with the pauses between them. */
export function notifyDeliveryWorstMs(attempts: number, backoffMs: number): number {
  return attempts * BOT_POST_TIMEOUT_MS + backoffMs * (2 ** (attempts - 1) - 1);
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export function parseConfig(env: Record<string, string | undefined>): Config {
  const result = configSchema.safeParse(env);
  if (!result.success) {
    const issues = result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new ConfigError(`invalid environment: ${issues}`);
  }
  const config = result.data;
  if (config.KMS_KEY_ID === 'local' && !config.LOCAL_WRAP_KEY) {
    throw new ConfigError('invalid environment: LOCAL_WRAP_KEY: required when KMS_KEY_ID is "local"');
  }
  if (!config.LINK_SIGNING_SECRET && !config.LINK_SIGNING_SECRET_ARN) {
    throw new ConfigError('invalid environment: LINK_SIGNING_SECRET or LINK_SIGNING_SECRET_ARN: one is required');
  }
  const notifyWorstMs = notifyDeliveryWorstMs(config.NOTIFY_ATTEMPTS, config.NOTIFY_BACKOFF_MS);
  if (notifyWorstMs > NOTIFY_DELIVERY_BUDGET_MS) {
    throw new ConfigError(
      `invalid environment: NOTIFY_ATTEMPTS and NOTIFY_BACKOFF_MS: together they may take ${Math.ceil(notifyWorstMs / 1000)} s (each POST up to ${BOT_POST_TIMEOUT_MS / 1000} s, the pauses doubling), over the ${NOTIFY_DELIVERY_BUDGET_MS / 1000} s a delivery may take`,
    );
  }
  return config;
}

/**
 * Settings parsed from `process.env` once per process (a cold start) and kept: `reset()` is for
 * tests and a local stack that change the environment and want it read again.
 */
export function onceFromEnv<T>(parse: (env: Record<string, string | undefined>) => T): { get(): T; reset(): void } {
  let cached: { value: T } | undefined;
  return {
    get() {
      cached ??= { value: parse(process.env) };
      return cached.value;
    },
    reset() {
      cached = undefined;
    },
  };
}

const config = onceFromEnv(parseConfig);

/** Read once per process (cold start); resetConfig() is for tests that change the env. */
export function getConfig(): Config {
  return config.get();
}

export function resetConfig(): void {
  config.reset();
}
