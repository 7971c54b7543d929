import { createHmac, randomBytes } from 'node:crypto';
import { Logger } from '@aws-lambda-powertools/logger';
import { createTokenVerifier, DEFAULT_DEV_SECRET, DEV_AUDIENCE, DEV_ISSUER } from '../../shared/auth';
import { createDownloadLinks, createPipelineDispatcher } from '../../shared/app/api/pipeline-dispatcher';
import { getClients } from '../../shared/adapters/aws/clients';
import { DynamoAuditLog } from '../../shared/adapters/aws/dynamo-audit-log';
import { DynamoCooldownStore } from '../../shared/adapters/aws/dynamo-cooldown-store';
import { DynamoExportStore } from '../../shared/adapters/aws/dynamo-export-store';
import { DynamoWorkspaceSource } from '../../shared/adapters/aws/dynamo-source-data';
import { createKeyWrapper } from '../../shared/adapters/aws/pipeline-deps';
import { S3DownloadUrlSigner } from '../../shared/adapters/aws/s3-download-url-signer';
import { S3ObjectStore } from '../../shared/adapters/aws/s3-object-store';
import { resolveSecret } from '../../shared/adapters/aws/secrets';
import { SqsMessageQueue } from '../../shared/adapters/aws/sqs-message-queue';
import { getConfig } from '../../shared/config';
import { SERVICE_NAME } from '../../shared/metric-names';
import { parseApiConfig } from '../../shared/config-api';
import { createPolicyConfig } from '../../shared/domain';
import { systemClock, type Clock } from '../../shared/ports/clock';
import { deriveEncryptionKeys } from '../../shared/xlsx/crypto';
import type { ApiRuntime } from './app';

/**
 * Composition root of the api function: configuration and adapters built once per process
 * (cold start) and reused by every invocation.
 */
export const apiLogger = new Logger({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? SERVICE_NAME });

/** Reads the time through an indirection so the local stack and tests can move it (7-day links). */
let clock: Clock = systemClock;
const runtimeClock: Clock = { now: () => clock.now() };

export function setApiClock(next: Clock | undefined): void {
  clock = next ?? systemClock;
}

let pending: Promise<ApiRuntime> | undefined;
let builtFor: string | undefined;

/**
 * On Lambda the environment never changes, so this builds once. In one local process a new
 * local stack (new emulator ports, tables) changes it: rebuild then, so the API never talks to
 * a stopped emulator.
 */
function environmentFingerprint(): string {
  const e = process.env;
  return [e.DYNAMODB_ENDPOINT, e.S3_ENDPOINT, e.SQS_ENDPOINT, e.EXPORTS_TABLE, e.CHUNK_QUEUE_URL, e.PUBLIC_BASE_URL, e.LINK_SIGNING_SECRET].join('|');
}

export function getApiRuntime(): Promise<ApiRuntime> {
  const fingerprint = environmentFingerprint();
  if (!pending || builtFor !== fingerprint) {
    builtFor = fingerprint;
    pending = buildRuntime().catch((error: unknown) => {
      pending = undefined;
      throw error;
    });
  }
  return pending;
}

/** For the local stack and tests after the environment changed. */
export function resetApiRuntime(): void {
  pending = undefined;
}

async function buildRuntime(): Promise<ApiRuntime> {
  const config = getConfig();
  const api = parseApiConfig(process.env, { devSecret: DEFAULT_DEV_SECRET, devIssuer: DEV_ISSUER, devAudience: DEV_AUDIENCE });
  const { ddb, s3, sqs } = getClients();
  const store = new DynamoExportStore(ddb, config.EXPORTS_TABLE, () => runtimeClock.now(), { recordRetentionDays: config.EXPORT_RECORD_RETENTION_DAYS });
  const objects = new S3ObjectStore(s3, config.EXPORT_BUCKET);
  const queue = new SqsMessageQueue(sqs, { chunk: config.CHUNK_QUEUE_URL, finalize: config.FINALIZE_QUEUE_URL, notify: config.NOTIFY_QUEUE_URL });
  const linkSecret = await resolveSecret('LINK_SIGNING_SECRET', config.LINK_SIGNING_SECRET, config.LINK_SIGNING_SECRET_ARN);
  // Domain-separated from the link key: knowing one derived value reveals nothing of the other.
  // It is the api's HMAC key only where the api has no secret of its own (the local stack;
  // parseApiConfig refuses that elsewhere): on AWS the finalizer and notifier read the link
  // secret too, and must not be able to compute the api's HMACs.
  const linkDerived = createHmac('sha256', linkSecret).update('export-service/api-hmac/v1').digest();
  const ownSecret = api.API_HMAC_SECRET || api.API_HMAC_SECRET_ARN;
  const hmacSecret = ownSecret ? Buffer.from(await resolveSecret('API_HMAC_SECRET', api.API_HMAC_SECRET, api.API_HMAC_SECRET_ARN)) : linkDerived;
  const spinCount = api.KEY_SPIN_COUNT;
  return {
    logger: apiLogger,
    ...(process.env.ADMIN_ORIGIN ? { allowedOrigin: process.env.ADMIN_ORIGIN } : {}),
    verifier: createTokenVerifier(api.jwt),
    deps: {
      store,
      audit: new DynamoAuditLog(ddb, config.AUDIT_TABLE),
      cooldowns: new DynamoCooldownStore(ddb, config.COOLDOWNS_TABLE),
      keyWrapper: createKeyWrapper(config),
      dispatcher: createPipelineDispatcher({
        store,
        objects,
        queue,
        workspace: new DynamoWorkspaceSource(ddb, config.WORKSPACE_TABLE),
        selectionBatch: config.SELECTION_BATCH,
        log: {
          info: (message, extra) => apiLogger.info(message, extra ?? {}),
          warn: (message, extra) => apiLogger.warn(message, extra ?? {}),
          error: (message, extra) => apiLogger.error(message, extra ?? {}),
        },
      }),
      links: createDownloadLinks({ store, secret: linkSecret, publicBaseUrl: config.PUBLIC_BASE_URL, now: () => runtimeClock.now() }),
      urlSigner: new S3DownloadUrlSigner(s3, config.EXPORT_BUCKET),
      deriveKeys: (password) => deriveEncryptionKeys(password, spinCount ? { spinCount } : {}),
      clock: runtimeClock,
      policy: createPolicyConfig({
        // Within the policy's bounds as read: parseConfig refuses a MAX_ROWS over a sheet's 1,048,575.
        maxRows: config.MAX_ROWS,
        cooldownMinutes: {
          ...(api.COOLDOWN_MINUTES_CASES !== undefined ? { cases: api.COOLDOWN_MINUTES_CASES } : {}),
          ...(api.COOLDOWN_MINUTES_CONTACTS !== undefined ? { contacts: api.COOLDOWN_MINUTES_CONTACTS } : {}),
        },
      }),
      hmacSecret,
      // Idempotency records written before the api had its own secret were hashed with the
      // link-derived key; they expire 24 h after the deploy that set API_HMAC_SECRET_ARN, and
      // until then a replay must still find its record. Compared against only, never written.
      legacyIdempotencySecrets: ownSecret ? [linkDerived] : [],
      random: randomBytes,
      publicBaseUrl: config.PUBLIC_BASE_URL.replace(/\/+$/, ''),
      presignSeconds: api.DOWNLOAD_PRESIGN_SECONDS,
      staleCooldownSeconds: api.STALE_COOLDOWN_SECONDS,
    },
  };
}
