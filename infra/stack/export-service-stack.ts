import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CfnOutput, Duration, Stack, type StackProps } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { ApiFirewall } from './api-firewall';
import { DataTables } from './data-tables';
import { EXPORTS_PREFIX, ExportBucket, PARTS_PREFIX } from './export-bucket';
import { ExportApi } from './export-api';
import { ServiceKeys } from './keys';
import { JOB_INDEX_NAME } from '../../shared/adapters/aws/export-table-layout';
import { METRICS_NAMESPACE, SERVICE_NAME } from '../../shared/metric-names';
import { ServiceAlarms } from './service-alarms';
import { ServiceFunction } from './service-function';
import { ServiceSecrets } from './service-secrets';
import type { StackConfig } from './stack-config';
import { WorkQueue } from './work-queue';

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export const FUNCTION_NAMES = ['api', 'authorizer', 'chunk', 'finalizer', 'notifier', 'dlq'] as const;
export type FunctionName = (typeof FUNCTION_NAMES)[number];

/** The real entries (docs/contracts.md); tests may point some at fixtures. */
export const DEFAULT_ENTRIES: Record<FunctionName, string> = {
  api: 'functions/api/handler.ts',
  authorizer: 'functions/authorizer/handler.ts',
  chunk: 'functions/chunk/handler.ts',
  finalizer: 'functions/finalizer/handler.ts',
  notifier: 'functions/notifier/handler.ts',
  dlq: 'functions/dlq/handler.ts',
};

/**
 * Size and time per function. Memory buys CPU on Lambda (1,769 MB = one full vCPU), which is what
 * rendering, deflating and encrypting need; the small functions only wait on the network.
 */
export const FUNCTION_SIZING: Record<FunctionName, { memorySize: number; timeout: Duration }> = {
  // API Gateway gives up after 29 s; the 100,000-round password key derivation takes well under 1 s.
  api: { memorySize: 1024, timeout: Duration.seconds(28) },
  authorizer: { memorySize: 256, timeout: Duration.seconds(10) },
  // A case day is one chunk, never split, and may hold up to MAX_ROWS (1,000,000) rows; its rate
  // on Lambda is not measured yet (on the local emulators ~2,500 rows/s, at which such a day
  // needs ~7 minutes). So the Lambda maximum; the chunk queue's visibility follows (6x: 90 min).
  chunk: { memorySize: 1769, timeout: Duration.minutes(15) },
  // The finalizer streams a file of up to ~1M rows through encryption into a multipart upload:
  // give it the Lambda maximum and enough memory for network throughput, not for buffering.
  finalizer: { memorySize: 2048, timeout: Duration.minutes(15) },
  // Up to 3 webhook attempts of at most 10 s each plus backoff (shared/app/notify-export.ts).
  notifier: { memorySize: 256, timeout: Duration.seconds(60) },
  dlq: { memorySize: 256, timeout: Duration.seconds(30) },
};

/**
 * The only functions that read objects, per prefix. Pinned in the bucket policy (reads by anyone
 * else are denied) and in the bucket key's policy (kms:Decrypt by anyone else is denied): a new
 * reader must be added here, or its reads fail with AccessDenied whatever its identity policy says.
 * `parts/` (rows as deflated XML, selections, job definitions): the chunk workers and the
 * finalizer. `exports/` (the encrypted files): the api, whose role signs the download redirect.
 */
export const PART_READERS = ['chunk', 'finalizer'] as const satisfies readonly FunctionName[];
export const FILE_READERS = ['api'] as const satisfies readonly FunctionName[];

export type ExportServiceStackProps = StackProps & {
  config: StackConfig;
  /** JSON Schema (draft-04) of the export request: `exportRequestJsonSchema()`, never a copy. */
  exportRequestSchema: Record<string, unknown>;
  entries?: Partial<Record<FunctionName, string>>;
};

export class ExportServiceStack extends Stack {
  readonly functions: Record<FunctionName, ServiceFunction>;
  readonly tables: DataTables;
  readonly bucket: ExportBucket;
  readonly keys: ServiceKeys;
  readonly secrets: ServiceSecrets;
  readonly queues: { chunk: WorkQueue; finalize: WorkQueue; notify: WorkQueue };
  readonly api: ExportApi;
  readonly firewall: ApiFirewall;
  readonly alarms: ServiceAlarms;

  constructor(scope: Construct, id: string, props: ExportServiceStackProps) {
    super(scope, id, props);
    const { config } = props;
    const entries = { ...DEFAULT_ENTRIES, ...props.entries };

    this.tables = new DataTables(this, 'Tables');
    this.keys = new ServiceKeys(this, 'Keys');
    this.bucket = new ExportBucket(this, 'Storage', { encryptionKey: this.keys.bucketKey, linkTtlDays: config.linkTtlDays });
    this.secrets = new ServiceSecrets(this, 'Secrets');
    const dlqTimeout = FUNCTION_SIZING.dlq.timeout;
    this.queues = {
      chunk: new WorkQueue(this, 'ChunkQueue', { consumerTimeout: FUNCTION_SIZING.chunk.timeout, dlqConsumerTimeout: dlqTimeout }),
      finalize: new WorkQueue(this, 'FinalizeQueue', { consumerTimeout: FUNCTION_SIZING.finalizer.timeout, dlqConsumerTimeout: dlqTimeout }),
      notify: new WorkQueue(this, 'NotifyQueue', { consumerTimeout: FUNCTION_SIZING.notifier.timeout, dlqConsumerTimeout: dlqTimeout }),
    };

    const t = this.tables;
    // Exactly what shared/config.ts requires (plus the optional settings the deploy sets); every
    // pipeline function reads the same configuration at cold start.
    const serviceEnvironment: Record<string, string> = {
      EXPORTS_TABLE: t.exports.tableName,
      COOLDOWNS_TABLE: t.cooldowns.tableName,
      AUDIT_TABLE: t.audit.tableName,
      CASES_TABLE: t.cases.tableName,
      USERS_TABLE: t.users.tableName,
      WORKSPACE_TABLE: t.workspace.tableName,
      EXPORT_BUCKET: this.bucket.bucket.bucketName,
      CHUNK_QUEUE_URL: this.queues.chunk.queue.queueUrl,
      FINALIZE_QUEUE_URL: this.queues.finalize.queue.queueUrl,
      NOTIFY_QUEUE_URL: this.queues.notify.queue.queueUrl,
      KMS_KEY_ID: this.keys.wrapKey.keyArn,
      BOT_WEBHOOK_URL: config.botWebhookUrl,
      BOT_SIGNING_SECRET_ARN: this.secrets.botSigning.secretArn,
      LINK_SIGNING_SECRET_ARN: this.secrets.linkSigning.secretArn,
      LINK_TTL_DAYS: String(config.linkTtlDays),
      // The redrive policies' own counts: a failed record's last receive gets no retry delay
      // (shared/adapters/aws/sqs-handler.ts), so its dead letter is not held back.
      CHUNK_MAX_RECEIVE_COUNT: String(this.queues.chunk.maxReceiveCount),
      FINALIZE_MAX_RECEIVE_COUNT: String(this.queues.finalize.maxReceiveCount),
      NOTIFY_MAX_RECEIVE_COUNT: String(this.queues.notify.maxReceiveCount),
      // Powertools: one service name in every log line, custom metrics (EMF) in one namespace.
      POWERTOOLS_SERVICE_NAME: SERVICE_NAME,
      POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
      ...(config.cooldownMinutesCases !== undefined ? { COOLDOWN_MINUTES_CASES: String(config.cooldownMinutesCases) } : {}),
      ...(config.cooldownMinutesContacts !== undefined ? { COOLDOWN_MINUTES_CONTACTS: String(config.cooldownMinutesContacts) } : {}),
    };
    // Bearer verification settings: the authorizer's, and the api's (shared/config-api.ts), which
    // verifies tokens itself when no authorizer context is present.
    const jwtEnvironment = {
      JWT_ISSUER: config.jwtIssuer,
      JWT_AUDIENCE: config.jwtAudience,
      JWT_JWKS_URL: config.jwtJwksUrl,
      ...(config.jwtMaxLifetimeSeconds !== undefined ? { JWT_MAX_LIFETIME_SECONDS: String(config.jwtMaxLifetimeSeconds) } : {}),
    };
    const logRetention = toRetentionDays(config.logRetentionDays);
    const makeFunction = (name: FunctionName, description: string, environment: Record<string, string>) =>
      new ServiceFunction(this, `${capitalize(name)}Function`, {
        entry: path.resolve(PROJECT_ROOT, entries[name]),
        projectRoot: PROJECT_ROOT,
        description,
        ...FUNCTION_SIZING[name],
        environment,
        logRetention,
      });
    this.functions = {
      api: makeFunction('api', 'export-service: HTTP API (requests, status, audit, download redirect)', {
        ...serviceEnvironment,
        ...jwtEnvironment,
        // Lambda proxy responses carry their own CORS headers (API Gateway adds them only to
        // preflights and its own errors): the one origin the handler may echo.
        ADMIN_ORIGIN: config.adminOrigin,
        // The api's own HMAC key (shared/config-api.ts requires it outside the local stack):
        // only this function gets the variable and only its role may read the secret.
        API_HMAC_SECRET_ARN: this.secrets.apiHmac.secretArn,
      }),
      // The authorizer only verifies tokens: it gets the JWT settings and nothing else.
      authorizer: makeFunction('authorizer', 'export-service: bearer JWT authorizer', jwtEnvironment),
      chunk: makeFunction('chunk', 'export-service: renders one slice of rows into a deflated part', serviceEnvironment),
      finalizer: makeFunction('finalizer', 'export-service: stitches parts into the encrypted XLSX', serviceEnvironment),
      notifier: makeFunction('notifier', 'export-service: signed webhook to the notification bot', serviceEnvironment),
      dlq: makeFunction('dlq', 'export-service: marks dead-lettered exports failed and tells the bot', serviceEnvironment),
    };

    this.api = new ExportApi(this, 'Http', {
      handler: this.functions.api.fn,
      authorizerHandler: this.functions.authorizer.fn,
      exportRequestSchema: props.exportRequestSchema,
      adminOrigin: config.adminOrigin,
      stageName: config.stageName,
      throttleRateLimit: config.throttleRateLimit,
      throttleBurstLimit: config.throttleBurstLimit,
      logRetention,
    });
    this.firewall = new ApiFirewall(this, 'Firewall', {
      stage: this.api.restApi.deploymentStage,
      adminOrigin: config.adminOrigin,
      limits: { all: config.wafRateLimitPerIp, exports: config.wafExportRateLimitPerIp, downloads: config.wafDownloadRateLimitPerIp },
    });
    const publicBaseUrl = config.publicBaseUrl ?? this.api.stageBaseUrl(config.stageName);
    for (const name of FUNCTION_NAMES) {
      if (name !== 'authorizer') this.functions[name].fn.addEnvironment('PUBLIC_BASE_URL', publicBaseUrl);
    }

    this.connectQueues(config.chunkConcurrency);
    this.grantLeastPrivilege();

    this.alarms = new ServiceAlarms(this, 'Alarms', {
      deadLetterQueues: {
        Chunk: this.queues.chunk.deadLetterQueue,
        Finalize: this.queues.finalize.deadLetterQueue,
        Notify: this.queues.notify.deadLetterQueue,
      },
      chunkQueue: this.queues.chunk.queue,
      finalizeQueue: this.queues.finalize.queue,
      notifyQueue: this.queues.notify.queue,
      dlqConsumer: this.functions.dlq.fn,
      pipelineFunctions: {
        Chunk: this.functions.chunk.fn,
        Finalizer: this.functions.finalizer.fn,
        Notifier: this.functions.notifier.fn,
        Dlq: this.functions.dlq.fn,
      },
      alarmEmail: config.alarmEmail,
      restApi: this.api.restApi,
      apiLogGroup: this.functions.api.logGroup,
      firewall: { webAclName: this.firewall.webAclName, ruleMetricNames: this.firewall.ruleMetricNames },
    });

    new CfnOutput(this, 'ApiUrl', { value: this.api.restApi.url, description: 'Base URL of the REST API stage' });
    new CfnOutput(this, 'PublicBaseUrl', { value: publicBaseUrl, description: 'Base of the download links' });
    new CfnOutput(this, 'BucketName', { value: this.bucket.bucket.bucketName });
    new CfnOutput(this, 'AlarmTopicArn', { value: this.alarms.topic.topicArn });
    // Queue names are generated: the runbook's hand-sent messages (a notification re-sent once the
    // bot is fixed, a cancel or revoke follow-up finished) need these URLs.
    new CfnOutput(this, 'NotifyQueueUrl', { value: this.queues.notify.queue.queueUrl, description: 'Where an operator re-sends a notification (docs/deploy.md runbook)' });
    new CfnOutput(this, 'FinalizeQueueUrl', { value: this.queues.finalize.queue.queueUrl, description: 'Where an operator sends a cancel or revoke follow-up (docs/deploy.md runbook)' });
    const tableOutputs: Record<string, dynamodb.Table> = {
      ExportsTable: t.exports,
      CooldownsTable: t.cooldowns,
      AuditTable: t.audit,
      CasesTable: t.cases,
      UsersTable: t.users,
      WorkspaceTable: t.workspace,
    };
    for (const [name, table] of Object.entries(tableOutputs)) new CfnOutput(this, name, { value: table.tableName });
  }

  private connectQueues(chunkConcurrency: number): void {
    const f = this.functions;
    // Chunk workers: each one reads a slice of the source tables as fast as it can render it,
    // roughly 1,000 RCU/s (about 8,000 rows/s of ~1 KB items read eventually consistent). DynamoDB
    // on-demand allows 40,000 RCU/s per table by default (and a new table starts at 12,000), so
    // 40 workers sit at the table quota; more would be throttled, retried and billed for nothing.
    // S3 is not the limit: a worker writes one part per message, far below the 3,500 PUT/s that
    // S3 sustains per prefix. Override with `-c chunkConcurrency=N` after a quota increase.
    f.chunk.fn.addEventSource(
      new SqsEventSource(this.queues.chunk.queue, { batchSize: 1, reportBatchItemFailures: true, maxConcurrency: chunkConcurrency }),
    );
    // Each finalizer holds a multipart upload of up to several hundred MB; 10 at once covers 1,000
    // exports a day with room for bursts while bounding parallel S3 multipart uploads.
    f.finalizer.fn.addEventSource(
      new SqsEventSource(this.queues.finalize.queue, { batchSize: 1, reportBatchItemFailures: true, maxConcurrency: 10 }),
    );
    // The bot is a third-party webhook: a handful of parallel calls keeps us under its rate limit.
    f.notifier.fn.addEventSource(
      new SqsEventSource(this.queues.notify.queue, { batchSize: 10, reportBatchItemFailures: true, maxConcurrency: 5 }),
    );
    // Dead letters are rare; the minimum concurrency SQS mappings allow is plenty.
    for (const queue of [this.queues.chunk, this.queues.finalize, this.queues.notify]) {
      f.dlq.fn.addEventSource(new SqsEventSource(queue.deadLetterQueue, { batchSize: 10, reportBatchItemFailures: true, maxConcurrency: 2 }));
    }
  }

  /**
   * Each function gets exactly the actions its adapters call, on exactly its resources. Explicit
   * statements instead of grantReadWriteData(): those include UpdateItem/DeleteItem, which the
   * audit table must never allow, and Scan, which nothing here needs.
   */
  private grantLeastPrivilege(): void {
    const f = this.functions;
    const t = this.tables;
    const bucket = this.bucket.bucket;
    const allow = (fn: ServiceFunction, sid: string, actions: string[], resources: string[], conditions?: Record<string, unknown>) =>
      fn.fn.addToRolePolicy(new iam.PolicyStatement({ sid, actions, resources, ...(conditions ? { conditions } : {}) }));
    const objects = (prefix: string) => bucket.arnForObjects(`${prefix}*`);
    // S3 uses the bucket key on our behalf; nobody may call KMS with it directly.
    const viaS3 = { StringEquals: { 'kms:ViaService': `s3.${this.region}.amazonaws.com` } };

    // Shared by every pipeline step that can fail an export (shared/app/pipeline-steps.ts
    // failExport): record the failure event, give the manager's cooldown back (a conditional
    // delete on the holder, C8), tell the bot, drop the parts.
    // Deleting an export's parts/ (raw row data): on failure, and on cancel (the api's too).
    // The ListBucket also lets chunk and finalizer tell a missing part from a denied one (S3
    // answers 403 for a missing key to a role that may not list it; s3-object-store.ts).
    const grantDiscardParts = (fn: ServiceFunction) => {
      allow(fn, 'ListParts', ['s3:ListBucket'], [bucket.bucketArn], { StringLike: { 's3:prefix': [`${PARTS_PREFIX}*`] } });
      allow(fn, 'DeleteParts', ['s3:DeleteObject'], [objects(PARTS_PREFIX)]);
    };
    const grantFailExport = (fn: ServiceFunction) => {
      allow(fn, 'AuditAppend', ['dynamodb:PutItem'], [t.audit.tableArn]);
      allow(fn, 'ReleaseCooldown', ['dynamodb:DeleteItem'], [t.cooldowns.tableArn]);
      allow(fn, 'RequestNotify', ['sqs:SendMessage'], [this.queues.notify.queue.queueArn]);
      grantDiscardParts(fn);
    };

    // api: create/list/cancel/revoke exports, cooldowns, audit append + list, plan chunks, download redirect.
    // The list queries gsi1 for a page's keys and reads those jobs by key (BatchGetItem): gsi1
    // holds keys only. No Query on the table itself: nothing the api does needs one.
    allow(f.api, 'ExportsTable', ['dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'], [t.exports.tableArn]);
    allow(f.api, 'ExportsList', ['dynamodb:Query'], [`${t.exports.tableArn}/index/${JOB_INDEX_NAME}`]);
    allow(f.api, 'Cooldowns', ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:DeleteItem'], [t.cooldowns.tableArn]);
    // The audit list: by export on the table, by time on its gsi1 (dynamo-audit-log.ts).
    allow(f.api, 'AuditAppendAndList', ['dynamodb:PutItem', 'dynamodb:Query'], [t.audit.tableArn]);
    allow(f.api, 'AuditListByTime', ['dynamodb:Query'], [`${t.audit.tableArn}/index/gsi1`]);
    // Settings, profile schemas and segments, each by key.
    allow(f.api, 'WorkspaceRead', ['dynamodb:GetItem'], [t.workspace.tableArn]);
    // Chunks; an empty selection has nothing to read and goes straight to the finalizer.
    allow(f.api, 'PlanChunks', ['sqs:SendMessage'], [this.queues.chunk.queue.queueArn, this.queues.finalize.queue.queueArn]);
    // Selected ids are stored under parts/ for the chunk workers (a message holds 256 KB at most).
    allow(f.api, 'WriteSelections', ['s3:PutObject'], [objects(PARTS_PREFIX)]);
    // A cancel deletes what the export left under parts/ at once (it is customer data).
    grantDiscardParts(f.api);
    // The download redirect presigns a GET with this role; S3 checks the role when the URL is used.
    allow(f.api, 'PresignDownloads', ['s3:GetObject'], [objects(EXPORTS_PREFIX)]);
    // A revoke deletes the export's file (by prefix: every object under exports/{channel}/{export}/).
    // The bucket policy denies only reads of exports/ to other roles, never deletes, and the api
    // is its one reader anyway.
    allow(f.api, 'ListFiles', ['s3:ListBucket'], [bucket.bucketArn], { StringLike: { 's3:prefix': [`${EXPORTS_PREFIX}*`] } });
    allow(f.api, 'DeleteFiles', ['s3:DeleteObject'], [objects(EXPORTS_PREFIX)]);
    allow(f.api, 'BucketKey', ['kms:GenerateDataKey', 'kms:Decrypt'], [this.keys.bucketKey.keyArn], viaS3);
    allow(f.api, 'LinkSigningSecret', ['secretsmanager:GetSecretValue'], [this.secrets.linkSigning.secretArn]);
    allow(f.api, 'ApiHmacSecret', ['secretsmanager:GetSecretValue'], [this.secrets.apiHmac.secretArn]);

    // chunk: read one slice of the sources, write its part, record completion; the cases phase
    // of a contacts-with-cases export enqueues the users phase, the last chunk enqueues finalize.
    // Each source as the chunk reads it: cases by day (Query), users by key range (Query) or by
    // id (BatchGetItem: a selection, the users phase), the workspace by key.
    allow(f.chunk, 'CasesRead', ['dynamodb:Query'], [t.cases.tableArn]);
    allow(f.chunk, 'UsersRead', ['dynamodb:Query', 'dynamodb:BatchGetItem'], [t.users.tableArn]);
    allow(f.chunk, 'WorkspaceRead', ['dynamodb:GetItem'], [t.workspace.tableArn]);
    allow(f.chunk, 'ExportsTable', ['dynamodb:GetItem', 'dynamodb:UpdateItem'], [t.exports.tableArn]);
    allow(f.chunk, 'Parts', ['s3:PutObject', 's3:GetObject'], [objects(PARTS_PREFIX)]);
    allow(f.chunk, 'BucketKey', ['kms:GenerateDataKey', 'kms:Decrypt'], [this.keys.bucketKey.keyArn], viaS3);
    allow(f.chunk, 'NextSteps', ['sqs:SendMessage'], [this.queues.chunk.queue.queueArn, this.queues.finalize.queue.queueArn]);
    grantFailExport(f.chunk);

    // finalizer: read parts, write the file (multipart), save the download token, unwrap the key.
    allow(f.finalizer, 'ExportsTable', ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'], [t.exports.tableArn]);
    allow(f.finalizer, 'WorkspaceRead', ['dynamodb:GetItem'], [t.workspace.tableArn]);
    allow(f.finalizer, 'ReadParts', ['s3:GetObject'], [objects(PARTS_PREFIX)]);
    allow(f.finalizer, 'WriteFiles', ['s3:PutObject', 's3:AbortMultipartUpload', 's3:DeleteObject'], [objects(EXPORTS_PREFIX)]);
    // A file written for an export canceled meanwhile is deleted again (by prefix).
    allow(f.finalizer, 'ListFiles', ['s3:ListBucket'], [bucket.bucketArn], { StringLike: { 's3:prefix': [`${EXPORTS_PREFIX}*`] } });
    allow(f.finalizer, 'BucketKey', ['kms:GenerateDataKey', 'kms:Decrypt'], [this.keys.bucketKey.keyArn], viaS3);
    // It stores the download token's hash, so it needs the link key too.
    allow(f.finalizer, 'LinkSigningSecret', ['secretsmanager:GetSecretValue'], [this.secrets.linkSigning.secretArn]);
    grantFailExport(f.finalizer);

    // notifier: read the job, mint the link token, sign and post the webhook, record delivery (on the job and in the trail).
    allow(f.notifier, 'ExportsTable', ['dynamodb:GetItem', 'dynamodb:UpdateItem'], [t.exports.tableArn]);
    allow(f.notifier, 'BotSigningSecret', ['secretsmanager:GetSecretValue'], [this.secrets.botSigning.secretArn]);
    allow(f.notifier, 'LinkSigningSecret', ['secretsmanager:GetSecretValue'], [this.secrets.linkSigning.secretArn]);
    // The bot's outcome (`notified` / `notify-failed`) goes to the audit trail: append only.
    allow(f.notifier, 'AuditAppend', ['dynamodb:PutItem'], [t.audit.tableArn]);

    // dlq: mark the job failed (or record that the bot was unreachable) and tell the bot.
    allow(f.dlq, 'ExportsTable', ['dynamodb:GetItem', 'dynamodb:UpdateItem'], [t.exports.tableArn]);
    grantFailExport(f.dlq);
    // A finalize that uploaded the file and then kept failing dead-letters with the file in
    // place, and no finalizer runs again to clean it up: the dlq deletes it (by prefix, as the
    // finalizer does). Not the chunk: a file exists only once every chunk is done, and a
    // finalizer that loses its completion to a failing chunk deletes its own upload.
    allow(f.dlq, 'ListFiles', ['s3:ListBucket'], [bucket.bucketArn], { StringLike: { 's3:prefix': [`${EXPORTS_PREFIX}*`] } });
    allow(f.dlq, 'DeleteFiles', ['s3:DeleteObject'], [objects(EXPORTS_PREFIX)]);

    this.keys.restrictWrapKey({ wrapper: f.api.fn.role!, unwrapper: f.finalizer.fn.role! });
    // Who may read objects, enforced by the bucket policy and the bucket key's policy (denies), on
    // top of the grants above; the dlq and notifier read nothing.
    const rolesOf = (names: readonly FunctionName[]) => names.map((name) => f[name].fn.role!);
    this.bucket.restrictObjectReads([
      { prefix: PARTS_PREFIX, sid: 'OnlyChunkAndFinalizerReadParts', roles: rolesOf(PART_READERS) },
      { prefix: EXPORTS_PREFIX, sid: 'OnlyApiReadsFiles', roles: rolesOf(FILE_READERS) },
    ]);
    this.keys.restrictBucketKey(rolesOf([...new Set([...PART_READERS, ...FILE_READERS])]));
  }
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** CloudWatch accepts only certain retention values; pick the smallest one that keeps at least `days`. */
export function toRetentionDays(days: number): logs.RetentionDays {
  const allowed = Object.values(logs.RetentionDays)
    .filter((v): v is number => typeof v === 'number' && v > 0)
    .sort((a, b) => a - b);
  const match = allowed.find((v) => v >= days);
  return (match ?? logs.RetentionDays.INFINITE) as logs.RetentionDays;
}
