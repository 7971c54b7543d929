import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { ConfigError, getConfig, type Config } from '../../config';
import { METRICS_NAMESPACE, SERVICE_NAME } from '../../metric-names';
import { systemClock, type Clock } from '../../ports/clock';
import type { KeyWrapper } from '../../ports/key-wrapper';
import type { PipelineLog } from '../../ports/pipeline-log';
import type { ChunkDeps } from '../../app/process-chunk';
import type { FinalizeDeps } from '../../app/finalize-export';
import type { NotifyDeps } from '../../app/notify-export';
import type { StepDeps } from '../../app/pipeline-steps';
import { getClients } from './clients';
import { DynamoExportStore } from './dynamo-export-store';
import { S3ObjectStore } from './s3-object-store';
import { SqsMessageQueue } from './sqs-message-queue';
import { KmsKeyWrapper } from './kms-key-wrapper';
import { DynamoCasesSource, DynamoUsersSource, DynamoWorkspaceSource } from './dynamo-source-data';
import { DynamoAuditLog } from './dynamo-audit-log';
import { DynamoCooldownStore } from './dynamo-cooldown-store';
import { HttpBotWebhook } from './http-bot-webhook';
import { LocalKeyWrapper } from '../local/local-key-wrapper';
import { resolveSecret } from './secrets';
import { CachingWorkspaceSource } from '../caching-workspace-source';
import { workspaceSk } from '../../app/workspace-context';

/**
 * Composition root of the SQS functions: adapters built once per process from the
 * configuration and the shared clients, handed to the use cases as ports.
 */
export const logger = new Logger({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? SERVICE_NAME });
export const metrics = new Metrics({ namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? METRICS_NAMESPACE, serviceName: SERVICE_NAME });

/** Powertools Logger as the use cases' log port, with the exportId on every line. */
export function pipelineLog(base: Logger, exportId: string): PipelineLog {
  const child = base.createChild({ persistentKeys: { exportId } });
  return {
    info: (message, extra) => child.info(message, extra ?? {}),
    warn: (message, extra) => child.warn(message, extra ?? {}),
    error: (message, extra) => child.error(message, extra ?? {}),
  };
}

export function createKeyWrapper(config: Config): KeyWrapper {
  if (config.KMS_KEY_ID === 'local') return new LocalKeyWrapper(config.LOCAL_WRAP_KEY ?? '');
  return new KmsKeyWrapper(getClients().kms, config.KMS_KEY_ID);
}

type BaseDeps = Omit<StepDeps, 'log'> & { config: Config; workspace: CachingWorkspaceSource };

let base: BaseDeps | undefined;

export function baseDeps(clock: Clock = systemClock): BaseDeps {
  if (!base) {
    const config = getConfig();
    const { ddb, s3, sqs } = getClients();
    base = {
      config,
      store: new DynamoExportStore(ddb, config.EXPORTS_TABLE, () => clock.now(), { recordRetentionDays: config.EXPORT_RECORD_RETENTION_DAYS }),
      objects: new S3ObjectStore(s3, config.EXPORT_BUCKET),
      queue: new SqsMessageQueue(sqs, { chunk: config.CHUNK_QUEUE_URL, finalize: config.FINALIZE_QUEUE_URL, notify: config.NOTIFY_QUEUE_URL }),
      audit: new DynamoAuditLog(ddb, config.AUDIT_TABLE),
      cooldowns: new DynamoCooldownStore(ddb, config.COOLDOWNS_TABLE),
      // The directory only (names shown in case rows): an export's segment and profile schemas
      // come from its job (job-definition.ts), and jobs from before that read them uncached.
      workspace: new CachingWorkspaceSource(new DynamoWorkspaceSource(ddb, config.WORKSPACE_TABLE), [workspaceSk.directory]),
      clock,
    };
  }
  return base;
}

/** For the local stack and tests after the environment changed. */
export function resetPipelineDeps(): void {
  base = undefined;
}

export function chunkDeps(log: PipelineLog): ChunkDeps {
  const b = baseDeps();
  const { ddb } = getClients();
  return {
    ...b,
    log,
    cases: new DynamoCasesSource(ddb, b.config.CASES_TABLE),
    users: new DynamoUsersSource(ddb, b.config.USERS_TABLE),
    maxRows: b.config.MAX_ROWS,
    selectionBatch: b.config.SELECTION_BATCH,
    claimWaitMs: b.config.CLAIM_WAIT_MS,
  };
}

export async function finalizeDeps(log: PipelineLog): Promise<FinalizeDeps> {
  const b = baseDeps();
  return {
    ...b,
    log,
    // Read only for jobs from before definitions were pinned; uncached, like their chunks'
    // reads, so the COLUMNS_CHANGED check compares like with like.
    workspace: new DynamoWorkspaceSource(getClients().ddb, b.config.WORKSPACE_TABLE),
    keyWrapper: createKeyWrapper(b.config),
    linkSigningSecret: await resolveSecret('LINK_SIGNING_SECRET', b.config.LINK_SIGNING_SECRET, b.config.LINK_SIGNING_SECRET_ARN),
    linkTtlDays: b.config.LINK_TTL_DAYS,
  };
}

/**
 * What the notifier needs beyond the shared settings, checked before any record runs (so a missing
 * one is the batch's one `invalid configuration` line and counted, not an error per record).
 * Returns the webhook's URL.
 */
export function checkNotifierConfig(config: Config): string {
  const missing = [
    ...(config.BOT_WEBHOOK_URL ? [] : ['BOT_WEBHOOK_URL: required for the notifier']),
    ...(config.BOT_SIGNING_SECRET || config.BOT_SIGNING_SECRET_ARN ? [] : ['BOT_SIGNING_SECRET or BOT_SIGNING_SECRET_ARN: required for the notifier']),
  ];
  if (missing.length > 0 || !config.BOT_WEBHOOK_URL) throw new ConfigError(`invalid environment: ${missing.join('; ')}`);
  return config.BOT_WEBHOOK_URL;
}

export async function notifyDeps(log: PipelineLog): Promise<NotifyDeps> {
  const b = baseDeps();
  const webhookUrl = checkNotifierConfig(b.config);
  return {
    store: b.store,
    clock: b.clock,
    log,
    audit: b.audit,
    bot: new HttpBotWebhook(webhookUrl),
    botSigningSecret: await resolveSecret('BOT_SIGNING_SECRET', b.config.BOT_SIGNING_SECRET, b.config.BOT_SIGNING_SECRET_ARN),
    linkSigningSecret: await resolveSecret('LINK_SIGNING_SECRET', b.config.LINK_SIGNING_SECRET, b.config.LINK_SIGNING_SECRET_ARN),
    publicBaseUrl: b.config.PUBLIC_BASE_URL,
    attempts: b.config.NOTIFY_ATTEMPTS,
    backoffMs: b.config.NOTIFY_BACKOFF_MS,
  };
}
