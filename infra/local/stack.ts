import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context, SQSRecord } from 'aws-lambda';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import type { FauxqsServer } from 'fauxqs';
import { lockDataDir } from './data-dir-lock';
import { startEmulators } from './emulators';
import { createBucket, createQueues, createTables, LOCAL_BUCKET, LOCAL_TABLES, type LocalQueues, type QueueSettings } from './resources';
import { startPoller, type Poller, type SqsHandler } from './sqs-poller';
import { BodyTooLargeError, preflightHeaders, readBody, stackAnswerHeaders, toApiGatewayEvent, writeApiGatewayResult, writeBodyTooLarge } from './http-to-apigw';
import { createLambdaContext } from './lambda-context';
import { LocalBot } from './local-bot';
import { resetClients } from '../../shared/adapters/aws/clients';
import { ConfigError, intSetting, resetConfig } from '../../shared/config';
import { DEFAULT_CLAIM_WAIT_MS } from '../../shared/ports/export-store';
import { METRICS_NAMESPACE, SERVICE_NAME } from '../../shared/metric-names';
import { bodyLimitFor } from '../../shared/http/limits';
import { errorForLog } from '../../shared/error-for-log';

export type FunctionName = 'chunk' | 'finalizer' | 'notifier' | 'dlq';
type ApiHandler = (event: APIGatewayProxyEvent, context: Context) => Promise<APIGatewayProxyResult>;

export type LocalStackOptions = {
  /** Keep DynamoDB and S3 data here (npm start: `.local/`); in memory / a temp dir when absent. */
  dataDir?: string;
  /** API port; 0 picks a free one (tests). Default: PORT or 3000. */
  port?: number;
  /** Seed a demo workspace on first run (npm start), or a small one with these sizes (tests). */
  seed?: boolean | { channelId?: string; users?: number; cases?: number; seed?: number };
  /** Extra/overridden environment for the handlers (e.g. MAX_ROWS in a test). */
  env?: Record<string, string>;
  queues?: Partial<Record<keyof LocalQueues, Partial<QueueSettings>>>;
  /** Lets a test wrap a handler (inject a failure, duplicate a delivery). */
  wrapHandler?: (name: FunctionName, handler: SqsHandler) => SqsHandler;
  /** Run the SQS pollers (default true). */
  pollers?: boolean;
  /** Print progress (npm start); tests stay quiet. */
  log?: (line: string) => void;
};

export type LocalStack = {
  apiUrl: string;
  port: number;
  env: Record<string, string>;
  queues: LocalQueues;
  tables: typeof LOCAL_TABLES;
  bucket: string;
  bot: LocalBot;
  fauxqs: FauxqsServer;
  clients: { ddb: DynamoDBClient; s3: S3Client; sqs: SQSClient };
  /** Deliveries per function, counted by the pollers (a redelivery counts again). */
  deliveries: Record<FunctionName, SQSRecord[]>;
  seeded: { channelId: string; users: number; cases: number; segmentIds: string[] } | undefined;
  stop(): Promise<void>;
};

const MAX_KEPT_DELIVERIES = 20_000;

/**
 * LOCAL_CHUNK_CONCURRENCY: chunk handlers at a time, 1-64 (default 4). Read with a bare Number()
 * it took '', 'abc' and '0' for no poller at all (NaN and 0 loops), and every export waited
 * forever in `queued`. More than a few dozen buys nothing here: the handlers share one process
 * and one event loop with the emulators (the CDK's chunkConcurrency is the AWS setting).
 */
export const LOCAL_CHUNK_CONCURRENCY_BOUNDS = { min: 1, max: 64, default: 4 } as const;
const localChunkConcurrencySetting = intSetting(LOCAL_CHUNK_CONCURRENCY_BOUNDS.min, LOCAL_CHUNK_CONCURRENCY_BOUNDS.max).default(
  LOCAL_CHUNK_CONCURRENCY_BOUNDS.default,
);

/** LOCAL_CHUNK_CONCURRENCY from the environment; a bad value is refused naming the variable and its rule. */
export function localChunkConcurrency(env: Record<string, string | undefined>): number {
  const parsed = localChunkConcurrencySetting.safeParse(env.LOCAL_CHUNK_CONCURRENCY);
  if (parsed.success) return parsed.data;
  const { min, max, default: fallback } = LOCAL_CHUNK_CONCURRENCY_BOUNDS;
  throw new ConfigError(
    `invalid environment: LOCAL_CHUNK_CONCURRENCY: must be a whole number from ${min} to ${max} (chunk handlers at a time; ${fallback} when unset); got ${JSON.stringify(env.LOCAL_CHUNK_CONCURRENCY)}`,
  );
}

/**
 * Your own bot for `npm start`: BOT_WEBHOOK_URL and BOT_SIGNING_SECRET from the shell replace the
 * built-in one (`/v1/dev/bot-webhook`, read back at `/v1/dev/inbox`), so a bot team can develop
 * against real deliveries. Both or neither: a URL without its secret would be signed with a key
 * the bot does not know, and every delivery refused for good. The values are passed on, never
 * printed (the secret is a key).
 */
export function ownBotEnv(env: Record<string, string | undefined>): Record<string, string> {
  const url = env.BOT_WEBHOOK_URL?.trim() ?? '';
  const secret = env.BOT_SIGNING_SECRET ?? '';
  if (url === '' && secret === '') return {};
  if (url === '') throw new ConfigError('invalid environment: BOT_WEBHOOK_URL: required with BOT_SIGNING_SECRET (your bot\'s address; leave both unset for the built-in bot)');
  if (secret.trim() === '') throw new ConfigError('invalid environment: BOT_SIGNING_SECRET: required with BOT_WEBHOOK_URL (the key your bot checks X-Signature with)');
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError('invalid environment: BOT_WEBHOOK_URL: must be an http:// or https:// URL');
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new ConfigError('invalid environment: BOT_WEBHOOK_URL: must be an http:// or https:// URL');
  return { BOT_WEBHOOK_URL: url, BOT_SIGNING_SECRET: secret };
}

const DEFAULT_QUEUE_SETTINGS: Record<keyof LocalQueues, QueueSettings> = {
  chunk: { visibilityTimeout: 60, maxReceiveCount: 3 },
  finalize: { visibilityTimeout: 300, maxReceiveCount: 3 },
  notify: { visibilityTimeout: 30, maxReceiveCount: 5 },
};

type LocalSecrets = { localWrapKey: string; linkSigningSecret: string; botSigningSecret: string };

function newSecrets(): LocalSecrets {
  return {
    localWrapKey: randomBytes(32).toString('base64'),
    linkSigningSecret: randomBytes(32).toString('base64url'),
    botSigningSecret: randomBytes(32).toString('base64url'),
  };
}

/** npm start keeps its secrets beside its data so wrapped keys and links survive a restart. */
async function loadSecrets(dataDir: string | undefined): Promise<LocalSecrets> {
  if (!dataDir) return newSecrets();
  const file = join(dataDir, 'secrets.json');
  if (existsSync(file)) return JSON.parse(await readFile(file, 'utf8')) as LocalSecrets;
  const secrets = newSecrets();
  await writeFile(file, JSON.stringify(secrets), { mode: 0o600 });
  return secrets;
}

/**
 * Fails, through the pipeline's own failExport, every export the last run left in flight: the
 * cooldown is given back, the trail gets its `failed` event, the parts (and a file the finalizer
 * had already uploaded) are deleted and the bot is told once the pollers run (the notify message
 * waits in the queue until then).
 */
async function failInterruptedExports(client: DynamoDBClient, log: (line: string) => void): Promise<number> {
  const ddb = DynamoDBDocumentClient.from(client);
  const { baseDeps } = await import('../../shared/adapters/aws/pipeline-deps');
  const { discardExportFile, failExport, FollowUpsFailedError } = await import('../../shared/app/pipeline-steps');
  const deps = { ...baseDeps(), log: { info: () => undefined, warn: () => undefined, error: (message: string) => log(message) } };
  let count = 0;
  let startKey: Record<string, unknown> | undefined;
  do {
    const page = await ddb.send(
      new ScanCommand({
        TableName: LOCAL_TABLES.exports,
        FilterExpression: 'sk = :job AND #status IN (:q, :r, :f)',
        ExpressionAttributeNames: { '#status': 'status' },
        ExpressionAttributeValues: { ':job': 'JOB', ':q': 'queued', ':r': 'running', ':f': 'finalizing' },
        ...(startKey ? { ExclusiveStartKey: startKey } : {}),
      }),
    );
    for (const item of page.Items ?? []) {
      const job = { exportId: String(item.exportId), channelId: String(item.channelId), managerId: String(item.managerId), kind: item.kind as 'cases' | 'contacts' };
      // One export's clean-up failing (its parts sweep, say) must not stop the stack from
      // starting: it is logged, and the export is failed all the same (the transition comes first).
      try {
        const failed = await failExport(deps, job, {
          code: 'INTERRUPTED',
          message: 'the local stack stopped while this export ran; request it again',
        });
        if (failed) {
          count++;
          // A stop between the finalizer's upload and its completion leaves a file no link reaches.
          await discardExportFile(deps, job);
        }
      } catch (error) {
        if (error instanceof FollowUpsFailedError) count++;
        const said = errorForLog(error);
        log(`interrupted export ${job.exportId}: its clean-up did not finish (${said.name ?? 'Error'}: ${said.message})`);
      }
    }
    startKey = page.LastEvaluatedKey;
  } while (startKey);
  return count;
}

async function importHandler<T>(path: string): Promise<T> {
  const module = (await import(path)) as { handler?: T };
  if (!module.handler) throw new Error(`${path} exports no handler`);
  return module.handler;
}

/**
 * The whole service on one machine: emulators, tables, bucket, queues with DLQs, demo data,
 * the API over HTTP (same handler as API Gateway would call), pollers feeding the same SQS
 * handlers, and a local bot. Used by `npm start` and by the end-to-end tests.
 */
export async function startLocalStack(options: LocalStackOptions = {}): Promise<LocalStack> {
  const log = options.log ?? (() => undefined);
  // Before anything starts: a bad value would otherwise be found after the emulators and the seed.
  // The shell's setting, or the caller's (options.env, merged into the handlers' environment
  // later): the same precedence as every other setting.
  const chunkConcurrency = localChunkConcurrency({ ...process.env, ...(options.env ?? {}) });
  let unlock: (() => Promise<void>) | undefined;
  if (options.dataDir) {
    await mkdir(options.dataDir, { recursive: true });
    unlock = await lockDataDir(options.dataDir);
  }
  let emulators: Awaited<ReturnType<typeof startEmulators>>;
  try {
    emulators = await startEmulators(options.dataDir ? { dataDir: options.dataDir } : {});
  } catch (error) {
    await unlock?.();
    throw error;
  }
  // s3rver accepts only its fixed S3RVER key pair; dynalite and fauxqs accept anything.
  const credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
  const region = 'us-east-1';
  const ddb = new DynamoDBClient({ region, endpoint: emulators.dynamoEndpoint, credentials });
  const s3 = new S3Client({ region, endpoint: emulators.s3Endpoint, credentials, forcePathStyle: true, requestChecksumCalculation: 'WHEN_REQUIRED' });
  const sqs = new SQSClient({ region, endpoint: emulators.sqsEndpoint, credentials });

  const servers: Server[] = [];
  const pollers: Poller[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    await Promise.allSettled(cleanups.map((c) => c()));
    await Promise.allSettled(pollers.map((p) => p.stop()));
    await Promise.allSettled(
      servers.map((s) => new Promise<void>((resolve) => { s.closeAllConnections?.(); s.close(() => resolve()); })),
    );
    ddb.destroy();
    s3.destroy();
    sqs.destroy();
    resetClients();
    await emulators.stop();
    // Last: the folder is free only once the emulators have closed their files.
    await unlock?.();
  };

  try {
    await createTables(ddb);
    await createBucket(s3, LOCAL_BUCKET);
    const settings = { ...DEFAULT_QUEUE_SETTINGS };
    for (const name of Object.keys(settings) as (keyof LocalQueues)[]) {
      settings[name] = { ...settings[name], ...(options.queues?.[name] ?? {}) };
    }
    const queues = await createQueues(sqs, settings);
    // A chunk delivery waiting on a claimed next step must give up well before its message
    // becomes visible again (tests use visibility timeouts of a few seconds).
    const claimWaitMs = Math.max(1, Math.min(DEFAULT_CLAIM_WAIT_MS, Math.floor((settings.chunk.visibilityTimeout * 1000) / 4)));
    const secrets = await loadSecrets(options.dataDir);

    // One HTTP server: the API plus the local bot. Bind first so the port is known for links.
    const bot = new LocalBot(secrets.botSigningSecret);
    let apiHandler: ApiHandler | undefined;
    let apiLoadError: unknown;
    // What the stack is still doing while the port is bound but the api is not loaded yet.
    let startingStep = 'starting';
    const server = createServer((req, res) => {
      void (async () => {
        try {
          // Only this machine's names for this server: a web page the developer visits could
          // otherwise reach it through DNS rebinding (a hostile name resolving to 127.0.0.1)
          // and read the inbox's links or call the API with a token signed by the dev secret.
          if (!isLocalHost(req.headers.host, (server.address() as AddressInfo | null)?.port)) {
            res.writeHead(421, { 'content-type': 'application/json' }).end(
              JSON.stringify({ error: { code: 'MISDIRECTED_REQUEST', message: 'the local stack answers only to 127.0.0.1, localhost or [::1] on its port' } }),
            );
            return;
          }
          const url = new URL(req.url ?? '/', 'http://127.0.0.1');
          if (url.pathname === '/v1/dev/bot-webhook' && req.method === 'POST') {
            const body = await readBody(req);
            const status = bot.receive(body.toString('utf8'), req.headers);
            res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: status < 300 }));
            return;
          }
          if (url.pathname === '/v1/dev/inbox' && req.method === 'GET') {
            res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ items: bot.messages, refused: bot.refused }));
            return;
          }
          const preflight = preflightHeaders(req, url.pathname);
          if (preflight) {
            res.writeHead(204, preflight).end();
            return;
          }
          if (!apiHandler) {
            // Before the handler is loaded (the first npm start seeds for about a minute) this is
            // a wait, not a failure: say so, and when to come back. Only a failed load names an error.
            const loadFailed = apiLoadError !== undefined;
            const message = loadFailed
              ? `api handler not loaded: ${apiLoadError instanceof Error ? apiLoadError.message : String(apiLoadError)}`
              : `the local stack is still ${startingStep}: try again in a minute`;
            const requestId = randomUUID();
            res
              .writeHead(503, { ...stackAnswerHeaders(req, requestId), ...(loadFailed ? {} : { 'retry-after': '60' }) })
              .end(JSON.stringify({ error: { code: 'API_UNAVAILABLE', message, requestId } }));
            return;
          }
          // As the web ACL on AWS: a JSON POST creating an export up to MAX_REQUEST_BODY_BYTES,
          // anything else less.
          const path = (req.url ?? '/').split('?')[0] ?? '/';
          const body = await readBody(req, bodyLimitFor(req.method ?? 'GET', path, req.headers['content-type']));
          const result = await apiHandler(toApiGatewayEvent(req, body), createLambdaContext('api', 29_000));
          writeApiGatewayResult(res, result);
        } catch (error) {
          // API Gateway answers a body over its payload limit with a 413 before the Lambda
          // runs; so does this stack, in the api's error envelope. Not an error of the stack's.
          if (error instanceof BodyTooLargeError && !res.headersSent) {
            writeBodyTooLarge(req, res, error);
            return;
          }
          log(`http error: ${String(error)}`);
          const requestId = randomUUID();
          if (!res.headersSent) res.writeHead(500, stackAnswerHeaders(req, requestId));
          res.end(JSON.stringify({ error: { code: 'INTERNAL', message: 'internal error', requestId } }));
        }
      })();
    });
    servers.push(server);
    const requestedPort = options.port ?? Number(process.env.PORT ?? 3000);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(requestedPort, '127.0.0.1', () => resolve());
    });
    const port = (server.address() as AddressInfo).port;
    const apiUrl = `http://127.0.0.1:${port}`;

    const env: Record<string, string> = {
      AWS_REGION: region,
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      EXPORTS_TABLE: LOCAL_TABLES.exports,
      COOLDOWNS_TABLE: LOCAL_TABLES.cooldowns,
      AUDIT_TABLE: LOCAL_TABLES.audit,
      CASES_TABLE: LOCAL_TABLES.cases,
      USERS_TABLE: LOCAL_TABLES.users,
      WORKSPACE_TABLE: LOCAL_TABLES.workspace,
      EXPORT_BUCKET: LOCAL_BUCKET,
      CHUNK_QUEUE_URL: queues.chunk.url,
      FINALIZE_QUEUE_URL: queues.finalize.url,
      NOTIFY_QUEUE_URL: queues.notify.url,
      CHUNK_DLQ_ARN: queues.chunk.dlqArn,
      FINALIZE_DLQ_ARN: queues.finalize.dlqArn,
      NOTIFY_DLQ_ARN: queues.notify.dlqArn,
      KMS_KEY_ID: 'local',
      LOCAL_WRAP_KEY: secrets.localWrapKey,
      LINK_SIGNING_SECRET: secrets.linkSigningSecret,
      BOT_SIGNING_SECRET: secrets.botSigningSecret,
      BOT_WEBHOOK_URL: `${apiUrl}/v1/dev/bot-webhook`,
      PUBLIC_BASE_URL: apiUrl,
      DYNAMODB_ENDPOINT: emulators.dynamoEndpoint,
      S3_ENDPOINT: emulators.s3Endpoint,
      SQS_ENDPOINT: emulators.sqsEndpoint,
      POWERTOOLS_SERVICE_NAME: SERVICE_NAME,
      POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
      // Local queues use short visibility timeouts; retries follow them (1, 2, 4 s ...).
      RETRY_BASE_SECONDS: '1',
      // What the queues' redrive policies say (as the CDK stack sets them): a failed record's
      // last receive gets no retry delay, since the DLQ is all that follows it.
      CHUNK_MAX_RECEIVE_COUNT: String(settings.chunk.maxReceiveCount),
      FINALIZE_MAX_RECEIVE_COUNT: String(settings.finalize.maxReceiveCount),
      NOTIFY_MAX_RECEIVE_COUNT: String(settings.notify.maxReceiveCount),
      CLAIM_WAIT_MS: String(claimWaitMs),
      ...(options.env ?? {}),
    };
    // Handlers read their configuration from the environment at cold start, as on Lambda;
    // in-process that is this process's env, set before any handler module is loaded.
    Object.assign(process.env, env);
    resetConfig();
    resetClients();
    // Imported only now: the Powertools logger and metrics read their settings at construction.
    const { resetPipelineDeps } = await import('../../shared/adapters/aws/pipeline-deps');
    resetPipelineDeps();
    const { resetReceiveLimits } = await import('../../shared/adapters/aws/sqs-handler');
    resetReceiveLimits();

    if (options.dataDir) {
      // Queue messages live only in memory (fauxqs): exports that were in flight when the last
      // run stopped can never finish, so they are failed rather than left "running" forever.
      const interrupted = await failInterruptedExports(ddb, log);
      if (interrupted > 0) log(`marked ${interrupted} export(s) interrupted by the last shutdown as failed`);
    }

    let seeded: LocalStack['seeded'];
    if (options.seed) {
      startingStep = 'seeding demo data';
      const { seedIfEmpty } = await import('./seed-data');
      const seedOptions = typeof options.seed === 'object' ? options.seed : {};
      seeded = await seedIfEmpty({ dataDir: options.dataDir, ...seedOptions, log });
    }
    startingStep = 'loading the api';

    try {
      apiHandler = await importHandler<ApiHandler>('../../functions/api/handler');
    } catch (error) {
      apiLoadError = error;
      log(`api handler not available yet: ${String(error)}`);
    }

    const deliveries: Record<FunctionName, SQSRecord[]> = { chunk: [], finalizer: [], notifier: [], dlq: [] };
    if (options.pollers !== false) {
      const wrap = options.wrapHandler ?? ((_name: FunctionName, handler: SqsHandler) => handler);
      const poll = (name: FunctionName, queueUrl: string, queueArn: string, concurrency: number, path: string, batchSize = 10) =>
        pollers.push(
          startPoller({
            sqs,
            queueUrl,
            queueArn,
            functionName: name,
            concurrency,
            batchSize,
            loadHandler: async () => wrap(name, await importHandler<SqsHandler>(path)),
            onDeliver: (record) => {
              const kept = deliveries[name];
              kept.push(record);
              // Bounded: npm start can run for days.
              if (kept.length > MAX_KEPT_DELIVERIES) kept.splice(0, kept.length - MAX_KEPT_DELIVERIES);
            },
            onError: (error) => log(`${name} poller: ${String(error)}`),
          }),
        );
      // Batch sizes as in the CDK stack (chunk and finalize: one record per invocation).
      poll('chunk', queues.chunk.url, queues.chunk.arn, chunkConcurrency, '../../functions/chunk/handler', 1);
      poll('finalizer', queues.finalize.url, queues.finalize.arn, 2, '../../functions/finalizer/handler', 1);
      poll('notifier', queues.notify.url, queues.notify.arn, 1, '../../functions/notifier/handler');
      for (const q of [queues.chunk, queues.finalize, queues.notify]) {
        poll('dlq', q.dlqUrl, q.dlqArn, 1, '../../functions/dlq/handler');
      }
    }

    if (options.dataDir) {
      // `npm run seed` finds the running stack's emulators here (the LevelDB folder is locked by this process).
      await writeFile(
        join(options.dataDir, 'endpoints.json'),
        JSON.stringify({ dynamoEndpoint: emulators.dynamoEndpoint, s3Endpoint: emulators.s3Endpoint, sqsEndpoint: emulators.sqsEndpoint, apiUrl }),
      );
      const endpointsFile = join(options.dataDir, 'endpoints.json');
      cleanups.push(() => rm(endpointsFile, { force: true }));
    }

    return {
      apiUrl,
      port,
      env,
      queues,
      tables: LOCAL_TABLES,
      bucket: LOCAL_BUCKET,
      bot,
      fauxqs: emulators.fauxqs,
      clients: { ddb, s3, sqs },
      deliveries,
      seeded,
      stop: stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/** True for a Host header naming this machine on `port` (what a browser sends for our own URLs). */
export function isLocalHost(host: string | undefined, port: number | undefined): boolean {
  if (!host || port === undefined) return false;
  return host === `127.0.0.1:${port}` || host === `localhost:${port}` || host === `[::1]:${port}`;
}
